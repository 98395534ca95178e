//! The PostgreSQL store, for the team server (`hotfix serve`) and for CLIs
//! pointed at it with `HOTFIX_DATABASE_URL=postgres://…`.
//!
//! Same contract as SQLite (the shared conformance suite runs on both): an
//! append takes the incident's row lock (`SELECT … FOR UPDATE`), checks the
//! version and inserts, in one transaction, so replicas on one database
//! cannot both win. A declaration or a new attempt takes its hotfix name
//! in the same transaction (`open_names`, one open incident per name).
//! Migrations (`pg/migrations/*.sql`) run under an advisory lock so
//! replicas starting together do not race.
//!
//! Each store call takes a connection of the pool for its statement or
//! transaction, so one replica's requests and workers run side by side
//! (they queued on a single connection before); the guarantees above come
//! from the database's locks, never from the process, so they hold across
//! the pool's connections exactly as across replicas.

mod tls;

use std::time::Duration;

use hotfix_core::event::{Event, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{OutboxItem, Store, StoreError};
use hotfix_core::team::{
    AdminGuard, ApiRole, InboxItem, InboxPut, InboxRecord, Revoke, TeamStore, TokenRecord,
};
use postgres::{Client, Transaction};
use r2d2::ManageConnection;

use crate::codec::{self, NameBook, sql_limit};

/// The schema, one file per step, applied in order and counted in
/// `hotfix_schema.version`. A step that has shipped is never edited: a
/// change is a new file at the end of this list.
const MIGRATIONS: &[&str] = &[
    include_str!("pg/migrations/0001_incidents_events_outbox.sql"),
    include_str!("pg/migrations/0002_memory.sql"),
    include_str!("pg/migrations/0003_outbox_lease.sql"),
    include_str!("pg/migrations/0004_team_tables.sql"),
    include_str!("pg/migrations/0005_open_names.sql"),
];

/// An arbitrary constant: the advisory lock that serialises migrations.
const MIGRATION_LOCK: i64 = 0x686f_7466_6978;

/// An arbitrary constant: the first key of the advisory locks of hotfix
/// names (`pg_advisory_xact_lock(NAME_LOCK, hashtext(name))`; two-key locks
/// never collide with the one-key [`MIGRATION_LOCK`]).
const NAME_LOCK: i32 = 0x6866;

/// The pool size when nothing says otherwise (`hotfix serve --db-pool`,
/// `HOTFIX_DATABASE_POOL_SIZE`).
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// How a [`PgStore`] connects, beyond its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgOptions {
    /// At most this many connections at once. 1 is the old single
    /// connection (every store call of the process queues on it).
    pub pool_size: u32,
    /// Every table in this schema (created if missing); tests isolate
    /// themselves with it on one database.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            pool_size: DEFAULT_POOL_SIZE,
            schema: None,
        }
    }
}

type Conn = r2d2::PooledConnection<Manager>;

/// Opens the pool's connections. (r2d2_postgres's manager is these lines
/// too, but reports a failed connect by its kind only, "error connecting
/// to server"; this one keeps the reason for the pool's timeout error.)
#[derive(Debug)]
struct Manager {
    config: postgres::Config,
    tls: tls::Tls,
}

/// A failed connect or check, with its causes.
#[derive(Debug)]
struct ConnectError(String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl ManageConnection for Manager {
    type Connection = PgConn;
    type Error = ConnectError;

    fn connect(&self) -> Result<PgConn, ConnectError> {
        self.config
            .connect(self.tls.clone())
            .map(|c| PgConn(Some(c)))
            .map_err(|e| ConnectError(causes(&e)))
    }

    /// Run at every checkout: a connection the server or a failover closed
    /// is replaced here instead of failing the caller's statement.
    fn is_valid(&self, c: &mut PgConn) -> Result<(), ConnectError> {
        c.simple_query("")
            .map(|_| ())
            .map_err(|e| ConnectError(causes(&e)))
    }

    fn has_broken(&self, c: &mut PgConn) -> bool {
        c.is_closed()
    }
}

/// A pooled connection that can be dropped anywhere.
///
/// Why: closing a `postgres::Client` blocks on the client's own runtime,
/// and tokio panics when that happens on one of its runtime threads. The
/// server's last handle on the store (and so the pool with its idle
/// connections) can be dropped there, by a worker task cancelled at
/// shutdown; the panic in a destructor aborted the process. Such a drop
/// hands the client to a short-lived thread of its own to close it.
pub(crate) struct PgConn(Option<Client>);

impl std::ops::Deref for PgConn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("taken only by drop"))
    }
}

