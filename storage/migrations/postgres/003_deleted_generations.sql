-- 003 (PostgreSQL): deleted generations (the row stays so its credits still count), and an
-- index for "credits reserved on this key by generations not yet sent". See
-- ../003_deleted_generations.sql.

ALTER TABLE generations ADD COLUMN deleted_at DOUBLE PRECISION;
ALTER TABLE generations ADD COLUMN deleted_by TEXT COLLATE "C";

CREATE INDEX generations_key_status
    ON generations (key_scope, key_tenant, key_owner, key_provider, status);
