-- write_contention: every post also "touches" its conversation (its last activity)
-- at the start of its transaction, so concurrent posts to one busy conversation queue on that row's
-- lock for the whole transaction (the tokenizer call and the account charge included).
-- A user's "recently active" list reads that last activity.
-- Blocks use psycopg named parameters (%(name)s). The lab's service runs these blocks
-- (lab/trial/service/paths/write_contention.py): `naive` is the touch each post runs, then the
-- list's read of the stored value; `fixed` is the list's read that derives the last activity.

-- name: setup
-- nothing to add

-- name: naive
UPDATE conversations SET updated_at = now() WHERE id = %(conversation_id)s;
SELECT id, title FROM conversations WHERE owner_id = %(user_id)s ORDER BY updated_at DESC, id LIMIT 20;

-- name: migrate
-- nothing to migrate: posts no longer touch the conversation; its last activity is read from its
-- latest message, through the index on messages (conversation_id, created_at) (missing_index's fix)

-- name: fixed
SELECT c.id, c.title
FROM conversations c
LEFT JOIN LATERAL (SELECT max(m.created_at) AS at FROM messages m WHERE m.conversation_id = c.id) AS last ON true
WHERE c.owner_id = %(user_id)s
ORDER BY greatest(c.updated_at, last.at) DESC, c.id
LIMIT 20;
