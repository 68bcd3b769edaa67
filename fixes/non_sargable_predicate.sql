-- non_sargable_predicate: login looks users up by lower(email), so the index on email is useless.
-- Blocks use psycopg named parameters (%(name)s). Run a migrate block one statement at a time.

-- name: setup
CREATE INDEX IF NOT EXISTS users_email_idx ON users (email);

-- name: naive
SELECT id, name, email FROM users WHERE lower(email) = lower(%(email)s);

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS users_lower_email_idx ON users (lower(email));

-- name: fixed
SELECT id, name, email FROM users WHERE lower(email) = lower(%(email)s);
