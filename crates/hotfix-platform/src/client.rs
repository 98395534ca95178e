//! Talking to a running platform: the blocking [`Client`] the `local` deploy
//! provider uses, and starting / stopping the platform in the background.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::paths::Paths;
use crate::types::{
    ApiError, CanaryOutcome, CanaryRequest, CanaryWeight, ControlInfo, DeployMeta, DeployOutcome,
    DeployRequest, PlatformStats, PlatformStatus, PreviewInfo, PromoteRequest, RollbackRequest,
};
use crate::util::log_tail;
use crate::{PlatformConfig, PlatformError, sys};

/// How long [`start_background`] waits for the control API to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `control.json` of the platform running on `state_dir`.
pub fn read_control(state_dir: &Path) -> Result<ControlInfo, PlatformError> {
    let path = Paths::new(state_dir).control();
    let bytes = fs::read(&path).map_err(|e| PlatformError::NotRunning {
        state_dir: state_dir.to_path_buf(),
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    serde_json::from_slice(&bytes).map_err(|e| PlatformError::Json {
        context: format!("{} is malformed", path.display()),
        detail: e.to_string(),
    })
}

/// A blocking client of the control API. Built from the state directory:
/// `control.json` says where the API listens, `token` how to authenticate.
#[derive(Debug, Clone)]
pub struct Client {
    info: ControlInfo,
    token: String,
    state_dir: PathBuf,
    /// For deploys: they take as long as build + start-up take.
    slow: ureq::Agent,
    /// For everything else.
    quick: ureq::Agent,
}

fn agent(timeout: Option<Duration>) -> ureq::Agent {
    let cfg = ureq::Agent::config_builder()
        .http_status_as_error(false)
        // The platform is always on 127.0.0.1: never route it through an HTTP proxy.
        .proxy(None)
        .timeout_connect(Some(Duration::from_secs(3)))
        .timeout_global(timeout)
        .build();
    ureq::Agent::new_with_config(cfg)
}

impl Client {
    /// Reads `control.json` and `token` in `state_dir`. Does not contact the
    /// platform; [`Client::status`] does.
    pub fn connect(state_dir: &Path) -> Result<Client, PlatformError> {
        let info = read_control(state_dir)?;
        let token_path = Paths::new(state_dir).token();
        let token = fs::read_to_string(&token_path)
            .map_err(|e| PlatformError::NotRunning {
                state_dir: state_dir.to_path_buf(),
                detail: format!("cannot read the token {}: {e}", token_path.display()),
            })?
            .trim()
            .to_string();
        Ok(Client {
            info,
            token,
            state_dir: state_dir.to_path_buf(),
            slow: agent(None),
            quick: agent(Some(Duration::from_secs(60))),
        })
    }

    /// Where the control API and the production proxy listen.
    pub fn info(&self) -> &ControlInfo {
        &self.info
    }

    /// The stable production URL.
    pub fn production_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.info.proxy_port)
    }

    fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
        slow: bool,
    ) -> Result<T, PlatformError> {
        let url = format!("{}{path}", self.info.url());
        let agent = if slow { &self.slow } else { &self.quick };
        let auth = format!("Bearer {}", self.token);
        let res = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            ("PUT", Some(b)) => agent.put(&url).header("Authorization", &auth).send_json(b),
            (_, Some(b)) => agent.post(&url).header("Authorization", &auth).send_json(b),
            (_, None) => agent.post(&url).header("Authorization", &auth).send_empty(),
        };
        let mut resp = res.map_err(|e| match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                PlatformError::NotRunning {
                    state_dir: self.state_dir.clone(),
                    detail: format!("nothing answers at {url} (control.json is stale)"),
                }
            }
            ureq::Error::ConnectionFailed => PlatformError::NotRunning {
                state_dir: self.state_dir.clone(),
                detail: format!("nothing answers at {url} (control.json is stale)"),
            },
            other => PlatformError::Http {
                url: url.clone(),
                detail: other.to_string(),
            },
        })?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| PlatformError::Http {
                url: url.clone(),
                detail: format!("cannot read the answer: {e}"),
            })?;
        if (200..300).contains(&status) {
            return serde_json::from_str(&text).map_err(|e| PlatformError::Json {
                context: format!("answer of {method} {path}"),
                detail: e.to_string(),
            });
        }
        let Ok(api) = serde_json::from_str::<ApiError>(&text) else {
            // Not the platform's own error shape: say what answered.
            return Err(PlatformError::Api {
                status,
                message: text,
            });
        };
        let message = api.error;
        Err(match status {
            401 => PlatformError::Unauthorized(message),
            400 => PlatformError::Invalid(message),
            404 => PlatformError::NotFound(message),
            409 => PlatformError::Conflict(message),
            // The platform's message is whole already (what failed, the
            // log tail): passed on as it is, with no prefix of ours.
            _ => PlatformError::Remote {
                status,
                kind: api.kind,
                message,
            },
        })
    }

    /// Deploys `sha` to production; returns once it serves (or failed, in
    /// which case production is untouched).
    pub fn deploy_production(&self, sha: &str) -> Result<DeployOutcome, PlatformError> {
        self.deploy_production_with(&DeployRequest {
            sha: sha.to_string(),
            ..DeployRequest::default()
        })
    }

    /// [`Client::deploy_production`] with settings and who/why.
    pub fn deploy_production_with(
        &self,
        req: &DeployRequest,
    ) -> Result<DeployOutcome, PlatformError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.call("POST", "/v1/production/deploy", Some(body), true)
    }

    /// Switches production back to the previous release, or to `to_sha`.
    pub fn rollback(&self, to_sha: Option<&str>) -> Result<DeployOutcome, PlatformError> {
        self.rollback_with(&RollbackRequest {
            to_sha: to_sha.map(str::to_string),
            ..RollbackRequest::default()
        })
    }

    /// [`Client::rollback`] with settings and who/why.
    pub fn rollback_with(&self, req: &RollbackRequest) -> Result<DeployOutcome, PlatformError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.call("POST", "/v1/production/rollback", Some(body), true)
    }

    /// Deploys (or replaces) the preview `key` at `sha`.
    pub fn deploy_preview(&self, key: &str, sha: &str) -> Result<PreviewInfo, PlatformError> {
        self.deploy_preview_with(
            key,
            &DeployRequest {
                sha: sha.to_string(),
                ..DeployRequest::default()
            },
        )
    }

    /// [`Client::deploy_preview`] with settings and who/why.
    pub fn deploy_preview_with(
        &self,
        key: &str,
        req: &DeployRequest,
    ) -> Result<PreviewInfo, PlatformError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.call("PUT", &format!("/v1/previews/{key}"), Some(body), true)
    }

    /// Stops the preview `key` and deletes its worktree and data.
    pub fn remove_preview(&self, key: &str) -> Result<(), PlatformError> {
        let _: serde_json::Value =
            self.call("DELETE", &format!("/v1/previews/{key}"), None, false)?;
        Ok(())
    }

    /// Starts `req.sha` beside production with `req.weight` percent of the
    /// requests; returns once it is healthy and routed.
    pub fn canary_start(&self, req: &CanaryRequest) -> Result<CanaryOutcome, PlatformError> {
        let body = serde_json::to_value(req).unwrap_or_default();
        self.call("POST", "/v1/canary", Some(body), true)
    }

    /// Sends `weight` percent of the requests to the canary from now on.
    pub fn canary_weight(&self, weight: f64) -> Result<CanaryOutcome, PlatformError> {
        let body = serde_json::to_value(CanaryWeight { weight }).unwrap_or_default();
        self.call("POST", "/v1/canary/weight", Some(body), false)
    }

    /// The canary becomes production; the old production the warm previous.
    pub fn canary_promote(&self, meta: Option<DeployMeta>) -> Result<DeployOutcome, PlatformError> {
        let body = serde_json::to_value(PromoteRequest { meta }).unwrap_or_default();
        self.call("POST", "/v1/canary/promote", Some(body), true)
    }

    /// 0% to the canary at once; it stops once drained. A no-op without one.
    pub fn canary_abort(&self) -> Result<CanaryOutcome, PlatformError> {
        self.call("POST", "/v1/canary/abort", None, false)
    }

    /// What the production proxy counted per release (cumulative since each
    /// release started serving; difference two snapshots for a window).
    pub fn stats(&self) -> Result<PlatformStats, PlatformError> {
        self.call("GET", "/v1/stats", None, false)
    }

    pub fn status(&self) -> Result<PlatformStatus, PlatformError> {
        self.call("GET", "/v1/status", None, false)
    }

    /// Asks the platform to stop its releases and exit; returns at once.
    pub fn shutdown(&self) -> Result<(), PlatformError> {
        let _: serde_json::Value = self.call("POST", "/v1/shutdown", None, false)?;
        Ok(())
    }
}

