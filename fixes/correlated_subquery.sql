-- correlated_subquery: a conversation's latest messages with the running total of tokens up to each
-- one, computed by a scalar subquery per row that sums every earlier message of the conversation.
-- Blocks use psycopg named parameters (%(name)s). The lab's service runs these blocks
-- (lab/trial/service/paths/correlated_subquery.py).

-- name: setup
-- nothing to add

-- name: naive
SELECT m.id, m.tokens,
       (SELECT sum(e.tokens) FROM messages e
        WHERE e.conversation_id = m.conversation_id AND e.id <= m.id) AS running_total
FROM messages m
WHERE m.conversation_id = %(conversation_id)s
ORDER BY m.id DESC
LIMIT %(page)s;

-- name: migrate
-- nothing to migrate: a window function reads the conversation once

-- name: fixed
SELECT id, tokens, running_total
FROM (SELECT id, tokens, sum(tokens) OVER (ORDER BY id) AS running_total
      FROM messages WHERE conversation_id = %(conversation_id)s) AS totals
ORDER BY id DESC
LIMIT %(page)s;
