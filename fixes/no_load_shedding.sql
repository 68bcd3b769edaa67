-- no_load_shedding: the statement is the same both ways: who is most active lately in a
-- conversation and how much they wrote (messages, tokens, words) among its last 1,000 messages:
-- about 12 ms of database time alone (splitting every body into words), through the
-- (conversation_id, created_at) index every other entry's run has. Cheap alone; the load asks for
-- it more often than the database can answer. Under overload the naive service lets requests wait
-- in the pool's unbounded queue, so latency climbs while throughput stays flat; the fixed service
-- bounds the wait (a pool acquire timeout) and the number of requests in flight (an adaptive
-- concurrency limit), refusing the excess at once with 503 and Retry-After. The lab's code path is
-- lab/trial/service/paths/no_load_shedding.py.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT user_id, count(*) AS messages, sum(tokens) AS tokens, max(created_at) AS last_at,
       sum(array_length(regexp_split_to_array(body, ' '), 1)) AS words
FROM (SELECT user_id, tokens, created_at, body FROM messages
      WHERE conversation_id = %(conversation_id)s
      ORDER BY created_at DESC
      LIMIT 1000) AS recent
GROUP BY user_id
ORDER BY messages DESC, user_id
LIMIT 20;

-- name: migrate
-- nothing to migrate: the fix is admission control in the application

-- name: fixed
SELECT user_id, count(*) AS messages, sum(tokens) AS tokens, max(created_at) AS last_at,
       sum(array_length(regexp_split_to_array(body, ' '), 1)) AS words
FROM (SELECT user_id, tokens, created_at, body FROM messages
      WHERE conversation_id = %(conversation_id)s
      ORDER BY created_at DESC
      LIMIT 1000) AS recent
GROUP BY user_id
ORDER BY messages DESC, user_id
LIMIT 20;
