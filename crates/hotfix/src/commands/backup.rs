//! `hotfix backup PATH`: a consistent copy of the incident log.

use std::path::PathBuf;

use hotfix_store::StoreUrl;

use crate::app;
use crate::commands::Ctx;
use crate::exit::CliError;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The copy to write: a new file (never overwritten), created 0600.
    pub path: std::path::PathBuf,
    /// The store to copy, `sqlite:PATH` (default: $HOTFIX_DATABASE_URL, else
    /// this repository's .git/hotfix/hotfix.db; a team server's is
    /// sqlite:<data-dir>/hotfix-server.db). PostgreSQL: use pg_dump.
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// `hotfix backup PATH`: a consistent copy of the SQLite store, safe while
/// other commands or the server write.
pub fn run(cx: &Ctx, a: Args) -> Result<u8, CliError> {
    let dir = cx.dir;
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("no current directory: {e}")))?;
    let base = match dir {
        Some(d) => cwd.join(d),
        None => cwd,
    };
    let url = match a
        .database_url
        .or_else(|| app::secret(app::env::DATABASE_URL))
    {
        Some(u) => StoreUrl::parse(&u).map_err(|e| CliError::usage(e.to_string()))?,
        None => {
            let git = app::open_git(dir)?;
            let cfg = app::load_config(&git, false)?;
            if let Some(server) = app::remote_server(&cfg) {
                return Err(CliError::usage(format!(
                    "the incident log is on the team server {server}: back it up on the server's host (`hotfix backup --database-url sqlite:<data-dir>/hotfix-server.db FILE`, or pg_dump for PostgreSQL)"
                )));
            }
            let common = git
                .common_dir()
                .map_err(|e| CliError::usage(e.to_string()))?;
            StoreUrl::Sqlite(common.join("hotfix").join("hotfix.db"))
        }
    };
    if let StoreUrl::Postgres(_) = url {
        return Err(CliError::usage(hotfix_store::PG_BACKUP_HINT));
    }
    let dest: PathBuf = base.join(&a.path);
    let sum = hotfix_store::backup(&url, &dest).map_err(|e| CliError::failed(e.to_string()))?;
    println!(
        "backed up {} ({}) to {}",
        hotfix_core::plural::count(sum.incidents, "incident"),
        hotfix_core::plural::count(sum.events, "event"),
        sum.path.display()
    );
    Ok(0)
}
