-- 007: work sharing across processes (issue 14, item 3). On PostgreSQL several tmbot
-- processes share one database: `members` says which are alive (a heartbeat), `lane_leases`
-- which process owns each key's lane, `outbox_claims` which process hands over a
-- generation's events on a platform. One SQLite file has one process, which owns
-- everything: these tables stay empty there (they exist so both dialects keep one schema).

CREATE TABLE members (
    member     TEXT PRIMARY KEY NOT NULL,
    started_at REAL NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE lane_leases (
    lane       TEXT PRIMARY KEY NOT NULL,
    owner      TEXT NOT NULL,
    taken_at   REAL NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE outbox_claims (
    platform      TEXT NOT NULL,
    generation_id TEXT NOT NULL,
    owner         TEXT NOT NULL,
    expires_at    REAL NOT NULL,
    PRIMARY KEY (platform, generation_id)
);
