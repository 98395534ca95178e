//! Platform configuration: what `[deploy]` with `provider = "local"` in
//! `hotfix.toml` turns into.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use hotfix_core::duration::{HumanDuration, MAX_DURATION};

use crate::PlatformError;
use crate::types::ReleaseSettings;

/// Everything the platform needs to run releases of one repository.
///
/// Built by the `hotfix` binary from `hotfix.toml`, or by
/// [`PlatformConfig::from_deploy_table`] / [`PlatformConfig::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformConfig {
    /// Any directory inside the repository whose commits are deployed;
    /// release worktrees are added from it.
    pub repo_root: PathBuf,
    /// Where the platform keeps its state, logs, worktrees and control files.
    /// Default: `<git-common-dir>/hotfix/platform` (see [`default_state_dir`]).
    pub state_dir: PathBuf,
    /// Build command (argv), run in the release's own worktree. `None`: no build.
    pub build: Option<Vec<String>>,
    /// Run command (argv), run in the release's worktree with `PORT` and
    /// `DATA_DIR` in its environment. A relative program path containing a `/`
    /// (`./target/release/app`) is resolved against the worktree.
    pub run: Vec<String>,
    /// Path probed until it answers 2xx before a release gets traffic.
    pub health_path: String,
    /// The stable production port (the reverse proxy listens there).
    /// `0` picks a free port once and keeps it across restarts (tests).
    pub port: u16,
    /// Address the production proxy listens on. Default `127.0.0.1`.
    /// The control API always listens on `127.0.0.1` only.
    pub host: IpAddr,
    /// How long the previous production release keeps running after a deploy,
    /// so that a rollback is a proxy switch and not a rebuild. Default 10m.
    pub warm: Duration,
    /// How long a started release may take to answer its health check. Default 30s.
    pub ready_timeout: Duration,
    /// How long requests in flight to a release that leaves service may take to
    /// finish before it is stopped. Default 2s.
    pub drain: Duration,
    /// How long the build command may run. Default 20m.
    pub build_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL when a release is stopped. Default 2s.
    pub stop_timeout: Duration,
    /// `[deploy] canary`: the shares (percent) a new production release
    /// gets step by step before it is promoted. Empty: a plain switch.
    /// The platform only routes; the deploy client drives the steps.
    pub canary: Vec<f64>,
    /// `[deploy] canary_pause`, parsed (and validated) with the rest of
    /// `[deploy]` but not used by the platform: the deploy client drives
    /// the steps and watches each for `canary_pause`, defaulting to its
    /// watch window (`hotfix ship`). Kept so a platform started on its own
    /// reports the value the team wrote; the 30s default here is only the
    /// platform's own.
    pub canary_pause: Duration,
    /// `[deploy] cache`: build-state paths (relative to the repository
    /// root, e.g. `target`, `node_modules`) copied into a new release from
    /// the newest build with the same lockfiles, so `build` is incremental.
    /// Each release builds in its own copy: concurrent builds never share
    /// a writable directory.
    pub cache: Vec<String>,
    /// `[deploy] artifacts`: what a promotion links from the tested build
    /// into production (paths relative to the root). Empty: every
    /// untracked or ignored file of the tested build's worktree.
    pub artifacts: Vec<String>,
    /// `[deploy] cache_key`: files (relative to the root) that key the
    /// cache besides the known lockfiles.
    pub cache_key: Vec<String>,
    /// Whether a production deploy may promote a built release of the same
    /// tree instead of building. Always on from `hotfix.toml`; off only
    /// for the benchmark's baseline (every release builds, as before
    /// issue 13).
    pub promote: bool,
}

impl PlatformConfig {
    /// A config with every optional knob at its default.
    pub fn new(
        repo_root: impl Into<PathBuf>,
        state_dir: impl Into<PathBuf>,
        run: Vec<String>,
    ) -> Self {
        PlatformConfig {
            repo_root: repo_root.into(),
            state_dir: state_dir.into(),
            build: None,
            run,
            health_path: "/health".into(),
            port: 8080,
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            warm: Duration::from_secs(600),
            ready_timeout: Duration::from_secs(30),
            drain: Duration::from_secs(2),
            build_timeout: Duration::from_secs(20 * 60),
            stop_timeout: Duration::from_secs(2),
            canary: Vec::new(),
            canary_pause: Duration::from_secs(30),
            cache: Vec::new(),
            artifacts: Vec::new(),
            cache_key: Vec::new(),
            promote: true,
        }
    }

