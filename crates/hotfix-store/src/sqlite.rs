//! The SQLite store.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use hotfix_core::event::{Event, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{OutboxItem, Store, StoreError};
use hotfix_core::team::{ApiRole, InboxItem, InboxPut, InboxRecord, TeamStore, TokenRecord};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::codec::{self, NameBook, sql_limit};

/// Migrations, applied in order and tracked with `PRAGMA user_version`.
const MIGRATIONS: &[&str] = &[
    r#"
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
"#,
    r#"
CREATE TABLE memory (
    incident  INTEGER NOT NULL REFERENCES incidents(id),
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (incident, key)
);
"#,
    r#"
ALTER TABLE outbox ADD COLUMN lease_until INTEGER;
"#,
    // The team server's tables (see `hotfix_core::team`). No foreign key from
    // `alert_links.incident`: the link is written in the same logical step as
    // the declaration, and a link is only a lookup aid, never the log itself.
    r#"
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
"#,
    // One open incident per hotfix name: `open_names` and its backfill, as
    // `codec::Naming` describes them.
    r#"
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
"#,
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Backend(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let conn = Connection::open(path)
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(15))
            .map_err(backend)?;
        // WAL: readers never block the writer; synchronous=FULL: a power cut
        // never loses a committed step.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        codec::lock(&self.conn)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let version: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(backend)?;
        for (n, m) in
            codec::pending_migrations(MIGRATIONS, version, "the incident store was written")?
        {
            tx.execute_batch(m).map_err(backend)?;
            tx.pragma_update(None, "user_version", n).map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

fn insert_events(
    tx: &rusqlite::Transaction<'_>,
    incident: IncidentId,
    from_seq: u64,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for (i, e) in events.iter().enumerate() {
        let body = codec::event_body(&e.kind)?;
        tx.execute(
            "INSERT INTO events (incident, seq, at, actor, type, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                incident.0 as i64,
                (from_seq + i as u64) as i64,
                e.at.to_string(),
                e.actor,
                e.kind.name(),
                body
            ],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn insert_outbox(
    tx: &rusqlite::Transaction<'_>,
    incident: IncidentId,
    outbox: &[(String, Message)],
) -> Result<(), StoreError> {
    for (notifier, msg) in outbox {
        let body = codec::message_body(msg)?;
        tx.execute(
            "INSERT INTO outbox (incident, notifier, message, due_at) VALUES (?1, ?2, ?3, ?4)",
            params![incident.0 as i64, notifier, body, msg.at.as_second()],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// The `open_names` statements; no name lock of its own, since every write
/// transaction is `IMMEDIATE` (it holds the file's write lock throughout).
impl NameBook for rusqlite::Transaction<'_> {
    fn name_holder(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        self.query_row(
            "SELECT incident FROM open_names WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)
    }

    fn insert_name(&mut self, name: &str, incident: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO open_names (name, incident) VALUES (?1, ?2)",
            params![name, incident],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn release_name(&mut self, incident: i64) -> Result<(), StoreError> {
        self.execute("DELETE FROM open_names WHERE incident = ?1", [incident])
            .map_err(backend)?;
        Ok(())
    }

    fn is_closed(&mut self, incident: i64) -> Result<bool, StoreError> {
        self.query_row(
            "SELECT EXISTS (SELECT 1 FROM events WHERE incident = ?1 AND type = 'closed')",
            [incident],
            |r| r.get(0),
        )
        .map_err(backend)
    }
}

impl Store for SqliteStore {
    fn declare(
        &self,
        event: &NewEvent,
        outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError> {
        let mut conn = self.lock()?;
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let name = codec::free_declared_name(&mut tx, event)?;
        let next: i64 = tx
            .query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM incidents", [], |r| {
                r.get(0)
            })
            .map_err(backend)?;
        let id = IncidentId(next as u64);
        tx.execute(
            "INSERT INTO incidents (id, created_at) VALUES (?1, ?2)",
            params![next, event.at.to_string()],
        )
        .map_err(backend)?;
        insert_events(&tx, id, 1, std::slice::from_ref(event))?;
        if let Some(name) = name {
            tx.insert_name(name, next)?;
        }
        let outbox = outbox(id);
        insert_outbox(&tx, id, &outbox)?;
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn append(
        &self,
        incident: IncidentId,
        expected_version: u64,
        events: &[NewEvent],
        outbox: &[(String, Message)],
    ) -> Result<u64, StoreError> {
        let mut conn = self.lock()?;
        let mut tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT id FROM incidents WHERE id = ?1",
                [incident.0 as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if exists.is_none() {
            return Err(StoreError::NotFound(incident));
        }
        let actual: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE incident = ?1",
                [incident.0 as i64],
                |r| r.get(0),
            )
            .map_err(backend)?;
        codec::check_version(incident, expected_version, actual)?;
        insert_events(&tx, incident, expected_version + 1, events)?;
        codec::apply_appended_naming(&mut tx, incident, events)?;
        insert_outbox(&tx, incident, outbox)?;
        tx.commit().map_err(backend)?;
        Ok(expected_version + events.len() as u64)
    }

    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT seq, at, actor, body FROM events WHERE incident = ?1 ORDER BY seq",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([incident.0 as i64], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(backend)?;
        let mut out = vec![];
        for row in rows {
            let (seq, at, actor, body) = row.map_err(backend)?;
            out.push(codec::event(incident, seq, &at, actor, &body)?);
        }
        if out.is_empty() {
            return Err(StoreError::NotFound(incident));
        }
        Ok(out)
    }

    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached("SELECT id FROM incidents ORDER BY id")
            .map_err(backend)?;
        let ids = stmt
            .query_map([], |r| r.get::<_, i64>(0))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(ids.into_iter().map(|i| IncidentId(i as u64)).collect())
    }

    fn claim_outbox(
        &self,
        now_s: i64,
        lease_s: i64,
        notifiers: &[String],
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let names =
            serde_json::to_string(notifiers).map_err(|e| StoreError::Backend(e.to_string()))?;
        let mut conn = self.lock()?;
        // IMMEDIATE: the write lock is taken before the rows are chosen, so
        // another process claiming from the same file waits instead of
        // picking the same items.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let mut items = outbox_rows(
            &tx,
            "UPDATE outbox SET lease_until = ?2 WHERE id IN (
                SELECT id FROM outbox WHERE delivered_at IS NULL AND due_at <= ?1
                AND (lease_until IS NULL OR lease_until <= ?1)
                AND notifier IN (SELECT value FROM json_each(?3)) ORDER BY id LIMIT ?4)
             RETURNING id, notifier, message, attempts, last_error",
            params![now_s, now_s + lease_s, names, sql_limit(limit)],
        )?;
        tx.commit().map_err(backend)?;
        // RETURNING gives no order; the contract is oldest first.
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    fn release_outbox(&self, id: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute("UPDATE outbox SET lease_until = NULL WHERE id = ?1", [id])
            .map_err(backend)?;
        Ok(())
    }

    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError> {
        let conn = self.lock()?;
        outbox_rows(
            &conn,
            "SELECT id, notifier, message, attempts, last_error FROM outbox WHERE delivered_at IS NULL ORDER BY id",
            params![],
        )
    }

    fn mark_delivered(&self, id: i64, at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "UPDATE outbox SET delivered_at = ?2, attempts = attempts + 1, lease_until = NULL WHERE id = ?1",
            params![id, at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn memory_get(&self, incident: IncidentId, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT value FROM memory WHERE incident = ?1 AND key = ?2",
            params![incident.0 as i64, key],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)
    }

    fn memory_set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO memory (incident, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (incident, key) DO UPDATE SET value = excluded.value",
            params![incident.0 as i64, key, value],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn mark_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, due_at = ?3, lease_until = NULL WHERE id = ?1",
            params![id, error, retry_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }
}

/// Runs `sql`, whose rows are `id, notifier, message, attempts, last_error`
/// of `outbox`, on a connection or in a transaction.
fn outbox_rows(
    conn: &Connection,
    sql: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<OutboxItem>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })
        .map_err(backend)?;
    let mut out = vec![];
    for row in rows {
        let (id, notifier, message, attempts, last_error) = row.map_err(backend)?;
        out.push(codec::outbox_item(
            id, notifier, &message, attempts, last_error,
        )?);
    }
    Ok(out)
}

type TokenRow = (i64, String, String, i64, bool);

/// `id, user_name, role, created_at, revoked` of `api_tokens`.
fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn token_record(
    (id, user, role, created_at, revoked): TokenRow,
) -> Result<TokenRecord, StoreError> {
    codec::token_record(id, user, &role, created_at, revoked)
}

impl TeamStore for SqliteStore {
    fn token_create(
        &self,
        user: &str,
        role: ApiRole,
        hash: &str,
        now_s: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO api_tokens (user_name, role, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![user, role.as_str(), hash, now_s],
        )
        .map_err(|e| StoreError::Backend(format!("cannot store the API token: {e}")))?;
        Ok(conn.last_insert_rowid())
    }

    fn token_lookup(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let conn = self.lock()?;
        conn.query_row(
            "SELECT id, user_name, role, created_at, revoked FROM api_tokens
             WHERE hash = ?1 AND revoked = 0",
            [hash],
            token_row,
        )
        .optional()
        .map_err(backend)?
        .map(token_record)
        .transpose()
    }

    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, user_name, role, created_at, revoked FROM api_tokens
                 ORDER BY created_at, id",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], token_row)
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        rows.into_iter().map(token_record).collect()
    }

    fn token_revoke(&self, id: i64) -> Result<bool, StoreError> {
        let conn = self.lock()?;
        let n = conn
            .execute(
                "UPDATE api_tokens SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                [id],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    fn inbox_put(
        &self,
        source: &str,
        delivery: &str,
        body: &str,
        now_s: i64,
    ) -> Result<InboxPut, StoreError> {
        let conn = self.lock()?;
        // DO NOTHING, not an error: a redelivery must leave the first copy
        // (and its processing state) exactly as it was.
        let stored: Option<i64> = conn
            .query_row(
                "INSERT INTO inbox (source, delivery, body, received_at, due_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)
                 ON CONFLICT (source, delivery) DO NOTHING RETURNING id",
                params![source, delivery, body, now_s],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        if let Some(id) = stored {
            return Ok(InboxPut::Stored(id));
        }
        let existing: i64 = conn
            .query_row(
                "SELECT id FROM inbox WHERE source = ?1 AND delivery = ?2",
                params![source, delivery],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(InboxPut::Duplicate(existing))
    }

    fn inbox_claim(
        &self,
        now_s: i64,
        lease_s: i64,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let mut conn = self.lock()?;
        // IMMEDIATE: the write lock is taken before the rows are chosen, so
        // another process claiming from the same file waits instead of
        // picking the same items.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let mut items = {
            let mut stmt = tx
                .prepare_cached(
                    "UPDATE inbox SET lease_until = ?2, attempts = attempts + 1 WHERE id IN (
                        SELECT id FROM inbox WHERE processed_at IS NULL AND due_at <= ?1
                        AND (lease_until IS NULL OR lease_until <= ?1) ORDER BY id LIMIT ?3)
                     RETURNING id, source, body, received_at, attempts",
                )
                .map_err(backend)?;
            stmt.query_map(params![now_s, now_s + lease_s, sql_limit(limit)], |r| {
                Ok(InboxItem {
                    id: r.get(0)?,
                    source: r.get(1)?,
                    body: r.get(2)?,
                    received_at: r.get(3)?,
                    attempts: r.get(4)?,
                })
            })
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?
        };
        tx.commit().map_err(backend)?;
        // RETURNING gives no order; the contract is oldest first.
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    fn inbox_done(&self, id: i64, outcome: &str, now_s: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        // `processed_at IS NULL`: a replica whose lease ran out and that
        // reports late must not overwrite the outcome of the one that finished.
        conn.execute(
            "UPDATE inbox SET processed_at = ?2, outcome = ?3, lease_until = NULL
             WHERE id = ?1 AND processed_at IS NULL",
            params![id, now_s, outcome],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "UPDATE inbox SET outcome = ?2, due_at = ?3, lease_until = NULL
             WHERE id = ?1 AND processed_at IS NULL",
            params![id, error, retry_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_defer(&self, id: i64, why: &str, due_at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "UPDATE inbox SET outcome = ?2, due_at = ?3, lease_until = NULL,
                 attempts = MAX(attempts - 1, 0)
             WHERE id = ?1 AND processed_at IS NULL",
            params![id, why, due_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_recent(&self, limit: usize) -> Result<Vec<InboxRecord>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, source, received_at, processed_at, attempts, outcome FROM inbox
                 ORDER BY id DESC LIMIT ?1",
            )
            .map_err(backend)?;
        stmt.query_map([sql_limit(limit)], |r| {
            Ok(InboxRecord {
                id: r.get(0)?,
                source: r.get(1)?,
                received_at: r.get(2)?,
                processed_at: r.get(3)?,
                attempts: r.get(4)?,
                outcome: r.get(5)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)
    }

    fn alert_link_get(&self, source: &str, key: &str) -> Result<Option<IncidentId>, StoreError> {
        let conn = self.lock()?;
        let id: Option<i64> = conn
            .query_row(
                "SELECT incident FROM alert_links WHERE source = ?1 AND key = ?2",
                params![source, key],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(id.map(|i| IncidentId(i as u64)))
    }

    fn alert_link_set(
        &self,
        source: &str,
        key: &str,
        incident: IncidentId,
    ) -> Result<IncidentId, StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "INSERT INTO alert_links (source, key, incident) VALUES (?1, ?2, ?3)
             ON CONFLICT (source, key) DO NOTHING",
            params![source, key, incident.0 as i64],
        )
        .map_err(backend)?;
        let id: i64 = conn
            .query_row(
                "SELECT incident FROM alert_links WHERE source = ?1 AND key = ?2",
                params![source, key],
                |r| r.get(0),
            )
            .map_err(backend)?;
        Ok(IncidentId(id as u64))
    }

    fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.lock()?;
        // One statement: taking a free or expired lease and renewing one's
        // own cannot interleave with another process doing the same.
        let got: Option<String> = conn
            .query_row(
                "INSERT INTO leases (name, holder, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.until <= ?4 OR leases.holder = excluded.holder
                 RETURNING holder",
                params![name, holder, now_s + ttl_s, now_s],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        Ok(got.as_deref() == Some(holder))
    }

    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let conn = self.lock()?;
        conn.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn once(&self, key: &str, now_s: i64) -> Result<bool, StoreError> {
        let conn = self.lock()?;
        let n = conn
            .execute(
                "INSERT INTO once_keys (key, at) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![key, now_s],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    /// The highest rowid of `events`: SQLite serialises writers, so a later
    /// append always gets a larger rowid, and `MAX(rowid)` is one B-tree
    /// descent, however many incidents there are. Events are never deleted,
    /// so rowids have no gaps and `VACUUM` (which may renumber them) keeps
    /// the maximum where it was.
    fn watermark(&self) -> Result<i64, StoreError> {
        let conn = self.lock()?;
        conn.query_row("SELECT COALESCE(MAX(rowid), 0) FROM events", [], |r| {
            r.get(0)
        })
        .map_err(backend)
    }

    /// One scan of the `(incident, seq)` primary key.
    fn incident_versions(&self) -> Result<Vec<(IncidentId, u64)>, StoreError> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT incident, MAX(seq) FROM events GROUP BY incident ORDER BY incident",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|(i, v)| (IncidentId(i as u64), v as u64))
            .collect())
    }
}
