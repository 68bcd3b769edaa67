-- bulk_delete: the retention job deletes every expired notification in one statement.
-- Blocks use psycopg named parameters (%(name)s): `now` is the clock of the data (the lab passes
-- the seeded data's present) and `keep` an interval such as '30 days'.
-- The fixed statement is run repeatedly until it deletes no row, each run its own transaction.
-- `id = ANY(ARRAY(subquery))`, not `id IN (subquery)`: the planner may turn IN into a hash
-- semi-join that reads the whole table for every batch; an array makes it look up each id.
-- The setup gives notifications the index on user_id that any team has (users' own reads and
-- writes of their notifications go through it on both sides).
-- Run a migrate block one statement at a time (CREATE INDEX CONCURRENTLY).

-- name: setup
CREATE INDEX IF NOT EXISTS notifications_user_id_idx ON notifications (user_id);

-- name: naive
DELETE FROM notifications WHERE created_at < %(now)s::timestamptz - %(keep)s::interval;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS notifications_created_at_idx ON notifications (created_at);

-- name: fixed
DELETE FROM notifications
WHERE id = ANY(ARRAY(SELECT id FROM notifications WHERE created_at < %(now)s::timestamptz - %(keep)s::interval
                     ORDER BY created_at LIMIT 2000));
