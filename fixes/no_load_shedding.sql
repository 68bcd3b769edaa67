-- no_load_shedding: the statement is the same both ways; under overload the naive service lets
-- requests wait in an unbounded pool queue, so latency climbs while throughput stays flat; the
-- fixed service bounds the wait (pool acquire timeout) and the number of requests in flight
-- (an adaptive concurrency limit), refusing the excess quickly with 503.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- nothing to add

-- name: naive
SELECT id, user_id, body, created_at FROM messages WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC LIMIT 50;

-- name: migrate
-- nothing to migrate: the fix is admission control in the application

-- name: fixed
SELECT id, user_id, body, created_at FROM messages WHERE conversation_id = %(conversation_id)s
ORDER BY created_at DESC LIMIT 50;
