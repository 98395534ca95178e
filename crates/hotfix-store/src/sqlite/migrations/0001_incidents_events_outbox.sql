CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY,
    created_at  TEXT NOT NULL
);
CREATE TABLE events (
    incident    INTEGER NOT NULL REFERENCES incidents(id),
    seq         INTEGER NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (incident, seq)
);
CREATE TABLE outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    incident      INTEGER NOT NULL REFERENCES incidents(id),
    notifier      TEXT NOT NULL,
    message       TEXT NOT NULL,
    due_at        INTEGER NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    delivered_at  INTEGER
);
CREATE INDEX outbox_pending ON outbox (due_at) WHERE delivered_at IS NULL;
