-- Delivery tracking of outbound messages (issue 5).
--
-- `sent` sits between stored and delivered: the provider accepted the message. Statuses only move
-- forward (stored < sent < delivered < read; failed is terminal) — shared::channels::status.
ALTER TABLE messages DROP CONSTRAINT messages_status_check;
ALTER TABLE messages ADD CONSTRAINT messages_status_check
    CHECK (status IN ('new', 'stored', 'sent', 'delivered', 'read', 'failed'));

-- One row per outbound message once a delivery attempt touched it: when each status was reached
-- and the last provider error. A side table because `messages` is at diesel's 16-column limit.
-- Messenger's delivery/read watermarks cover every message the provider accepted at or before
-- them, hence the (session_id, sent_at) index.
CREATE TABLE message_deliveries (
    message_id   TEXT PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    session_id   TEXT        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    attempts     INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    sent_at      TIMESTAMPTZ,
    delivered_at TIMESTAMPTZ,
    read_at      TIMESTAMPTZ,
    failed_at    TIMESTAMPTZ,
    last_error   TEXT,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX message_deliveries_session_sent ON message_deliveries (session_id, sent_at)
    WHERE sent_at IS NOT NULL;
