//! One release's life, whatever its kind: its id and directories, the launch
//! (checkout and build via [`super::build`], `run`, the health check), what
//! happens when its process exits by itself (a crash), and stopping, draining
//! and discarding it. Production, canary and previews are all built on these
//! steps, so they live apart from the policies that decide when to take them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use tokio::sync::watch;

use crate::config::PlatformConfig;
use crate::procs::{SpawnSpec, describe_exit};
use crate::proxy::Upstream;
use crate::types::{CrashReport, DeployMeta, LaunchStep, ReleaseInfo, ReleaseKind, ReleaseState};
use crate::util::{self, log_line, log_tail};
use crate::{PlatformError, git, sys};

use super::{Inner, LOG_TAIL_LINES, MAX_CRASH_REPORTS, PIN_WAIT, Proc, Release, lock, short};

impl Inner {
    pub(super) fn new_release(
        &self,
        kind: ReleaseKind,
        key: Option<&str>,
        sha: &str,
        cfg: Arc<PlatformConfig>,
        meta: DeployMeta,
    ) -> Arc<Release> {
        // Recorded at once: an id reused after a kill -9 would find the
        // half-built worktree of its namesake and skip the build.
        let n = {
            let mut st = lock(&self.state);
            st.next_id += 1;
            self.persist(&st);
            st.next_id
        };
        let id = format!("r{n}-{}", &sha[..sha.len().min(7)]);
        let data_dir = match kind {
            ReleaseKind::Production => self.paths.data().join("production"),
            ReleaseKind::Preview => self.paths.data().join("previews").join(&id),
        };
        Release::new(
            ReleaseInfo {
                worktree: self.paths.releases().join(&id),
                log_path: crate::paths::release_log(&self.paths.root, kind, key, sha),
                id,
                sha: sha.to_string(),
                kind,
                key: key.map(str::to_string),
                port: 0,
                started_at: util::now_string(),
                state: ReleaseState::Starting,
                data_dir,
                warm_until: None,
                exit_status: None,
                step: None,
                origin: Some(meta),
                build: None,
            },
            cfg,
        )
    }

    /// Makes `rel` serve on its own port: checks its sha out and builds it if
    /// its worktree is missing, starts `run`, waits for the health check.
    /// Returns whether it built. On failure nothing of it is left running.
    pub(super) async fn launch(
        self: &Arc<Self>,
        rel: &Arc<Release>,
    ) -> Result<bool, PlatformError> {
        lock(&self.state).starting.push(rel.clone());
        let res = self.launch_steps(rel).await;
        lock(&self.state).starting.retain(|r| !Arc::ptr_eq(r, rel));
        rel.set(|i| i.step = None);
        res
    }

