-- `contacts_tenant` served the cascade of contacts' key to `tenants`, which 000017 replaced by
-- a key to the contact's inbox (found through `contacts (inbox_id, external_id)`). No query
-- reads contacts by tenant alone, so the index was only a write per new conversation.
DROP INDEX contacts_tenant;
