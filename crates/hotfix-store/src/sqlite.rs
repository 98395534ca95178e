//! The SQLite store.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use hotfix_core::event::{Event, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{BrokenStore, OutboxItem, Store, StoreError};
use hotfix_core::team::{
    AdminGuard, ApiRole, InboxItem, InboxPut, InboxRecord, Revoke, TeamStore, TokenRecord,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::codec::{self, NameBook, sql_limit};

/// Migrations, applied in order and tracked with `PRAGMA user_version`:
/// the files of `sqlite/migrations/`, one step each (a test checks that
/// every file is listed, in order).
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/migrations/0001_incidents_events_outbox.sql"),
    include_str!("sqlite/migrations/0002_memory.sql"),
    include_str!("sqlite/migrations/0003_outbox_lease.sql"),
    include_str!("sqlite/migrations/0004_team_tables.sql"),
    include_str!("sqlite/migrations/0005_open_names.sql"),
];

pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Why this store is read-only, if it is: every write is refused with
    /// [`StoreError::ReadOnly`] and this reason.
    read_only: Option<String>,
}

/// What [`SqliteStore::open_with`] does with a file that exists but holds no
/// incident log (a [`StoreError::Unusable`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IfUnusable {
    /// Refuse it (the default): a lost log must be noticed and restored.
    #[default]
    Refuse,
    /// Move it (and its `-wal`/`-shm`) aside to `NAME.broken-<unix time>`
    /// and create a new, empty store: `--reinit`, said on purpose. Nothing
    /// is deleted. A healthy store is opened as usual.
    MoveAside,
}

/// The files `--reinit` moved aside, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedAside {
    pub problem: BrokenStore,
    /// Each file moved, `(from, to)`: the database, and its `-wal` and
    /// `-shm` if they were there (renamed alike, so SQLite still pairs them).
    pub files: Vec<(PathBuf, PathBuf)>,
}

/// What [`SqliteStore::backup_to`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub incidents: u64,
    pub events: u64,
    pub bytes: u64,
}

fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether SQLite failed because it may not write (the file, its
/// directory, or the `-shm`/`-wal` it needs there): the cue to read only.
fn is_read_only_error(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied)
    )
}

