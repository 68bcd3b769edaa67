-- The chat service's schema, as a naive team would first write it: primary keys and foreign keys,
-- and no secondary index at all. The lab, the detector tests and the fixes all start from here;
-- each reference fix (fixes/<id>.sql, block "migrate") adds what its anti-pattern lacks.

CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    name        text        NOT NULL,
    email       text        NOT NULL,
    tokens_used bigint      NOT NULL DEFAULT 0,   -- account total; must equal sum(messages.tokens)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversations (
    id            bigserial PRIMARY KEY,
    owner_id      bigint      NOT NULL REFERENCES users (id),
    title         text        NOT NULL,
    message_count integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE conversation_members (
    conversation_id bigint NOT NULL REFERENCES conversations (id),
    user_id         bigint NOT NULL REFERENCES users (id),
    PRIMARY KEY (conversation_id, user_id)
);

CREATE TABLE messages (
    id              bigserial PRIMARY KEY,
    conversation_id bigint      NOT NULL REFERENCES conversations (id),
    user_id         bigint      NOT NULL REFERENCES users (id),
    body            text        NOT NULL,
    tokens          integer     NOT NULL DEFAULT 0,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
    id         bigserial PRIMARY KEY,
    user_id    bigint      NOT NULL REFERENCES users (id),
    message_id bigint      REFERENCES messages (id),
    kind       text        NOT NULL,
    read_at    timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
