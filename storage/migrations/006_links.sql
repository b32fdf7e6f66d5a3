-- 006: linked teams and accounts. `team link` (admins) joins a tenant to another platform's
-- team; `link` joins one person's two accounts. Codes are stored as hashes only, with their
-- expiry, and are used once. Each generation also records where its requester's things are
-- kept (its "home"), which use, budgets and history are counted by.

CREATE TABLE link_codes (
    code_hash  TEXT PRIMARY KEY NOT NULL,  -- sha256 of the normalised code, never the code
    kind       TEXT NOT NULL CHECK (kind IN ('team', 'person')),
    tenant     TEXT NOT NULL,              -- where it was made
    user_id    TEXT NOT NULL,              -- who made it
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at    REAL                        -- set, once, by the link that used it
);

CREATE INDEX link_codes_issuer ON link_codes (tenant, user_id, kind);

-- `joined` shares `home`'s team keys, budgets and use. A tenant is in at most one link.
CREATE TABLE team_links (
    joined    TEXT PRIMARY KEY NOT NULL,
    home      TEXT NOT NULL UNIQUE,
    linked_by TEXT NOT NULL,
    linked_at REAL NOT NULL,
    CHECK (home <> joined)
);

-- The account (tenant, user_id) uses (home_tenant, home_user_id)'s keys, settings, history.
CREATE TABLE person_links (
    tenant       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    home_tenant  TEXT NOT NULL,
    home_user_id TEXT NOT NULL,
    linked_at    REAL NOT NULL,
    PRIMARY KEY (tenant, user_id),
    UNIQUE (home_tenant, home_user_id)
);

-- Where a generation's requester's things are kept: set when it is stored, recomputed for
-- both tenants whenever a link between them is made or removed.
ALTER TABLE generations ADD COLUMN home_team TEXT;
ALTER TABLE generations ADD COLUMN home_tenant TEXT;
ALTER TABLE generations ADD COLUMN home_user_id TEXT;

UPDATE generations
SET home_team = actor_tenant, home_tenant = actor_tenant, home_user_id = actor_user_id;

CREATE INDEX generations_home_recent ON generations (home_tenant, home_user_id, created_at);

-- Spend per member is now counted by home_user_id (replacing 002's index on actor_user_id).
DROP INDEX generations_key_spend;
CREATE INDEX generations_home_spend
    ON generations (key_tenant, key_scope, home_user_id, created_at);