/// An SQLite error met while opening `path`, typed by what it means.
fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::Unusable {
            path: path.to_path_buf(),
            problem: BrokenStore::NotADatabase,
        },
        Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt(format!("{}: {e}", path.display())),
        _ => StoreError::Backend(format!("cannot open {}: {e}", path.display())),
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating a new one only if there is no
    /// file there; brings its schema up to date. A file that is there but
    /// holds no incident log is refused ([`StoreError::Unusable`]); one that
    /// cannot be written is opened read-only (see [`SqliteStore::read_only`]).
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::open_with(path, IfUnusable::Refuse).map(|(s, _)| s)
    }

    /// [`SqliteStore::open`], with `--reinit`'s choice for an unusable file;
    /// returns what was moved aside, if anything.
    pub fn open_with(
        path: &Path,
        if_unusable: IfUnusable,
    ) -> Result<(SqliteStore, Option<MovedAside>), StoreError> {
        match Self::open_existing_or_new(path) {
            Err(StoreError::Unusable { problem, .. }) if if_unusable == IfUnusable::MoveAside => {
                let files = move_aside(path)?;
                let store = Self::open_existing_or_new(path)?;
                Ok((store, Some(MovedAside { problem, files })))
            }
            r => r.map(|s| (s, None)),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the store was opened read-only (`None`: it is writable). A
    /// store is read-only when its file has no write permission bit, its
    /// directory has none (SQLite could not create its `-wal`/`-shm`), or
    /// opening it for writing is refused. The mode bits count even for
    /// root, who could write anyway: a store someone made read-only (an
    /// archived log, a copy under investigation) is meant to stay as it is.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    fn open_existing_or_new(path: &Path) -> Result<SqliteStore, StoreError> {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(StoreError::Backend(format!(
                    "{} is a directory, not an incident store",
                    path.display()
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if std::fs::symlink_metadata(hotfix_fs::with_suffix(path, "-wal")).is_ok() {
                    return Err(StoreError::Unusable {
                        path: path.to_path_buf(),
                        problem: BrokenStore::OnlyWriteAheadLog,
                    });
                }
                create_new_store(path)?;
            }
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        }
        check_header(path)?;
        if let Some(why) = read_only_reason(path) {
            return Self::open_read_only(path, why);
        }
        match Self::open_read_write(path) {
            // The file looked writable but SQLite may not write there (a
            // directory owned by someone else, a read-only mount): read.
            Err(StoreError::ReadOnly { reason, .. }) => Self::open_read_only(path, reason),
            r => r,
        }
    }

    fn open_read_write(path: &Path) -> Result<SqliteStore, StoreError> {
        // No CREATE flag: SQLite never makes a store itself; only
        // `create_new_store` does, and only where there was no file.
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| open_error(path, e))?;
        conn.busy_timeout(Duration::from_secs(15))
            .map_err(backend)?;
        let read_only = |e: rusqlite::Error| StoreError::ReadOnly {
            path: path.to_path_buf(),
            reason: format!("SQLite may not write it: {e}"),
        };
        // SQLite quietly opens for reading only what it may not write.
        if conn
            .is_readonly(rusqlite::MAIN_DB)
            .map_err(|e| open_error(path, e))?
        {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
                reason: "SQLite could open it for reading only".into(),
            });
        }
        // Before any pragma that writes: another program's database is
        // refused, not converted to WAL.
        schema_version(&conn, path).map_err(|e| match e {
            Schema::Sqlite(e) if is_read_only_error(&e) => read_only(e),
            Schema::Sqlite(e) => open_error(path, e),
            Schema::Store(e) => e,
        })?;
        // WAL: readers never block the writer; synchronous=FULL: a power cut
        // never loses a committed step.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| {
                if is_read_only_error(&e) {
                    read_only(e)
                } else {
                    open_error(path, e)
                }
            })?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(backend)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(backend)?;
        // Stores (and their -wal/-shm) made by earlier versions were 0644.
        // Best effort: a file owned by someone else keeps its mode.
        let _ = hotfix_fs::restrict_sqlite_files(path);
        let store = SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            read_only: None,
        };
        store.migrate()?;
        Ok(store)
    }

    fn open_read_only(path: &Path, why: String) -> Result<SqliteStore, StoreError> {
        let why = format!("{why}; reading works, but nothing can be recorded until it is writable");
        let ro = |reason: String| StoreError::ReadOnly {
            path: path.to_path_buf(),
            reason,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| open_error(path, e))?;
        conn.busy_timeout(Duration::from_secs(15))
            .map_err(backend)?;
        let (conn, version) = match schema_version(&conn, path) {
            Ok(v) => (conn, v),
            // A WAL database needs its -shm; where it cannot be created
            // (a read-only directory), SQLite can still read the file as
            // immutable, which is right only if no write-ahead log holds
            // changes the file lacks.
            Err(Schema::Sqlite(e)) if is_read_only_error(&e) => {
                drop(conn);
                let wal = hotfix_fs::with_suffix(path, "-wal");
                if std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
                    return Err(ro(format!(
                        "{why}; and its write-ahead log {} holds changes that SQLite can only read with write access to that directory ({e})",
                        wal.display()
                    )));
                }
                let conn = Connection::open_with_flags(
                    immutable_uri(path)?,
                    flags | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| open_error(path, e))?;
                let v = schema_version(&conn, path).map_err(|e| match e {
                    Schema::Sqlite(e) => open_error(path, e),
                    Schema::Store(e) => e,
                })?;
                (conn, v)
            }
            Err(Schema::Sqlite(e)) => return Err(open_error(path, e)),
            Err(Schema::Store(e)) => return Err(e),
        };
        let known = MIGRATIONS.len() as i64;
        if codec::pending_migrations(MIGRATIONS, version, "the incident store was written")?
            .next()
            .is_some()
        {
            return Err(ro(format!(
                "{why}; and it needs a schema upgrade (version {version} to {known}) that cannot be written: make it writable and run any hotfix command once, or read it with the hotfix that wrote it"
            )));
        }
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            read_only: Some(why),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        codec::lock(&self.conn)
    }

    /// The connection for a write: a read-only store refuses here, before
    /// SQLite is asked, with the reason it is read-only.
    fn lock_write(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        if let Some(why) = &self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
                reason: why.clone(),
            });
        }
        self.lock()
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

    /// Writes a consistent copy of the whole store to `dest`, a new 0600
    /// file, with `VACUUM INTO`: it reads one snapshot (WAL readers never
    /// block writers), so other hotfix processes may go on writing, and the
    /// copy holds every step committed before it began and none after.
    /// Refuses to overwrite anything: the copy is made under a temporary
    /// name and linked to `dest` only if `dest` still does not exist.
    pub fn backup_to(&self, dest: &Path) -> Result<BackupSummary, StoreError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            StoreError::Backend(format!("cannot {what} {}: {e}", dest.display()))
        };
        if std::fs::symlink_metadata(dest).is_ok() {
            return Err(StoreError::Backend(format!(
                "{} exists already: a backup never overwrites a file, choose a new name",
                dest.display()
            )));
        }
        let tmp = hotfix_fs::temp_beside(dest, "partial");
        let written = (|| {
            hotfix_fs::create_new_private(&tmp).map_err(|e| fail("create", &e))?;
            let target = tmp
                .to_str()
                .ok_or_else(|| fail("name", &"the path is not UTF-8"))?;
            self.lock()?
                .execute("VACUUM INTO ?1", [target])
                .map_err(|e| fail("write", &e))?;
            std::fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(|e| fail("sync", &e))?;
            let summary = check_backup(&tmp).map_err(|e| fail("check", &e))?;
            std::fs::hard_link(&tmp, dest).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    StoreError::Backend(format!(
                        "{} exists already: a backup never overwrites a file, choose a new name",
                        dest.display()
                    ))
                } else {
                    fail("create", &e)
                }
            })?;
            sync_parent(dest);
            Ok(BackupSummary {
                path: dest.to_path_buf(),
                ..summary
            })
        })();
        for p in hotfix_fs::sqlite_files(&tmp) {
            let _ = std::fs::remove_file(p);
        }
        written
    }
}

