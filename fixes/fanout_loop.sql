-- fanout_loop: posting a message notifies every other member, one INSERT per member in a loop.
-- Blocks use psycopg named parameters (%(name)s). `naive` is the member list, then the INSERT the
-- application runs once per member.

-- name: setup
-- nothing to add

-- name: naive
SELECT user_id FROM conversation_members WHERE conversation_id = %(conversation_id)s AND user_id <> %(author_id)s;
INSERT INTO notifications (user_id, message_id, kind) VALUES (%(user_id)s, %(message_id)s, 'message');

-- name: migrate
-- nothing to migrate: one INSERT ... SELECT replaces the loop

-- name: fixed
INSERT INTO notifications (user_id, message_id, kind)
SELECT cm.user_id, %(message_id)s, 'message'
FROM conversation_members cm
WHERE cm.conversation_id = %(conversation_id)s AND cm.user_id <> %(author_id)s;
