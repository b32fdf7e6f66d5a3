-- 006 (PostgreSQL): linked teams and accounts. Codes are stored as hashes only, with their
-- expiry, and are used once; each generation records where its requester's things are kept
-- (its "home"). See ../006_links.sql.

CREATE TABLE link_codes (
    code_hash  TEXT COLLATE "C" PRIMARY KEY NOT NULL,  -- sha256 of the normalised code
    kind       TEXT COLLATE "C" NOT NULL CHECK (kind IN ('team', 'person')),
    tenant     TEXT COLLATE "C" NOT NULL,              -- where it was made
    user_id    TEXT COLLATE "C" NOT NULL,              -- who made it
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    used_at    DOUBLE PRECISION                        -- set, once, by the link that used it
);

CREATE INDEX link_codes_issuer ON link_codes (tenant, user_id, kind);

-- `joined` shares `home`'s team keys, budgets and use. A tenant is in at most one link.
CREATE TABLE team_links (
    joined    TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    home      TEXT COLLATE "C" NOT NULL UNIQUE,
    linked_by TEXT COLLATE "C" NOT NULL,
    linked_at DOUBLE PRECISION NOT NULL,
    CHECK (home <> joined)
);

-- The account (tenant, user_id) uses (home_tenant, home_user_id)'s keys, settings, history.
CREATE TABLE person_links (
    tenant       TEXT COLLATE "C" NOT NULL,
    user_id      TEXT COLLATE "C" NOT NULL,
    home_tenant  TEXT COLLATE "C" NOT NULL,
    home_user_id TEXT COLLATE "C" NOT NULL,
    linked_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, user_id),
    UNIQUE (home_tenant, home_user_id)
);

ALTER TABLE generations ADD COLUMN home_team TEXT COLLATE "C";
ALTER TABLE generations ADD COLUMN home_tenant TEXT COLLATE "C";
ALTER TABLE generations ADD COLUMN home_user_id TEXT COLLATE "C";

UPDATE generations
SET home_team = actor_tenant, home_tenant = actor_tenant, home_user_id = actor_user_id;

CREATE INDEX generations_home_recent ON generations (home_tenant, home_user_id, created_at);

-- Spend per member is now counted by home_user_id (replacing 002's index on actor_user_id).
DROP INDEX generations_key_spend;
CREATE INDEX generations_home_spend
    ON generations (key_tenant, key_scope, home_user_id, created_at);