    async fn launch_steps(self: &Arc<Self>, rel: &Arc<Release>) -> Result<bool, PlatformError> {
        self.check_running()?;
        rel.set(|i| {
            i.state = ReleaseState::Starting;
            i.exit_status = None;
            i.warm_until = None;
            i.step = Some(LaunchStep::Checkout);
        });
        let cfg = rel.cfg.clone();
        let info = rel.info();
        let log = info.log_path.clone();
        // Deploys of one commit share its log: each starts with a header.
        log_line(
            &log,
            &format!("---- release {} ({:?}) of {}", info.id, info.kind, info.sha),
        );
        // A worktree that exists (a restart, a cold rollback target) holds
        // its build already: only a new one is prepared.
        let built = if info.worktree.join(".git").exists() {
            false
        } else {
            self.prepare(rel, &cfg, &info).await?
        };
        util::private_dir(&info.data_dir)?;
        // Keep the port a release had before a restart: preview URLs stay valid.
        let port = if util::port_free(info.port) {
            info.port
        } else {
            util::free_port()?
        };
        rel.set(|i| i.step = Some(LaunchStep::Health));
        log_line(
            &log,
            &format!("starting `{}` with PORT={port}", cfg.run.join(" ")),
        );
        let spec = SpawnSpec {
            argv: cfg.run.clone(),
            cwd: info.worktree.clone(),
            env: self.release_env(&info, Some(port)),
            log: log.clone(),
        };
        let mut child = self.spawner.spawn(spec).await?;
        let Some(pgid) = child.id() else {
            return Err(PlatformError::NotHealthy {
                release: info.id.clone(),
                detail: "it exited at once".into(),
                tail: log_tail(&log, LOG_TAIL_LINES),
                log,
            });
        };
        let (tx, rx) = watch::channel(None);
        let stopping = Arc::new(AtomicBool::new(false));
        *lock(&rel.proc_) = Some(Proc {
            pgid,
            stopping: stopping.clone(),
            exited: rx.clone(),
        });
        rel.set(|i| {
            i.port = port;
            i.started_at = util::now_string();
        });
        let me = self.clone();
        let watched = rel.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            let how = describe_exit(&status);
            // Whatever it forked goes with it.
            sys::kill_group(pgid, libc::SIGKILL);
            me.spawner.untrack(pgid);
            let _ = tx.send(Some(how.clone()));
            me.on_exit(&watched, &stopping, how);
        });
        match self.wait_healthy(&cfg, &info, port, rx).await {
            Ok(()) => {
                log_line(&log, &format!("healthy on port {port}"));
                Ok(built)
            }
            Err(e) => {
                log_line(&log, "not healthy; stopping it");
                self.stop_process(rel).await;
                Err(e)
            }
        }
    }

    pub(super) fn release_env(
        &self,
        info: &ReleaseInfo,
        port: Option<u16>,
    ) -> Vec<(String, String)> {
        let mut env = vec![
            (
                hotfix_core::env_vars::DATA_DIR.to_string(),
                info.data_dir.to_string_lossy().into_owned(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_RELEASE.to_string(),
                info.id.clone(),
            ),
            (
                hotfix_core::env_vars::HOTFIX_SHA.to_string(),
                info.sha.clone(),
            ),
        ];
        if let Some(p) = port {
            env.push((hotfix_core::env_vars::PORT.to_string(), p.to_string()));
        }
        env
    }

    async fn probe(&self, path: &str, port: u16, limit: Duration) -> Result<u16, String> {
        let uri = format!("http://127.0.0.1:{port}{path}");
        let req = Request::get(uri)
            .header("user-agent", "hotfix-platform-health")
            .body(
                Empty::new()
                    .map_err(|n: std::convert::Infallible| match n {})
                    .boxed(),
            )
            .map_err(|e| e.to_string())?;
        match tokio::time::timeout(limit, self.client.request(req)).await {
            Err(_) => Err(format!("no answer within {limit:?}")),
            Ok(Err(e)) if e.is_connect() => Err("connection refused (not listening yet)".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                let _ = tokio::time::timeout(limit, resp.into_body().collect()).await;
                Ok(status)
            }
        }
    }

    async fn wait_healthy(
        &self,
        cfg: &PlatformConfig,
        info: &ReleaseInfo,
        port: u16,
        mut exited: watch::Receiver<Option<String>>,
    ) -> Result<(), PlatformError> {
        let path = &cfg.health_path;
        let deadline = Instant::now() + cfg.ready_timeout;
        let fail = |detail: String| PlatformError::NotHealthy {
            release: info.id.clone(),
            detail,
            tail: log_tail(&info.log_path, LOG_TAIL_LINES),
            log: info.log_path.clone(),
        };
        // The last answer says the most (a 503 with its reason in the log);
        // a probe cut short by the deadline must not hide it.
        let mut last_answer: Option<u16> = None;
        let mut last_error: Option<String> = None;
        let last = |answer: Option<u16>, error: &Option<String>| match (answer, error) {
            (Some(s), None) => format!("HTTP {s}"),
            (Some(s), Some(e)) => format!("HTTP {s}, then {e}"),
            (None, Some(e)) => e.clone(),
            (None, None) => "never probed".to_string(),
        };
        loop {
            if let Some(how) = exited.borrow().clone() {
                let last = last(last_answer, &last_error);
                return Err(fail(format!(
                    "it exited ({how}) before {path} answered 2xx (last probe: {last})"
                )));
            }
            if self.shutting_down.load(Ordering::SeqCst) {
                return Err(PlatformError::ShuttingDown);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let last = last(last_answer, &last_error);
                return Err(fail(format!(
                    "GET {path} on port {port} did not answer 2xx within {:?} (last probe: {last}); raise ready_timeout if it is just slow",
                    cfg.ready_timeout
                )));
            }
            match self
                .probe(path, port, left.min(Duration::from_secs(2)))
                .await
            {
                Ok(s) if (200..300).contains(&s) => return Ok(()),
                Ok(s) => {
                    last_answer = Some(s);
                    last_error = None;
                }
                Err(e) => last_error = Some(e),
            }
            let pause =
                Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = exited.changed() => {}
            }
        }
    }

    /// A release's process ended. If nobody asked for it and it was serving,
    /// it crashed: report it, point the proxy at an explanation, do not
    /// restart it (a crash loop in production should page a person, and a
    /// rollback is one command away).
    fn on_exit(&self, rel: &Arc<Release>, stopping: &AtomicBool, how: String) {
        if stopping.load(Ordering::SeqCst) || self.shutting_down.load(Ordering::SeqCst) {
            return;
        }
        let info = rel.info();
        if !matches!(info.state, ReleaseState::Live | ReleaseState::Warm) {
            return; // still starting: wait_healthy reports it
        }
        log_line(
            &info.log_path,
            &format!(
                "exited by itself while {:?}: {how}; not restarted",
                info.state
            ),
        );
        eprintln!(
            "hotfix platform: release {} ({}) crashed: {how}",
            info.id, info.sha
        );
        rel.set(|i| {
            i.state = ReleaseState::Crashed;
            i.exit_status = Some(how.clone());
            i.warm_until = None;
        });
        let report = CrashReport {
            release: rel.info(),
            exit_status: how.clone(),
            at: util::now_string(),
            log_path: info.log_path.clone(),
            log_tail: log_tail(&info.log_path, LOG_TAIL_LINES),
        };
        let mut st = lock(&self.state);
        if st.canary.as_ref().is_some_and(|c| Arc::ptr_eq(&c.rel, rel)) {
            // Its share goes back to production at once; the requests it
            // dropped are the evidence (they count against it).
            self.proxy.clear_canary();
            st.canary = None;
            eprintln!(
                "hotfix platform: canary {} crashed; production gets all requests again",
                info.id
            );
        }
        if st.production.as_ref().is_some_and(|p| Arc::ptr_eq(p, rel)) {
            self.proxy.switch(Upstream {
                port: None,
                // Its users now get 503s: they count against it.
                id: info.id.clone(),
                stats: Some(rel.stats.clone()),
                release: info.id.clone(),
                note: format!(
                    "production release {} ({}) crashed ({how}); roll the hotfix back with `hotfix rollback` or deploy a good commit with `hotfix platform deploy REF`; details in `hotfix platform status`",
                    info.id,
                    short(&info.sha)
                ),
            });
        }
        st.crashed.push_front(report);
        st.crashed.truncate(MAX_CRASH_REPORTS);
        self.persist(&st);
    }

    /// Stops a release's process group: SIGTERM, `stop_timeout`, SIGKILL.
    pub(super) async fn stop_process(&self, rel: &Release) {
        let Some(p) = lock(&rel.proc_).take() else {
            return;
        };
        p.stopping.store(true, Ordering::SeqCst);
        let mut rx = p.exited.clone();
        if rx.borrow().is_none() {
            sys::kill_group(p.pgid, libc::SIGTERM);
            let timed_out =
                tokio::time::timeout(self.current().stop_timeout, rx.wait_for(|v| v.is_some()))
                    .await
                    .is_err();
            if timed_out {
                sys::kill_group(p.pgid, libc::SIGKILL);
                let _ = tokio::time::timeout(Duration::from_secs(5), rx.wait_for(|v| v.is_some()))
                    .await;
            }
        }
        log_line(&rel.info().log_path, "stopped by the platform");
    }

    /// Stops a release for good and deletes its worktree (and a preview's data).
    pub(super) async fn discard(&self, rel: &Release) {
        self.stop_process(rel).await;
        // A promotion or cache copy reading its worktree finishes first.
        let deadline = Instant::now() + PIN_WAIT;
        while rel.pins.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let info = rel.info();
        {
            let _g = self.git_lock.lock().await;
            git::worktree_remove(&self.cfg.repo_root, &info.worktree).await;
        }
        if info.kind == ReleaseKind::Preview {
            let _ = tokio::fs::remove_dir_all(&info.data_dir).await;
        }
        rel.set(|i| i.state = ReleaseState::Stopped);
    }

    /// Waits until no request is in flight to `up` any more (or `drain` passed).
    pub(super) async fn drain(&self, up: Arc<Upstream>) {
        let deadline = Instant::now() + self.current().drain;
        while Arc::strong_count(&up) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
