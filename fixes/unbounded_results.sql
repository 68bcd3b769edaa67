-- unbounded_results: a conversation's history page is cut from a list query with no LIMIT: every
-- message of the conversation is fetched, sent and decoded, and all but one page thrown away.
-- Blocks use psycopg named parameters (%(name)s). The lab's service runs these blocks
-- (lab/trial/service/paths/unbounded_results.py); the index on messages (conversation_id,
-- created_at) they use is missing_index's fix, present in every lab baseline, not this one's.

-- name: setup
-- nothing to add: the seeded hot conversations already hold about 24,000 messages each (small scale)

-- name: naive
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC, id DESC;

-- name: migrate
-- nothing to migrate: a LIMIT and a keyset cursor, served by messages (conversation_id, created_at)

-- name: fixed
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC, id DESC
LIMIT %(rows)s;
SELECT id, user_id, body, created_at
FROM messages
WHERE conversation_id = %(conversation_id)s
  AND (created_at, id) < (SELECT created_at, id FROM messages
                          WHERE id = %(before)s AND conversation_id = %(conversation_id)s)
ORDER BY created_at DESC, id DESC
LIMIT %(rows)s;
