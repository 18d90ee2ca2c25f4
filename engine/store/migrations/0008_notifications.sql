-- 0008: notifications. Where users want them (destinations), which channels each alert uses,
-- and the outbox as the delivery queue of every sink (engine/sinks/delivery.py).

-- A destination is where one sink delivers for one user, beside the account's own address: a
-- webhook URL (with its signing secret), an extra email address (used once confirmed), a
-- chat-service URL. Deleting one keeps the row (deleted_at), so the notifications that went
-- through it keep saying where they went; a webhook answering 410 disables it (disabled_at).
CREATE TABLE destinations (
    id              bigserial   PRIMARY KEY,
    owner_id        bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind            text        NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]{0,31}$'),
    target          text        NOT NULL CHECK (length(target) BETWEEN 1 AND 2048),
    name            text        CHECK (length(name) <= 200),
    secret          text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz,          -- NULL: waiting for its owner's confirmation code
    disabled_at     timestamptz,
    disabled_reason text,
    deleted_at      timestamptz
);
-- the fire statement reads an owner's live destinations; the API lists them
CREATE INDEX destinations_owner ON destinations (owner_id, id) WHERE deleted_at IS NULL;
-- one live destination per (owner, kind, target): adding it twice is a 409
CREATE UNIQUE INDEX destinations_owner_target ON destinations (owner_id, kind, target)
    WHERE deleted_at IS NULL;

-- The account's own address can be asked to be confirmed too ([sinks.email] confirm_account).
ALTER TABLE users ADD COLUMN email_confirmed_at timestamptz;

-- A confirmation code mailed to an address: of a destination, or of the account itself
-- (destination_id NULL). Only the code's SHA-256 is kept; a few wrong tries end it.
CREATE TABLE confirmations (
    id             bigserial   PRIMARY KEY,
    owner_id       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    destination_id bigint      REFERENCES destinations (id) ON DELETE CASCADE,
    address        text        NOT NULL,
    code_sha256    bytea       NOT NULL,
    attempts       integer     NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX confirmations_owner ON confirmations (owner_id, destination_id);

-- The channels an alert notifies (sink names); NULL: the defaults at fire time (the account's
-- channels that are enabled, and every live destination of its owner).
ALTER TABLE alerts ADD COLUMN channels text[];

-- The outbox: one row per (fire, channel, destination). A row is pending until it is delivered
-- (delivered_at) or dead (dead_at: refused for good, or max_attempts reached; last_error says
-- why). A claim leases a row (claimed_at) by moving next_attempt_at past the delivery's
-- deadline, so no other claimer (another engine process on this database) takes it while it is
-- in flight; a process killed mid-delivery leaves it due again once the lease ends, or at once
-- when the next start takes its leases back (one engine per database, the default).
ALTER TABLE outbox
    ADD COLUMN destination_id bigint REFERENCES destinations (id),
    ADD COLUMN dead_at timestamptz,
    ADD COLUMN claimed_at timestamptz;
DROP INDEX outbox_pending;
-- each sink's claim: its due rows, soonest first
CREATE INDEX outbox_due ON outbox (channel, next_attempt_at, id)
    WHERE delivered_at IS NULL AND dead_at IS NULL;
-- an alert's notifications (GET /api/alerts/{id}); also what ON DELETE CASCADE from alerts uses
CREATE INDEX outbox_alert ON outbox (alert_id);
