-- select_star_payload: the conversation page selects * from messages, dragging each message's
-- metadata payload (here a trace of about 1.3 kB per message) that the page never shows.
-- Blocks use psycopg named parameters (%(name)s).

-- name: setup
-- give every message the kind of payload real metadata accumulates (model traces, attachments)
UPDATE messages
SET metadata = jsonb_build_object('trace', (SELECT string_agg(md5(messages.id::text || g::text), '')
                                            FROM generate_series(1, 40) AS g));
ANALYZE messages;

-- name: naive
SELECT * FROM messages ORDER BY id DESC LIMIT 200;

-- name: migrate
-- nothing to migrate: the fix is naming the columns

-- name: fixed
SELECT id, conversation_id, user_id, body, created_at FROM messages ORDER BY id DESC LIMIT 200;