impl std::ops::DerefMut for PgConn {
    fn deref_mut(&mut self) -> &mut Client {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("taken only by drop"))
    }
}

impl Drop for PgConn {
    fn drop(&mut self) {
        let Some(c) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            return; // closed here
        }
        let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(c)));
        let theirs = slot.clone();
        let spawned = std::thread::Builder::new()
            .name("hotfix-pg-close".into())
            .spawn(move || drop(theirs.lock().map(|mut c| c.take())));
        if spawned.is_err() {
            // No thread to close it on: leave the socket to the OS rather
            // than abort the process.
            if let Ok(Some(c)) = slot.lock().map(|mut c| c.take()) {
                std::mem::forget(c);
            }
        }
    }
}

/// The PostgreSQL store: a pool of connections (r2d2), TLS as the URL's
/// `sslmode` asks (see `pg/tls.rs`).
///
/// Why r2d2: the `Store` traits are synchronous and so is the `postgres`
/// client they are written on (the server calls them from blocking
/// threads); r2d2 is the pool made for that (r2d2_postgres, by the
/// `postgres` crate's author, is the [`Manager`] below). deadpool-postgres
/// and bb8 pool the async client and would put a runtime hop inside every
/// store call.
pub struct PgStore {
    pool: r2d2::Pool<Manager>,
}

fn backend(e: postgres::Error) -> StoreError {
    StoreError::Backend(format!("PostgreSQL: {}", causes(&e)))
}

/// An error with its causes: the `postgres` crate's own text is only the
/// kind ("db error", "error performing TLS handshake"); the reason (the
/// server's message, which certificate check failed) is in its source.
fn causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut next = e.source();
    while let Some(c) = next {
        let c_text = c.to_string();
        if !s.ends_with(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        next = c.source();
    }
    s
}

/// One plain connection as [`PgStore`] would open it (same URL rules,
/// same TLS), outside any pool: for tests and maintenance tools that need
/// to run their own SQL.
#[doc(hidden)]
pub fn connect(url: &str) -> Result<Client, StoreError> {
    // Outside the pool: the caller owns the client and where it drops.
    let shown = crate::redact_url(url);
    let target =
        tls::target(url).map_err(|e| StoreError::Backend(format!("PostgreSQL at {shown}: {e}")))?;
    target.config.connect(target.tls).map_err(|e| {
        StoreError::Backend(format!(
            "cannot connect to PostgreSQL at {shown}: {}",
            causes(&e)
        ))
    })
}

fn connect_with(manager: &Manager, shown: &str) -> Result<PgConn, StoreError> {
    manager
        .connect()
        .map_err(|e| StoreError::Backend(format!("cannot connect to PostgreSQL at {shown}: {e}")))
}

/// Sets the search path of every connection the pool opens.
#[derive(Debug)]
struct InSchema(String);

impl r2d2::CustomizeConnection<PgConn, ConnectError> for InSchema {
    fn on_acquire(&self, c: &mut PgConn) -> Result<(), ConnectError> {
        c.batch_execute(&format!("SET search_path TO {}", self.0))
            .map_err(|e| ConnectError(causes(&e)))
    }
}

impl PgStore {
    /// Connects with the default pool and brings the schema up to date.
    pub fn open(url: &str) -> Result<PgStore, StoreError> {
        Self::open_with(url, &PgOptions::default())
    }

    /// Like [`PgStore::open`], with every table in `schema` (created if
    /// missing): used by tests to isolate themselves on one database.
    pub fn open_in_schema(url: &str, schema: Option<&str>) -> Result<PgStore, StoreError> {
        Self::open_with(
            url,
            &PgOptions {
                schema: schema.map(str::to_string),
                ..PgOptions::default()
            },
        )
    }

