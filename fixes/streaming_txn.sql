-- streaming_txn: the reply is inserted, then the transaction stays open while the model streams
-- for seconds, then the final text is written: the session sits idle in transaction throughout.
-- Blocks use psycopg named parameters (%(name)s). In `naive` the three statements share one
-- transaction with the streaming between the INSERT and the UPDATE; in `fixed` each statement
-- commits on its own and the streaming happens between them, outside any transaction.

-- name: setup
-- nothing to add

-- name: naive
INSERT INTO messages (conversation_id, user_id, body) VALUES (%(conversation_id)s, %(user_id)s, '') RETURNING id;
UPDATE messages SET body = %(body)s, tokens = %(tokens)s WHERE id = %(id)s;
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;

-- name: migrate
-- nothing to migrate: the fix is in the transaction boundaries

-- name: fixed
INSERT INTO messages (conversation_id, user_id, body) VALUES (%(conversation_id)s, %(user_id)s, '') RETURNING id;
UPDATE messages SET body = %(body)s, tokens = %(tokens)s WHERE id = %(id)s;
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;
