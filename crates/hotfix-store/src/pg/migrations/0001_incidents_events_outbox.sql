CREATE TABLE incidents (
    id          BIGSERIAL PRIMARY KEY,
    created_at  TEXT NOT NULL
);
CREATE TABLE events (
    incident    BIGINT NOT NULL REFERENCES incidents(id),
    seq         BIGINT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    type        TEXT NOT NULL,
    body        TEXT NOT NULL,
    PRIMARY KEY (incident, seq)
);
CREATE TABLE outbox (
    id            BIGSERIAL PRIMARY KEY,
    incident      BIGINT NOT NULL REFERENCES incidents(id),
    notifier      TEXT NOT NULL,
    message       TEXT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    delivered_at  BIGINT
);
CREATE INDEX outbox_pending ON outbox (due_at) WHERE delivered_at IS NULL;
