-- write_amplification: over time the messages table collected indexes nobody uses or that repeat
-- another's leading columns; every insert writes all of them.
-- Run a migrate block one statement at a time (DROP INDEX CONCURRENTLY).

-- name: setup
CREATE INDEX IF NOT EXISTS messages_conversation_id_created_at_idx ON messages (conversation_id, created_at);
CREATE INDEX IF NOT EXISTS messages_conversation_id_only_idx ON messages (conversation_id);
CREATE INDEX IF NOT EXISTS messages_tokens_idx ON messages (tokens);
CREATE INDEX IF NOT EXISTS messages_metadata_idx ON messages USING gin (metadata);

-- name: naive
INSERT INTO messages (conversation_id, user_id, body, tokens) VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(tokens)s);
SELECT id, body FROM messages WHERE conversation_id = %(conversation_id)s ORDER BY created_at DESC LIMIT 20;

-- name: migrate
DROP INDEX CONCURRENTLY IF EXISTS messages_conversation_id_only_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_tokens_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_metadata_idx;

-- name: fixed
INSERT INTO messages (conversation_id, user_id, body, tokens) VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(tokens)s);
SELECT id, body FROM messages WHERE conversation_id = %(conversation_id)s ORDER BY created_at DESC LIMIT 20;
