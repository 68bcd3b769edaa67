"""Reference fixes: `<id>.sql` files with named blocks (setup / naive / migrate / fixed)."""
