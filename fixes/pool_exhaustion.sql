-- pool_exhaustion: the statement is harmless; the damage is in how it is sent. The naive service opens
-- a new connection per request (or a pool larger than max_connections allows); the fixed one sends
-- every request through one shared pool bounded well below max_connections minus reserved slots.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT id, title FROM conversations WHERE owner_id = %(user_id)s ORDER BY updated_at DESC LIMIT 20;

-- name: migrate
-- nothing to migrate: the fix is the application's pool size

-- name: fixed
SELECT id, title FROM conversations WHERE owner_id = %(user_id)s ORDER BY updated_at DESC LIMIT 20;
