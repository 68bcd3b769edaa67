-- sort_without_index: the "latest messages" feed sorts every message to return fifty.
-- Run a migrate block one statement at a time (CREATE INDEX CONCURRENTLY).

-- name: setup
-- nothing to add

-- name: naive
SELECT id, conversation_id, user_id, body, created_at
FROM messages
ORDER BY created_at DESC
LIMIT 50;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_created_at_idx ON messages (created_at);

-- name: fixed
SELECT id, conversation_id, user_id, body, created_at
FROM messages
ORDER BY created_at DESC
LIMIT 50;
