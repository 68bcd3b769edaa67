-- missing_timeouts: nothing bounds how long a statement may run, a transaction may sit idle, or a
-- request may wait for a pooled connection. The lab's code path is
-- lab/trial/service/paths/missing_timeouts.py: sharing a link in a conversation bumps the conversation's
-- last activity, then fetches the link's preview inside the transaction that holds that row lock. When the preview
-- host hangs, the transaction sits idle in transaction, locked, until the HTTP client gives up (5 s);
-- every other share in that conversation queues on the lock holding a pooled connection, and the
-- pool runs dry for every endpoint. The fix: the transaction that calls out sets its own
-- idle-in-transaction timeout (set_config(..., true) is SET LOCAL, so it ends with the transaction),
-- 500 ms, and the server ends the abandoned transaction and frees its lock; the service's connections
-- also get a statement timeout (15 s), a 10 s idle-in-transaction timeout and a 5 s pool acquire
-- timeout as connection options (lab/trial/service/paths/missing_timeouts.py, `fixed`).
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add: statement_timeout and idle_in_transaction_session_timeout default to 0

-- name: naive
UPDATE conversations SET updated_at = now() WHERE id = %(conversation_id)s;
INSERT INTO messages (conversation_id, user_id, body, tokens)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, 0)
RETURNING id;

-- name: migrate
-- nothing to migrate: the fix is the session settings (statement_timeout,
-- idle_in_transaction_session_timeout as connection options, and the pool's acquire timeout)

-- name: fixed
SELECT set_config('idle_in_transaction_session_timeout', %(callout_idle_ms)s, true);
UPDATE conversations SET updated_at = now() WHERE id = %(conversation_id)s;
INSERT INTO messages (conversation_id, user_id, body, tokens)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, 0)
RETURNING id;
