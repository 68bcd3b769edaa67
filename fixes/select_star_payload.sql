-- select_star_payload: the live feed of recent messages selects * from messages, dragging each
-- message's metadata payload (here a trace of the generation, about 1.5 kB per message) that the feed
-- never shows.
-- Blocks use psycopg named parameters (%(name)s). The lab's service runs these blocks
-- (lab/trial/service/paths/select_star_payload.py).

-- name: setup
-- give every message the kind of payload real metadata accumulates: the client, the model, and a
-- trace of the generation's steps (tool, time, tokens), about 1.5 kB of jsonb, deterministically.
-- At that size a row stays under the TOAST threshold: stored in line, uncompressed.
UPDATE messages
SET metadata = jsonb_build_object(
    'client', 'web', 'model', 'chat-large', 'message', id,
    'steps', (SELECT jsonb_agg(jsonb_build_object('step', s, 'tool', CASE WHEN s % 2 = 0 THEN 'generate' ELSE 'search' END,
                                                  'ms', 12 + s, 'tokens', 30 + s, 'ok', true))
              FROM generate_series(1, 14) AS s));
ANALYZE messages;

-- name: naive
SELECT * FROM messages ORDER BY id DESC LIMIT 200;

-- name: migrate
-- nothing to migrate: the fix is naming the columns

-- name: fixed
SELECT id, conversation_id, user_id, body, created_at FROM messages ORDER BY id DESC LIMIT 200;
