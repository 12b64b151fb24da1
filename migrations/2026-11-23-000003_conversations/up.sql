-- The conversation pipeline (DESIGN.md §4 and §8): contacts, sessions, messages, agents, queue
-- items, cases, CSAT surveys, the append-only event log with its publish outbox, follow-up jobs'
-- outbox, hashed API keys, and per-inbox bot settings and intents.
--
-- Ids are short text ids (`con_…`, `ses_…`, `msg_…` + ULID) in the Pusher channel alphabet, so
-- they can be used as-is in broadcast channel names. State columns are checked here as a last
-- line of defence; the legal *transitions* between states live in one place in the code
-- (shared::conversation::state). Unique indexes are the authority for every "exactly once"
-- the workers promise: one contact per sender per inbox, one open session per contact, one
-- message per provider message id per inbox, one open queue item and one open case per session,
-- one survey per case, one version per aggregate in the event log.
--
-- `inboxes` is not altered: its bot settings live in `inbox_settings` (one row per inbox, all
-- optional), which keeps `inboxes` narrow and lets a missing row mean "the defaults".

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- NULL for operator keys (provisioning across tenants).
    tenant_id    TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    scope        TEXT        NOT NULL CHECK (scope IN ('tenant', 'operator')),
    name         TEXT        NOT NULL,
    -- The first characters of the token, to recognise a key in listings; never enough to use it.
    token_prefix TEXT        NOT NULL,
    -- Hex SHA-256 of the whole token. Tokens carry 256 random bits, so a fast hash is enough.
    token_hash   TEXT        NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_keys_scope_tenant CHECK ((scope = 'tenant') = (tenant_id IS NOT NULL))
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE inbox_settings (
    inbox_id       TEXT PRIMARY KEY REFERENCES inboxes (id) ON DELETE CASCADE,
    -- Which bot answers while a session is on the bot path.
    bot            TEXT        NOT NULL DEFAULT 'rules' CHECK (bot IN ('rules', 'http', 'off')),
    bot_url        TEXT,
    bot_timeout_ms INTEGER     NOT NULL DEFAULT 3000 CHECK (bot_timeout_ms BETWEEN 50 AND 60000),
    -- Unrecognised messages in a row before the session is handed to an agent (0: never).
    handoff_after  INTEGER     NOT NULL DEFAULT 3 CHECK (handoff_after >= 0),
    fallback_reply TEXT,
    csat_prompt    TEXT,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT inbox_settings_http_has_url CHECK (bot <> 'http' OR bot_url IS NOT NULL)
);

-- The rules bot's intents: a message matching any pattern gets the reply; `handoff` intents
-- hand the session to an agent. Patterns are case-insensitive keywords or phrases, `/regex/`,
-- or `postback:PAYLOAD` for buttons.
CREATE TABLE bot_intents (
    id         TEXT PRIMARY KEY,
    inbox_id   TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    name       TEXT        NOT NULL,
    patterns   TEXT[]      NOT NULL,
    reply      TEXT,
    handoff    BOOLEAN     NOT NULL DEFAULT false,
    priority   INTEGER     NOT NULL DEFAULT 0,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (inbox_id, name)
);

CREATE TABLE contacts (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_id    TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    -- The provider's id of the customer: WhatsApp chat id, Messenger PSID, email address,
    -- widget visitor id.
    external_id TEXT        NOT NULL,
    name        TEXT,
    email       TEXT,
    phone       TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (inbox_id, external_id)
);
CREATE INDEX contacts_tenant ON contacts (tenant_id);

CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    tenant_id          TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_id           TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    contact_id         TEXT        NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    -- The path: `bot` or `live` (an agent), or `closed`.
    state              TEXT        NOT NULL DEFAULT 'bot' CHECK (state IN ('bot', 'live', 'closed')),
    unrecognised_count INTEGER     NOT NULL DEFAULT 0,
    -- The correlation id of the webhook that opened the conversation: every event of the
    -- session carries it, so one id follows a conversation through every job and API call.
    correlation_id     TEXT        NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    closed_at          TIMESTAMPTZ
);
CREATE UNIQUE INDEX sessions_one_open_per_contact ON sessions (contact_id) WHERE state <> 'closed';
CREATE INDEX sessions_tenant ON sessions (tenant_id, created_at);

