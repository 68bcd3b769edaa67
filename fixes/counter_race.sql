-- counter_race: the account total is read, increased in application code and written back, so two
-- concurrent requests lose one of the increments. No statistic shows it; the lab's lost-update
-- invariant (sum(messages.tokens) = users.tokens_used) does.

-- name: setup
-- nothing to add

-- name: naive
SELECT tokens_used FROM users WHERE id = %(user_id)s;
UPDATE users SET tokens_used = %(new_total)s WHERE id = %(user_id)s;

-- name: migrate
-- nothing to migrate: the fix is an atomic increment

-- name: fixed
UPDATE users SET tokens_used = tokens_used + %(tokens)s WHERE id = %(user_id)s;
