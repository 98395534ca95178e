//! Opening the incident store for a command (`--reinit`, a read-only
//! store); `hotfix backup` is `commands::backup`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotfix_core::provider::Store;
use hotfix_core::team::ServerStore;
use hotfix_store::{IfUnusable, MovedAside, SqliteStore, StoreUrl};

use crate::commands::CliError;

/// `--reinit`, set once from the command line before any store is opened.
/// A process-wide flag rather than a parameter: every command (and `serve`)
/// reaches the store through its own wiring, and the flag means the same to
/// all of them.
static REINIT: AtomicBool = AtomicBool::new(false);

pub fn set_reinit(on: bool) {
    REINIT.store(on, Ordering::Relaxed);
}

fn if_unusable() -> IfUnusable {
    if REINIT.load(Ordering::Relaxed) {
        IfUnusable::MoveAside
    } else {
        IfUnusable::Refuse
    }
}

/// Says on stderr what `--reinit` did, so nobody wonders where the old
/// file went (it is kept: a restore may still want it).
fn report(url: &StoreUrl, moved: Option<&MovedAside>) {
    if !REINIT.load(Ordering::Relaxed) {
        return;
    }
    match (url, moved) {
        (_, Some(m)) => {
            for (from, to) in &m.files {
                eprintln!(
                    "  --reinit: {} {}: moved it to {} (kept; delete it yourself once you are sure)",
                    from.display(),
                    m.problem,
                    to.display()
                );
            }
            if let StoreUrl::Sqlite(p) = url {
                eprintln!(
                    "  --reinit: started a new, empty incident log at {}",
                    p.display()
                );
            }
        }
        (StoreUrl::Sqlite(p), None) => eprintln!(
            "  --reinit: {} is a healthy incident store; left as it is",
            p.display()
        ),
        (StoreUrl::Postgres(_), None) => {
            eprintln!("  --reinit: does nothing for a PostgreSQL store (it is set up when empty)")
        }
    }
}

/// The engine's store: refuses a broken SQLite file unless `--reinit`, and
/// says so when a read command runs on a read-only one.
pub fn open_local(url: &StoreUrl, writes: bool) -> Result<Box<dyn Store>, CliError> {
    let failed = |e: hotfix_core::provider::StoreError| CliError::failed(e.to_string());
    match url {
        StoreUrl::Sqlite(p) => {
            let (store, moved) = SqliteStore::open_with(p, if_unusable()).map_err(failed)?;
            report(url, moved.as_ref());
            if let Some(why) = store.read_only().filter(|_| !writes) {
                eprintln!(
                    "  note: the incident store {} is read-only: {why}",
                    p.display()
                );
            }
            Ok(Box::new(store))
        }
        StoreUrl::Postgres(_) => {
            let (store, moved) = hotfix_store::open_with(url, if_unusable()).map_err(failed)?;
            report(url, moved.as_ref());
            Ok(store)
        }
    }
}

/// The team server's store (`hotfix serve`, `serve token`), with the same
/// protection as the CLI's. A read-only SQLite store is refused here: the
/// server writes on every request and in its workers, and one that cannot
/// would answer 503 to everything instead of saying why once.
pub fn open_server(
    url: &StoreUrl,
    pg: &hotfix_store::PgOptions,
) -> Result<Arc<dyn ServerStore>, hotfix_core::provider::StoreError> {
    if let StoreUrl::Sqlite(p) = url {
        let (store, moved) = SqliteStore::open_with(p, if_unusable())?;
        report(url, moved.as_ref());
        if let Some(why) = store.read_only() {
            return Err(hotfix_core::provider::StoreError::ReadOnly {
                path: p.clone(),
                reason: format!("{why}; the team server needs a store it can write"),
            });
        }
        return Ok(Arc::new(store));
    }
    let (store, moved) = hotfix_store::open_server_with(url, if_unusable(), pg)?;
    report(url, moved.as_ref());
    Ok(store)
}
