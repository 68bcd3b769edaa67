-- n_plus_one: the inbox lists conversations, then asks for each one's latest message separately.
-- Blocks use psycopg named parameters (%(name)s). `naive` is two statements: the list, then the
-- per-row query the application runs once per listed conversation.

-- name: setup
-- nothing to add

-- name: naive
SELECT id, title FROM conversations ORDER BY updated_at DESC, id LIMIT %(page_size)s;
SELECT id, user_id, body, created_at FROM messages WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC LIMIT 1;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at);

-- name: fixed
SELECT id, title FROM conversations ORDER BY updated_at DESC, id LIMIT %(page_size)s;
SELECT DISTINCT ON (conversation_id) conversation_id, id, user_id, body, created_at
FROM messages WHERE conversation_id = ANY(%(conversation_ids)s)
ORDER BY conversation_id, created_at DESC;