/// Whether a platform holds the lock of `state_dir` right now.
pub fn is_running(state_dir: &Path) -> bool {
    let Ok(f) = fs::OpenOptions::new()
        .write(true)
        .open(Paths::new(state_dir).lock())
    else {
        return false;
    };
    matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock))
}

/// Starts `exe args...` (a command that runs the platform in the foreground,
/// e.g. `hotfix platform`) detached in its own session, output appended to
/// `platform.log`, and waits until its control API answers. If a platform
/// already runs on this state directory, returns its [`ControlInfo`].
pub fn start_background(
    cfg: &PlatformConfig,
    exe: &Path,
    args: &[String],
) -> Result<ControlInfo, PlatformError> {
    cfg.validate()?;
    let paths = Paths::new(&cfg.state_dir);
    crate::util::private_dir(&paths.root)?;
    if let Some(info) = answering(&cfg.state_dir, None) {
        return Ok(info);
    }
    let log_path = paths.platform_log();
    let log = crate::util::private_append(&log_path)
        .map_err(|e| PlatformError::io(format!("cannot open {}", log_path.display()), e))?;
    let log2 = log
        .try_clone()
        .map_err(|e| PlatformError::io("cannot duplicate the log handle", e))?;
    let mut cmd = Command::new(exe);
    // Same working directory as ours, so relative paths in `args` mean the same.
    cmd.args(args).stdin(Stdio::null()).stdout(log).stderr(log2);
    sys::detach(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| PlatformError::io(format!("cannot start {}", exe.display()), e))?;
    let pid = child.id();
    // Reap it when it exits, so it never lingers as our zombie, and tell us if
    // it died while starting.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(info) = answering(&cfg.state_dir, Some(pid)) {
            return Ok(info);
        }
        if let Ok(status) = rx.try_recv() {
            // It exited: maybe another platform won the race for the lock.
            if let Some(info) = answering(&cfg.state_dir, None) {
                return Ok(info);
            }
            let how = status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string());
            return Err(PlatformError::NotRunning {
                state_dir: cfg.state_dir.clone(),
                detail: format!(
                    "the platform exited while starting ({how})\n--- last lines of {} ---\n{}",
                    log_path.display(),
                    log_tail(&log_path, 20)
                ),
            });
        }
        if Instant::now() > deadline {
            return Err(PlatformError::Timeout(format!(
                "the platform (pid {pid}) did not answer within {START_TIMEOUT:?}; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The control info of a platform that answers `GET /v1/status` (with pid
/// `pid`, if given).
fn answering(state_dir: &Path, pid: Option<u32>) -> Option<ControlInfo> {
    let c = Client::connect(state_dir).ok()?;
    if pid.is_some_and(|p| p != c.info.pid) {
        return None;
    }
    let st = c.status().ok()?;
    (st.pid == c.info.pid).then(|| c.info.clone())
}

/// Stops the platform running on `state_dir`: asks it through the API (it
/// stops its releases), then falls back to SIGTERM and SIGKILL of its pid.
/// Returns whether a platform was running.
pub fn stop(state_dir: &Path) -> Result<bool, PlatformError> {
    let paths = Paths::new(state_dir);
    if !is_running(state_dir) {
        // Stale files of a platform that died: clean up, nothing to stop.
        for f in [paths.control(), paths.token(), paths.pid()] {
            let _ = fs::remove_file(f);
        }
        return Ok(false);
    }
    let pid = read_control(state_dir).map(|c| c.pid).ok().or_else(|| {
        fs::read_to_string(paths.pid())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
    });
    let gone = |limit: Duration| {
        let deadline = Instant::now() + limit;
        loop {
            if !is_running(state_dir) && !pid.is_some_and(sys::pid_alive) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    if let Ok(c) = Client::connect(state_dir)
        && c.shutdown().is_ok()
        && gone(Duration::from_secs(15))
    {
        return Ok(true);
    }
    let Some(pid) = pid else {
        return Err(PlatformError::Timeout(format!(
            "a platform holds {} but its pid is unknown; stop it by hand",
            paths.lock().display()
        )));
    };
    sys::kill_pid(pid, libc::SIGTERM);
    if gone(Duration::from_secs(10)) {
        return Ok(true);
    }
    sys::kill_pid(pid, libc::SIGKILL);
    if gone(Duration::from_secs(5)) {
        for f in [paths.control(), paths.token(), paths.pid()] {
            let _ = fs::remove_file(f);
        }
        return Ok(true);
    }
    Err(PlatformError::Timeout(format!(
        "the platform (pid {pid}) did not stop, even after SIGKILL"
    )))
}