    /// Reads the keys of a `[deploy]` table (`provider = "local"`):
    /// `build`, `run` (required), `health_path`, `port`, `host`, `warm`,
    /// `ready_timeout`, `drain`, `build_timeout`, `stop_timeout`. Keys of other
    /// providers are ignored. `state_dir: None` uses [`default_state_dir`].
    pub fn from_deploy_table(
        repo_root: &Path,
        state_dir: Option<PathBuf>,
        deploy: &toml::Table,
    ) -> Result<Self, PlatformError> {
        let str_key = |k: &str| -> Result<Option<&str>, PlatformError> {
            match deploy.get(k) {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(PlatformError::Config(format!(
                    "[deploy] {k} must be a string"
                ))),
            }
        };
        let run = match str_key("run")? {
            Some(r) => split_command(r, "run")?,
            None => {
                return Err(PlatformError::Config(
                    "[deploy] run is required for provider = \"local\" (e.g. run = \"./target/release/app\")".into(),
                ));
            }
        };
        let state_dir = match state_dir {
            Some(d) => d,
            None => default_state_dir(repo_root)?,
        };
        let mut cfg = PlatformConfig::new(repo_root, state_dir, run);
        if let Some(b) = str_key("build")? {
            cfg.build = Some(split_command(b, "build")?);
        }
        if let Some(h) = str_key("health_path")? {
            if !h.starts_with('/') {
                return Err(PlatformError::Config(format!(
                    "[deploy] health_path `{h}` must start with `/`"
                )));
            }
            cfg.health_path = h.to_string();
        }
        match deploy.get("port") {
            None => {}
            Some(toml::Value::Integer(p)) => {
                cfg.port = u16::try_from(*p).map_err(|_| {
                    PlatformError::Config(format!("[deploy] port {p} is not a TCP port (0-65535)"))
                })?;
            }
            Some(_) => {
                return Err(PlatformError::Config(
                    "[deploy] port must be a number".into(),
                ));
            }
        }
        if let Some(h) = str_key("host")? {
            cfg.host = h.parse().map_err(|_| {
                PlatformError::Config(format!("[deploy] host `{h}` is not an IP address"))
            })?;
        }
        cfg.canary = canary_steps(deploy.get("canary"))?;
        cfg.cache = repo_paths(deploy.get("cache"), "cache")?;
        cfg.artifacts = repo_paths(deploy.get("artifacts"), "artifacts")?;
        cfg.cache_key = repo_paths(deploy.get("cache_key"), "cache_key")?;
        for (key, slot) in [
            ("warm", &mut cfg.warm),
            ("ready_timeout", &mut cfg.ready_timeout),
            ("drain", &mut cfg.drain),
            ("build_timeout", &mut cfg.build_timeout),
            ("stop_timeout", &mut cfg.stop_timeout),
            ("canary_pause", &mut cfg.canary_pause),
        ] {
            if let Some(v) = str_key(key)? {
                *slot = v
                    .parse::<HumanDuration>()
                    .map_err(|e| PlatformError::Config(format!("[deploy] {key}: {e}")))?
                    .0;
            }
        }
        Ok(cfg)
    }

    /// Reads `hotfix.toml` at `repo_root` and its `[deploy]` table.
    pub fn load(repo_root: &Path) -> Result<Self, PlatformError> {
        let path = repo_root.join("hotfix.toml");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| PlatformError::io(format!("cannot read {}", path.display()), e))?;
        let doc: toml::Table = text
            .parse()
            .map_err(|e| PlatformError::Config(format!("{}: {e}", path.display())))?;
        let deploy = match doc.get("deploy") {
            Some(toml::Value::Table(t)) => t,
            _ => {
                return Err(PlatformError::Config(format!(
                    "{} has no [deploy] table; add one with provider = \"local\"",
                    path.display()
                )));
            }
        };
        Self::from_deploy_table(repo_root, None, deploy)
    }

    /// The settings a client sends with each request (see [`ReleaseSettings`]).
    pub fn settings(&self) -> ReleaseSettings {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        ReleaseSettings {
            build: self.build.clone(),
            run: self.run.clone(),
            health_path: self.health_path.clone(),
            ready_timeout_ms: ms(self.ready_timeout),
            build_timeout_ms: ms(self.build_timeout),
            warm_ms: ms(self.warm),
            drain_ms: ms(self.drain),
            stop_timeout_ms: ms(self.stop_timeout),
            cache: self.cache.clone(),
            artifacts: self.artifacts.clone(),
            cache_key: self.cache_key.clone(),
        }
    }

    /// This config with `s` applied (everything but where the platform
    /// listens and what it deploys from), checked as a config file is.
    pub fn with_settings(&self, s: &ReleaseSettings) -> Result<PlatformConfig, PlatformError> {
        let dur = |what: &str, ms: u64| {
            let d = Duration::from_millis(ms);
            if d > MAX_DURATION {
                Err(PlatformError::Invalid(format!(
                    "{what} of {ms} ms is longer than the 100 years allowed"
                )))
            } else {
                Ok(d)
            }
        };
        let cfg = PlatformConfig {
            build: s.build.clone(),
            run: s.run.clone(),
            health_path: s.health_path.clone(),
            ready_timeout: dur("ready_timeout", s.ready_timeout_ms)?,
            build_timeout: dur("build_timeout", s.build_timeout_ms)?,
            warm: dur("warm", s.warm_ms)?,
            drain: dur("drain", s.drain_ms)?,
            stop_timeout: dur("stop_timeout", s.stop_timeout_ms)?,
            cache: s.cache.clone(),
            artifacts: s.artifacts.clone(),
            cache_key: s.cache_key.clone(),
            ..self.clone()
        };
        cfg.validate()
            .map_err(|e| PlatformError::Invalid(format!("settings sent with the request: {e}")))?;
        Ok(cfg)
    }

    /// The production URL this config asks for (`None` with `port = 0`,
    /// which the platform picks).
    pub fn production_url(&self) -> Option<String> {
        (self.port != 0).then(|| url_of(self.host, self.port))
    }

    pub(crate) fn validate(&self) -> Result<(), PlatformError> {
        if self.run.is_empty() {
            return Err(PlatformError::Config("the run command is empty".into()));
        }
        if matches!(&self.build, Some(b) if b.is_empty()) {
            return Err(PlatformError::Config("the build command is empty".into()));
        }
        if !self.health_path.starts_with('/') {
            return Err(PlatformError::Config(format!(
                "health_path `{}` must start with `/`",
                self.health_path
            )));
        }
        for (key, list) in [
            ("cache", &self.cache),
            ("artifacts", &self.artifacts),
            ("cache_key", &self.cache_key),
        ] {
            for p in list {
                check_repo_path(p, key)?;
            }
        }
        Ok(())
    }
}

