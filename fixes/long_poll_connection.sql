-- long_poll_connection: a client waits (up to `wait` seconds) for notifications newer than the last
-- one it has seen. The service looks again every second until one arrives or the wait is over.
-- The naive code does that looking inside one pooled connection and one transaction it keeps for
-- the whole wait, so each waiting client pins a connection that every other request needs; the
-- fixed code runs the same statement, but takes a connection for each look and gives it back
-- before it sleeps. (Better still, at scale: LISTEN on one dedicated connection per process, and
-- let writers NOTIFY; each waiter then reads once per event.)
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT id, kind, message_id, created_at FROM notifications
WHERE user_id = %(user_id)s AND id > %(after)s ORDER BY id LIMIT 50;

-- name: migrate
-- nothing to migrate: the fix is in how long the connection is held

-- name: fixed
SELECT id, kind, message_id, created_at FROM notifications
WHERE user_id = %(user_id)s AND id > %(after)s ORDER BY id LIMIT 50;
