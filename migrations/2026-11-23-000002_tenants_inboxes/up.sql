-- Tenants and their inboxes (channel accounts): who a webhook belongs to and how it is verified.
--
-- Ids are short text ids (`ten_…`, `inb_…` + ULID) in the Pusher channel alphabet, so they can be
-- used as-is in URLs, Redis keys and broadcast channel names. Provider ids (Messenger page id,
-- WhatsApp Cloud phone_number_id) are unique across the deployment: Meta is one app per
-- deployment and ingress routes its webhooks by these ids alone. Later issues extend `inboxes`
-- with ALTER TABLE (outbound credentials, bot settings); the schema stays at most 16 columns
-- wide unless diesel's `32-column-tables` feature is enabled in the workspace.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    name       TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE inboxes (
    id                  TEXT PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9_-]{1,64}$'),
    tenant_id           TEXT        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind                TEXT        NOT NULL
        CHECK (kind IN ('waha', 'messenger', 'whatsapp_cloud', 'email', 'widget')),
    name                TEXT        NOT NULL,
    -- Provider ids that route a webhook to this inbox.
    page_id             TEXT,
    phone_number_id     TEXT,
    waha_session        TEXT,
    -- Which inbound-parse shape an email inbox receives.
    email_provider      TEXT CHECK (email_provider IN ('mailgun', 'postmark')),
    -- Secrets that verify inbound webhooks (never logged; see shared::inboxes).
    waha_hmac_key       TEXT,
    widget_token        TEXT,
    mailgun_signing_key TEXT,
    postmark_user       TEXT,
    postmark_password   TEXT,
    -- A disabled inbox is treated as unknown by ingress.
    disabled_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT inboxes_messenger_has_page CHECK (kind <> 'messenger' OR page_id IS NOT NULL),
    CONSTRAINT inboxes_whatsapp_cloud_has_phone CHECK (kind <> 'whatsapp_cloud' OR phone_number_id IS NOT NULL),
    CONSTRAINT inboxes_widget_has_token CHECK (kind <> 'widget' OR widget_token IS NOT NULL),
    CONSTRAINT inboxes_email_has_provider CHECK (
        kind <> 'email'
        OR (email_provider = 'mailgun' AND mailgun_signing_key IS NOT NULL)
        OR (email_provider = 'postmark' AND postmark_user IS NOT NULL AND postmark_password IS NOT NULL)
    )
);
CREATE INDEX inboxes_tenant ON inboxes (tenant_id);
CREATE UNIQUE INDEX inboxes_page_id ON inboxes (page_id) WHERE page_id IS NOT NULL;
CREATE UNIQUE INDEX inboxes_phone_number_id ON inboxes (phone_number_id) WHERE phone_number_id IS NOT NULL;

-- One-time tokens of signed webhooks (Mailgun's `token`): a token is accepted once. Rows older
-- than the signature's freshness window are useless and are deleted as new ones arrive.
CREATE TABLE inbox_replay_tokens (
    inbox_id TEXT        NOT NULL REFERENCES inboxes (id) ON DELETE CASCADE,
    token    TEXT        NOT NULL,
    used_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (inbox_id, token)
);
CREATE INDEX inbox_replay_tokens_used_at ON inbox_replay_tokens (used_at);
