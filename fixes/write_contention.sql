-- write_contention: every message INSERT also updates its conversation's counter and timestamp in
-- the same transaction, so concurrent posts to one conversation queue on that row's lock.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
INSERT INTO messages (conversation_id, user_id, body) VALUES (%(conversation_id)s, %(user_id)s, %(body)s);
UPDATE conversations SET message_count = message_count + 1, updated_at = now() WHERE id = %(conversation_id)s;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at);

-- name: fixed
-- the hot row is no longer written: count and last activity are read from messages (indexed)
INSERT INTO messages (conversation_id, user_id, body) VALUES (%(conversation_id)s, %(user_id)s, %(body)s);
