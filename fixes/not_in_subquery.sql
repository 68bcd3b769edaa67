-- not_in_subquery: the inbox of messages that drew no reply, reaction or mention yet (no notification
-- refers to them), written with NOT IN. notifications.message_id is nullable, and real data has NULLs
-- there (system notifications are about no message): one NULL makes `id NOT IN (...)` never true, so
-- the page is always empty, and its LIMIT never fills, so every call reads the whole messages table.
-- Once the subquery's result outgrows work_mem the SubPlan is not hashed either and runs per row.
-- The lab's service runs these blocks (lab/trial/service/paths/not_in_subquery.py).

-- name: setup
-- nothing to add: the seed's system notifications (every tenth) have message_id NULL, as real data has

-- name: naive
SELECT id, conversation_id, user_id, created_at
FROM messages
WHERE id NOT IN (SELECT message_id FROM notifications)
ORDER BY id DESC
LIMIT 50;

-- name: migrate
-- nothing to migrate: the fix is the NOT EXISTS rewrite (an anti-join)

-- name: fixed
SELECT m.id, m.conversation_id, m.user_id, m.created_at
FROM messages m
WHERE NOT EXISTS (SELECT 1 FROM notifications n WHERE n.message_id = m.id)
ORDER BY m.id DESC
LIMIT 50;

-- name: oracle
-- The right answer computed another way, for the lab's probes: the messages minus those a
-- notification refers to, as a set difference over a join (a join never matches a NULL).
SELECT id
FROM (SELECT id FROM messages
      EXCEPT
      SELECT m.id FROM messages m JOIN notifications n ON n.message_id = m.id) AS unanswered
ORDER BY id DESC
LIMIT 50;
