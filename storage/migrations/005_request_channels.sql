-- 005: request channels. `team channel on` typed in a channel makes that channel one (each new
-- message there is a brief); the tenant-wide switch of 002 is gone with it (it could not say
-- which channel was meant, so its rows are not carried over).

CREATE TABLE request_channels (
    tenant   TEXT NOT NULL,
    channel  TEXT NOT NULL,
    added_by TEXT NOT NULL,
    added_at REAL NOT NULL,
    PRIMARY KEY (tenant, channel)
);

DROP TABLE team_settings;
