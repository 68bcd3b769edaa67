-- unbounded_results: "recent activity" returns every message of the last day, however many there are.

-- name: setup
-- nothing to add

-- name: naive
SELECT id, conversation_id, user_id, body, created_at
FROM messages
WHERE created_at > now() - interval '1 day';

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_created_at_idx ON messages (created_at);

-- name: fixed
SELECT id, conversation_id, user_id, body, created_at
FROM messages
WHERE created_at > now() - interval '1 day'
ORDER BY created_at DESC
LIMIT 50;