CREATE TABLE agents (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name             TEXT        NOT NULL,
    email            TEXT,
    -- Conversations at once; `load` counts the assigned ones (kept in step in the same
    -- transactions that assign and release).
    capacity         INTEGER     NOT NULL DEFAULT 3 CHECK (capacity >= 0),
    load             INTEGER     NOT NULL DEFAULT 0 CHECK (load >= 0),
    available        BOOLEAN     NOT NULL DEFAULT true,
    -- Round robin: the longest-idle available agent with room is next.
    last_assigned_at TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX agents_tenant ON agents (tenant_id);

CREATE TABLE messages (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_id            TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    session_id          TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    direction           TEXT        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    sender_type         TEXT        NOT NULL CHECK (sender_type IN ('customer', 'bot', 'agent', 'system')),
    agent_id            TEXT REFERENCES agents (id) ON DELETE SET NULL,
    -- The provider's id: the dedup authority for inbound messages; set on outbound ones once
    -- the provider accepted them (delivery adapters).
    provider_message_id TEXT,
    kind                TEXT        NOT NULL CHECK (kind IN ('text', 'postback', 'email', 'media')),
    body                TEXT        NOT NULL,
    payload             JSONB       NOT NULL DEFAULT '{}',
    status              TEXT        NOT NULL CHECK (status IN ('new', 'stored', 'delivered', 'read', 'failed')),
    -- An API client's Idempotency-Key for agent replies.
    idempotency_key     TEXT,
    -- When the pipeline finished with an inbound message (bot answered or handoff done): a
    -- redelivered job resumes after storing only if this is still NULL.
    processed_at        TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX messages_inbox_provider_id ON messages (inbox_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
CREATE UNIQUE INDEX messages_idempotency_key ON messages (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_session ON messages (session_id, created_at);

CREATE TABLE cases (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_id    TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    session_id  TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    contact_id  TEXT        NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    agent_id    TEXT REFERENCES agents (id) ON DELETE SET NULL,
    state       TEXT        NOT NULL DEFAULT 'created'
        CHECK (state IN ('created', 'assigned', 'in_progress', 'resolved', 'closed')),
    disposition TEXT,
    sentiment   TEXT CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    assigned_at TIMESTAMPTZ,
    resolved_at TIMESTAMPTZ,
    closed_at   TIMESTAMPTZ,
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT cases_closed_has_disposition CHECK (state <> 'closed' OR disposition IS NOT NULL)
);
CREATE UNIQUE INDEX cases_one_open_per_session ON cases (session_id) WHERE state <> 'closed';
CREATE INDEX cases_tenant ON cases (tenant_id, created_at);

CREATE TABLE queue_items (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    inbox_id    TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    session_id  TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    case_id     TEXT        NOT NULL REFERENCES cases (id) ON DELETE CASCADE,
    state       TEXT        NOT NULL DEFAULT 'waiting' CHECK (state IN ('waiting', 'assigned', 'done')),
    agent_id    TEXT REFERENCES agents (id) ON DELETE SET NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    assigned_at TIMESTAMPTZ,
    done_at     TIMESTAMPTZ
);
CREATE UNIQUE INDEX queue_items_one_open_per_session ON queue_items (session_id) WHERE state <> 'done';
CREATE INDEX queue_items_waiting ON queue_items (tenant_id, created_at) WHERE state = 'waiting';

CREATE TABLE csat_surveys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    case_id      TEXT        NOT NULL UNIQUE REFERENCES cases (id) ON DELETE CASCADE,
    session_id   TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    state        TEXT        NOT NULL DEFAULT 'sent' CHECK (state IN ('sent', 'responded')),
    score        INTEGER CHECK (score BETWEEN 1 AND 5),
    comment      TEXT,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    responded_at TIMESTAMPTZ,
    CONSTRAINT csat_responded_has_score CHECK (state <> 'responded' OR score IS NOT NULL)
);
CREATE INDEX csat_surveys_session ON csat_surveys (session_id) WHERE state = 'sent';

-- The event log: every state change, appended in the same transaction as the change, in the
-- envelope of DESIGN.md §4. `seq` orders events globally (ULIDs made in the same millisecond
-- do not); `aggregate_version` orders one aggregate's events and is unique, so two writers that
-- raced past the aggregate's row lock fail instead of forking its history. `channels` are the
-- broadcast channels the matrix named when the event was written (without BROADCAST_PREFIX).
CREATE TABLE event_logs (
    seq               BIGSERIAL   NOT NULL UNIQUE,
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT        NOT NULL,
    type              TEXT        NOT NULL CHECK (type ~ '^[a-z_]+(\.[a-z_]+){1,2}$'),
    version           TEXT        NOT NULL,
    source            TEXT        NOT NULL,
    aggregate_type    TEXT        NOT NULL,
    aggregate_id      TEXT        NOT NULL,
    aggregate_version INTEGER     NOT NULL CHECK (aggregate_version >= 1),
    correlation_id    TEXT        NOT NULL,
    -- The job id or API request id that caused the event (the correlation id spans a whole
    -- conversation; this names the one step).
    causation_id      TEXT        NOT NULL,
    data              JSONB       NOT NULL,
    channels          TEXT[]      NOT NULL,
    occurred_at       TIMESTAMPTZ NOT NULL,
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);
CREATE INDEX event_logs_tenant_seq ON event_logs (tenant_id, seq);
CREATE INDEX event_logs_correlation ON event_logs (correlation_id, seq);

-- Append-only: rows are never updated; they are deleted only by retention pruning, which must
-- say so with `SET LOCAL switchyard.prune_events = 'on'`.
CREATE FUNCTION event_logs_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('switchyard.prune_events', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'event_logs is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER event_logs_append_only BEFORE UPDATE OR DELETE ON event_logs
    FOR EACH ROW EXECUTE FUNCTION event_logs_append_only();

-- Events written but not yet published: inserted with the event, deleted once Redis took the
-- PUBLISH. A row left behind (Redis down, a crash after commit) is published by the relay.
CREATE TABLE event_outbox (
    event_id   TEXT PRIMARY KEY REFERENCES event_logs (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts   INTEGER     NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX event_outbox_created_at ON event_outbox (created_at);

-- Follow-up jobs (e.g. `deliveries`) written in the same transaction as the change that needs
-- them, enqueued after commit, deleted once Redis accepted them. `origin` is the job or request
-- that wrote them, so its retry can finish what a crash interrupted.
CREATE TABLE job_outbox (
    job_id     TEXT PRIMARY KEY,
    origin     TEXT        NOT NULL,
    job        JSONB       NOT NULL,
    dedup_key  TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX job_outbox_origin ON job_outbox (origin);
CREATE INDEX job_outbox_created_at ON job_outbox (created_at);
