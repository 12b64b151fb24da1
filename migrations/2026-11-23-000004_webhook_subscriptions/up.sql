-- Outbound webhook subscriptions (DESIGN.md §6): who wants which events, where, signed with
-- which secret; the deliveries owed to each subscription; and a log of every attempt.
--
-- `tenant_id` carries no foreign key on purpose: the tenants table is still changing, and a
-- subscription is always read through its tenant anyway. The table stays at 16 columns (diesel's
-- limit without the `32-column-tables` feature).
CREATE TABLE event_subscriptions (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT        NOT NULL,
    url                        TEXT        NOT NULL,
    -- Event types (`message.ready`) or `*` for every event.
    event_types                TEXT[]      NOT NULL,
    -- Conditions on the event's `data` (see shared::webhooks::matching); `{}` matches everything.
    filters                    JSONB       NOT NULL DEFAULT '{}',
    -- `whsec_<base64>`. During a rotation the previous secret signs too, until it expires.
    secret                     TEXT        NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at TIMESTAMPTZ,
    -- false while paused by the tenant or disabled by failures; events are then held, not sent.
    active                     BOOLEAN     NOT NULL DEFAULT true,
    -- Failed attempts in a row to this endpoint, whatever the event; any 2xx resets it.
    consecutive_failures       INTEGER     NOT NULL DEFAULT 0,
    failure_streak_started_at  TIMESTAMPTZ,
    -- Set when failures (or a 410 Gone) disabled the subscription.
    disabled_at                TIMESTAMPTZ,
    -- Delays in seconds between attempts; NULL means the default 60, 300, 900.
    retry_schedule_secs        INTEGER[],
    description                TEXT,
    created_at                 TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX event_subscriptions_tenant ON event_subscriptions (tenant_id);

-- One row per (subscription, matching event): what is owed and what became of it. Rows of a
-- disabled subscription are `held` (recorded, not sent) so recovery can deliver them later.
-- `body` is the exact JSON sent, so every attempt and every recovery signs the same bytes.
CREATE TABLE webhook_deliveries (
    subscription_id TEXT        NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    event_id        TEXT        NOT NULL,
    tenant_id       TEXT        NOT NULL,
    event_type      TEXT        NOT NULL,
    event_at        TIMESTAMPTZ NOT NULL,
    body            TEXT        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'held', 'delivered', 'failed')),
    -- Attempts made so far (monotonic across recoveries; the job carries the next number).
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_attempt_at TIMESTAMPTZ,
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_undelivered
    ON webhook_deliveries (subscription_id, event_at)
    WHERE status IN ('held', 'failed');
CREATE INDEX webhook_deliveries_created_at ON webhook_deliveries (created_at);

-- Every attempt, successful or not. Request headers are stored without the signature; the
-- response body is cut to a cap.
CREATE TABLE webhook_logs (
    id               TEXT PRIMARY KEY,
    subscription_id  TEXT        NOT NULL REFERENCES event_subscriptions (id) ON DELETE CASCADE,
    tenant_id        TEXT        NOT NULL,
    event_id         TEXT        NOT NULL,
    event_type       TEXT        NOT NULL,
    attempt          INTEGER     NOT NULL,
    url              TEXT        NOT NULL,
    request_headers  JSONB       NOT NULL,
    status           INTEGER,
    response_excerpt TEXT,
    duration_ms      INTEGER     NOT NULL,
    error            TEXT,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX webhook_logs_subscription ON webhook_logs (subscription_id, id);
CREATE INDEX webhook_logs_tenant ON webhook_logs (tenant_id, id);
CREATE INDEX webhook_logs_created_at ON webhook_logs (created_at);
