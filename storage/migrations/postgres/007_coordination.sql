-- 007 (PostgreSQL): work sharing across processes. See ../007_coordination.sql and
-- storage/lanes.py. Expiries are the server's clock (epoch seconds), so hosts whose clocks
-- disagree still agree on when a lease lapses.

CREATE TABLE members (
    member     TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE lane_leases (
    lane       TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    owner      TEXT COLLATE "C" NOT NULL,
    taken_at   DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX lane_leases_owner ON lane_leases (owner);

CREATE TABLE outbox_claims (
    platform      TEXT COLLATE "C" NOT NULL,
    generation_id TEXT COLLATE "C" NOT NULL,
    owner         TEXT COLLATE "C" NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, generation_id)
);
CREATE INDEX outbox_claims_owner ON outbox_claims (owner);