    /// Connects once, right away (a wrong URL, password or CA is an error
    /// now, with its reason, not a pool timeout at the first request),
    /// migrates on that connection, then hands out pooled connections.
    pub fn open_with(url: &str, opts: &PgOptions) -> Result<PgStore, StoreError> {
        let shown = crate::redact_url(url);
        if opts.pool_size == 0 {
            return Err(StoreError::Backend(
                "the PostgreSQL pool size must be at least 1".into(),
            ));
        }
        if let Some(s) = &opts.schema
            && !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Backend(format!("bad schema name {s}")));
        }
        let target = tls::target(url)
            .map_err(|e| StoreError::Backend(format!("PostgreSQL at {shown}: {e}")))?;
        let manager = Manager {
            config: target.config,
            tls: target.tls,
        };
        let mut first = connect_with(&manager, &shown)?;
        if let Some(s) = &opts.schema {
            first
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS {s}; SET search_path TO {s}"
                ))
                .map_err(backend)?;
        }
        migrate(&mut first)?;
        drop(first);
        let mut builder = r2d2::Pool::builder()
            .max_size(opts.pool_size)
            // Connections are opened as load needs them and closed after
            // 10 idle minutes: a CLI command uses one, a quiet replica few.
            .min_idle(Some(0))
            // A request waits this long for a free connection (or for the
            // database to come back) before it fails with the reason.
            .connection_timeout(Duration::from_secs(10));
        if let Some(s) = &opts.schema {
            builder = builder.connection_customizer(Box::new(InSchema(s.clone())));
        }
        // Unchecked: the first connection above already proved the URL.
        // Each checkout still tests its connection (`SELECT` of nothing),
        // so one dropped by a failover is replaced, not handed out.
        Ok(PgStore {
            pool: builder.build_unchecked(manager),
        })
    }

    /// A connection of the pool, for one store call.
    fn lock(&self) -> Result<Conn, StoreError> {
        self.pool.get().map_err(|e| {
            StoreError::Backend(format!(
                "PostgreSQL: no connection from the pool: {}",
                causes(&e)
            ))
        })
    }
}

fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction().map_err(backend)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(backend)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS hotfix_schema (version INTEGER NOT NULL)")
        .map_err(backend)?;
    let v: i32 = tx
        .query_opt("SELECT version FROM hotfix_schema", &[])
        .map_err(backend)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if v == 0 {
        tx.execute("INSERT INTO hotfix_schema (version) VALUES (0)", &[])
            .map_err(backend)?;
    }
    for (n, m) in codec::pending_migrations(MIGRATIONS, v.into(), "the database was migrated")? {
        tx.batch_execute(m).map_err(backend)?;
        tx.execute("UPDATE hotfix_schema SET version = $1", &[&(n as i32)])
            .map_err(backend)?;
    }
    tx.commit().map_err(backend)
}

