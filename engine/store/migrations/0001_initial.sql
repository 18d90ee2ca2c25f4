-- 0001: users, alerts and the notification outbox.
-- Prices are NUMERIC (exact); times are timestamptz; ids are bigserial.

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text        NOT NULL CHECK (username <> ''),
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    is_staff      boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
-- usernames are unique regardless of case ("Alice" and "alice" are one account)
CREATE UNIQUE INDEX users_username_key ON users (lower(username));

CREATE TABLE alerts (
    id              bigserial PRIMARY KEY,
    owner_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    exchange        text        NOT NULL,
    symbol          text        NOT NULL,
    target_price    numeric     NOT NULL CHECK (target_price > 0),
    direction       text        NOT NULL CHECK (direction IN ('above', 'below')),
    status          text        NOT NULL DEFAULT 'created'
                                CHECK (status IN ('created', 'triggered', 'deleted')),
    name            text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    triggered_at    timestamptz,
    triggered_price numeric,
    deleted_at      timestamptz,
    CHECK ((status = 'triggered') = (triggered_at IS NOT NULL)),
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
-- the API lists an owner's alerts newest first, optionally by status or symbol
CREATE INDEX alerts_owner_listing ON alerts (owner_id, created_at DESC, id DESC);
CREATE INDEX alerts_owner_status ON alerts (owner_id, status, created_at DESC, id DESC);
CREATE INDEX alerts_owner_symbol ON alerts (owner_id, symbol, created_at DESC, id DESC);
-- the start-up load reads every live alert; a partial covering index keeps that scan small
CREATE INDEX alerts_live ON alerts (id) INCLUDE (exchange, symbol, direction, target_price)
    WHERE status = 'created';

CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    alert_id        bigint      NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
    channel         text        NOT NULL,
    payload         jsonb       NOT NULL,
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    last_error      text,
    UNIQUE (alert_id, channel)
);
-- the sinks poll what is undelivered and due, oldest first
CREATE INDEX outbox_pending ON outbox (id) INCLUDE (next_attempt_at) WHERE delivered_at IS NULL;
