-- count_per_request: every page shows an unread badge, counted from notifications on each request.
-- Blocks use psycopg named parameters (%(name)s). The fix keeps the count on users, maintained
-- where notifications are written and read (in the same transaction as the write).

-- name: setup
-- nothing to add

-- name: naive
SELECT count(*) FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL;

-- name: migrate
ALTER TABLE users ADD COLUMN IF NOT EXISTS unread_count integer NOT NULL DEFAULT 0;
UPDATE users u SET unread_count = (SELECT count(*) FROM notifications n WHERE n.user_id = u.id AND n.read_at IS NULL);

-- name: fixed
SELECT unread_count FROM users WHERE id = %(user_id)s;
