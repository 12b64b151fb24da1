-- Custom event types (issue 7): a tenant registers an event type with a JSON Schema and
-- publishes events of it through `POST /api/events`; they are logged in `event_logs` and fan out
-- to webhook subscriptions like built-in events.
--
-- Names follow the event log's own CHECK on `event_logs.type` (two or three dotted lowercase
-- words), so every registered type can be logged. `tenant_id` has no foreign key, as for
-- webhook subscriptions: the tenants table is still changing and every read is by tenant.
CREATE TABLE custom_event_types (
    tenant_id   TEXT        NOT NULL,
    name        TEXT        NOT NULL CHECK (name ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*){1,2}$'
                                            AND length(name) <= 100),
    description TEXT,
    -- A JSON Schema (draft 2020-12 or 7) that the `data` of every published event must match.
    schema      JSONB       NOT NULL,
    -- Archived types can no longer be published; their events stay in the log.
    archived    BOOLEAN     NOT NULL DEFAULT false,
    archived_at TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);

-- The Idempotency-Key of each published custom event: a repeated key returns the event logged
-- the first time. Written in the transaction that logs the event, so the two exist together.
-- No foreign key to event_logs: retention pruning deletes log rows.
CREATE TABLE custom_event_publications (
    tenant_id       TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    event_id        TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX custom_event_publications_created_at ON custom_event_publications (created_at);
