-- write_amplification: over time the messages table collected indexes that earn nothing: one that
-- repeats the leading column of another, one on a column no query filters by, and a GIN index
-- over the metadata "in case we ever search it". Every insert writes all of them.
-- Blocks use psycopg named parameters (%(name)s). `naive` is what the incoming-webhook route runs:
-- store an integration's message, its JSON payload as the message's metadata.
-- Run a migrate block one statement at a time (DROP INDEX CONCURRENTLY).

-- name: setup
-- (conversation_id, created_at) is the index the conversation's reads use (missing_index's fix);
-- the three below it are the redundant ones.
CREATE INDEX IF NOT EXISTS messages_conversation_id_created_at_idx ON messages (conversation_id, created_at);
CREATE INDEX IF NOT EXISTS messages_conversation_id_only_idx ON messages (conversation_id);
CREATE INDEX IF NOT EXISTS messages_tokens_idx ON messages (tokens);
CREATE INDEX IF NOT EXISTS messages_metadata_idx ON messages USING gin (metadata);

-- name: naive
INSERT INTO messages (conversation_id, user_id, body, metadata)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(metadata)s)
RETURNING id;

-- name: migrate
-- only the three indexes the setup added: (conversation_id, created_at) serves the reads
DROP INDEX CONCURRENTLY IF EXISTS messages_conversation_id_only_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_tokens_idx;
DROP INDEX CONCURRENTLY IF EXISTS messages_metadata_idx;

-- name: fixed
INSERT INTO messages (conversation_id, user_id, body, metadata)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(metadata)s)
RETURNING id;
