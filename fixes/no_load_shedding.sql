-- no_load_shedding: the statement is the same both ways: a conversation's most active posters and
-- how much they wrote (messages, tokens, words), a report aggregate over its messages: tens of
-- milliseconds of database CPU on a hot conversation of ~12k messages (splitting every body into
-- words), even with the conversation_id index every other entry's run has. Under overload the
-- naive service lets requests wait in the pool's unbounded queue, so latency climbs while throughput stays flat; the
-- fixed service bounds the wait (a pool acquire timeout) and the number of requests in flight (an
-- adaptive concurrency limit), refusing the excess at once with 503 and Retry-After. The lab's
-- code path is lab/trial/service/paths/no_load_shedding.py.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT user_id, count(*) AS messages, sum(tokens) AS tokens, max(created_at) AS last_at,
       sum(array_length(regexp_split_to_array(body, ' '), 1)) AS words
FROM messages
WHERE conversation_id = %(conversation_id)s
GROUP BY user_id
ORDER BY messages DESC, user_id
LIMIT 20;

-- name: migrate
-- nothing to migrate: the fix is admission control in the application

-- name: fixed
SELECT user_id, count(*) AS messages, sum(tokens) AS tokens, max(created_at) AS last_at,
       sum(array_length(regexp_split_to_array(body, ' '), 1)) AS words
FROM messages
WHERE conversation_id = %(conversation_id)s
GROUP BY user_id
ORDER BY messages DESC, user_id
LIMIT 20;