fn insert_events(
    tx: &mut Transaction<'_>,
    incident: IncidentId,
    from: u64,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for (i, e) in events.iter().enumerate() {
        let body = codec::event_body(&e.kind)?;
        tx.execute(
            "INSERT INTO events (incident, seq, at, actor, type, body) VALUES ($1, $2, $3, $4, $5, $6)",
            &[&(incident.0 as i64), &((from + i as u64) as i64), &e.at.to_string(), &e.actor, &e.kind.name(), &body],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn insert_outbox(
    tx: &mut Transaction<'_>,
    incident: IncidentId,
    outbox: &[(String, Message)],
) -> Result<(), StoreError> {
    for (n, m) in outbox {
        let body = codec::message_body(m)?;
        tx.execute(
            "INSERT INTO outbox (incident, notifier, message, due_at) VALUES ($1, $2, $3, $4)",
            &[&(incident.0 as i64), n, &body, &m.at.as_second()],
        )
        .map_err(backend)?;
    }
    Ok(())
}

/// Counts a transaction that writes events, as its last statement.
///
/// A counter row rather than `MAX` of a sequence column: sequence values are
/// handed out in start order, not commit order, so a reader could see
/// transaction B's larger value, then A commit with a smaller one, and never
/// notice A's events. The row lock orders the bumps by commit instead. It is
/// taken last, just before the commit, so it is held for the shortest time
/// and never while waiting for another lock (no deadlock with the incident
/// row locks); writers to different incidents queue only for that moment.
fn bump_watermark(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    let n = tx
        .execute("UPDATE event_watermark SET n = n + 1", &[])
        .map_err(backend)?;
    if n != 1 {
        return Err(StoreError::Corrupt(format!(
            "event_watermark has {n} rows, expected exactly one"
        )));
    }
    Ok(())
}

/// The `open_names` statements. The incident's row lock serialises appends
/// to one incident, not writers of one name: those queue on [`NAME_LOCK`].
impl NameBook for Transaction<'_> {
    /// Without this lock, a declarer would see no holder, allocate an id,
    /// and only then wait on the racing insert of the same name and fail
    /// with a bare unique violation; with it, the second one in finds the
    /// first one's committed row and says who holds the name, before it has
    /// used up an incident number. (Two names with one hash only queue.)
    fn lock_name(&mut self, name: &str) -> Result<(), StoreError> {
        self.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&NAME_LOCK, &name],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn name_holder(&mut self, name: &str) -> Result<Option<i64>, StoreError> {
        Ok(self
            .query_opt("SELECT incident FROM open_names WHERE name = $1", &[&name])
            .map_err(backend)?
            .map(|r| r.get(0)))
    }

    fn insert_name(&mut self, name: &str, incident: i64) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO open_names (name, incident) VALUES ($1, $2)",
            &[&name, &incident],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn release_name(&mut self, incident: i64) -> Result<(), StoreError> {
        self.execute("DELETE FROM open_names WHERE incident = $1", &[&incident])
            .map_err(backend)?;
        Ok(())
    }

    fn is_closed(&mut self, incident: i64) -> Result<bool, StoreError> {
        Ok(self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM events WHERE incident = $1 AND type = 'closed')",
                &[&incident],
            )
            .map_err(backend)?
            .get(0))
    }
}