/// How a schema check failed: SQLite's own error (to be typed by the
/// caller, who knows whether it may fall back to reading only), or ours.
enum Schema {
    Sqlite(rusqlite::Error),
    Store(StoreError),
}

/// The schema version of an existing store; refuses a database without
/// hotfix's tables ([`BrokenStore::ForeignDatabase`]).
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, Schema> {
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(Schema::Sqlite)?;
    if version != 0 {
        return Ok(version);
    }
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(Schema::Sqlite)?;
    if tables.iter().any(|t| t == "events") {
        // Ours but unnumbered: the migrations say what is wrong.
        return Ok(version);
    }
    Err(Schema::Store(StoreError::Unusable {
        path: path.to_path_buf(),
        problem: BrokenStore::ForeignDatabase { tables },
    }))
}

/// Refuses a file that is empty or does not start like an SQLite database,
/// before SQLite is given it (SQLite would take an empty file for a new
/// database and set it up).
fn check_header(path: &Path) -> Result<(), StoreError> {
    let unusable = |problem| StoreError::Unusable {
        path: path.to_path_buf(),
        problem,
    };
    let cannot =
        |e: std::io::Error| StoreError::Backend(format!("cannot read {}: {e}", path.display()));
    let f = std::fs::File::open(path).map_err(cannot)?;
    if f.metadata().map_err(cannot)?.len() == 0 {
        return Err(unusable(BrokenStore::Empty));
    }
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    f.take(SQLITE_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(cannot)?;
    if head != SQLITE_MAGIC {
        return Err(unusable(BrokenStore::NotADatabase));
    }
    Ok(())
}

/// Why the store at `path` must be opened read-only, if it must.
fn read_only_reason(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    if m.permissions().readonly() {
        return Some(format!(
            "the file has no write permission (mode {:04o})",
            m.permissions().mode() & 0o7777
        ));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = std::fs::metadata(dir)
        && d.permissions().readonly()
    {
        return Some(format!(
            "its directory {} has no write permission (mode {:04o}), so SQLite cannot keep its -wal and -shm files there",
            dir.display(),
            d.permissions().mode() & 0o7777
        ));
    }
    match std::fs::OpenOptions::new().write(true).open(path) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            ) =>
        {
            Some(format!("it cannot be opened for writing ({e})"))
        }
        _ => None,
    }
}

