-- long_poll_connection: a client waits for new notifications by re-running a query every fraction of
-- a second inside one transaction it keeps open (and on a connection it keeps).
-- Blocks use psycopg named parameters (%(name)s). `naive` runs in one transaction, repeatedly;
-- `fixed` waits with LISTEN and reads once per NOTIFY, each read its own short transaction.

-- name: setup
-- nothing to add

-- name: naive
SELECT id, kind, created_at FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL ORDER BY id;

-- name: migrate
-- nothing to migrate: writers announce new notifications
-- (NOTIFY notifications, '<user_id>' after the INSERT commits)

-- name: fixed
LISTEN notifications;
SELECT id, kind, created_at FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL ORDER BY id;
