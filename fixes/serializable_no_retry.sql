-- serializable_no_retry: a prompt is posted only if it fits its author's token quota. To stop two
-- concurrent posts from both passing the quota check, the naive code runs the check, the message
-- and the charge in one SERIALIZABLE transaction, and handles no serialization failure: when two
-- posts of one account overlap, one fails with SQLSTATE 40001 and its user gets a 500.
-- The fix runs the same statements at READ COMMITTED and locks the account row first (explicit
-- locking): an overlapping post waits for the lock, then reads the committed total; nothing fails
-- and nothing needs a retry. (Where SERIALIZABLE must stay, the fix is to re-run the whole
-- transaction on 40001 with jittered backoff.)
-- Blocks use psycopg named parameters (%(name)s); `naive` and `fixed` each run as one transaction.

-- name: setup
-- every account has a token quota (its plan's monthly allowance); account 9 has used all of its own
ALTER TABLE users ADD COLUMN token_quota bigint NOT NULL DEFAULT 1000000;
UPDATE users SET token_quota = tokens_used WHERE id = 9;

-- name: naive
SET TRANSACTION ISOLATION LEVEL SERIALIZABLE;
SELECT tokens_used, token_quota FROM users WHERE id = %(user_id)s;
INSERT INTO messages (conversation_id, user_id, body, tokens)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(tokens)s) RETURNING id;
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;

-- name: migrate
-- nothing to migrate: the fix is the transaction's isolation level and its row lock

-- name: fixed
SELECT tokens_used, token_quota FROM users WHERE id = %(user_id)s FOR UPDATE;
INSERT INTO messages (conversation_id, user_id, body, tokens)
VALUES (%(conversation_id)s, %(user_id)s, %(body)s, %(tokens)s) RETURNING id;
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;
