-- non_sargable_predicate: the usage page asks for one day's messages and tokens with
-- `created_at::date = $1`. The index on created_at stores timestamps, not dates, so it cannot
-- serve that comparison: every message is read and cast to find one day's worth.
-- Blocks use psycopg named parameters (%(name)s): `day` is a date, `next_day` the day after it.
-- Run a migrate block one statement at a time.

-- name: setup
-- The index the team already has on messages.created_at (time-range queries use it). The naive
-- predicate cannot; the rewritten one can.
CREATE INDEX IF NOT EXISTS messages_created_at_idx ON messages (created_at);

-- name: naive
SELECT count(*) AS messages, coalesce(sum(tokens), 0) AS tokens
FROM messages
WHERE created_at::date = %(day)s;

-- name: migrate
-- nothing to migrate: the fix rewrites the predicate as a range on the bare column, which the
-- index on created_at serves. (An index on created_at::date is refused: for timestamptz that cast
-- depends on the TimeZone setting, so it is not immutable.)

-- name: fixed
SELECT count(*) AS messages, coalesce(sum(tokens), 0) AS tokens
FROM messages
WHERE created_at >= %(day)s AND created_at < %(next_day)s;
