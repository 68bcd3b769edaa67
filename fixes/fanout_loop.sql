-- fanout_loop: a broadcast notifies every user, one INSERT per recipient in a loop.
-- Blocks use psycopg named parameters (%(name)s). `naive` is the recipient list, then the INSERT
-- the application runs once per recipient, all in one transaction. The lab's service runs these
-- blocks (lab/trial/service/paths/fanout_loop.py).

-- name: setup
-- nothing to add

-- name: naive
SELECT id FROM users ORDER BY id;
INSERT INTO notifications (user_id, kind) VALUES (%(user_id)s, %(kind)s);

-- name: migrate
-- nothing to migrate: one INSERT ... SELECT replaces the loop

-- name: fixed
INSERT INTO notifications (user_id, kind)
SELECT id, %(kind)s FROM users ORDER BY id;
