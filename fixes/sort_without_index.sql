-- sort_without_index: an inbox lists a user's newest conversations, twenty at a time. The only
-- index on the filter column is the foreign-key index on owner_id, so Postgres fetches every
-- conversation of the owner and sorts them all to return twenty. Harmless for a person with a
-- handful; not for an integration account with tens of thousands.
-- Blocks use psycopg named parameters (%(name)s). Run a migrate block one statement at a time
-- (CREATE INDEX CONCURRENTLY).

-- name: setup
-- Five integration accounts (users 1 to 5: help-desk connectors that open one conversation per
-- ticket) own 40,000 conversations each, opened over the 90 days before the seeded data's
-- epoch; people keep the few the seed gives them. The index on owner_id is the foreign-key
-- index the team already has.
INSERT INTO conversations (id, owner_id, title, created_at, updated_at)
SELECT seeded.last_id + i, 1 + i % 5, 'ticket #' || i,
       '2026-01-01 00:00:00+00'::timestamptz - (200000 - i) * interval '38.88 seconds',
       '2026-01-01 00:00:00+00'::timestamptz - (200000 - i) * interval '38.88 seconds'
           + (i % 97) * interval '1 hour'
FROM (SELECT max(id) AS last_id FROM conversations) AS seeded, generate_series(1, 200000) AS i;
SELECT setval(pg_get_serial_sequence('conversations', 'id'), (SELECT max(id) FROM conversations));
CREATE INDEX IF NOT EXISTS conversations_owner_id_idx ON conversations (owner_id);
ANALYZE conversations;

-- name: naive
SELECT id, title, created_at
FROM conversations
WHERE owner_id = %(user_id)s
ORDER BY created_at DESC, id DESC
LIMIT 20;

-- name: migrate
CREATE INDEX CONCURRENTLY IF NOT EXISTS conversations_owner_id_created_at_id_idx
    ON conversations (owner_id, created_at, id);

-- name: fixed
SELECT id, title, created_at
FROM conversations
WHERE owner_id = %(user_id)s
ORDER BY created_at DESC, id DESC
LIMIT 20;
