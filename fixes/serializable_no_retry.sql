-- serializable_no_retry: a SERIALIZABLE read-modify-write of the account total with no retry: when
-- two run together, one fails with SQLSTATE 40001 and the error reaches the user.
-- Blocks use psycopg named parameters (%(name)s); the naive block runs in one transaction.

-- name: setup
-- nothing to add

-- name: naive
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT tokens_used FROM users WHERE id = %(user_id)s;
UPDATE users SET tokens_used = %(new_total)s WHERE id = %(user_id)s;
COMMIT;

-- name: migrate
-- nothing to migrate

-- name: fixed
-- READ COMMITTED with an atomic increment: the row lock orders the writers, nothing to retry.
-- (Where SERIALIZABLE is truly needed, retry the whole transaction on 40001 with backoff.)
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;
