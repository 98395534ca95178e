//! `hotfix serve`: the team server, and `hotfix serve token` to manage its
//! API tokens.
//!
//! The server is a program of its own, not a git command: it runs on a host
//! without the repository, so it reads its config from a file it is given
//! (or `./hotfix.toml`) and keeps everything else in its store and data
//! directory. Token commands write straight to that store, so the first admin
//! token can be made before the server ever runs (there is nobody to ask the
//! API yet).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotfix_core::config::Config;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};
use hotfix_core::team::{AdminGuard, ApiRole, Revoke, ServerStore};
use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings};
use hotfix_store::StoreUrl;

use crate::app::{self, secret as env_value};
use crate::cli::{ServeArgs, ServeCmd, ServerStoreArgs, TokenCmd};
use crate::commands::CliError;

/// The environment variables only the server reads.
pub mod env {
    /// Where the server writes its files (default `./hotfix-data`).
    pub const DATA_DIR: &str = hotfix_core::env_vars::HOTFIX_DATA_DIR;
    /// This replica's name in leases (default: host name and pid).
    pub const REPLICA: &str = hotfix_core::env_vars::HOTFIX_REPLICA;
    /// The embedded platform's state directory on this host (the
    /// repository's `.git/hotfix/platform`): the watch measures
    /// `provider = "platform"` analyses from it.
    pub const PLATFORM_DIR: &str = hotfix_core::env_vars::HOTFIX_PLATFORM_DIR;
    /// At most this many PostgreSQL connections per replica (`--db-pool`).
    pub const DATABASE_POOL_SIZE: &str = hotfix_core::env_vars::HOTFIX_DATABASE_POOL_SIZE;
}

/// The default listen address when neither `--listen` nor `[server] listen`
/// says: not 8080, the embedded platform's default production port (and a
/// typical app's), so the team server and production never fight over it.
const DEFAULT_LISTEN: &str = "127.0.0.1:8788";

/// How long in-flight requests get to finish on SIGINT/SIGTERM.
const GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets up the server's log (`HOTFIX_LOG`, `HOTFIX_LOG_FORMAT`) before
/// anything is said: a format or filter it cannot use stops the start-up
/// with a usage error naming the variable.
fn start_log() -> Result<hotfix_server::log::Format, CliError> {
    let settings =
        hotfix_server::log::Settings::from_env().map_err(|e| CliError::usage(e.to_string()))?;
    let format = settings.format;
    hotfix_server::log::init(settings).map_err(|e| CliError::failed(e.to_string()))?;
    Ok(format)
}

pub fn run(dir: Option<&Path>, a: ServeArgs) -> Result<u8, CliError> {
    let base = base_dir(dir)?;
    match a.action {
        None => {
            let format = start_log()?;
            let r = serve(&base, a.listen, a.config, &a.store);
            // The error is printed by `main` as for every command; a log
            // shipper reading JSON lines gets it as one of them too.
            if let (Err(e), hotfix_server::log::Format::Json) = (&r, format) {
                tracing::error!(error = %e.message, "hotfix serve stopped");
            }
            r
        }
        Some(ServeCmd::Token { action }) => token(&base, action, &a.store),
    }
}

/// The platform's state directory from `HOTFIX_PLATFORM_DIR`, checked:
/// a directory that is not a platform's is a usage error at start-up,
/// not an analysis without data for the whole watch. Unset with
/// `platform` analyses configured: a warning (they will have no data).
fn platform_dir(base: &Path, cfg: &Config) -> Result<Option<PathBuf>, CliError> {
    let uses_platform = cfg
        .analysis
        .iter()
        .any(|a| matches!(a.source, hotfix_core::analysis::Source::Platform { .. }));
    let Some(dir) = env_value(env::PLATFORM_DIR) else {
        if uses_platform {
            tracing::warn!(
                "{} is not set: the watch has no data for `provider = \"platform\"` analyses (set it to the platform's state directory, the repository's .git/hotfix/platform, on the platform's host)",
                env::PLATFORM_DIR
            );
        }
        return Ok(None);
    };
    let dir = base.join(dir);
    if !dir.join("control.json").is_file() {
        return Err(CliError::usage(format!(
            "{}={} is not an embedded platform's state directory (no control.json there): point it at the repository's .git/hotfix/platform",
            env::PLATFORM_DIR,
            dir.display()
        )));
    }
    tracing::info!("platform analyses measured from {}", dir.display());
    Ok(Some(dir))
}