/// `file:/abs/path?immutable=1`, the path percent-encoded for SQLite's URI
/// parser.
fn immutable_uri(path: &Path) -> Result<String, StoreError> {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path)
        .map_err(|e| StoreError::Backend(format!("cannot resolve {}: {e}", path.display())))?;
    // Everything but RFC 3986's unreserved characters and the `/` between
    // path segments: a `?` or `#` in a directory name would otherwise end
    // the path, and `%` start an escape. The path's bytes need not be UTF-8.
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    let path = percent_encoding::percent_encode(abs.as_os_str().as_bytes(), PATH);
    Ok(format!("file:{path}?immutable=1"))
}

/// Makes a new, fully set-up store at `path`, which did not exist. Built
/// under a temporary name and linked into place, so that `path` only ever
/// appears complete: a crash halfway leaves no empty file for the next
/// command to refuse, and a concurrent first command sees either no file or
/// a whole store (the one that links second uses the first one's).
fn create_new_store(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    hotfix_fs::create_private_dir(dir)
        .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", dir.display())))?;
    let tmp = hotfix_fs::temp_beside(path, "new");
    let fail = |e: &dyn std::fmt::Display| {
        StoreError::Backend(format!("cannot create {}: {e}", path.display()))
    };
    let made = (|| {
        hotfix_fs::create_new_private(&tmp).map_err(|e| fail(&e))?;
        {
            let conn = Connection::open_with_flags(
                &tmp,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| fail(&e))?;
            conn.pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| fail(&e))?;
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(|e| fail(&e))?;
            let store = SqliteStore {
                conn: Mutex::new(conn),
                path: tmp.clone(),
                read_only: None,
            };
            store.migrate()?;
            // Closing the last connection checkpoints the WAL into the file.
        }
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| fail(&e))?;
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            // Another command created it first: that one is the store.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            // A file system without hard links: a rename, which could only
            // replace a store made in the instant since the check.
            Err(_) if !path.exists() => std::fs::rename(&tmp, path).map_err(|e| fail(&e))?,
            Err(_) => {}
        }
        sync_parent(path);
        Ok(())
    })();
    for p in hotfix_fs::sqlite_files(&tmp) {
        let _ = std::fs::remove_file(p);
    }
    made
}

/// Moves an unusable store and its `-wal`/`-shm` aside to
/// `NAME.broken-<unix time>` (`-N` added if taken); deletes nothing.
fn move_aside(path: &Path) -> Result<Vec<(PathBuf, PathBuf)>, StoreError> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let taken = |base: &Path| {
        hotfix_fs::sqlite_files(base)
            .iter()
            .any(|p| std::fs::symlink_metadata(p).is_ok())
    };
    let mut base = hotfix_fs::with_suffix(path, &format!(".broken-{secs}"));
    let mut n = 1;
    while taken(&base) {
        base = hotfix_fs::with_suffix(path, &format!(".broken-{secs}-{n}"));
        n += 1;
    }
    let mut moved = vec![];
    for (from, to) in hotfix_fs::sqlite_files(path)
        .into_iter()
        .zip(hotfix_fs::sqlite_files(&base))
    {
        if std::fs::symlink_metadata(&from).is_err() {
            continue;
        }
        std::fs::rename(&from, &to).map_err(|e| {
            StoreError::Backend(format!(
                "cannot move {} aside to {}: {e}",
                from.display(),
                to.display()
            ))
        })?;
        moved.push((from, to));
    }
    sync_parent(path);
    Ok(moved)
}

/// Counts what a backup holds, after checking it reads back whole.
fn check_backup(path: &Path) -> Result<BackupSummary, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            Some(format!("the copy does not read back: {check}")),
        ));
    }
    let incidents: i64 = conn.query_row("SELECT COUNT(*) FROM incidents", [], |r| r.get(0))?;
    let events: i64 = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    Ok(BackupSummary {
        path: path.to_path_buf(),
        incidents: incidents as u64,
        events: events as u64,
        bytes,
    })
}

