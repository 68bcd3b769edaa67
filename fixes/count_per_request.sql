-- count_per_request: every page's header shows an unread badge, counted from notifications on each request.
-- Blocks use psycopg named parameters (%(name)s).
-- The fix is not an index but a count kept on write: triggers on notifications append, in the
-- same transaction as every INSERT, DELETE or UPDATE of notifications (whoever runs it: the
-- service, a retention job, a script), one row per user whose unread count the statement changed,
-- with the change. The badge is the sum of that user's few rows. An append-only ledger rather than
-- one counter row per user: a broadcast to every user would otherwise update every user's row and
-- make concurrent broadcasts queue on those row locks. A periodic job folds each user's rows into
-- one (DELETE ... RETURNING, then one INSERT of the sum) to keep the ledger short.
-- An index on notifications (user_id) would make each count read only the user's rows, but those
-- are still thousands of rows and heap pages (read_at is not in the index) for a busy user.

-- name: setup
-- nothing to add: notifications has no index on user_id, as the chat schema was first written

-- name: naive
SELECT name FROM users WHERE id = %(user_id)s;
SELECT count(*) FROM notifications WHERE user_id = %(user_id)s AND read_at IS NULL;

-- name: migrate
CREATE TABLE IF NOT EXISTS unread_deltas (
    user_id bigint NOT NULL,
    delta   integer NOT NULL  -- sum(integer) is a bigint: a plain number for the service, not a numeric
);
CREATE INDEX IF NOT EXISTS unread_deltas_user_id_idx ON unread_deltas (user_id);
CREATE OR REPLACE FUNCTION unread_deltas_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unread_deltas (user_id, delta)
    SELECT user_id, count(*) FROM new_rows WHERE read_at IS NULL GROUP BY user_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION unread_deltas_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unread_deltas (user_id, delta)
    SELECT user_id, -count(*) FROM old_rows WHERE read_at IS NULL GROUP BY user_id;
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION unread_deltas_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO unread_deltas (user_id, delta)
    SELECT user_id, sum(delta) FROM (
        SELECT user_id, 1 AS delta FROM new_rows WHERE read_at IS NULL
        UNION ALL
        SELECT user_id, -1 FROM old_rows WHERE read_at IS NULL
    ) AS changes
    GROUP BY user_id HAVING sum(delta) <> 0;
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER unread_deltas_insert AFTER INSERT ON notifications
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION unread_deltas_inserted();
CREATE OR REPLACE TRIGGER unread_deltas_delete AFTER DELETE ON notifications
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION unread_deltas_deleted();
CREATE OR REPLACE TRIGGER unread_deltas_update AFTER UPDATE ON notifications
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION unread_deltas_updated();
TRUNCATE unread_deltas;
INSERT INTO unread_deltas (user_id, delta)
SELECT user_id, count(*) FROM notifications WHERE read_at IS NULL GROUP BY user_id;

-- name: fixed
SELECT name FROM users WHERE id = %(user_id)s;
SELECT coalesce(sum(delta), 0) FROM unread_deltas WHERE user_id = %(user_id)s;