/// `[deploy] canary = ["10%", "50%"]` as percentages: each step above the
/// one before, all between 0% and 100% (promotion is the implied last step).
fn canary_steps(v: Option<&toml::Value>) -> Result<Vec<f64>, PlatformError> {
    let bad = |what: String| {
        PlatformError::Config(format!(
            "[deploy] canary {what}: write the steps as percentages, e.g. canary = [\"10%\", \"50%\"]"
        ))
    };
    let items = match v {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a,
        Some(_) => return Err(bad("must be a list".into())),
    };
    let mut out: Vec<f64> = Vec::new();
    for item in items {
        let Some(text) = item.as_str() else {
            return Err(bad(format!("step {item} is not a string")));
        };
        let n = text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n > 0.0 && *n < 100.0)
            .ok_or_else(|| {
                bad(format!(
                    "step `{text}` is not a percentage between 0% and 100%"
                ))
            })?;
        if out.last().is_some_and(|last| n <= *last) {
            return Err(bad(format!(
                "step `{text}` must be above the step before it"
            )));
        }
        out.push(n);
    }
    Ok(out)
}

/// `[deploy] cache = ["target", "node_modules"]` (and `artifacts`,
/// `cache_key`): a list of paths inside the repository.
fn repo_paths(v: Option<&toml::Value>, key: &str) -> Result<Vec<String>, PlatformError> {
    let items = match v {
        None => return Ok(Vec::new()),
        Some(toml::Value::Array(a)) => a,
        Some(_) => {
            return Err(PlatformError::Config(format!(
                "[deploy] {key} must be a list of paths, e.g. {key} = [\"target\"]"
            )));
        }
    };
    let mut out = Vec::new();
    for item in items {
        let Some(p) = item.as_str() else {
            return Err(PlatformError::Config(format!(
                "[deploy] {key}: {item} is not a string; write paths as strings, e.g. {key} = [\"target\"]"
            )));
        };
        check_repo_path(p, key)?;
        out.push(p.trim_end_matches('/').to_string());
    }
    Ok(out)
}

/// A path the platform copies or links inside a release worktree: relative,
/// inside it (no `..`), not the worktree itself nor git's own files.
pub(crate) fn check_repo_path(p: &str, key: &str) -> Result<(), PlatformError> {
    let path = Path::new(p);
    let trimmed = p.trim_end_matches('/');
    let bad = trimmed.is_empty()
        || trimmed == "."
        || path.is_absolute()
        || path.components().any(|c| {
            !matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::CurDir
            )
        })
        || path
            .components()
            .next()
            .is_some_and(|c| c.as_os_str() == ".git");
    if bad {
        return Err(PlatformError::Config(format!(
            "[deploy] {key}: `{p}` must be a path inside the repository, relative to its root (e.g. \"target\"), without `..` and not `.git`"
        )));
    }
    Ok(())
}

