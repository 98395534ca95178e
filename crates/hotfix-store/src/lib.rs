//! Implementations of [`hotfix_core::provider::Store`].
//!
//! The embedded default is [`SqliteStore`]: one file under `.git/hotfix/`, WAL
//! mode, every append a single `BEGIN IMMEDIATE` transaction that checks the
//! incident's version first (compare-and-set), so a crash can never leave half
//! an event and two commands racing on one incident cannot both win.

mod codec;
#[doc(hidden)]
mod pg;
mod sqlite;

pub use pg::{DEFAULT_POOL_SIZE, PgOptions, PgStore, connect as pg_connect};

pub use sqlite::{BackupSummary, IfUnusable, MovedAside, SqliteStore};

use std::path::{Path, PathBuf};

use hotfix_core::provider::{Store, StoreError};

/// Where the store lives, from `HOTFIX_DATABASE_URL` or the default path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreUrl {
    /// Accepts `sqlite:PATH`, `sqlite://PATH`, `postgres://…`, or a plain path.
    pub fn parse(url: &str) -> Result<StoreUrl, StoreError> {
        let u = url.trim();
        if u.starts_with("postgres://") || u.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(u.to_string()));
        }
        if let Some(rest) = u
            .strip_prefix("sqlite://")
            .or_else(|| u.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or(rest);
            if path.is_empty() {
                return Err(StoreError::Backend(format!("`{u}` names no file")));
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if u.contains("://") {
            return Err(StoreError::Backend(format!(
                "unsupported database URL scheme in `{}`: use sqlite:PATH or postgres://…",
                redact_url(u)
            )));
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(u)))
    }
}

/// Opens the store a URL names.
pub fn open(url: &StoreUrl) -> Result<Box<dyn Store>, StoreError> {
    open_with(url, IfUnusable::Refuse).map(|(s, _)| s)
}

/// [`open`], with what to do about an SQLite file that holds no incident
/// log (`--reinit`); says what was moved aside. A PostgreSQL database
/// without hotfix's tables is a first start, not a lost log: it is set up.
pub fn open_with(
    url: &StoreUrl,
    if_unusable: IfUnusable,
) -> Result<(Box<dyn Store>, Option<MovedAside>), StoreError> {
    match url {
        StoreUrl::Sqlite(p) => {
            let (s, moved) = SqliteStore::open_with(p, if_unusable)?;
            Ok((Box::new(s), moved))
        }
        StoreUrl::Postgres(u) => Ok((Box::new(PgStore::open(u)?), None)),
    }
}

/// Opens the store a URL names with the team tables (`hotfix serve`).
pub fn open_server(
    url: &StoreUrl,
) -> Result<std::sync::Arc<dyn hotfix_core::team::ServerStore>, StoreError> {
    open_server_with(url, IfUnusable::Refuse, &PgOptions::default()).map(|(s, _)| s)
}

/// [`open_server`] with [`open_with`]'s choice for an unusable file, and
/// the PostgreSQL pool's settings (ignored for SQLite).
pub fn open_server_with(
    url: &StoreUrl,
    if_unusable: IfUnusable,
    pg: &PgOptions,
) -> Result<
    (
        std::sync::Arc<dyn hotfix_core::team::ServerStore>,
        Option<MovedAside>,
    ),
    StoreError,
> {
    match url {
        StoreUrl::Sqlite(p) => {
            let (s, moved) = SqliteStore::open_with(p, if_unusable)?;
            Ok((std::sync::Arc::new(s), moved))
        }
        StoreUrl::Postgres(u) => Ok((std::sync::Arc::new(PgStore::open_with(u, pg)?), None)),
    }
}

/// How to back up a PostgreSQL store, which `hotfix backup` does not copy:
/// the database's own tools do it consistently and restore it.
pub const PG_BACKUP_HINT: &str = "a PostgreSQL store is backed up with PostgreSQL's own tools: `pg_dump --format=custom --file=hotfix.dump \"$HOTFIX_DATABASE_URL\"`, restored with `pg_restore --clean --if-exists --dbname=\"$HOTFIX_DATABASE_URL\" hotfix.dump` (README: \"Backing up and restoring the incident log\")";

/// Writes a consistent copy of the SQLite store `url` names to `dest` (a
/// new 0600 file; never overwrites one), safe while other processes write.
/// A broken store is refused as [`open`] refuses it; a read-only one is
/// copied. PostgreSQL: an error with [`PG_BACKUP_HINT`].
pub fn backup(url: &StoreUrl, dest: &Path) -> Result<BackupSummary, StoreError> {
    match url {
        // Opening a missing store would create an empty one to copy.
        StoreUrl::Sqlite(p) if std::fs::symlink_metadata(p).is_err() => {
            Err(StoreError::Backend(format!(
                "there is no incident store at {}: nothing to back up",
                p.display()
            )))
        }
        StoreUrl::Sqlite(p) => SqliteStore::open(p)?.backup_to(dest),
        StoreUrl::Postgres(_) => Err(StoreError::Backend(PG_BACKUP_HINT.to_string())),
    }
}

/// Hides the password of a URL (in the pure core: the remote client uses it too).
pub use hotfix_core::display::redact_url;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_hides_passwords() {
        assert_eq!(
            StoreUrl::parse("sqlite:///tmp/x.db").ok(),
            Some(StoreUrl::Sqlite("/tmp/x.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("sqlite:rel.db").ok(),
            Some(StoreUrl::Sqlite("rel.db".into()))
        );
        assert_eq!(
            StoreUrl::parse("/a/b.db").ok(),
            Some(StoreUrl::Sqlite("/a/b.db".into()))
        );
        assert!(StoreUrl::parse("mysql://x").is_err());
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }
}
