-- missing_fk_index: the chat schema's foreign keys have no index on the referencing side, so deleting
-- a user or a message, or joining to them, scans the child tables.
-- Blocks use psycopg named parameters (%(name)s). Run a migrate block one statement at a time.

-- name: setup
-- nothing to add: lab/schema.sql declares the foreign keys and no index for them

-- name: naive
DELETE FROM notifications WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = %(conversation_id)s);

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_user_id_idx ON messages (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_user_id_idx ON notifications (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_message_id_idx ON notifications (message_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS conversations_owner_id_idx ON conversations (owner_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS conversation_members_user_id_idx ON conversation_members (user_id);

-- name: fixed
DELETE FROM notifications WHERE message_id IN (SELECT id FROM messages WHERE conversation_id = %(conversation_id)s);
