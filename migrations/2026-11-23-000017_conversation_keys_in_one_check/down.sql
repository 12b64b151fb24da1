ALTER TABLE messages
    DROP CONSTRAINT messages_session,
    ADD CONSTRAINT messages_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT messages_inbox_id_fkey FOREIGN KEY (inbox_id) REFERENCES inboxes (id) ON DELETE CASCADE,
    ADD CONSTRAINT messages_session_id_fkey FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE CASCADE;

ALTER TABLE sessions
    DROP CONSTRAINT sessions_contact,
    DROP CONSTRAINT sessions_id_tenant_inbox,
    ADD CONSTRAINT sessions_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT sessions_inbox_id_fkey FOREIGN KEY (inbox_id) REFERENCES inboxes (id) ON DELETE CASCADE,
    ADD CONSTRAINT sessions_contact_id_fkey FOREIGN KEY (contact_id) REFERENCES contacts (id) ON DELETE CASCADE;

ALTER TABLE contacts
    DROP CONSTRAINT contacts_inbox,
    DROP CONSTRAINT contacts_id_tenant_inbox,
    ADD CONSTRAINT contacts_tenant_id_fkey FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
    ADD CONSTRAINT contacts_inbox_id_fkey FOREIGN KEY (inbox_id) REFERENCES inboxes (id) ON DELETE CASCADE;

ALTER TABLE inboxes DROP CONSTRAINT inboxes_id_tenant;
