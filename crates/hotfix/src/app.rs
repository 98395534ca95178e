//! Wiring: config, environment and providers into an [`Engine`]. Every
//! environment variable hotfix reads is listed here (and in the README).

use std::path::{Path, PathBuf};

use hotfix_client::RemoteStore;
use hotfix_core::config::{Config, ConfigSource};
use hotfix_core::provider::{Deployer, Forge, Notifier, Store};
use hotfix_engine::{Clock, Engine, Ui};
use hotfix_git::Git;
use hotfix_providers::deploy::CommandDeployer;
use hotfix_providers::deploy::local::LocalDeployer;
use hotfix_providers::forge::LocalForge;
use hotfix_providers::notify::{ConsoleNotifier, FileNotifier};
use hotfix_store::StoreUrl;

use crate::commands::CliError;
use crate::progress::Console;

/// The environment variables hotfix reads.
pub mod env {
    /// Who is acting, when `--as` is not given.
    pub const USER: &str = hotfix_core::env_vars::HOTFIX_USER;
    /// Where the incident log lives (`sqlite:PATH`; default `.git/hotfix/hotfix.db`).
    pub const DATABASE_URL: &str = hotfix_core::env_vars::HOTFIX_DATABASE_URL;
    /// Fixes the clock (RFC 3339), for tests and reproducible demos.
    pub const NOW: &str = hotfix_core::env_vars::HOTFIX_NOW;
    /// Comma-separated failpoints at which to exit abruptly (crash-safety tests).
    pub const FAILPOINTS: &str = hotfix_core::env_vars::HOTFIX_FAILPOINTS;
    /// Another config file than `<repo>/hotfix.toml`.
    pub const CONFIG: &str = hotfix_core::env_vars::HOTFIX_CONFIG;
    /// Remote mode: the team server holding the incident log (overrides
    /// `[server] url`; `off` keeps the log local).
    pub const SERVER: &str = hotfix_client::SERVER_ENV;
    /// Remote mode: the API token (`hotfix serve token create`).
    pub const TOKEN: &str = hotfix_client::TOKEN_ENV;
}

pub fn open_git(dir: Option<&Path>) -> Result<Git, CliError> {
    let cwd = match dir {
        Some(d) => d.to_path_buf(),
        None => std::env::current_dir()
            .map_err(|e| CliError::usage(format!("no current directory: {e}")))?,
    };
    let git = Git::open(&cwd).map_err(|e| CliError::usage(e.to_string()))?;
    Ok(out_of_hotfix_worktree(git))
}

/// A command run from inside one of hotfix's own worktrees (the conflicted
/// backport's, which the conflict hint sends the person into) works from
/// the repository's main work tree instead.
///
/// Why: hotfix removes that worktree when the backport is done or
/// aborted; every git command run there afterwards would start in a
/// directory that no longer exists ("could not run git: No such file or
/// directory"), and that worktree's `hotfix.toml` is develop's, not the
/// one the person works with.
fn out_of_hotfix_worktree(git: Git) -> Git {
    let Ok(common) = git.common_dir() else {
        return git;
    };
    let ours = real(&common.join("hotfix").join("worktrees"));
    if !real(git.root()).starts_with(&ours) {
        return git;
    }
    match git.main_worktree() {
        Ok(Some(main)) => Git::open(&main).unwrap_or(git),
        _ => git,
    }
}

