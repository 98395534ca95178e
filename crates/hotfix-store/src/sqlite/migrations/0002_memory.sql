CREATE TABLE memory (
    incident  INTEGER NOT NULL REFERENCES incidents(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (incident, key)
);
