//! Implementations of [`hotfix_core::provider::Store`].
//!
//! The embedded default is [`SqliteStore`]: one file under `.git/hotfix/`, WAL
//! mode, every append a single `BEGIN IMMEDIATE` transaction that checks the
//! incident's version first (compare-and-set), so a crash can never leave half
//! an event and two commands racing on one incident cannot both win.

mod codec;
#[doc(hidden)]
pub mod conformance;
mod pg;
mod sqlite;

pub use pg::PgStore;

pub use sqlite::SqliteStore;

use std::path::PathBuf;

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
    match url {
        StoreUrl::Sqlite(p) => Ok(Box::new(SqliteStore::open(p)?)),
        StoreUrl::Postgres(u) => Ok(Box::new(PgStore::open(u)?)),
    }
}

/// Opens the store a URL names with the team tables (`hotfix serve`).
pub fn open_server(
    url: &StoreUrl,
) -> Result<std::sync::Arc<dyn hotfix_core::team::ServerStore>, StoreError> {
    match url {
        StoreUrl::Sqlite(p) => Ok(std::sync::Arc::new(SqliteStore::open(p)?)),
        StoreUrl::Postgres(u) => Ok(std::sync::Arc::new(PgStore::open(u)?)),
    }
}

/// Hides the password of a URL (`postgres://user:secret@host` → `postgres://user:***@host`).
pub fn redact_url(u: &str) -> String {
    let Some(scheme_end) = u.find("://") else {
        return u.to_string();
    };
    let rest = &u[scheme_end + 3..];
    let Some(at) = rest.find('@') else {
        return u.to_string();
    };
    let creds = &rest[..at];
    match creds.find(':') {
        Some(c) => format!("{}{}:***{}", &u[..scheme_end + 3], &creds[..c], &rest[at..]),
        None => u.to_string(),
    }
}

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
