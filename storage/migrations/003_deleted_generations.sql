-- 003: deleted generations (the row stays so its credits still count; adapters remove the
-- messages), and an index for "credits reserved on this key by generations not yet sent".

ALTER TABLE generations ADD COLUMN deleted_at REAL;
ALTER TABLE generations ADD COLUMN deleted_by TEXT;

CREATE INDEX generations_key_status
    ON generations (key_scope, key_tenant, key_owner, key_provider, status);
