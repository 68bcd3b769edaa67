-- correlated_subquery: the conversation list computes each conversation's message count and last
-- activity with scalar subqueries, one run per conversation, each scanning messages.
-- Blocks use psycopg named parameters (%(name)s). Run a migrate block one statement at a time.

-- name: setup
-- nothing to add

-- name: naive
SELECT c.id, c.title,
       (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS message_count,
       (SELECT max(m.created_at) FROM messages m WHERE m.conversation_id = c.id) AS last_message_at
FROM conversations c
ORDER BY c.id;

-- name: migrate
-- the join below needs no index; this one makes any remaining per-conversation lookup a probe
CREATE INDEX CONCURRENTLY IF NOT EXISTS messages_conversation_id_created_at_idx
    ON messages (conversation_id, created_at);

-- name: fixed
SELECT c.id, c.title, count(m.id) AS message_count, max(m.created_at) AS last_message_at
FROM conversations c
LEFT JOIN messages m ON m.conversation_id = c.id
GROUP BY c.id, c.title
ORDER BY c.id;
