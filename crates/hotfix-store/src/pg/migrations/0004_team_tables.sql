-- The team server's tables (see `hotfix_core::team`). No foreign key from
-- `alert_links.incident`: the link is written in the same logical step as
-- the declaration, and a link is only a lookup aid, never the log itself.
-- `event_watermark` is one row bumped in every transaction that writes
-- events (see `PgStore::watermark`); it starts at the number of events
-- already there, so existing databases get a sensible value.
CREATE TABLE api_tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_name   TEXT NOT NULL,
    role        TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE inbox (
    id            BIGSERIAL PRIMARY KEY,
    source        TEXT NOT NULL,
    delivery      TEXT NOT NULL,
    body          TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    lease_until   BIGINT,
    processed_at  BIGINT,
    outcome       TEXT,
    UNIQUE (source, delivery)
);
CREATE INDEX inbox_pending ON inbox (due_at) WHERE processed_at IS NULL;
CREATE TABLE alert_links (
    source    TEXT NOT NULL,
    key       TEXT NOT NULL,
    incident  BIGINT NOT NULL,
    PRIMARY KEY (source, key)
);
CREATE TABLE leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    until   BIGINT NOT NULL
);
CREATE TABLE once_keys (
    key  TEXT PRIMARY KEY,
    at   BIGINT NOT NULL
);
CREATE TABLE event_watermark (
    n  BIGINT NOT NULL
);
INSERT INTO event_watermark (n) SELECT count(*) FROM events;
