-- pool_exhaustion: the statement is harmless; the damage is in how it is sent. The naive service opens
-- a new connection per request (or a pool larger than max_connections allows); the fixed one sends
-- every request through one shared pool bounded well below max_connections minus reserved slots.
-- The lab's code path is lab/trial/service/paths/pool_exhaustion.py (how a request gets its
-- connection); the statement below is the one its load sends, a conversation's latest messages.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC
LIMIT 50;

-- name: migrate
-- nothing to migrate: the fix is the application's pool size

-- name: fixed
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC
LIMIT 50;
