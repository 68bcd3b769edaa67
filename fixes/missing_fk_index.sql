-- missing_fk_index: a moderator purges a spam account's recent messages. The purge finds them by
-- messages.user_id and, for every message it deletes, the foreign key from notifications.message_id
-- makes Postgres look for notifications that still point at it; neither foreign-key column has an
-- index, so each lookup is a sequential scan (of messages, and of notifications once per message).
-- Blocks use psycopg named parameters (%(name)s); both statements run in one transaction, and the
-- account total gives back the purged messages' tokens. Run a migrate block one statement at a time.

-- name: setup
-- nothing to add: lab/schema.sql declares the foreign keys and no index for them

-- name: naive
DELETE FROM notifications
WHERE message_id IN (SELECT id FROM messages
                     WHERE user_id = %(user_id)s AND created_at > now() - interval '1 hour');
WITH purged AS (
    DELETE FROM messages WHERE user_id = %(user_id)s AND created_at > now() - interval '1 hour'
    RETURNING tokens)
UPDATE users SET tokens_used = tokens_used - (SELECT coalesce(sum(tokens), 0) FROM purged)
WHERE id = %(user_id)s
RETURNING (SELECT count(*) FROM purged);

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_user_id_idx ON messages (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_message_id_idx ON notifications (message_id);

-- name: fixed
DELETE FROM notifications
WHERE message_id IN (SELECT id FROM messages
                     WHERE user_id = %(user_id)s AND created_at > now() - interval '1 hour');
WITH purged AS (
    DELETE FROM messages WHERE user_id = %(user_id)s AND created_at > now() - interval '1 hour'
    RETURNING tokens)
UPDATE users SET tokens_used = tokens_used - (SELECT coalesce(sum(tokens), 0) FROM purged)
WHERE id = %(user_id)s
RETURNING (SELECT count(*) FROM purged);
