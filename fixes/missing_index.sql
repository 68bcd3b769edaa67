-- missing_index: a conversation's messages are looked up by conversation_id, which no index leads.
-- Blocks use psycopg named parameters (%(name)s). Run a migrate block one statement at a time:
-- CREATE INDEX CONCURRENTLY cannot run inside a transaction block.

-- name: setup
-- nothing to add: lab/schema.sql gives messages no secondary index

-- name: naive
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC
LIMIT 50;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at);

-- name: fixed
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC
LIMIT 50;