/// `http://host:port` of a listening address; an unspecified host (`0.0.0.0`)
/// is reached on 127.0.0.1.
pub(crate) fn url_of(host: IpAddr, port: u16) -> String {
    let host = if host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        host.to_string()
    };
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Splits a command line into argv the way a POSIX shell would quote it,
/// without ever running a shell (so no expansion, no injection).
pub fn split_command(line: &str, what: &str) -> Result<Vec<String>, PlatformError> {
    let argv = shell_words::split(line)
        .map_err(|e| PlatformError::Config(format!("[deploy] {what} = `{line}`: {e}")))?;
    if argv.is_empty() {
        return Err(PlatformError::Config(format!("[deploy] {what} is empty")));
    }
    Ok(argv)
}

/// `<git-common-dir>/hotfix/platform`: shared by all worktrees of the repo
/// (so the platform's own release worktrees find the same platform) and never
/// committed.
pub fn default_state_dir(repo_root: &Path) -> Result<PathBuf, PlatformError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo_root)
        .args(["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .output()
        .map_err(|e| PlatformError::io("cannot run git (is it installed?)", e))?;
    if !out.status.success() {
        return Err(PlatformError::Git {
            args: "rev-parse --git-common-dir".into(),
            detail: format!(
                "{} is not inside a git repository: {}",
                repo_root.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(PathBuf::from(dir).join("hotfix").join("platform"))
}

/// `250ms`, `30s`, `10m`, `1h`, `1h30m`, `0`; `None` for anything else and
/// past [`MAX_DURATION`] (100 years). The same parser as `hotfix.toml`'s
/// ([`HumanDuration`]): a value the CLI accepts is never refused here, and
/// a value too large for either is a configuration error, never a panic.
pub fn parse_duration(s: &str) -> Option<Duration> {
    s.parse::<HumanDuration>().ok().map(|d| d.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_duration("ten"), None);
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration(""), None);
    }

    #[test]
    fn deploy_table() {
        let t: toml::Table = r#"
            provider = "local"
            build = "cargo build --release"
            run = "./target/release/app --flag 'two words'"
            health_path = "/healthz"
            port = 9000
            warm = "1m"
        "#
        .parse()
        .expect("toml");
        let c =
            PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t).expect("cfg");
        assert_eq!(
            c.build,
            Some(vec!["cargo".into(), "build".into(), "--release".into()])
        );
        assert_eq!(c.run, vec!["./target/release/app", "--flag", "two words"]);
        assert_eq!(c.health_path, "/healthz");
        assert_eq!(c.port, 9000);
        assert_eq!(c.warm, Duration::from_secs(60));
        assert_eq!(c.ready_timeout, Duration::from_secs(30));
        assert!(c.canary.is_empty());
        assert_eq!(c.canary_pause, Duration::from_secs(30));
        let t: toml::Table = "run = \"x\"\ncanary = [\"10%\", \"50 %\"]\ncanary_pause = \"5s\""
            .parse()
            .expect("toml");
        let c =
            PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t).expect("cfg");
        assert_eq!(c.canary, vec![10.0, 50.0]);
        assert_eq!(c.canary_pause, Duration::from_secs(5));
        for bad in [
            "[\"10\"]",
            "[\"50%\", \"10%\"]",
            "[\"100%\"]",
            "\"10%\"",
            "[10]",
        ] {
            let t: toml::Table = format!("run = \"x\"\ncanary = {bad}")
                .parse()
                .expect("toml");
            let e = PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t);
            assert!(
                e.is_err_and(|e| e.to_string().contains("[deploy] canary")),
                "{bad}"
            );
        }
        let t: toml::Table =
            "run = \"x\"\ncache = [\"target/\", \"web/node_modules\"]\nartifacts = [\"target/release/app\"]\ncache_key = [\"rust-toolchain.toml\"]"
                .parse()
                .expect("toml");
        let c =
            PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t).expect("cfg");
        assert_eq!(c.cache, vec!["target", "web/node_modules"]);
        assert_eq!(c.artifacts, vec!["target/release/app"]);
        assert_eq!(c.cache_key, vec!["rust-toolchain.toml"]);
        let back = c.with_settings(&c.settings()).expect("settings");
        assert_eq!(back.cache, c.cache);
        for bad in [
            "[\"/abs\"]",
            "[\"../up\"]",
            "[\".git\"]",
            "[\"\"]",
            "[\".\"]",
            "\"target\"",
            "[1]",
        ] {
            let t: toml::Table = format!("run = \"x\"\ncache = {bad}").parse().expect("toml");
            let e = PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &t);
            assert!(
                e.is_err_and(|e| e.to_string().contains("[deploy] cache")),
                "{bad}"
            );
        }
        let bad: toml::Table = "run = \"x\"\nwarm = \"soon\"".parse().expect("toml");
        let e = PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &bad);
        assert!(e.is_err_and(|e| e.to_string().contains("warm")));
        let none: toml::Table = "provider = \"local\"".parse().expect("toml");
        assert!(
            PlatformConfig::from_deploy_table(Path::new("/r"), Some("/s".into()), &none).is_err()
        );
    }
}
