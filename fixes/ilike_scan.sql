-- ilike_scan: message search with ILIKE '%term%', which no B-tree can serve.
-- Blocks use psycopg named parameters (%(name)s); `pattern` is the user's term wrapped in %...%.
-- Run a migrate block one statement at a time (CREATE INDEX CONCURRENTLY).

-- name: setup
-- nothing to add: messages.body has no index

-- name: naive
SELECT id, conversation_id, body, created_at
FROM messages
WHERE body ILIKE %(pattern)s
ORDER BY created_at DESC
LIMIT 50;

-- name: migrate
CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_body_trgm_idx ON messages USING gin (body gin_trgm_ops);

-- name: fixed
SELECT id, conversation_id, body, created_at
FROM messages
WHERE body ILIKE %(pattern)s
ORDER BY created_at DESC
LIMIT 50;
