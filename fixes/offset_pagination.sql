-- offset_pagination: paging through all messages with OFFSET reads and discards every earlier page.
-- Blocks use psycopg named parameters (%(name)s); keyset paging passes the last id of the page before.

-- name: setup
-- nothing to add: the primary key serves both versions

-- name: naive
SELECT id, conversation_id, body, created_at
FROM messages
ORDER BY id
LIMIT 50 OFFSET %(offset)s;

-- name: migrate
-- nothing to migrate: the fix is keyset pagination on the primary key

-- name: fixed
SELECT id, conversation_id, body, created_at
FROM messages
WHERE id > %(after_id)s
ORDER BY id
LIMIT 50;
