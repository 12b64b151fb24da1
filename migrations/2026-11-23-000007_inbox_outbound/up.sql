-- The outbound side of an inbox (issue 5): how replies reach its provider, and whether its
-- deliveries are paused because the channel is broken (token revoked, account locked, …).
--
-- A side table rather than ALTER TABLE inboxes: `inboxes` is at diesel's 16-column limit, and
-- credentials that *send* on the customer's behalf are kept apart from the secrets that verify
-- inbound webhooks. A missing row means "no outbound settings stored" (the worker may still
-- have deployment-wide ones, e.g. WAHA_BASE_URL), and "not paused".
CREATE TABLE inbox_outbound (
    inbox_id      TEXT PRIMARY KEY REFERENCES inboxes (id) ON DELETE CASCADE,
    -- WAHA server, or an override of the Graph API base (tests, egress proxies).
    api_base_url  TEXT,
    -- Graph API version for Messenger and WhatsApp Cloud, e.g. v21.0.
    api_version   TEXT CHECK (api_version ~ '^v[0-9]+\.[0-9]+$'),
    -- Messenger page token, WhatsApp Cloud token, or WAHA's X-Api-Key. Never logged.
    access_token  TEXT,
    smtp_host     TEXT,
    smtp_port     INTEGER CHECK (smtp_port BETWEEN 1 AND 65535),
    smtp_security TEXT CHECK (smtp_security IN ('tls', 'starttls', 'plain')),
    smtp_username TEXT,
    smtp_password TEXT,
    smtp_from     TEXT,
    -- Set when a delivery finds the channel broken; deliveries are held (not failed) until an
    -- operator resumes the inbox. The Redis pause flag is the fast path, this the record.
    paused_at     TIMESTAMPTZ,
    paused_reason TEXT,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT inbox_outbound_smtp_complete CHECK (
        smtp_host IS NULL OR (smtp_port IS NOT NULL AND smtp_security IS NOT NULL AND smtp_from IS NOT NULL)
    )
);
CREATE INDEX inbox_outbound_paused ON inbox_outbound (paused_at) WHERE paused_at IS NOT NULL;
