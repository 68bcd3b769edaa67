-- missing_timeouts: nothing bounds how long a statement may run or a transaction may sit idle.
-- The migrate block sets defaults for every new session of the current database.

-- name: setup
-- nothing to add: statement_timeout and idle_in_transaction_session_timeout default to 0

-- name: naive
SELECT m.conversation_id, count(*) FROM messages m JOIN messages n ON n.user_id = m.user_id GROUP BY 1;

-- name: migrate
DO $$
BEGIN
    EXECUTE format('ALTER DATABASE %I SET statement_timeout = %L', current_database(), '5s');
    EXECUTE format('ALTER DATABASE %I SET idle_in_transaction_session_timeout = %L', current_database(), '10s');
    EXECUTE format('ALTER DATABASE %I SET lock_timeout = %L', current_database(), '2s');
END
$$;

-- name: fixed
SELECT m.conversation_id, count(*) FROM messages m JOIN messages n ON n.user_id = m.user_id GROUP BY 1;
