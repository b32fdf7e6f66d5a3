-- 001: users and their defaults, key bindings, generations, platform message links.
-- Applied once inside a transaction by storage.sqlite; schema_version records it.

CREATE TABLE users (
    tenant       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    display_name TEXT,
    provider     TEXT,
    model        TEXT,
    aspect_ratio TEXT,
    resolution   TEXT,
    taste        TEXT,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (tenant, user_id)
);

-- Keys are stored encrypted (Fernet ciphertext) with a display fingerprint; never raw.
CREATE TABLE key_bindings (
    scope           TEXT NOT NULL CHECK (scope IN ('user', 'team')),
    tenant          TEXT NOT NULL,
    owner           TEXT NOT NULL,  -- the user id for 'user'; '' for 'team'
    provider        TEXT NOT NULL,
    ciphertext      BLOB NOT NULL,
    fingerprint     TEXT NOT NULL,
    created_at      REAL NOT NULL,
    balance         REAL,
    balance_seen_at REAL,
    PRIMARY KEY (scope, tenant, owner, provider)
);

-- One row per records.Generation, every field flattened (actor_*, place_*, spec_*, key_*).
CREATE TABLE generations (
    id                 TEXT PRIMARY KEY NOT NULL,
    actor_platform     TEXT NOT NULL,
    actor_tenant       TEXT NOT NULL,
    actor_user_id      TEXT NOT NULL,
    actor_is_admin     INTEGER NOT NULL CHECK (actor_is_admin IN (0, 1)),
    actor_display_name TEXT NOT NULL,
    place_platform     TEXT NOT NULL,
    place_channel      TEXT NOT NULL,
    place_thread       TEXT,
    place_card_message TEXT,
    spec_provider      TEXT NOT NULL,
    spec_brief         TEXT NOT NULL,
    spec_model         TEXT NOT NULL,
    spec_aspect_ratio  TEXT NOT NULL,
    spec_resolution    TEXT NOT NULL,
    spec_taste         TEXT,
    spec_image_urls    TEXT NOT NULL,  -- JSON array of strings
    key_scope          TEXT NOT NULL,
    key_tenant         TEXT NOT NULL,
    key_owner          TEXT NOT NULL,
    key_provider       TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at         REAL NOT NULL,
    updated_at         REAL NOT NULL,
    cost               REAL,
    task_id            TEXT,
    estimate_seconds   REAL,
    submitted_at       REAL,
    completed_at       REAL,
    image_url          TEXT,
    prompt_used        TEXT,
    expires_at         REAL,
    credits_consumed   REAL,
    credits_remaining  REAL,
    error              TEXT,
    delivered_at       REAL,
    regenerated_from   TEXT REFERENCES generations (id) ON DELETE SET NULL
);

CREATE INDEX generations_status ON generations (status);
CREATE INDEX generations_actor_recent ON generations (actor_tenant, actor_user_id, created_at);

CREATE TABLE message_links (
    platform      TEXT NOT NULL,
    channel       TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    generation_id TEXT NOT NULL REFERENCES generations (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    PRIMARY KEY (platform, channel, message_id)
);

CREATE INDEX message_links_generation ON message_links (generation_id);