/// `id, user_name, role, created_at, revoked` of `api_tokens`.
fn token_record(r: &postgres::Row) -> Result<TokenRecord, StoreError> {
    codec::token_record(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

impl PgStore {
    fn outbox_query(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let mut c = self.lock()?;
        let rows = c.query(sql, params).map_err(backend)?;
        rows.iter()
            .map(|r| {
                codec::outbox_item(
                    r.get(0),
                    r.get(1),
                    r.get(2),
                    r.get::<_, i32>(3).into(),
                    r.get(4),
                )
            })
            .collect()
    }
}

impl Store for PgStore {
    fn declare(
        &self,
        event: &NewEvent,
        outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError> {
        let mut c = self.lock()?;
        let mut tx = c.transaction().map_err(backend)?;
        let name = codec::free_declared_name(&mut tx, event)?;
        let row = tx
            .query_one(
                "INSERT INTO incidents (created_at) VALUES ($1) RETURNING id",
                &[&event.at.to_string()],
            )
            .map_err(backend)?;
        let raw: i64 = row.get(0);
        let id = IncidentId(raw as u64);
        insert_events(&mut tx, id, 1, std::slice::from_ref(event))?;
        if let Some(name) = name {
            tx.insert_name(name, raw)?;
        }
        insert_outbox(&mut tx, id, &outbox(id))?;
        bump_watermark(&mut tx)?;
        tx.commit().map_err(backend)?;
        Ok(id)
    }

    fn append(
        &self,
        incident: IncidentId,
        expected: u64,
        events: &[NewEvent],
        outbox: &[(String, Message)],
    ) -> Result<u64, StoreError> {
        let mut c = self.lock()?;
        let mut tx = c.transaction().map_err(backend)?;
        // The incident's row lock serialises appends to it across replicas.
        let found = tx
            .query_opt(
                "SELECT id FROM incidents WHERE id = $1 FOR UPDATE",
                &[&(incident.0 as i64)],
            )
            .map_err(backend)?;
        if found.is_none() {
            return Err(StoreError::NotFound(incident));
        }
        let actual: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(seq), 0) FROM events WHERE incident = $1",
                &[&(incident.0 as i64)],
            )
            .map_err(backend)?
            .get(0);
        codec::check_version(incident, expected, actual)?;
        insert_events(&mut tx, incident, expected + 1, events)?;
        codec::apply_appended_naming(&mut tx, incident, events)?;
        insert_outbox(&mut tx, incident, outbox)?;
        if !events.is_empty() {
            bump_watermark(&mut tx)?;
        }
        tx.commit().map_err(backend)?;
        Ok(expected + events.len() as u64)
    }

    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError> {
        let mut c = self.lock()?;
        let rows = c
            .query(
                "SELECT seq, at, actor, body FROM events WHERE incident = $1 ORDER BY seq",
                &[&(incident.0 as i64)],
            )
            .map_err(backend)?;
        if rows.is_empty() {
            return Err(StoreError::NotFound(incident));
        }
        rows.iter()
            .map(|r| codec::event(incident, r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    }

    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let mut c = self.lock()?;
        let rows = c
            .query("SELECT id FROM incidents ORDER BY id", &[])
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|r| IncidentId(r.get::<_, i64>(0) as u64))
            .collect())
    }

    fn claim_outbox(
        &self,
        now_s: i64,
        lease_s: i64,
        notifiers: &[String],
        limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        // SKIP LOCKED: replicas claiming at once take disjoint rows, no waiting.
        let mut v = self.outbox_query(
            "UPDATE outbox SET lease_until = $2 WHERE id IN (
                SELECT id FROM outbox WHERE delivered_at IS NULL AND due_at <= $1
                AND (lease_until IS NULL OR lease_until <= $1) AND notifier = ANY($3)
                ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
             RETURNING id, notifier, message, attempts, last_error",
            &[&now_s, &(now_s + lease_s), &notifiers, &sql_limit(limit)],
        )?;
        v.sort_by_key(|i| i.id);
        Ok(v)
    }

    fn release_outbox(&self, id: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute("UPDATE outbox SET lease_until = NULL WHERE id = $1", &[&id])
            .map_err(backend)?;
        Ok(())
    }

    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError> {
        self.outbox_query(
            "SELECT id, notifier, message, attempts, last_error FROM outbox WHERE delivered_at IS NULL ORDER BY id",
            &[],
        )
    }

    fn mark_delivered(&self, id: i64, at_s: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, lease_until = NULL WHERE id = $1",
            &[&id, &at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn mark_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2, due_at = $3, lease_until = NULL WHERE id = $1",
            &[&id, &error, &retry_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn memory_get(&self, incident: IncidentId, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.lock()?;
        Ok(c.query_opt(
            "SELECT value FROM memory WHERE incident = $1 AND key = $2",
            &[&(incident.0 as i64), &key],
        )
        .map_err(backend)?
        .map(|r| r.get(0)))
    }

    fn memory_set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "INSERT INTO memory (incident, key, value) VALUES ($1, $2, $3) ON CONFLICT (incident, key) DO UPDATE SET value = EXCLUDED.value",
            &[&(incident.0 as i64), &key, &value],
        )
        .map_err(backend)?;
        Ok(())
    }
}

impl TeamStore for PgStore {
    fn token_create(
        &self,
        user: &str,
        role: ApiRole,
        hash: &str,
        now_s: i64,
    ) -> Result<i64, StoreError> {
        let mut c = self.lock()?;
        let row = c
            .query_one(
                "INSERT INTO api_tokens (user_name, role, hash, created_at) VALUES ($1, $2, $3, $4)
                 RETURNING id",
                &[&user, &role.as_str(), &hash, &now_s],
            )
            .map_err(|e| StoreError::Backend(format!("cannot store the API token: {e}")))?;
        Ok(row.get(0))
    }

    fn token_lookup(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let mut c = self.lock()?;
        c.query_opt(
            "SELECT id, user_name, role, created_at, revoked FROM api_tokens
             WHERE hash = $1 AND NOT revoked",
            &[&hash],
        )
        .map_err(backend)?
        .map(|r| token_record(&r))
        .transpose()
    }

    fn token_list(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let mut c = self.lock()?;
        c.query(
            "SELECT id, user_name, role, created_at, revoked FROM api_tokens
             ORDER BY created_at, id",
            &[],
        )
        .map_err(backend)?
        .iter()
        .map(token_record)
        .collect()
    }

    fn token_revoke(&self, id: i64, guard: AdminGuard) -> Result<Revoke, StoreError> {
        let mut c = self.lock()?;
        let mut tx = c.transaction().map_err(backend)?;
        if guard == AdminGuard::KeepOne {
            // A count alone is not enough under READ COMMITTED: two replicas
            // revoking two different admins would each still see the other
            // live. So every live admin row is locked, in id order (two
            // revokers never deadlock); the second waits for the first to
            // commit and then no longer sees the token it revoked.
            let live: Vec<i64> = tx
                .query(
                    "SELECT id FROM api_tokens WHERE role = $1 AND NOT revoked
                     ORDER BY id FOR UPDATE",
                    &[&ApiRole::Admin.as_str()],
                )
                .map_err(backend)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if live == [id] {
                return Ok(Revoke::LastAdmin);
            }
        }
        let n = tx
            .execute(
                "UPDATE api_tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked",
                &[&id],
            )
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(if n == 1 {
            Revoke::Revoked
        } else {
            Revoke::NotFound
        })
    }

    fn inbox_put(
        &self,
        source: &str,
        delivery: &str,
        body: &str,
        now_s: i64,
    ) -> Result<InboxPut, StoreError> {
        let mut c = self.lock()?;
        // DO NOTHING, not an error: a redelivery must leave the first copy
        // (and its processing state) exactly as it was. A concurrent insert of
        // the same delivery waits for the first to commit, then finds it below.
        let stored = c
            .query_opt(
                "INSERT INTO inbox (source, delivery, body, received_at, due_at)
                 VALUES ($1, $2, $3, $4, $4)
                 ON CONFLICT (source, delivery) DO NOTHING RETURNING id",
                &[&source, &delivery, &body, &now_s],
            )
            .map_err(backend)?;
        if let Some(r) = stored {
            return Ok(InboxPut::Stored(r.get(0)));
        }
        let existing = c
            .query_one(
                "SELECT id FROM inbox WHERE source = $1 AND delivery = $2",
                &[&source, &delivery],
            )
            .map_err(backend)?;
        Ok(InboxPut::Duplicate(existing.get(0)))
    }

    fn inbox_claim(
        &self,
        now_s: i64,
        lease_s: i64,
        limit: usize,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let mut c = self.lock()?;
        // One statement, so one transaction. SKIP LOCKED: replicas claiming
        // at once take disjoint rows without waiting; a row another replica
        // leased and committed meanwhile is re-checked against the WHERE
        // (its lease_until is now in the future) and left out.
        let rows = c
            .query(
                "UPDATE inbox SET lease_until = $2, attempts = attempts + 1 WHERE id IN (
                    SELECT id FROM inbox WHERE processed_at IS NULL AND due_at <= $1
                    AND (lease_until IS NULL OR lease_until <= $1)
                    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
                 RETURNING id, source, body, received_at, attempts",
                &[&now_s, &(now_s + lease_s), &sql_limit(limit)],
            )
            .map_err(backend)?;
        let mut items: Vec<InboxItem> = rows
            .iter()
            .map(|r| InboxItem {
                id: r.get(0),
                source: r.get(1),
                body: r.get(2),
                received_at: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
            })
            .collect();
        // RETURNING gives no order; the contract is oldest first.
        items.sort_by_key(|i| i.id);
        Ok(items)
    }

    fn inbox_done(&self, id: i64, outcome: &str, now_s: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        // `processed_at IS NULL`: a replica whose lease ran out and that
        // reports late must not overwrite the outcome of the one that finished.
        c.execute(
            "UPDATE inbox SET processed_at = $2, outcome = $3, lease_until = NULL
             WHERE id = $1 AND processed_at IS NULL",
            &[&id, &now_s, &outcome],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "UPDATE inbox SET outcome = $2, due_at = $3, lease_until = NULL
             WHERE id = $1 AND processed_at IS NULL",
            &[&id, &error, &retry_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_defer(&self, id: i64, why: &str, due_at_s: i64) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "UPDATE inbox SET outcome = $2, due_at = $3, lease_until = NULL,
                 attempts = GREATEST(attempts - 1, 0)
             WHERE id = $1 AND processed_at IS NULL",
            &[&id, &why, &due_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_recent(&self, limit: usize) -> Result<Vec<InboxRecord>, StoreError> {
        let mut c = self.lock()?;
        let rows = c
            .query(
                "SELECT id, source, received_at, processed_at, attempts, outcome FROM inbox
                 ORDER BY id DESC LIMIT $1",
                &[&sql_limit(limit)],
            )
            .map_err(backend)?;
        Ok(rows
            .iter()
            .map(|r| InboxRecord {
                id: r.get(0),
                source: r.get(1),
                received_at: r.get(2),
                processed_at: r.get(3),
                attempts: r.get::<_, i32>(4) as u32,
                outcome: r.get(5),
            })
            .collect())
    }

    fn inbox_body(&self, id: i64) -> Result<Option<String>, StoreError> {
        let mut c = self.lock()?;
        Ok(c.query_opt("SELECT body FROM inbox WHERE id = $1", &[&id])
            .map_err(backend)?
            .map(|r| r.get(0)))
    }

    fn alert_link_get(&self, source: &str, key: &str) -> Result<Option<IncidentId>, StoreError> {
        let mut c = self.lock()?;
        Ok(c.query_opt(
            "SELECT incident FROM alert_links WHERE source = $1 AND key = $2",
            &[&source, &key],
        )
        .map_err(backend)?
        .map(|r| IncidentId(r.get::<_, i64>(0) as u64)))
    }

    fn alert_link_set(
        &self,
        source: &str,
        key: &str,
        incident: IncidentId,
    ) -> Result<IncidentId, StoreError> {
        let mut c = self.lock()?;
        // A racing insert of the same key waits for the first to commit and
        // then does nothing, so the SELECT sees the winner either way.
        c.execute(
            "INSERT INTO alert_links (source, key, incident) VALUES ($1, $2, $3)
             ON CONFLICT (source, key) DO NOTHING",
            &[&source, &key, &(incident.0 as i64)],
        )
        .map_err(backend)?;
        let r = c
            .query_one(
                "SELECT incident FROM alert_links WHERE source = $1 AND key = $2",
                &[&source, &key],
            )
            .map_err(backend)?;
        Ok(IncidentId(r.get::<_, i64>(0) as u64))
    }

    fn lease_acquire(
        &self,
        name: &str,
        holder: &str,
        now_s: i64,
        ttl_s: i64,
    ) -> Result<bool, StoreError> {
        let mut c = self.lock()?;
        // One upsert: a racing acquirer waits on the row, then the WHERE is
        // checked against the winner's row, so at most one holder comes out.
        let got = c
            .query_opt(
                "INSERT INTO leases (name, holder, until) VALUES ($1, $2, $3)
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
                 WHERE leases.until <= $4 OR leases.holder = excluded.holder
                 RETURNING holder",
                &[&name, &holder, &(now_s + ttl_s), &now_s],
            )
            .map_err(backend)?;
        Ok(got.is_some_and(|r| r.get::<_, String>(0) == holder))
    }

    fn lease_release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut c = self.lock()?;
        c.execute(
            "DELETE FROM leases WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn once(&self, key: &str, now_s: i64) -> Result<bool, StoreError> {
        let mut c = self.lock()?;
        let n = c
            .execute(
                "INSERT INTO once_keys (key, at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                &[&key, &now_s],
            )
            .map_err(backend)?;
        Ok(n == 1)
    }

    /// The counter [`bump_watermark`] maintains: one row, one read.
    fn watermark(&self) -> Result<i64, StoreError> {
        let mut c = self.lock()?;
        c.query_opt("SELECT n FROM event_watermark", &[])
            .map_err(backend)?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::Corrupt("event_watermark has no row".into()))
    }

    /// One index scan of the `(incident, seq)` primary key.
    fn incident_versions(&self) -> Result<Vec<(IncidentId, u64)>, StoreError> {
        let mut c = self.lock()?;
        let rows = c
            .query(
                "SELECT incident, MAX(seq) FROM events GROUP BY incident ORDER BY incident",
                &[],
            )
            .map_err(backend)?;
        Ok(rows
            .into_iter()
            .map(|r| {
                (
                    IncidentId(r.get::<_, i64>(0) as u64),
                    r.get::<_, i64>(1) as u64,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    /// Every file in `pg/migrations/` is in `MIGRATIONS`, in order: a step
    /// written but not listed would never run.
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/pg/migrations");
        crate::codec::assert_migration_files(&dir, super::MIGRATIONS);
    }
}
