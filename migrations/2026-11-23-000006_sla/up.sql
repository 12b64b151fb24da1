-- Per-inbox SLA thresholds for sessions waiting on an agent, and how long a CSAT survey waits
-- for an answer. No row (or a NULL threshold): no SLA events for that inbox; CSAT surveys then
-- expire after the scheduler's CSAT_EXPIRY_DEFAULT.
CREATE TABLE inbox_sla (
    inbox_id          TEXT PRIMARY KEY REFERENCES inboxes (id) ON DELETE CASCADE,
    warning_secs      INTEGER CHECK (warning_secs > 0),
    breach_secs       INTEGER CHECK (breach_secs > 0),
    csat_expiry_secs  INTEGER CHECK (csat_expiry_secs > 0),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT inbox_sla_breach_after_warning
        CHECK (warning_secs IS NULL OR breach_secs IS NULL OR breach_secs >= warning_secs)
);

-- One row per SLA event emitted for a queue item (`warning`, `breach`), inserted in the
-- transaction that writes the event: the primary key makes each fire at most once.
CREATE TABLE sla_notices (
    queue_item_id TEXT        NOT NULL REFERENCES queue_items (id) ON DELETE CASCADE,
    level         TEXT        NOT NULL CHECK (level IN ('warning', 'breach')),
    emitted_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (queue_item_id, level)
);

-- A survey nobody answered in time is closed as `expired` (with a `csat.expired` event).
ALTER TABLE csat_surveys DROP CONSTRAINT csat_surveys_state_check;
ALTER TABLE csat_surveys ADD CONSTRAINT csat_surveys_state_check
    CHECK (state IN ('sent', 'responded', 'expired'));
ALTER TABLE csat_surveys ADD COLUMN expired_at TIMESTAMPTZ;
CREATE INDEX csat_surveys_sent ON csat_surveys (created_at) WHERE state = 'sent';
