-- 002 (PostgreSQL): team budgets and team settings, and an index for per-key spend queries
-- over generations. See ../002_team_budgets.sql.

-- A member's cap on the team key, in credits per period. target is a user id, or '' for
-- the tenant's default budget that applies to members without their own row.
CREATE TABLE team_budgets (
    tenant     TEXT COLLATE "C" NOT NULL,
    target     TEXT COLLATE "C" NOT NULL,
    amount     INTEGER NOT NULL CHECK (amount >= 0),
    period     TEXT COLLATE "C" NOT NULL CHECK (period IN ('day', 'month')),
    updated_at DOUBLE PRECISION,
    PRIMARY KEY (tenant, target)
);

CREATE TABLE team_settings (
    tenant          TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    channel_enabled INTEGER NOT NULL CHECK (channel_enabled IN (0, 1)),
    updated_at      DOUBLE PRECISION
);

-- "How much has this user spent on the team key since <period start>?"
CREATE INDEX generations_key_spend
    ON generations (key_tenant, key_scope, actor_user_id, created_at);