/// Relative paths are relative to `-C DIR`, else the current directory.
fn base_dir(dir: Option<&Path>) -> Result<PathBuf, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|e| CliError::usage(format!("no current directory: {e}")))?;
    Ok(match dir {
        Some(d) => cwd.join(d),
        None => cwd,
    })
}

/// The config: `--config`, else `$HOTFIX_CONFIG`, else `./hotfix.toml`.
/// A file named explicitly must exist; the default one may be missing (the
/// defaults then apply, with a warning), and one that does not parse is a
/// usage error either way.
fn load_config(base: &Path, flag: Option<PathBuf>) -> Result<(Config, String), CliError> {
    let (path, explicit) = match flag {
        Some(p) => (base.join(p), true),
        None => match env_value(app::env::CONFIG) {
            Some(p) => (base.join(p), true),
            None => (base.join("hotfix.toml"), false),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => Config::parse(&text)
            .map(|c| (c, path.display().to_string()))
            .map_err(|e| CliError::usage(format!("{e} ({})", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
            tracing::warn!(
                "no {}: running with the default configuration (no [team], so nobody can approve; pass --config FILE)",
                path.display()
            );
            Ok((Config::default(), "defaults".into()))
        }
        Err(e) => Err(CliError::usage(format!(
            "cannot read the config {}: {e}",
            path.display()
        ))),
    }
}

/// `--data-dir`, else `$HOTFIX_DATA_DIR`, else `./hotfix-data` (created by
/// `serve`, and by the SQLite store when it is the default one).
fn data_dir(base: &Path, s: &ServerStoreArgs) -> PathBuf {
    match (&s.data_dir, env_value(env::DATA_DIR)) {
        (Some(d), _) => base.join(d),
        (None, Some(d)) => base.join(d),
        (None, None) => base.join("hotfix-data"),
    }
}

/// The PostgreSQL pool size: `--db-pool`, `$HOTFIX_DATABASE_POOL_SIZE`, or
/// the default (8). Read whatever the store: a bad value is said at once,
/// not when the store moves to PostgreSQL.
fn db_pool(s: &ServerStoreArgs) -> Result<u32, CliError> {
    let (n, from) = match (s.db_pool, env_value(env::DATABASE_POOL_SIZE)) {
        (Some(n), _) => (n, "--db-pool"),
        (None, Some(v)) => match v.trim().parse::<u32>() {
            Ok(n) => (n, env::DATABASE_POOL_SIZE),
            Err(_) => {
                return Err(CliError::usage(format!(
                    "{}={v} is not a number of connections: give 1 or more (default {})",
                    env::DATABASE_POOL_SIZE,
                    hotfix_store::DEFAULT_POOL_SIZE
                )));
            }
        },
        (None, None) => return Ok(hotfix_store::DEFAULT_POOL_SIZE),
    };
    if n == 0 {
        return Err(CliError::usage(format!(
            "{from} 0: the PostgreSQL pool needs at least 1 connection (1 = a single connection)"
        )));
    }
    Ok(n)
}

/// Opens the server's store: `--database-url`, `$HOTFIX_DATABASE_URL`, or a
/// SQLite file in the data directory. Returns it with its printable name.
fn open_store(
    base: &Path,
    s: &ServerStoreArgs,
    data: &Path,
) -> Result<(Arc<dyn ServerStore>, String), CliError> {
    let url = match s
        .database_url
        .clone()
        .or_else(|| env_value(app::env::DATABASE_URL))
    {
        Some(u) => match StoreUrl::parse(&u).map_err(|e| CliError::usage(e.to_string()))? {
            StoreUrl::Sqlite(p) => StoreUrl::Sqlite(base.join(p)),
            pg => pg,
        },
        None => StoreUrl::Sqlite(data.join("hotfix-server.db")),
    };
    let shown = match &url {
        StoreUrl::Sqlite(p) => format!("sqlite:{}", p.display()),
        StoreUrl::Postgres(u) => hotfix_store::redact_url(u),
    };
    let pg = hotfix_store::PgOptions {
        pool_size: db_pool(s)?,
        schema: None,
    };
    let store = crate::store::open_server(&url, &pg).map_err(|e| {
        CliError::failed(format!(
            "cannot open the store {shown}: {}",
            hotfix_providers::redact::redact(&e.to_string())
        ))
    })?;
    let shown = match &url {
        StoreUrl::Postgres(_) => format!("{shown} (pool of {} connections)", pg.pool_size),
        StoreUrl::Sqlite(_) => shown,
    };
    Ok((store, shown))
}

/// A notifier configured in `hotfix.toml` whose secrets this server lacks.
/// Its messages are still written to the outbox, and each delivery attempt
/// fails with the reason: they stay pending, visible in `status` and
/// `/api/v1/outbox`, and go out once the server runs with the secret.
struct Unconfigured {
    name: &'static str,
    why: String,
}

impl Notifier for Unconfigured {
    fn name(&self) -> &str {
        self.name
    }
    fn send(&self, _id: i64, _msg: &Message, _memory: &dyn Memory) -> Result<(), NotifyError> {
        Err(NotifyError {
            notifier: self.name.to_string(),
            message: format!("not configured on this server: {}", self.why),
        })
    }
}

/// Console and file notifiers from `[notify]`, plus Slack, the webhook and
/// Statuspage each on its own: one missing secret must not silence the others.
fn notifiers(cfg: &Config, data: &Path) -> Vec<Box<dyn Notifier>> {
    let mut out = app::local_notifiers(cfg, data);
    for (name, built) in hotfix_providers::notify::each_from_config(cfg, &env_value) {
        match built {
            Ok(n) => out.push(n),
            Err(e) => {
                let why = hotfix_providers::redact::redact(&e);
                tracing::warn!(
                    "{why}: its notifications stay pending until the server runs with it"
                );
                out.push(Box::new(Unconfigured { name, why }));
            }
        }
    }
    out
}

/// This replica's name in leases: `$HOTFIX_REPLICA`, else host and pid.
fn replica() -> String {
    if let Some(r) = env_value(env::REPLICA) {
        return r.trim().to_string();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| env_value(hotfix_core::env_vars::HOSTNAME))
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

fn serve(
    base: &Path,
    listen: Option<String>,
    config: Option<PathBuf>,
    s: &ServerStoreArgs,
) -> Result<u8, CliError> {
    let (cfg, cfg_name) = load_config(base, config)?;
    let data = data_dir(base, s);
    hotfix_fs::create_private_dir(&data)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", data.display())))?;
    let (store, store_name) = open_store(base, s, &data)?;
    let listen = listen.filter(|l| !l.trim().is_empty()).unwrap_or_else(|| {
        if cfg.server.listen.trim().is_empty() {
            DEFAULT_LISTEN.to_string()
        } else {
            cfg.server.listen.clone()
        }
    });
    let secrets = Secrets::from_env();
    if secrets.github_webhook.is_none() {
        tracing::warn!(
            "{} is not set: GitHub webhook deliveries are refused",
            Secrets::GITHUB_WEBHOOK_ENV
        );
    }
    if secrets.slack_signing.is_none() {
        tracing::warn!(
            "{} is not set: the /hotfix Slack command is refused",
            Secrets::SLACK_SIGNING_ENV
        );
    }
    let notifiers = notifiers(&cfg, &data);
    let names: Vec<&str> = notifiers.iter().map(|n| n.name()).collect();
    let replica = replica();
    tracing::info!(
        "config {cfg_name}; store {store_name}; data {}; replica {replica}; notifiers: {}",
        data.display(),
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    );
    match store.token_list() {
        Ok(t) if t.iter().all(|t| t.revoked) => tracing::info!(
            "no API tokens yet: create one with `hotfix serve token create --user YOU --role admin`"
        ),
        _ => {}
    }
    let platform_dir = platform_dir(base, &cfg)?;
    let limits = hotfix_server::wire::Limits::from_config(&cfg.server);
    let st = AppState::new(ServerParts {
        store,
        cfg,
        secrets,
        notifiers,
        clock: app::clock()?,
        data_dir: data,
        replica,
        workers: WorkerSettings {
            platform_dir,
            ..WorkerSettings::default()
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let mut running = hotfix_server::start(st, &listen).await.map_err(|e| {
            let m = format!("cannot listen on {listen}: {e}");
            if e.kind() == std::io::ErrorKind::InvalidInput {
                CliError::usage(m)
            } else {
                CliError::failed(m)
            }
        })?;
        // Last on its line (no fields after it): scripts and tests read the
        // address from the end of `listening on `.
        tracing::info!("listening on http://{}", running.addr);
        tracing::info!(
            "connections: at most {} at once (more wait to be accepted); a request's head within {} s; idle kept-alive connections closed after {} s ([server] max_connections, header_read_timeout_s, idle_timeout_s)",
            limits.max_connections,
            limits.header_read_timeout.as_secs(),
            limits.idle_timeout.as_secs()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| CliError::failed(format!("cannot watch SIGTERM: {e}")))?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            r = &mut running.done => {
                return Err(CliError::failed(match r {
                    Ok(Ok(())) => "the server stopped by itself".to_string(),
                    Ok(Err(e)) => format!("the server failed: {e}"),
                    Err(e) => format!("the server task failed: {e}"),
                }));
            }
        }
        let _ = running.shutdown.send(true);
        match tokio::time::timeout(GRACE, running.done).await {
            Ok(_) => {
                tracing::info!("stopped");
                Ok(0)
            }
            Err(_) => {
                tracing::warn!(
                    "requests still running after {}s; stopping anyway",
                    GRACE.as_secs()
                );
                Ok(1)
            }
        }
    })
}

fn token(base: &Path, action: TokenCmd, s: &ServerStoreArgs) -> Result<u8, CliError> {
    let open = || -> Result<Arc<dyn ServerStore>, CliError> {
        Ok(open_store(base, s, &data_dir(base, s))?.0)
    };
    match action {
        TokenCmd::Create { user, role } => {
            let role = ApiRole::parse(&role).ok_or_else(|| {
                CliError::usage(format!(
                    "unknown role `{role}`: use developer, tech_lead or admin (or intake: a monitoring tool's token that may only post alerts)"
                ))
            })?;
            let store = open()?;
            let now = jiff::Timestamp::now().as_second();
            let (token, id) = hotfix_server::auth::create_token(store.as_ref(), &user, role, now)
                .map_err(|e| {
                if e.status.is_client_error() {
                    CliError::usage(e.message)
                } else {
                    CliError::failed(e.message)
                }
            })?;
            eprintln!(
                "created token {id} for {} ({}); it is shown once, below: keep it as a secret (HOTFIX_TOKEN)",
                user.trim(),
                role.as_str()
            );
            println!("{token}");
            Ok(0)
        }
        TokenCmd::List { json } => {
            let store = open()?;
            let tokens = store
                .token_list()
                .map_err(|e| CliError::failed(e.to_string()))?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&tokens).unwrap_or_default()
                );
                return Ok(0);
            }
            if tokens.is_empty() {
                println!(
                    "no tokens: `hotfix serve token create --user YOU --role admin` makes the first"
                );
                return Ok(0);
            }
            println!(
                "{:>4}  {:<32}  {:<10}  {:<23}  revoked",
                "id", "user", "role", "created"
            );
            for t in tokens {
                let created = jiff::Timestamp::from_second(t.created_at)
                    .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                    .unwrap_or_else(|_| t.created_at.to_string());
                println!(
                    "{:>4}  {:<32}  {:<10}  {:<23}  {}",
                    t.id,
                    hotfix_core::display::line(&t.user),
                    t.role.as_str(),
                    created,
                    if t.revoked { "yes" } else { "no" }
                );
            }
            Ok(0)
        }
        TokenCmd::Revoke { id } => {
            let store = open()?;
            // The API refuses the last admin token (nobody could manage
            // tokens); here, on the server's machine, it is allowed: this
            // command can always create a new one, and revoking a leaked
            // admin token must not wait for that.
            match store
                .token_revoke(id, AdminGuard::AllowNone)
                .map_err(|e| CliError::failed(e.to_string()))?
            {
                Revoke::Revoked => {
                    println!("revoked token {id}");
                    let admins_left = store
                        .token_list()
                        .map(|t| t.iter().any(|t| t.role == ApiRole::Admin && !t.revoked))
                        .unwrap_or(true);
                    if !admins_left {
                        // A command's own message (no log is set up for it).
                        eprintln!(
                            "hotfix serve token: warning: no live admin token is left: nobody can manage tokens over the API until `hotfix serve token create --user YOU --role admin` makes one",
                        );
                    }
                    Ok(0)
                }
                Revoke::NotFound => Err(CliError::failed(format!(
                    "no live token {id} (`hotfix serve token list` shows them)"
                ))),
                // Not asked for (AllowNone), so never expected; said as it is.
                Revoke::LastAdmin => Err(CliError::failed(format!(
                    "token {id} is the last admin token and the store kept it"
                ))),
            }
        }
    }
}
