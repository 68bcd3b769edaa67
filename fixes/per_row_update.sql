-- per_row_update: "mark all as read" lists the unread notifications, then updates them one by one.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT id FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL;
UPDATE notifications SET read_at = now() WHERE id = %(id)s;

-- name: migrate
-- nothing to migrate: one set-based UPDATE replaces the loop

-- name: fixed
UPDATE notifications SET read_at = now() WHERE user_id = %(user_id)s AND read_at IS NULL;
