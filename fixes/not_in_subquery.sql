-- not_in_subquery: "users who never posted" written with NOT IN. Once the subquery's result no longer
-- fits in work_mem the SubPlan is not hashed and runs per user; and one NULL would empty the result.

-- name: setup
-- nothing to add

-- name: naive
SELECT u.id, u.name FROM users u WHERE u.id NOT IN (SELECT m.user_id FROM messages m);

-- name: migrate
-- nothing to migrate: the fix is the NOT EXISTS rewrite (an anti-join)

-- name: fixed
SELECT u.id, u.name FROM users u WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.user_id = u.id);
