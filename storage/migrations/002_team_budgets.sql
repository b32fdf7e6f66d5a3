-- 002: team budgets and team settings (used by the team-budget issue; no Store methods yet),
-- and an index for per-key spend queries over generations.

-- A member's cap on the team key, in credits per period. target is a user id, or '' for
-- the tenant's default budget that applies to members without their own row.
CREATE TABLE team_budgets (
    tenant     TEXT NOT NULL,
    target     TEXT NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    period     TEXT NOT NULL CHECK (period IN ('day', 'month')),
    updated_at REAL,
    PRIMARY KEY (tenant, target)
);

CREATE TABLE team_settings (
    tenant          TEXT PRIMARY KEY NOT NULL,
    channel_enabled INTEGER NOT NULL CHECK (channel_enabled IN (0, 1)),
    updated_at      REAL
);

-- "How much has this user spent on the team key since <period start>?"
CREATE INDEX generations_key_spend
    ON generations (key_tenant, key_scope, actor_user_id, created_at);
