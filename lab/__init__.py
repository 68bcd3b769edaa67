"""The pglab engine: catalogue discovery, embedded Postgres, the command line."""
