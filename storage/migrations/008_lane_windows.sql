-- 008: each lane's rate window, noted for the next owner. The owner of a key's lane writes,
-- with its heartbeat, how long ago each request of the key's current window went out (real
-- seconds, a JSON list) and when it noted that; a process that takes the lane over from
-- another counts those requests in its own window, so the key's 60 requests a minute hold
-- across the takeover. One SQLite file has one process: the table stays empty there.

CREATE TABLE lane_windows (
    lane     TEXT PRIMARY KEY NOT NULL,
    member   TEXT NOT NULL,
    sent     TEXT NOT NULL,
    noted_at REAL NOT NULL,
    closed   INTEGER NOT NULL DEFAULT 0
);
