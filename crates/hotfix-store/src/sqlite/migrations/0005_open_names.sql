-- One open incident per hotfix name: `open_names` and its backfill, as
-- `codec::Naming` describes them.
CREATE TABLE open_names (
    name      TEXT PRIMARY KEY,
    incident  INTEGER NOT NULL UNIQUE REFERENCES incidents(id)
);
INSERT INTO open_names (name, incident)
SELECT name, MIN(incident) FROM (
    SELECT e.incident AS incident, json_extract(e.body, '$.name') AS name
    FROM events e
    WHERE e.type IN ('declared', 'attempt_started')
      AND e.seq = (SELECT MAX(n.seq) FROM events n
                   WHERE n.incident = e.incident
                     AND n.type IN ('declared', 'attempt_started'))
      AND NOT EXISTS (SELECT 1 FROM events c
                      WHERE c.incident = e.incident AND c.type = 'closed')
)
WHERE name IS NOT NULL
GROUP BY name;
