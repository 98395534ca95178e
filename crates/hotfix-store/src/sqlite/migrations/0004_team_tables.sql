-- The team server's tables (see `hotfix_core::team`). No foreign key from
-- `alert_links.incident`: the link is written in the same logical step as
-- the declaration, and a link is only a lookup aid, never the log itself.
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE inbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    source        TEXT NOT NULL,
    delivery      TEXT NOT NULL,
    body          TEXT NOT NULL,
    received_at   INTEGER NOT NULL,
    due_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   INTEGER,
    processed_at  INTEGER,
    outcome       TEXT,
    UNIQUE (source, delivery)
);
CREATE INDEX inbox_pending ON inbox (due_at) WHERE processed_at IS NULL;
CREATE TABLE alert_links (
    source    TEXT NOT NULL,
    key       TEXT NOT NULL,
    incident  INTEGER NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   INTEGER NOT NULL
);
CREATE TABLE once_keys (
    key  TEXT PRIMARY KEY,
    at   INTEGER NOT NULL
);
