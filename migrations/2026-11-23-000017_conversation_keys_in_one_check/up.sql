-- A conversation row now names its parent with one composite key that also carries the tenant
-- and the inbox, instead of one foreign key per column.
--
-- Why, measured under pipeline-bench (BENCHMARKS.md, pipeline, issue 4): every message INSERT
-- checked `tenant_id` and `inbox_id` against their parents, and a foreign-key check takes a KEY
-- SHARE lock on the parent row. All of a busy inbox's messages share one tenant row and one
-- inbox row, so each check joined a multixact of every transaction in flight (rewriting it,
-- WAL-logging the lock, taking the page's buffer lock exclusively) — four times per follow-up
-- message, on the two hottest rows of the database. The parent a message really needs is its
-- session, which the transaction already holds locked; checking (session, tenant, inbox)
-- against the session in one go costs no new lock and also proves what three separate keys
-- never did: that the message's tenant and inbox are its session's. Sessions check against
-- their contact the same way, contacts against their inbox. Deleting a tenant or an inbox
-- still cascades: inbox → contacts → sessions → messages.
ALTER TABLE inboxes ADD CONSTRAINT inboxes_id_tenant UNIQUE (id, tenant_id);

ALTER TABLE contacts
    DROP CONSTRAINT contacts_tenant_id_fkey,
    DROP CONSTRAINT contacts_inbox_id_fkey,
    ADD CONSTRAINT contacts_inbox FOREIGN KEY (inbox_id, tenant_id)
        REFERENCES inboxes (id, tenant_id) ON DELETE CASCADE,
    ADD CONSTRAINT contacts_id_tenant_inbox UNIQUE (id, tenant_id, inbox_id);

ALTER TABLE sessions
    DROP CONSTRAINT sessions_tenant_id_fkey,
    DROP CONSTRAINT sessions_inbox_id_fkey,
    DROP CONSTRAINT sessions_contact_id_fkey,
    ADD CONSTRAINT sessions_contact FOREIGN KEY (contact_id, tenant_id, inbox_id)
        REFERENCES contacts (id, tenant_id, inbox_id) ON DELETE CASCADE,
    ADD CONSTRAINT sessions_id_tenant_inbox UNIQUE (id, tenant_id, inbox_id);

ALTER TABLE messages
    DROP CONSTRAINT messages_tenant_id_fkey,
    DROP CONSTRAINT messages_inbox_id_fkey,
    DROP CONSTRAINT messages_session_id_fkey,
    ADD CONSTRAINT messages_session FOREIGN KEY (session_id, tenant_id, inbox_id)
        REFERENCES sessions (id, tenant_id, inbox_id) ON DELETE CASCADE;