/// Syncs the directory of `path`, so a rename or link in it survives a
/// power cut. Best effort: not every file system can sync a directory.
fn sync_parent(path: &Path) {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
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
        let mut conn = self.lock_write()?;
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
        let mut conn = self.lock_write()?;
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
        let mut conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
        conn.execute(
            "INSERT INTO memory (incident, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (incident, key) DO UPDATE SET value = excluded.value",
            params![incident.0 as i64, key, value],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn mark_failed(&self, id: i64, error: &str, retry_at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
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

    fn token_revoke(&self, id: i64, guard: AdminGuard) -> Result<Revoke, StoreError> {
        let mut conn = self.lock_write()?;
        // IMMEDIATE: the file's write lock is held from the count to the
        // update, so another process revoking another admin token waits and
        // then counts one admin fewer. (Dropping `tx` rolls back.)
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(backend)?;
        let role: Option<String> = tx
            .query_row(
                "SELECT role FROM api_tokens WHERE id = ?1 AND revoked = 0",
                [id],
                |r| r.get(0),
            )
            .optional()
            .map_err(backend)?;
        let Some(role) = role else {
            return Ok(Revoke::NotFound);
        };
        let admin = ApiRole::Admin.as_str();
        if guard == AdminGuard::KeepOne && role == admin {
            let live: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM api_tokens WHERE role = ?1 AND revoked = 0",
                    [admin],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if live <= 1 {
                return Ok(Revoke::LastAdmin);
            }
        }
        tx.execute("UPDATE api_tokens SET revoked = 1 WHERE id = ?1", [id])
            .map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Revoke::Revoked)
    }

    fn inbox_put(
        &self,
        source: &str,
        delivery: &str,
        body: &str,
        now_s: i64,
    ) -> Result<InboxPut, StoreError> {
        let conn = self.lock_write()?;
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
        let mut conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
        conn.execute(
            "UPDATE inbox SET outcome = ?2, due_at = ?3, lease_until = NULL
             WHERE id = ?1 AND processed_at IS NULL",
            params![id, error, retry_at_s],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn inbox_defer(&self, id: i64, why: &str, due_at_s: i64) -> Result<(), StoreError> {
        let conn = self.lock_write()?;
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

    fn inbox_body(&self, id: i64) -> Result<Option<String>, StoreError> {
        let conn = self.lock()?;
        conn.query_row("SELECT body FROM inbox WHERE id = ?1", [id], |r| r.get(0))
            .optional()
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
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
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
        let conn = self.lock_write()?;
        conn.execute(
            "DELETE FROM leases WHERE name = ?1 AND holder = ?2",
            params![name, holder],
        )
        .map_err(backend)?;
        Ok(())
    }

    fn once(&self, key: &str, now_s: i64) -> Result<bool, StoreError> {
        let conn = self.lock_write()?;
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/sqlite/migrations");
        crate::codec::assert_migration_files(&dir, MIGRATIONS);
    }

    /// The URI names the same file for SQLite whatever the directory is
    /// called: URI syntax (`?`, `#`, `%`), spaces, UTF-8 and bytes that
    /// are not UTF-8 at all are escaped, `/` is not.
    #[test]
    fn the_immutable_uri_of_an_odd_path_opens_that_store() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let odd = std::ffi::OsStr::from_bytes(b"a b?c#d%25e&f=g+h \xc3\xa9 \xff");
        let p = dir.path().join(odd).join("hotfix.db");
        drop(SqliteStore::open(&p).unwrap());
        let uri = immutable_uri(&p).unwrap();
        assert!(
            uri.ends_with("/a%20b%3Fc%23d%2525e%26f%3Dg%2Bh%20%C3%A9%20%FF/hotfix.db?immutable=1"),
            "{uri}"
        );
        let conn = Connection::open_with_flags(
            &uri,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
        .unwrap();
        // The store's own schema, not an empty database made at a wrong path.
        let events: i64 = conn
            .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 0);
    }
}