/// The path with symlinks resolved, or as given when it cannot be.
fn real(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

pub fn config_path(git: &Git) -> PathBuf {
    named_config().unwrap_or_else(|| git.root().join("hotfix.toml"))
}

/// The config file `$HOTFIX_CONFIG` names, if it names one (empty = unset).
fn named_config() -> Option<PathBuf> {
    std::env::var_os(env::CONFIG)
        .filter(|v| !v.to_string_lossy().trim().is_empty())
        .map(PathBuf::from)
}

/// Refuses a `$HOTFIX_CONFIG` that names a file that is not there.
///
/// Why every command, readers too: someone who points `HOTFIX_CONFIG` at a
/// file means that team's policy; a `status` that quietly ran on the
/// built-in defaults (no team, another deploy target) would answer about
/// the wrong setup while looking right. Only the default `./hotfix.toml`
/// may be missing (read commands then run on the defaults).
pub fn refuse_missing_named_config() -> Result<(), CliError> {
    match named_config() {
        Some(p) if !p.exists() => Err(CliError::usage(format!(
            "{}={} names a config file that does not exist: fix the path, unset {} to use <repo>/hotfix.toml, or create it with `hotfix init`",
            env::CONFIG,
            p.display(),
            env::CONFIG
        ))),
        _ => Ok(()),
    }
}

/// The config's name in a repository.
const CONFIG_FILE: &str = "hotfix.toml";

/// Where the team's committed config is looked for when the checked-out
/// commit has none: the remote's main as last fetched, the remote's default
/// branch, then the local main (committed, maybe not pushed yet). The
/// built-in branch names: the config that would rename them is what is
/// being looked for.
const TEAM_REVISIONS: [(&str, &str); 3] = [
    ("refs/remotes/origin/main", "origin/main"),
    ("refs/remotes/origin/HEAD", "origin/HEAD"),
    ("refs/heads/main", "main"),
];

/// Loads hotfix.toml; `required` makes its absence an error (a file named
/// by `$HOTFIX_CONFIG` is always required).
///
/// Where it comes from: `$HOTFIX_CONFIG`, else `<repo>/hotfix.toml`, else,
/// when the checked-out commit has no `hotfix.toml` at all (a branch cut
/// before the team committed it), the team's committed one, said on
/// stderr: `origin/main`'s as last fetched, else the local `main`'s.
/// Why not the built-in defaults: they name no team and another deploy
/// target, so a `status` or a `push` on such a branch would answer about
/// the wrong setup while looking right, and `hotfix init` there would put
/// a second, default config on the branch.
pub fn load_config(git: &Git, required: bool) -> Result<Config, CliError> {
    if let Some(path) = named_config() {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", path.display())))?;
        return parse_config(
            &text,
            &path.display().to_string(),
            ConfigSource::Named(path.display().to_string()),
        );
    }
    let path = config_path(git);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return parse_config(&text, &path.display().to_string(), ConfigSource::WorkTree);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CliError::usage(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    }
    let git_err = |e: hotfix_git::GitError| CliError::usage(e.to_string());
    // Deleted in the work tree but committed: the person removed it.
    if let Some(text) = git.show_file("HEAD", CONFIG_FILE).map_err(git_err)? {
        if required {
            return Err(CliError::usage(format!(
                "no hotfix.toml at {}: it is deleted in this work tree but committed; restore it (`git checkout -- hotfix.toml`) or run `hotfix init` for a new one",
                path.display()
            )));
        }
        Console.warn(
            "hotfix.toml is deleted in this work tree: reading the committed one (`git show HEAD:hotfix.toml`); `git checkout -- hotfix.toml` restores it",
        );
        return parse_config(
            &text,
            "HEAD:hotfix.toml",
            ConfigSource::Revision("HEAD".into()),
        );
    }
    if let Some((rev, shown, text)) = team_config(git)? {
        let here = git
            .current_branch()
            .ok()
            .flatten()
            .map(|b| format!("{b} has"))
            .unwrap_or_else(|| "this commit has".into());
        let unpushed = if shown == "main" {
            " (it is not on origin/main yet: `git push origin main`)"
        } else {
            ""
        };
        Console.warn(&format!(
            "{here} no hotfix.toml: using the team's, committed on {shown}{unpushed} (`git show {shown}:hotfix.toml`)"
        ));
        return parse_config(
            &text,
            &format!("{shown}:hotfix.toml"),
            ConfigSource::Revision(rev.to_string()),
        );
    }
    if required {
        return Err(CliError::usage(format!(
            "no hotfix.toml at {}, nor on origin/main: run `hotfix init` first, then commit it and push it to main (`git push origin main`)",
            path.display()
        )));
    }
    Ok(Config::default())
}

/// The team's committed config when the checked-out commit has none:
/// `(revision, its short name, text)`.
fn team_config(git: &Git) -> Result<Option<(&'static str, &'static str, String)>, CliError> {
    for (rev, shown) in TEAM_REVISIONS {
        if let Some(text) = git
            .show_file(rev, CONFIG_FILE)
            .map_err(|e| CliError::usage(e.to_string()))?
        {
            return Ok(Some((rev, shown, text)));
        }
    }
    Ok(None)
}

fn parse_config(text: &str, from: &str, source: ConfigSource) -> Result<Config, CliError> {
    let mut cfg = Config::parse(text).map_err(|e| CliError::usage(format!("{e} ({from})")))?;
    cfg.source = source;
    Ok(cfg)
}

/// Refuses `hotfix init` on a branch that has no hotfix.toml while the
/// team's is committed on main: it would write a second, default config
/// into this branch (and, pushed, into the hotfix), when every command
/// reads the team's already.
pub fn refuse_init_over_team_config(git: &Git) -> Result<(), CliError> {
    if named_config().is_some() || config_path(git).exists() {
        return Ok(());
    }
    if git
        .show_file("HEAD", CONFIG_FILE)
        .map_err(|e| CliError::usage(e.to_string()))?
        .is_some()
    {
        return Ok(());
    }
    match team_config(git)? {
        Some((_, shown, _)) => Err(CliError::failed(format!(
            "the team's hotfix.toml is committed on {shown}, and hotfix reads it on this branch already (`git show {shown}:hotfix.toml`): change it on main rather than writing a default one here; `hotfix init --force` writes one here anyway"
        ))),
        None => Ok(()),
    }
}

pub fn actor(git: &Git, as_: Option<&str>) -> Result<String, CliError> {
    if let Some(a) = as_.filter(|a| !a.trim().is_empty()) {
        return Ok(a.trim().to_string());
    }
    if let Ok(u) = std::env::var(env::USER)
        && !u.trim().is_empty()
    {
        return Ok(u.trim().to_string());
    }
    git.user_email()
        .map_err(|e| CliError::usage(e.to_string()))?
        .ok_or_else(|| {
            CliError::usage(
                "who are you? pass --as PERSON, set HOTFIX_USER, or `git config user.email`",
            )
        })
}

pub fn clock() -> Result<Clock, CliError> {
    match std::env::var(env::NOW) {
        Ok(v) if !v.is_empty() => v
            .parse()
            .map(Clock::Fixed)
            .map_err(|e| CliError::usage(format!("{}={v} is not an RFC 3339 time: {e}", env::NOW))),
        _ => Ok(Clock::System),
    }
}

/// Builds the engine for a command.
pub fn engine(dir: Option<&Path>, as_: Option<&str>, writes: bool) -> Result<Engine, CliError> {
    let config_required = writes;
    let git = open_git(dir)?;
    let cfg = load_config(&git, config_required)?;
    // Said by the commands that act (a read stays quiet about the team).
    if writes {
        for w in cfg.warnings() {
            Console.warn(&w);
        }
    }
    let common = git
        .common_dir()
        .map_err(|e| CliError::usage(e.to_string()))?;
    let state_dir = common.join("hotfix");
    hotfix_fs::ensure_private_dir(&state_dir)
        .map_err(|e| CliError::failed(format!("cannot create {}: {e}", state_dir.display())))?;
    let (store, remote_user): (Box<dyn Store>, Option<String>) = match remote_server(&cfg) {
        Some(server) => {
            let (store, user) = remote_store(&server, as_)?;
            (Box::new(store), Some(user))
        }
        None => {
            let url = match secret(env::DATABASE_URL) {
                Some(u) => StoreUrl::parse(&u).map_err(|e| CliError::usage(e.to_string()))?,
                None => StoreUrl::Sqlite(state_dir.join("hotfix.db")),
            };
            let store = crate::store::open_local(&url, writes)?;
            (store, None)
        }
    };
    let github_token = secret(hotfix_core::env_vars::HOTFIX_GITHUB_TOKEN)
        .or_else(|| secret(hotfix_core::env_vars::GITHUB_TOKEN));
    let forge: Box<dyn Forge> = match cfg.forge.provider.as_str() {
        "github" if writes || github_token.is_some() => {
            use hotfix_providers::forge::github::{GithubConfig, GithubForge};
            let c = GithubConfig::from_table(&cfg.forge.settings)
                .map_err(|e| CliError::usage(format!("[forge]: {e}")))?;
            let token = github_token.ok_or_else(|| {
                CliError::usage(
                    "the GitHub forge needs a token: set GITHUB_TOKEN or HOTFIX_GITHUB_TOKEN",
                )
            })?;
            Box::new(GithubForge::new(
                c,
                token,
                Some(git.clone()),
                cfg.git.remote.clone(),
            ))
        }
        // Reading the incident log needs no forge (and no GitHub token).
        _ => Box::new(
            LocalForge::open(git.clone(), &cfg.git.remote, &state_dir.join("forge.db"))
                .map_err(|e| CliError::failed(e.to_string()))?,
        ),
    };
    let deployer: Box<dyn Deployer> = match cfg.deploy.provider.as_str() {
        "command" => Box::new(CommandDeployer::new(
            git.root().to_path_buf(),
            state_dir.join("logs"),
            cfg.deploy.clone(),
        )),
        "local" => {
            let mut d =
                LocalDeployer::from_config(git.root(), state_dir.join("platform"), &cfg.deploy)
                    .map_err(|e| CliError::usage(e.to_string()))?;
            // A platform that is not running is started in the background.
            if let Ok(exe) = std::env::current_exe() {
                d.autostart = Some((exe, platform_args(git.root())));
            }
            Box::new(d)
        }
        "railway" => {
            use hotfix_providers::deploy::railway::{RailwayAuth, RailwayConfig, RailwayDeployer};
            let t = cfg.deploy.railway.clone().ok_or_else(|| {
                CliError::usage("[deploy] provider = \"railway\" needs a [deploy.railway] table (project, service, environment)")
            })?;
            let c = RailwayConfig::from_table(&t)
                .map_err(|e| CliError::usage(format!("[deploy.railway]: {e}")))?;
            let auth = match (
                secret(hotfix_core::env_vars::RAILWAY_API_TOKEN),
                secret(hotfix_core::env_vars::RAILWAY_TOKEN),
            ) {
                (Some(t), _) => RailwayAuth::Bearer(t),
                (None, Some(t)) => RailwayAuth::ProjectAccessToken(t),
                (None, None) if !writes => RailwayAuth::Bearer(String::new()),
                (None, None) => {
                    return Err(CliError::usage(
                        "the Railway deployer needs a token: RAILWAY_API_TOKEN (workspace token) or RAILWAY_TOKEN (project token)",
                    ));
                }
            };
            Box::new(RailwayDeployer::new(c, auth))
        }
        other => {
            return Err(CliError::usage(format!(
                "[deploy] provider `{other}` is not available in this build"
            )));
        }
    };
    // In remote mode the server notifies, with its own notifiers and secrets.
    let mut notifiers: Vec<Box<dyn Notifier>> = vec![];
    if remote_user.is_none() {
        notifiers.extend(local_notifiers(&cfg, &state_dir));
        match real_notifiers(&cfg) {
            Ok(n) => notifiers.extend(n),
            // Reading the log must work without the notifiers' secrets; what
            // they have pending stays pending for a command that has them.
            Err(_) if !writes => {}
            Err(e) => return Err(e),
        }
    }
    // In remote mode the token says who acts (no need to ask git).
    let actor = match remote_user {
        Some(user) => user,
        None => match actor(&git, as_) {
            Ok(a) => a,
            Err(_) if !writes => "unknown".to_string(),
            Err(e) => return Err(e),
        },
    };
    let failpoints = std::env::var(env::FAILPOINTS)
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let engine = Engine {
        git,
        cfg,
        store,
        forge,
        deployer,
        notifiers,
        clock: clock()?,
        actor,
        state_dir,
        failpoints,
        ui: Box::new(Console),
        probe: Box::new(hotfix_providers::health::HttpProbe),
    };
    // Whatever an earlier run could not deliver goes out now; a read command
    // stays a read (no sends, no waiting on a slow notifier).
    if writes {
        engine.deliver();
    }
    Ok(engine)
}

/// The team server holding the incident log, if any: `HOTFIX_SERVER`
/// (`off` forces the local log), else `[server] url`.
pub fn remote_server(cfg: &Config) -> Option<String> {
    match secret(env::SERVER) {
        Some(v) if v.trim().eq_ignore_ascii_case("off") => None,
        Some(v) => Some(v.trim().to_string()),
        None => cfg
            .server
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(String::from),
    }
}

/// The server's log as the engine's store, and who the token acts as: in
/// remote mode the token decides who you are (the server stamps every event
/// with it), so `--as` may only repeat it.
fn remote_store(server: &str, as_: Option<&str>) -> Result<(RemoteStore, String), CliError> {
    let store = RemoteStore::new(server, secret(env::TOKEN).as_deref())
        .map_err(|e| CliError::usage(e.to_string()))?;
    let me = store
        .me()
        .map_err(|e| CliError::failed(hotfix_providers::redact::redact(&e.to_string())))?;
    if let Some(a) = as_.map(str::trim).filter(|a| !a.is_empty())
        && !a.eq_ignore_ascii_case(&me.user)
    {
        return Err(CliError::usage(format!(
            "in remote mode you act as {} (your token), not as {a}: drop --as, or use {a}'s token",
            me.user
        )));
    }
    if let Some(u) = secret(env::USER)
        && !u.trim().eq_ignore_ascii_case(&me.user)
    {
        Console.warn(&format!(
            "{}={} is ignored in remote mode: you act as {} (your token)",
            env::USER,
            u.trim(),
            me.user
        ));
    }
    if secret(env::DATABASE_URL).is_some() {
        Console.warn(&format!(
            "{} is ignored in remote mode: the incident log is on {}",
            env::DATABASE_URL,
            store.shown_base()
        ));
    }
    Ok((store, me.user))
}

/// The arguments that run the platform of the repo at `root` in the foreground.
pub fn platform_args(root: &Path) -> Vec<String> {
    vec![
        "-C".into(),
        root.display().to_string(),
        "platform".into(),
        "run".into(),
    ]
}

/// The platform settings of this repository (`[deploy] provider = "local"`).
pub fn platform_config(git: &Git) -> Result<hotfix_platform::PlatformConfig, CliError> {
    let cfg = load_config(git, true)?;
    if cfg.deploy.provider != "local" {
        return Err(CliError::usage(format!(
            "[deploy] provider is `{}`: the embedded platform serves `provider = \"local\"`",
            cfg.deploy.provider
        )));
    }
    let common = git
        .common_dir()
        .map_err(|e| CliError::usage(e.to_string()))?;
    LocalDeployer::from_config(
        git.root(),
        common.join("hotfix").join("platform"),
        &cfg.deploy,
    )
    .map(|d| d.platform)
    .map_err(|e| CliError::usage(e.to_string()))
}

/// An environment variable that is set to something (blank counts as unset).
pub fn secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The console and file notifiers of `[notify]`; the file is
/// `notifications.jsonl` in `dir`. The CLI and the server both start with these.
pub fn local_notifiers(cfg: &Config, dir: &Path) -> Vec<Box<dyn Notifier>> {
    let mut out: Vec<Box<dyn Notifier>> = vec![];
    if cfg.notify.console {
        out.push(Box::new(ConsoleNotifier));
    }
    if cfg.notify.file {
        out.push(Box::new(FileNotifier {
            path: dir.join("notifications.jsonl"),
        }));
    }
    out
}

/// Slack, the generic webhook and Statuspage, from `[notify.*]` and the
/// secrets in the environment.
fn real_notifiers(cfg: &Config) -> Result<Vec<Box<dyn Notifier>>, CliError> {
    hotfix_providers::notify::from_config(cfg, &secret).map_err(CliError::usage)
}
