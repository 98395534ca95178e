-- One open incident per hotfix name: `open_names` and its backfill, as
-- `codec::Naming` describes them (writers of one name also queue on an
-- advisory lock, see `NameBook::lock_name` in pg.rs).
CREATE TABLE open_names (
    name      TEXT PRIMARY KEY,
    incident  BIGINT NOT NULL UNIQUE REFERENCES incidents(id)
);
INSERT INTO open_names (name, incident)
SELECT name, MIN(incident) FROM (
    SELECT DISTINCT ON (e.incident) e.incident AS incident, e.body::json ->> 'name' AS name
    FROM events e
    WHERE e.type IN ('declared', 'attempt_started')
      AND NOT EXISTS (SELECT 1 FROM events c
                      WHERE c.incident = e.incident AND c.type = 'closed')
    ORDER BY e.incident, e.seq DESC
) latest
WHERE name IS NOT NULL
GROUP BY name;
