-- bulk_delete: retention deletes every expired message in one statement.
-- Blocks use psycopg named parameters (%(name)s); `keep` is an interval such as '1 hour'.
-- The fixed statement is run repeatedly until it deletes no row, each run its own transaction.
-- Run a migrate block one statement at a time (CREATE INDEX CONCURRENTLY).

-- name: setup
-- nothing to add

-- name: naive
DELETE FROM messages WHERE created_at < now() - %(keep)s::interval;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_created_at_idx ON messages (created_at);

-- name: fixed
DELETE FROM messages
WHERE id IN (SELECT id FROM messages WHERE created_at < now() - %(keep)s::interval
             ORDER BY created_at LIMIT 5000);
