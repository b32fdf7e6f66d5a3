-- 008 (PostgreSQL): each lane's rate window, noted for the next owner. See
-- ../008_lane_windows.sql and storage/lanes.py. `noted_at` is the server's clock.

CREATE TABLE lane_windows (
    lane     TEXT COLLATE "C" PRIMARY KEY NOT NULL,
    member   TEXT COLLATE "C" NOT NULL,
    sent     TEXT NOT NULL,
    noted_at DOUBLE PRECISION NOT NULL,
    closed   BOOLEAN NOT NULL DEFAULT FALSE
);
