-- n_plus_one: a conversation page lists its messages, then asks for each message's author separately.
-- Blocks use psycopg named parameters (%(name)s). `naive` is two statements: the page, then the
-- per-row query the application runs once per listed message. The lab's service runs these blocks
-- (lab/trial/service/paths/n_plus_one.py); the messages index is missing_index's fix, not this one's.

-- name: setup
-- nothing to add

-- name: naive
SELECT id, user_id, body, created_at FROM messages WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC LIMIT %(page_size)s;
SELECT name FROM users WHERE id = %(user_id)s;

-- name: migrate
-- nothing to migrate: one query joining users replaces the loop

-- name: fixed
SELECT m.id, u.name, m.body, m.created_at
FROM messages m JOIN users u ON u.id = m.user_id
WHERE m.conversation_id = %(conversation_id)s
ORDER BY m.created_at DESC LIMIT %(page_size)s;
