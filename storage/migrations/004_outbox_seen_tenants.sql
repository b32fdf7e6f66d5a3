-- 004: the event outbox (tmbot.lifecycle writes a generation's events with its row; each
-- platform's dispatcher hands them over in seq order and marks them done), remembered
-- platform events and repeated triggers (durable dedupe), and tenants namespaced by platform.

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    generation_id   TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    platform        TEXT NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,  -- JSON object
    blob            BLOB,           -- a delivered event's image, dropped once done
    created_at      REAL NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    done_at         REAL,
    error           TEXT,           -- why a done event was not handed over (replaced, given up)
    UNIQUE (generation_id, seq)
);

CREATE INDEX outbox_pending ON outbox (platform, id) WHERE done_at IS NULL;

CREATE TABLE seen (
    scope      TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX seen_expiry ON seen (expires_at);

-- Tenants become "<platform>:<id>" (slack:T…, discord:…, console:local). Rows without a
-- generation to tell their platform were written by the console, the only front end so far.
UPDATE users SET tenant = COALESCE(
    (SELECT g.actor_platform FROM generations g WHERE g.actor_tenant = users.tenant LIMIT 1),
    'console') || ':' || tenant
WHERE instr(tenant, ':') = 0;

UPDATE key_bindings SET tenant = COALESCE(
    (SELECT g.actor_platform FROM generations g WHERE g.actor_tenant = key_bindings.tenant
     LIMIT 1),
    'console') || ':' || tenant
WHERE instr(tenant, ':') = 0;

UPDATE team_budgets SET tenant = COALESCE(
    (SELECT g.actor_platform FROM generations g WHERE g.actor_tenant = team_budgets.tenant
     LIMIT 1),
    'console') || ':' || tenant
WHERE instr(tenant, ':') = 0;

UPDATE team_settings SET tenant = COALESCE(
    (SELECT g.actor_platform FROM generations g WHERE g.actor_tenant = team_settings.tenant
     LIMIT 1),
    'console') || ':' || tenant
WHERE instr(tenant, ':') = 0;

UPDATE generations SET key_tenant = actor_platform || ':' || key_tenant
WHERE instr(key_tenant, ':') = 0;

UPDATE generations SET actor_tenant = actor_platform || ':' || actor_tenant
WHERE instr(actor_tenant, ':') = 0;
