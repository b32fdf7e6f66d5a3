-- 005 (PostgreSQL): request channels; the tenant-wide switch of 002 is gone with it. See
-- ../005_request_channels.sql.

CREATE TABLE request_channels (
    tenant   TEXT COLLATE "C" NOT NULL,
    channel  TEXT COLLATE "C" NOT NULL,
    added_by TEXT COLLATE "C" NOT NULL,
    added_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant, channel)
);

DROP TABLE team_settings;
