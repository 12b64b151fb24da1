CREATE INDEX contacts_tenant ON contacts (tenant_id);
