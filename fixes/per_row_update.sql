-- per_row_update: "mark all as read" lists the unread notifications, then updates them one by one.
-- Blocks use psycopg named parameters (%(name)s). The service runs each block in one transaction.
-- The setup gives notifications the index on user_id that any team has, so that finding a user's
-- unread notifications is cheap on both sides and the round trips are what the lab measures.

-- name: setup
CREATE INDEX IF NOT EXISTS notifications_user_id_idx ON notifications (user_id);

-- name: naive
SELECT id FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL ORDER BY id;
UPDATE notifications SET read_at = now() WHERE id = %(id)s;

-- name: migrate
-- nothing to migrate: one set-based UPDATE replaces the loop

-- name: fixed
UPDATE notifications SET read_at = now() WHERE user_id = %(user_id)s AND read_at IS NULL;
-- (when the client picks the rows, the ids go as one array instead:
--  UPDATE notifications SET read_at = now() WHERE id = ANY(%(ids)s) AND user_id = %(user_id)s)
