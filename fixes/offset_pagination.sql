-- offset_pagination: scrolling back through a conversation's history (each message with its author's
-- name), one page of 50 at a time, with
-- the page's position as an OFFSET: every deeper page makes Postgres read and throw away every newer
-- message before the 50 it returns. A reader can also jump to a date: the naive page then starts at
-- the position of the first message before that date (a count of the newer ones).
-- Blocks use psycopg named parameters (%(name)s). The lab's service runs these blocks
-- (lab/trial/service/paths/offset_pagination.py); the index on messages (conversation_id,
-- created_at) they use is missing_index's fix, present in every lab baseline, not this one's.

-- name: setup
-- nothing to add: the seeded hot conversations already hold about 24,000 messages each (small scale)

-- name: naive
SELECT count(*)
FROM messages
WHERE conversation_id = %(conversation_id)s
  AND created_at >= %(before)s;
SELECT m.id, u.name, m.body, m.created_at
FROM messages m JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = %(conversation_id)s
ORDER BY m.created_at DESC, m.id DESC
LIMIT %(rows)s OFFSET %(offset)s;

-- name: migrate
-- nothing to migrate: keyset pagination seeks in messages (conversation_id, created_at)

-- name: fixed
SELECT m.id, u.name, m.body, m.created_at
FROM messages m JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = %(conversation_id)s
  AND m.created_at < %(before)s
ORDER BY m.created_at DESC, m.id DESC
LIMIT %(rows)s;
SELECT m.id, u.name, m.body, m.created_at
FROM messages m JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = %(conversation_id)s
  AND (m.created_at, m.id) < (SELECT created_at, id FROM messages
                              WHERE id = %(after_id)s AND conversation_id = %(conversation_id)s)
ORDER BY m.created_at DESC, m.id DESC
LIMIT %(rows)s;
