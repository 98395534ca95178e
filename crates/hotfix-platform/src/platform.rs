//! The platform itself: releases, production switch and rollback, previews,
//! the state file and recovery after a restart.
//!
//! Locking: `state` (a std mutex, never held across an await) guards the
//! in-memory model, the state file and every proxy switch, so the three always
//! agree. `prod_lock` serialises production deploys and rollbacks;
//! `preview_lock` serialises preview changes, so a slow preview build never
//! delays a rollback.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::Request;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::buildcache::{self, Mode};
use crate::config::PlatformConfig;
use crate::paths::Paths;
use crate::procs::{SpawnSpec, Spawner, describe_exit, run_to_end};
use crate::proxy::{HttpClient, Proxy, Upstream};
use crate::stats::Counters;
use crate::types::{
    BuildHow, BuildInfo, CanaryInfo, CanaryOutcome, CrashReport, DeployMeta, DeployOutcome,
    HistoryAction, HistoryEntry, LaunchStep, PlatformStatus, PreviewInfo, PreviewedHint,
    ReleaseInfo, ReleaseKind, ReleaseSettings, ReleaseState, ReleaseStats,
};
use crate::util::{self, log_line, log_tail};
use crate::{PlatformError, git, sys};

const LOG_TAIL_LINES: usize = 30;
const MAX_CRASH_REPORTS: usize = 20;
const MAX_HISTORY: usize = 50;
/// Builds of removed previews kept for promotion and as cache sources.
/// A few: a ship promotes the newest; more would only cost disk.
const KEEP_BUILDS: usize = 3;
/// How long a discard waits for a promotion or cache copy reading the
/// release's worktree to finish before deleting it anyway.
const PIN_WAIT: Duration = Duration::from_secs(300);

/// A running process of a release.
struct Proc {
    pgid: u32,
    /// Set before the platform stops it, so its exit is not taken for a crash.
    stopping: Arc<AtomicBool>,
    /// `Some(how it ended)` once it exited.
    exited: watch::Receiver<Option<String>>,
}

pub(crate) struct Release {
    info: Mutex<ReleaseInfo>,
    proc_: Mutex<Option<Proc>>,
    /// The settings it was deployed with: a restart of it (a rollback to
    /// it when cold) runs the command that matched its code.
    cfg: Arc<PlatformConfig>,
    /// What the proxy counted of its answers (`GET /v1/stats`).
    stats: Arc<Counters>,
    /// For a production deploy: the build the engine's preview tested.
    hint: Mutex<Option<PreviewedHint>>,
    /// Promotions and cache copies reading its worktree right now: a
    /// discard waits for them (see [`Pin`]).
    pins: AtomicUsize,
}

/// A promotion or a cache copy reads `0`'s worktree: it is not deleted
/// until the pin is dropped.
struct Pin(Arc<Release>);

impl Pin {
    fn new(rel: &Arc<Release>) -> Pin {
        rel.pins.fetch_add(1, Ordering::SeqCst);
        Pin(rel.clone())
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.pins.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The release number of `r12-1a2b3c4` (newest = largest).
fn release_no(id: &str) -> u64 {
    id.strip_prefix('r')
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind that
    // is still the best we know; keep serving rather than cascade the panic.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Release {
    fn new(info: ReleaseInfo, cfg: Arc<PlatformConfig>) -> Arc<Release> {
        Arc::new(Release {
            info: Mutex::new(info),
            proc_: Mutex::new(None),
            cfg,
            stats: Arc::new(Counters::default()),
            hint: Mutex::new(None),
            pins: AtomicUsize::new(0),
        })
    }
    pub fn info(&self) -> ReleaseInfo {
        lock(&self.info).clone()
    }
    fn set(&self, f: impl FnOnce(&mut ReleaseInfo)) {
        f(&mut lock(&self.info));
    }
    fn running(&self) -> bool {
        lock(&self.proc_)
            .as_ref()
            .is_some_and(|p| p.exited.borrow().is_none())
    }
    fn pgid(&self) -> Option<u32> {
        lock(&self.proc_).as_ref().map(|p| p.pgid)
    }
    fn upstream(&self) -> Upstream {
        let i = self.info();
        Upstream {
            port: Some(i.port),
            release: format!("{} ({})", i.id, short(&i.sha)),
            note: String::new(),
            id: i.id,
            stats: Some(self.stats.clone()),
        }
    }
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

fn ms_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn join_notes(notes: &[String]) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// What `state.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StateFile {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub next_id: u64,
    #[serde(default)]
    pub proxy_port: Option<u16>,
    #[serde(default)]
    pub production: Option<Persisted>,
    #[serde(default)]
    pub previous: Option<Persisted>,
    #[serde(default)]
    pub previews: BTreeMap<String, Persisted>,
    #[serde(default)]
    pub crashed: Vec<CrashReport>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The canary and its weight: a restarted platform routes the same share to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<PersistedCanary>,
    /// Aborted canaries not yet discarded: a restart completes the abort.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborting: Vec<Persisted>,
    /// Builds of removed previews, newest first (see [`KEEP_BUILDS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Persisted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistedCanary {
    pub release: Persisted,
    pub weight: f64,
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Persisted {
    #[serde(flatten)]
    pub info: ReleaseInfo,
    /// Process group of the last run, to clean up after a kill -9.
    #[serde(default)]
    pub pgid: Option<u32>,
}

struct State {
    next_id: u64,
    production: Option<Arc<Release>>,
    previous: Option<Arc<Release>>,
    previews: BTreeMap<String, Arc<Release>>,
    crashed: VecDeque<CrashReport>,
    history: VecDeque<HistoryEntry>,
    /// Releases inside [`Inner::launch`] right now.
    starting: Vec<Arc<Release>>,
    /// The canary served beside production, if one runs.
    canary: Option<Canary>,
    /// Aborted canaries still draining: a restart discards them.
    aborting: Vec<Arc<Release>>,
    /// Builds of removed previews (not running), newest first.
    kept: VecDeque<Arc<Release>>,
}

/// A release that gets `weight` percent of production's requests.
struct Canary {
    rel: Arc<Release>,
    weight: f64,
    since: String,
}

impl Canary {
    fn info(&self) -> CanaryInfo {
        CanaryInfo {
            release: self.rel.info(),
            weight: self.weight,
            since: self.since.clone(),
        }
    }
}

pub(crate) struct Inner {
    /// The config the platform started with: its repository, state
    /// directory and production address never change while it runs.
    pub cfg: PlatformConfig,
    /// The release settings of the last successful request (they are sent
    /// with each one; before the first, those of `cfg`): what requests
    /// without settings and the releases brought back after a restart run
    /// with, and the `drain` and `stop_timeout` every stop goes by.
    current: Mutex<Arc<PlatformConfig>>,
    pub paths: Paths,
    pub proxy: Arc<Proxy>,
    pub proxy_port: u16,
    pub token: String,
    client: HttpClient,
    spawner: Spawner,
    state: Mutex<State>,
    prod_lock: tokio::sync::Mutex<()>,
    preview_lock: tokio::sync::Mutex<()>,
    git_lock: tokio::sync::Mutex<()>,
    pub shutting_down: AtomicBool,
    recovering: AtomicBool,
    pub shutdown_tx: watch::Sender<bool>,
}

impl Inner {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: PlatformConfig,
        paths: Paths,
        proxy: Arc<Proxy>,
        proxy_port: u16,
        token: String,
        client: HttpClient,
        spawner: Spawner,
        saved: &StateFile,
        shutdown_tx: watch::Sender<bool>,
    ) -> Arc<Inner> {
        Arc::new(Inner {
            current: Mutex::new(Arc::new(cfg.clone())),
            cfg,
            paths,
            proxy,
            proxy_port,
            token,
            client,
            spawner,
            state: Mutex::new(State {
                next_id: saved.next_id,
                production: None,
                previous: None,
                previews: BTreeMap::new(),
                crashed: saved.crashed.iter().cloned().collect(),
                history: saved.history.iter().take(MAX_HISTORY).cloned().collect(),
                starting: Vec::new(),
                canary: None,
                aborting: Vec::new(),
                kept: VecDeque::new(),
            }),
            prod_lock: tokio::sync::Mutex::new(()),
            preview_lock: tokio::sync::Mutex::new(()),
            git_lock: tokio::sync::Mutex::new(()),
            shutting_down: AtomicBool::new(false),
            recovering: AtomicBool::new(true),
            shutdown_tx,
        })
    }

    pub fn proxy_url(&self) -> String {
        crate::config::url_of(self.cfg.host, self.proxy_port)
    }

    /// The settings in effect now (see [`Inner::current`]).
    fn current(&self) -> Arc<PlatformConfig> {
        lock(&self.current).clone()
    }

    /// The config a request runs with: its own settings on top of the
    /// fixed parts, or the current ones.
    fn config_for(
        &self,
        settings: Option<&ReleaseSettings>,
    ) -> Result<Arc<PlatformConfig>, PlatformError> {
        match settings {
            Some(s) => Ok(Arc::new(self.cfg.with_settings(s)?)),
            None => Ok(self.current()),
        }
    }

    /// After a request that sent settings succeeded, they are the current ones.
    fn adopt(&self, cfg: &Arc<PlatformConfig>) {
        let mut cur = lock(&self.current);
        if !Arc::ptr_eq(&cur, cfg) {
            *cur = cfg.clone();
        }
    }

    /// Records a change of production (the caller holds the state lock and
    /// persists).
    fn record(
        st: &mut State,
        action: HistoryAction,
        rel: &Release,
        replaced: Option<String>,
        meta: DeployMeta,
    ) {
        let i = rel.info();
        st.history.push_front(HistoryEntry {
            at: util::now_string(),
            action,
            release: i.id,
            sha: i.sha,
            replaced,
            meta,
        });
        st.history.truncate(MAX_HISTORY);
    }

    fn check_running(&self) -> Result<(), PlatformError> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(PlatformError::ShuttingDown);
        }
        Ok(())
    }

    // ---------------------------------------------------------------- state file

    fn persist(&self, st: &State) {
        let p = |r: &Arc<Release>| Persisted {
            info: r.info(),
            pgid: r.pgid(),
        };
        let file = StateFile {
            version: 1,
            next_id: st.next_id,
            proxy_port: Some(self.proxy_port),
            production: st.production.as_ref().map(p),
            previous: st.previous.as_ref().map(p),
            previews: st.previews.iter().map(|(k, r)| (k.clone(), p(r))).collect(),
            crashed: st.crashed.iter().cloned().collect(),
            history: st.history.iter().cloned().collect(),
            canary: st.canary.as_ref().map(|c| PersistedCanary {
                release: p(&c.rel),
                weight: c.weight,
                since: c.since.clone(),
            }),
            aborting: st.aborting.iter().map(p).collect(),
            kept: st.kept.iter().map(p).collect(),
        };
        let res = serde_json::to_vec_pretty(&file)
            .map_err(|e| PlatformError::Json {
                context: "state".into(),
                detail: e.to_string(),
            })
            .and_then(|bytes| util::atomic_write(&self.paths.state(), &bytes, 0o600));
        if let Err(e) = res {
            eprintln!("hotfix platform: WARNING: could not record state: {e}");
        }
    }

    fn persist_now(&self) {
        let st = lock(&self.state);
        self.persist(&st);
    }

    // ---------------------------------------------------------------- releases

    fn new_release(
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
    async fn launch(self: &Arc<Self>, rel: &Arc<Release>) -> Result<bool, PlatformError> {
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

    // ---------------------------------------------------------------- build once

    /// Checks `info.sha` out into the release's new worktree and gets it its
    /// build: promoted from a built release of the same tree (production
    /// and canary releases; the engine's previewed build preferred), else
    /// `build` on top of the `[deploy] cache` of an earlier build with the
    /// same lockfiles, else `build` from nothing. Records how, and how long
    /// it took, in the release's [`BuildInfo`]. Returns whether `build` ran.
    async fn prepare(
        self: &Arc<Self>,
        rel: &Arc<Release>,
        cfg: &Arc<PlatformConfig>,
        info: &ReleaseInfo,
    ) -> Result<bool, PlatformError> {
        let t0 = Instant::now();
        let log = &info.log_path;
        let tree = match git::tree_of(&self.cfg.repo_root, &info.sha).await {
            Ok(t) => t,
            Err(e) => {
                log_line(log, &format!("cannot read the tree of {}: {e}", info.sha));
                return Err(e);
            }
        };
        // Decided before the checkout, so a source found is pinned while
        // the worktree is being made.
        let promotion = (info.kind == ReleaseKind::Production && cfg.promote)
            .then(|| self.promotion_source(rel, cfg, &tree));
        self.checkout(info).await?;
        let mut notes: Vec<String> = Vec::new();
        match promotion {
            Some(Ok(src)) => {
                rel.set(|i| i.step = Some(LaunchStep::Promote));
                let from = src.0.info();
                log_line(
                    log,
                    &format!(
                        "promoting the build of {} ({}): same tree {}, so no build runs",
                        from.id,
                        short(&from.sha),
                        short(&tree)
                    ),
                );
                match self.promote(&src, cfg, info).await {
                    Ok(n) => {
                        let ms = ms_since(t0);
                        log_line(
                            log,
                            &format!(
                                "promoted from {}: {} files ({}) linked, ready in {ms} ms: this release runs the tested build",
                                from.id,
                                n.files,
                                human_bytes(n.bytes)
                            ),
                        );
                        let cache_key = from.build.and_then(|b| b.cache_key);
                        rel.set(|i| {
                            i.build = Some(BuildInfo {
                                how: BuildHow::Promoted,
                                tree,
                                from: Some(from.id),
                                from_sha: Some(from.sha),
                                cache_key,
                                ms,
                                build_ms: None,
                                note: None,
                            })
                        });
                        return Ok(false);
                    }
                    Err(e) => {
                        drop(src);
                        let why =
                            format!("the build of {} could not be carried over ({e})", from.id);
                        log_line(log, &format!("{why}; building in a fresh checkout instead"));
                        // Files linked so far are the tested build's own:
                        // a build must never write into them.
                        self.checkout(info).await?;
                        notes.push(why);
                    }
                }
            }
            Some(Err(why)) => {
                log_line(log, &format!("not promoted: {why}; building"));
                notes.push(why);
            }
            None => {}
        }
        let key = {
            let (wt, extra) = (info.worktree.clone(), cfg.cache_key.clone());
            tokio::task::spawn_blocking(move || buildcache::cache_key(&wt, &extra))
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some(build) = &cfg.build else {
            let ms = ms_since(t0);
            rel.set(|i| {
                i.build = Some(BuildInfo {
                    how: BuildHow::None,
                    tree,
                    from: None,
                    from_sha: None,
                    cache_key: key,
                    ms,
                    build_ms: None,
                    note: join_notes(&notes),
                })
            });
            return Ok(false);
        };
        let mut how = BuildHow::Cold;
        let mut from = None;
        if !cfg.cache.is_empty() {
            rel.set(|i| i.step = Some(LaunchStep::Cache));
            match self.restore_cache(rel, cfg, info, key.as_deref()).await {
                Ok(src) => {
                    how = BuildHow::Cached;
                    from = Some(src);
                }
                Err(why) => {
                    log_line(log, &format!("cache: {why}; building cold"));
                    notes.push(format!("cold: {why}"));
                }
            }
        }
        rel.set(|i| i.step = Some(LaunchStep::Build));
        log_line(log, &format!("building: {}", build.join(" ")));
        let spec = SpawnSpec {
            argv: build.clone(),
            cwd: info.worktree.clone(),
            env: self.release_env(info, None),
            log: log.clone(),
        };
        let tb = Instant::now();
        if let Err(detail) = run_to_end(&self.spawner, spec, cfg.build_timeout).await {
            log_line(log, &format!("build failed: {detail}"));
            return Err(PlatformError::Build {
                release: info.id.clone(),
                detail,
                tail: log_tail(log, LOG_TAIL_LINES),
                log: log.clone(),
            });
        }
        let build_ms = ms_since(tb);
        let (from, from_sha) = from.unzip();
        let bi = BuildInfo {
            how,
            tree,
            from,
            from_sha,
            cache_key: key,
            ms: ms_since(t0),
            build_ms: Some(build_ms),
            note: join_notes(&notes),
        };
        log_line(
            log,
            &format!(
                "built ({}) in {build_ms} ms; ready to start after {} ms",
                bi.describe(),
                bi.ms
            ),
        );
        rel.set(|i| i.build = Some(bi));
        Ok(true)
    }

    /// `git worktree add` of the release's sha (a leftover directory of a
    /// crash, or of a promotion given up, is removed first).
    async fn checkout(&self, info: &ReleaseInfo) -> Result<(), PlatformError> {
        log_line(
            &info.log_path,
            &format!("checking out {} into {}", info.sha, info.worktree.display()),
        );
        let _g = self.git_lock.lock().await;
        if let Err(e) = git::worktree_add(&self.cfg.repo_root, &info.worktree, &info.sha).await {
            log_line(&info.log_path, &format!("checkout failed: {e}"));
            return Err(e);
        }
        Ok(())
    }

    /// Every release whose worktree holds a finished build: production,
    /// previous, canary, previews and the kept builds of removed previews
    /// (never one still starting). Newest first.
    fn built_releases(st: &State, except: &Arc<Release>) -> Vec<Arc<Release>> {
        let mut out: Vec<Arc<Release>> = st
            .production
            .iter()
            .chain(st.previous.iter())
            .chain(st.canary.iter().map(|c| &c.rel))
            .chain(st.previews.values())
            .chain(st.kept.iter())
            .filter(|r| !Arc::ptr_eq(r, except))
            .filter(|r| {
                let i = r.info();
                i.build.is_some()
                    && !matches!(i.state, ReleaseState::Stopped | ReleaseState::Starting)
                    && i.worktree.join(".git").exists()
            })
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(release_no(&r.info().id)));
        out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        out
    }

    /// The built release `rel` can be promoted from: one of the same tree,
    /// built with the same command and not crashed, the engine's previewed
    /// sha first. Otherwise why not, in words for the log and the answer.
    fn promotion_source(
        &self,
        rel: &Arc<Release>,
        cfg: &PlatformConfig,
        tree: &str,
    ) -> Result<Pin, String> {
        let hint = lock(&rel.hint).clone();
        let st = lock(&self.state);
        let same_tree: Vec<Arc<Release>> = Self::built_releases(&st, rel)
            .into_iter()
            .filter(|r| {
                let i = r.info();
                i.state != ReleaseState::Crashed && i.build.as_ref().is_some_and(|b| b.tree == tree)
            })
            .collect();
        let (usable, other_build): (Vec<_>, Vec<_>) = same_tree
            .into_iter()
            .partition(|r| r.cfg.build == cfg.build);
        if let Some(h) = &hint
            && let Some(r) = usable.iter().find(|r| r.info().sha == h.sha)
        {
            return Ok(Pin::new(r));
        }
        if let Some(r) = usable.first() {
            return Ok(Pin::new(r));
        }
        Err(match (&hint, other_build.first()) {
            (_, Some(r)) => format!(
                "the build command changed since {} built this tree",
                r.info().id
            ),
            (Some(h), None) if h.tree != tree => format!(
                "main moved: tree {} differs from the previewed {} (preview {})",
                short(tree),
                short(&h.tree),
                short(&h.sha)
            ),
            (Some(h), None) => format!(
                "the preview's build is gone (no release of {} is kept)",
                short(&h.sha)
            ),
            (None, None) => format!("no built release of this tree ({})", short(tree)),
        })
    }

    /// Links the build outputs of `src` into `info`'s fresh worktree: the
    /// `[deploy] artifacts` paths, or every untracked and ignored file of
    /// `src`'s worktree. Tracked files get `src`'s mtimes too, so the
    /// promoted worktree is indistinguishable from the tested one (and a
    /// later cache copy from it is as incremental as one from `src`).
    async fn promote(
        &self,
        src: &Pin,
        cfg: &PlatformConfig,
        info: &ReleaseInfo,
    ) -> Result<buildcache::Carried, String> {
        let from = src.0.info();
        let configured = !cfg.artifacts.is_empty();
        let paths: Vec<PathBuf> = if configured {
            cfg.artifacts.iter().map(PathBuf::from).collect()
        } else {
            git::untracked(&from.worktree)
                .await
                .map_err(|e| e.to_string())?
        };
        let tracked = git::tracked(&info.worktree)
            .await
            .map_err(|e| e.to_string())?;
        let (sw, dw) = (from.worktree.clone(), info.worktree.clone());
        tokio::task::spawn_blocking(move || {
            let mut total = buildcache::Carried::default();
            for p in &paths {
                // `git ls-files --directory` writes `target/`: one path.
                let p: PathBuf = p.components().collect();
                let src = sw.join(&p);
                if std::fs::symlink_metadata(&src).is_err() {
                    if configured {
                        return Err(format!("it has no `{}`", p.display()));
                    }
                    continue;
                }
                let n = buildcache::restore(&src, &dw.join(&p), Mode::Link)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                total.files += n.files;
                total.bytes += n.bytes;
            }
            buildcache::sync_mtimes(&sw, &dw, &tracked);
            Ok(total)
        })
        .await
        .map_err(|e| format!("the copy stopped: {e}"))?
    }

    /// Copies each `[deploy] cache` path from the newest built release with
    /// the same cache key into `info`'s fresh worktree, and gives tracked
    /// files unchanged since that release its mtimes. Returns the release
    /// it copied from (id, sha), or why there was none to copy from.
    async fn restore_cache(
        &self,
        rel: &Arc<Release>,
        cfg: &PlatformConfig,
        info: &ReleaseInfo,
        key: Option<&str>,
    ) -> Result<(String, String), String> {
        let Some(key) = key else {
            return Err("the lockfiles could not be read to key the cache".into());
        };
        let src = {
            let st = lock(&self.state);
            let built = Self::built_releases(&st, rel);
            let same = built
                .iter()
                .find(|r| r.info().build.and_then(|b| b.cache_key).as_deref() == Some(key));
            match (same, built.first()) {
                (Some(r), _) => Pin::new(r),
                (None, Some(newest)) => {
                    let i = newest.info();
                    let old = i.build.and_then(|b| b.cache_key).unwrap_or_default();
                    return Err(format!(
                        "the lockfiles differ from every kept build's (newest {}: cache key {} here {}), so its dependencies are rebuilt",
                        i.id,
                        short(&old),
                        short(key)
                    ));
                }
                (None, None) => return Err("no earlier build to take it from".into()),
            }
        };
        let from = src.0.info();
        // Unchanged tracked files get the source's mtimes; without the
        // list (a git error) they keep the checkout's, which only costs
        // rebuilding more than needed.
        let unchanged: Vec<PathBuf> =
            match git::changed(&self.cfg.repo_root, &from.sha, &info.sha).await {
                Ok(c) => {
                    let changed: std::collections::HashSet<PathBuf> = c.into_iter().collect();
                    git::tracked(&info.worktree)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| !changed.contains(p))
                        .collect()
                }
                Err(_) => Vec::new(),
            };
        let (sw, dw, log) = (
            from.worktree.clone(),
            info.worktree.clone(),
            info.log_path.clone(),
        );
        let (paths, id) = (cfg.cache.clone(), from.id.clone());
        let copied = tokio::task::spawn_blocking(move || {
            let _pin = src;
            let mut copied = 0;
            for p in &paths {
                let t = Instant::now();
                let s = sw.join(p);
                if std::fs::symlink_metadata(&s).is_err() {
                    log_line(&log, &format!("cache: {id} has no `{p}`; it starts empty"));
                    continue;
                }
                match buildcache::restore(&s, &dw.join(p), Mode::Copy) {
                    Ok(n) => {
                        copied += 1;
                        log_line(
                            &log,
                            &format!(
                                "cache: `{p}` copied from {id} (same lockfiles): {} files, {} in {} ms",
                                n.files,
                                human_bytes(n.bytes),
                                ms_since(t)
                            ),
                        );
                    }
                    Err(e) => log_line(
                        &log,
                        &format!("cache: `{p}` could not be copied from {id} ({e}); it starts empty"),
                    ),
                }
            }
            if copied > 0 {
                buildcache::sync_mtimes(&sw, &dw, &unchanged);
            }
            copied
        })
        .await
        .unwrap_or(0);
        if copied == 0 {
            return Err(format!("nothing could be copied from {}", from.id));
        }
        Ok((from.id, from.sha))
    }

    fn release_env(&self, info: &ReleaseInfo, port: Option<u16>) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "DATA_DIR".to_string(),
                info.data_dir.to_string_lossy().into_owned(),
            ),
            ("HOTFIX_RELEASE".to_string(), info.id.clone()),
            ("HOTFIX_SHA".to_string(), info.sha.clone()),
        ];
        if let Some(p) = port {
            env.push(("PORT".to_string(), p.to_string()));
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
    async fn stop_process(&self, rel: &Release) {
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
    async fn discard(&self, rel: &Release) {
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
    async fn drain(&self, up: Arc<Upstream>) {
        let deadline = Instant::now() + self.current().drain;
        while Arc::strong_count(&up) > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // ---------------------------------------------------------------- production

    fn outcome(&self, built: bool, t0: Instant) -> Result<DeployOutcome, PlatformError> {
        let st = lock(&self.state);
        let Some(prod) = &st.production else {
            return Err(PlatformError::Conflict("no production release".into()));
        };
        Ok(DeployOutcome {
            release: prod.info(),
            previous: st.previous.as_ref().map(|p| p.info()),
            url: self.proxy_url(),
            built,
            elapsed_ms: t0.elapsed().as_millis() as u64,
        })
    }

    /// New production release for `sha`, started beside the current one; the
    /// proxy switches only once it is healthy; the old production stays warm.
    pub async fn deploy_production(
        self: &Arc<Self>,
        rev: &str,
        settings: Option<&ReleaseSettings>,
        meta: DeployMeta,
        previewed: Option<PreviewedHint>,
    ) -> Result<DeployOutcome, PlatformError> {
        let t0 = Instant::now();
        self.check_running()?;
        let cfg = self.config_for(settings)?;
        let sha = git::resolve_commit(&self.cfg.repo_root, rev).await?;
        let _g = self.prod_lock.lock().await;
        self.check_running()?;
        if let Some(c) = &lock(&self.state).canary {
            return Err(PlatformError::Conflict(format!(
                "canary {} ({}) gets {}% of production's requests: promote it (POST /v1/canary/promote) or abort it (POST /v1/canary/abort) before another production deploy",
                c.rel.info().id,
                short(&c.rel.info().sha),
                c.weight
            )));
        }
        let already = lock(&self.state).production.as_ref().is_some_and(|p| {
            let i = p.info();
            i.sha == sha && i.state == ReleaseState::Live && p.running()
        });
        if already {
            self.adopt(&cfg);
            return self.outcome(false, t0); // already live: a re-run is a no-op
        }
        let rel = self.new_release(
            ReleaseKind::Production,
            None,
            &sha,
            cfg.clone(),
            meta.clone(),
        );
        *lock(&rel.hint) = previewed;
        let built = match self.launch(&rel).await {
            Ok(b) => b,
            Err(e) => {
                self.discard(&rel).await;
                self.persist_now();
                return Err(e);
            }
        };
        // The old production becomes the previous release (warm), unless it
        // had crashed: then rollback keeps pointing at the last release that
        // served well, and the crashed one is discarded.
        self.adopt(&cfg);
        let (discarded, old_up, warm_prev) = {
            let mut st = lock(&self.state);
            rel.set(|i| i.state = ReleaseState::Live);
            let old_up = self.proxy.switch(rel.upstream());
            let old_prod = st.production.replace(rel.clone());
            let replaced = old_prod.as_ref().map(|p| p.info().sha);
            Self::record(&mut st, HistoryAction::Deploy, &rel, replaced, meta);
            let (discarded, warm_prev) = Self::retire(&mut st, old_prod, cfg.warm);
            self.persist(&st);
            (discarded, old_up, warm_prev)
        };
        eprintln!(
            "hotfix platform: production is now {} ({sha})",
            rel.info().id
        );
        if let Some(d) = discarded {
            let me = self.clone();
            tokio::spawn(async move { me.discard(&d).await });
        }
        if let Some(p) = warm_prev {
            self.schedule_cool(p, old_up, cfg.warm);
        }
        self.outcome(built, t0)
    }

    /// The production release replaced by a deploy becomes the previous one
    /// (warm for `warm`), unless it had crashed: then rollback keeps pointing
    /// at the last release that served well. Returns the release to discard
    /// and the one to cool down later.
    fn retire(
        st: &mut State,
        old_prod: Option<Arc<Release>>,
        warm: Duration,
    ) -> (Option<Arc<Release>>, Option<Arc<Release>>) {
        match old_prod {
            Some(p) if p.info().state != ReleaseState::Crashed => {
                let discarded = st.previous.replace(p.clone());
                if p.running() {
                    let until = util::now()
                        .checked_add(
                            jiff::SignedDuration::try_from(warm)
                                .unwrap_or(jiff::SignedDuration::MAX),
                        )
                        .unwrap_or(util::now());
                    p.set(|i| {
                        i.state = ReleaseState::Warm;
                        i.warm_until = Some(until.to_string());
                    });
                } else {
                    p.set(|i| i.state = ReleaseState::Cold);
                }
                (discarded, Some(p))
            }
            crashed => (crashed, None),
        }
    }

    // ---------------------------------------------------------------- canary

    fn canary_outcome(&self, built: bool, t0: Instant) -> CanaryOutcome {
        let st = lock(&self.state);
        CanaryOutcome {
            canary: st.canary.as_ref().map(Canary::info),
            production: st.production.as_ref().map(|p| p.info()),
            url: self.proxy_url(),
            built,
            elapsed_ms: u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Starts `rev` beside production and sends it `weight` percent of the
    /// requests once it is healthy. A canary of another sha is aborted
    /// first (its requests in flight finish); one of the same sha is only
    /// re-weighted.
    pub async fn canary_start(
        self: &Arc<Self>,
        rev: &str,
        weight: f64,
        settings: Option<&ReleaseSettings>,
        meta: DeployMeta,
        previewed: Option<PreviewedHint>,
    ) -> Result<CanaryOutcome, PlatformError> {
        let t0 = Instant::now();
        self.check_running()?;
        let bp = weight_bp(weight)?;
        let cfg = self.config_for(settings)?;
        let sha = git::resolve_commit(&self.cfg.repo_root, rev).await?;
        let _g = self.prod_lock.lock().await;
        self.check_running()?;
        {
            let st = lock(&self.state);
            match &st.production {
                Some(p) if p.info().state == ReleaseState::Live && p.running() => {
                    if p.info().sha == sha {
                        return Err(PlatformError::Conflict(format!(
                            "{} already serves production: a canary of it would compare it with itself",
                            short(&sha)
                        )));
                    }
                }
                _ => {
                    return Err(PlatformError::Conflict(
                        "a canary runs beside a serving production release, and there is none: deploy one first (`hotfix platform deploy REF`)".into(),
                    ));
                }
            }
            if st.canary.as_ref().is_some_and(|c| c.rel.info().sha == sha) {
                drop(st);
                self.adopt(&cfg);
                return self.canary_weight(weight);
            }
        }
        let rel = self.new_release(ReleaseKind::Production, None, &sha, cfg.clone(), meta);
        *lock(&rel.hint) = previewed;
        let built = match self.launch(&rel).await {
            Ok(b) => b,
            Err(e) => {
                self.discard(&rel).await;
                self.persist_now();
                return Err(e);
            }
        };
        self.adopt(&cfg);
        let replaced = {
            let mut st = lock(&self.state);
            rel.set(|i| i.state = ReleaseState::Live);
            let old_up = self.proxy.set_canary(Some(rel.upstream()), bp);
            let old = st.canary.replace(Canary {
                rel: rel.clone(),
                weight,
                since: util::now_string(),
            });
            if let Some(o) = &old {
                st.aborting.push(o.rel.clone());
            }
            self.persist(&st);
            old.map(|o| (o.rel, old_up))
        };
        eprintln!(
            "hotfix platform: canary {} ({sha}) gets {weight}% of production's requests",
            rel.info().id
        );
        if let Some((old, up)) = replaced {
            self.finish_abort(old, up);
        }
        Ok(self.canary_outcome(built, t0))
    }

    /// Sends `weight` percent of the requests to the canary from now on.
    /// Needs no deploy lock: it is one routing change, never delayed by a build.
    pub fn canary_weight(self: &Arc<Self>, weight: f64) -> Result<CanaryOutcome, PlatformError> {
        let t0 = Instant::now();
        let bp = weight_bp(weight)?;
        {
            let mut st = lock(&self.state);
            let Some(c) = st.canary.as_mut() else {
                return Err(PlatformError::Conflict(
                    "no canary runs; start one with POST /v1/canary".into(),
                ));
            };
            c.weight = weight;
            self.proxy.set_canary(None, bp);
            self.persist(&st);
        }
        Ok(self.canary_outcome(false, t0))
    }

    /// Stops routing to the canary at once (0%); it is stopped and discarded
    /// once its requests in flight finished (up to `drain`). Without a
    /// canary it is a no-op: an abort re-run after a crash must not fail.
    pub fn canary_abort(self: &Arc<Self>) -> CanaryOutcome {
        let t0 = Instant::now();
        let aborted = {
            let mut st = lock(&self.state);
            let c = st.canary.take();
            let up = self.proxy.clear_canary();
            if let Some(c) = &c {
                st.aborting.push(c.rel.clone());
            }
            self.persist(&st);
            c.map(|c| (c.rel, up))
        };
        if let Some((rel, up)) = aborted {
            eprintln!("hotfix platform: canary {} aborted", rel.info().id);
            self.finish_abort(rel, up);
        }
        self.canary_outcome(false, t0)
    }

    /// Drains, stops and discards an aborted canary in the background, then
    /// forgets it in the state file (a restart before that completes it).
    fn finish_abort(self: &Arc<Self>, rel: Arc<Release>, up: Option<Arc<Upstream>>) {
        let me = self.clone();
        tokio::spawn(async move {
            if let Some(up) = up {
                me.drain(up).await;
            }
            me.discard(&rel).await;
            let mut st = lock(&me.state);
            st.aborting.retain(|r| !Arc::ptr_eq(r, &rel));
            me.persist(&st);
        });
    }

    /// The canary takes all the requests and becomes production (the same
    /// process: nothing restarts, sticky clients carry on); the old
    /// production becomes the warm previous release, as after a deploy.
    pub async fn canary_promote(
        self: &Arc<Self>,
        meta: Option<DeployMeta>,
    ) -> Result<DeployOutcome, PlatformError> {
        let t0 = Instant::now();
        self.check_running()?;
        let _g = self.prod_lock.lock().await;
        let (rel, discarded, old_up, warm_prev) = {
            let mut st = lock(&self.state);
            let Some(c) = st.canary.take() else {
                return Err(PlatformError::Conflict(
                    "no canary runs to promote; start one with POST /v1/canary".into(),
                ));
            };
            let old_up = self.proxy.promote_canary();
            let old_prod = st.production.replace(c.rel.clone());
            let replaced = old_prod.as_ref().map(|p| p.info().sha);
            let meta = meta.or_else(|| c.rel.info().origin).unwrap_or_default();
            Self::record(&mut st, HistoryAction::Deploy, &c.rel, replaced, meta);
            let (discarded, warm_prev) = Self::retire(&mut st, old_prod, c.rel.cfg.warm);
            self.persist(&st);
            (c.rel, discarded, old_up, warm_prev)
        };
        eprintln!(
            "hotfix platform: canary {} promoted to production",
            rel.info().id
        );
        if let Some(d) = discarded {
            let me = self.clone();
            tokio::spawn(async move { me.discard(&d).await });
        }
        if let (Some(p), Some(up)) = (warm_prev, old_up) {
            self.schedule_cool(p, up, rel.cfg.warm);
        }
        self.outcome(false, t0)
    }

    /// After `after`, stops the previous release if it is still the warm
    /// previous (its worktree stays: a later rollback restarts it, no rebuild).
    fn schedule_cool(self: &Arc<Self>, rel: Arc<Release>, up: Arc<Upstream>, after: Duration) {
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            me.drain(up).await;
            let _g = me.prod_lock.lock().await;
            let still = {
                let st = lock(&me.state);
                st.previous.as_ref().is_some_and(|p| Arc::ptr_eq(p, &rel)) && rel.running()
            };
            if still {
                me.stop_process(&rel).await;
                rel.set(|i| {
                    i.state = ReleaseState::Cold;
                    i.warm_until = None;
                });
                me.persist_now();
            }
        });
    }

    /// Switches production back to the previous release (or to `to_sha`).
    /// Warm previous: a proxy switch. Cold: restarted from its worktree. The
    /// release rolled back from is drained, stopped and discarded.
    pub async fn rollback(
        self: &Arc<Self>,
        to: Option<&str>,
        settings: Option<&ReleaseSettings>,
        meta: DeployMeta,
    ) -> Result<DeployOutcome, PlatformError> {
        let t0 = Instant::now();
        self.check_running()?;
        let cfg = self.config_for(settings)?;
        let to_sha = match to {
            Some(r) => Some(git::resolve_commit(&self.cfg.repo_root, r).await?),
            None => None,
        };
        // A rollback means "back to what served before": a canary goes first
        // (0% at once), and with no previous release that is all it does.
        let had_canary = lock(&self.state).canary.is_some();
        if had_canary {
            self.canary_abort();
        }
        let _g = self.prod_lock.lock().await;
        self.check_running()?;
        if had_canary && to_sha.is_none() && lock(&self.state).previous.is_none() {
            drop(_g);
            return self.outcome(false, t0);
        }
        let (target, fresh) = {
            let st = lock(&self.state);
            let prev = st.previous.clone();
            match (&to_sha, prev) {
                (None, Some(p)) => (p, false),
                (None, None) => {
                    return Err(PlatformError::Conflict(
                        "there is no previous release to roll back to; deploy the commit you want with `hotfix platform deploy REF`".into(),
                    ));
                }
                (Some(s), Some(p)) if p.info().sha == *s => (p, false),
                (Some(s), _) => {
                    if st
                        .production
                        .as_ref()
                        .is_some_and(|p| p.info().sha == *s && p.running())
                    {
                        drop(st);
                        return self.outcome(false, t0);
                    }
                    drop(st);
                    let rel = self.new_release(
                        ReleaseKind::Production,
                        None,
                        s,
                        cfg.clone(),
                        meta.clone(),
                    );
                    (rel, true)
                }
            }
        };
        let mut built = false;
        if !target.running() {
            match self.launch(&target).await {
                Ok(b) => built = b,
                Err(e) => {
                    if fresh {
                        self.discard(&target).await;
                    } else {
                        target.set(|i| i.state = ReleaseState::Cold);
                    }
                    self.persist_now();
                    return Err(e);
                }
            }
        }
        let (bad, old_up) = {
            let mut st = lock(&self.state);
            target.set(|i| {
                i.state = ReleaseState::Live;
                i.warm_until = None;
            });
            let old_up = self.proxy.switch(target.upstream());
            let bad = st.production.replace(target.clone());
            let replaced = bad.as_ref().map(|b| b.info().sha);
            Self::record(&mut st, HistoryAction::Rollback, &target, replaced, meta);
            if st
                .previous
                .as_ref()
                .is_some_and(|p| Arc::ptr_eq(p, &target))
            {
                st.previous = None;
            }
            self.persist(&st);
            (bad, old_up)
        };
        self.adopt(&cfg);
        eprintln!(
            "hotfix platform: rolled production back to {}",
            target.info().id
        );
        if let Some(bad) = bad {
            let me = self.clone();
            tokio::spawn(async move {
                me.drain(old_up).await;
                me.discard(&bad).await;
            });
        }
        self.outcome(built, t0)
    }

    // ---------------------------------------------------------------- previews

    pub async fn deploy_preview(
        self: &Arc<Self>,
        key: &str,
        rev: &str,
        settings: Option<&ReleaseSettings>,
        meta: DeployMeta,
    ) -> Result<PreviewInfo, PlatformError> {
        check_key(key)?;
        self.check_running()?;
        let cfg = self.config_for(settings)?;
        let sha = git::resolve_commit(&self.cfg.repo_root, rev).await?;
        let _g = self.preview_lock.lock().await;
        self.check_running()?;
        if let Some(p) = lock(&self.state).previews.get(key)
            && p.info().sha == sha
            && p.running()
            && p.info().state == ReleaseState::Live
        {
            self.adopt(&cfg);
            return Ok(preview_info(key, p));
        }
        let rel = self.new_release(ReleaseKind::Preview, Some(key), &sha, cfg.clone(), meta);
        if let Err(e) = self.launch(&rel).await {
            self.discard(&rel).await;
            self.persist_now();
            return Err(e);
        }
        rel.set(|i| i.state = ReleaseState::Live);
        self.adopt(&cfg);
        let old = {
            let mut st = lock(&self.state);
            let old = st.previews.insert(key.to_string(), rel.clone());
            self.persist(&st);
            old
        };
        if let Some(old) = old {
            self.discard(&old).await;
        }
        eprintln!(
            "hotfix platform: preview {key} is {} ({sha})",
            rel.info().id
        );
        Ok(preview_info(key, &rel))
    }

    pub async fn remove_preview(self: &Arc<Self>, key: &str) -> Result<(), PlatformError> {
        check_key(key)?;
        let _g = self.preview_lock.lock().await;
        let old = {
            let mut st = lock(&self.state);
            let old = st.previews.remove(key);
            self.persist(&st);
            old
        };
        match old {
            Some(old) => {
                self.keep_build(old).await;
                Ok(())
            }
            None => Err(PlatformError::NotFound(format!(
                "there is no preview `{key}`"
            ))),
        }
    }

    /// A removed preview: its process stops and its data goes, but a
    /// finished build stays (not running) among the kept builds, so the
    /// production deploy of the merge that follows can promote it; the
    /// oldest beyond [`KEEP_BUILDS`] are discarded.
    async fn keep_build(self: &Arc<Self>, rel: Arc<Release>) {
        let keep = rel.info().build.is_some_and(|b| b.how != BuildHow::None)
            && rel.info().state != ReleaseState::Crashed;
        if !keep {
            self.discard(&rel).await;
            return;
        }
        self.stop_process(&rel).await;
        let _ = tokio::fs::remove_dir_all(&rel.info().data_dir).await;
        rel.set(|i| {
            i.state = ReleaseState::Cold;
            i.warm_until = None;
        });
        let evicted: Vec<Arc<Release>> = {
            let mut st = lock(&self.state);
            st.kept.push_front(rel);
            let at = KEEP_BUILDS.min(st.kept.len());
            let out = st.kept.split_off(at);
            self.persist(&st);
            out.into_iter().collect()
        };
        for old in evicted {
            self.discard(&old).await;
        }
    }

    pub fn status(&self) -> PlatformStatus {
        let st = lock(&self.state);
        PlatformStatus {
            pid: std::process::id(),
            url: self.proxy_url(),
            port: self.proxy_port,
            recovering: self.recovering.load(Ordering::SeqCst),
            production: st.production.as_ref().map(|p| p.info()),
            previous: st.previous.as_ref().map(|p| p.info()),
            previews: st
                .previews
                .iter()
                .map(|(k, r)| preview_info(k, r))
                .collect(),
            crashed: st.crashed.iter().cloned().collect(),
            starting: st.starting.iter().map(|r| r.info()).collect(),
            history: st.history.iter().cloned().collect(),
            settings: Some(self.current().settings()),
            canary: st.canary.as_ref().map(Canary::info),
            builds: st.kept.iter().map(|r| r.info()).collect(),
        }
    }

    /// What the proxy counted, per release serving (or kept warm for) production.
    pub fn stats(&self) -> Vec<(ReleaseStats, [u64; 6])> {
        let st = lock(&self.state);
        let mut out = Vec::new();
        let mut add = |rel: &Release, role: &str| {
            let i = rel.info();
            out.push(rel.stats.snapshot(&i.id, &i.sha, role));
        };
        if let Some(p) = &st.production {
            add(p, "production");
        }
        if let Some(c) = &st.canary {
            add(&c.rel, "canary");
        }
        if let Some(p) = &st.previous {
            add(p, "previous");
        }
        out
    }

    // ---------------------------------------------------------------- restart

    /// Brings back what `saved` recorded: production first (on the same proxy
    /// port, re-running `run` in its existing worktree; rebuilding only if the
    /// worktree is gone), then a still-warm previous, then previews.
    pub async fn recover(self: &Arc<Self>, saved: StateFile) {
        let _p = self.prod_lock.lock().await;
        let _v = self.preview_lock.lock().await;
        // Leftovers of a platform killed with -9 (its direct children died with
        // it, but anything they forked may not have).
        let all = saved
            .production
            .iter()
            .chain(saved.previous.iter())
            .chain(saved.previews.values())
            .chain(saved.canary.iter().map(|c| &c.release))
            .chain(saved.aborting.iter());
        for r in all {
            if let Some(pgid) = r.pgid
                && group_is_ours(pgid, &self.paths.releases())
            {
                sys::kill_group(pgid, libc::SIGKILL);
            }
        }
        // What `hotfix.toml` says now: the settings a release was deployed
        // with lived in the memory of the platform that stopped.
        let cfg = self.current();
        let restore = |p: &Persisted| {
            let mut info = p.info.clone();
            info.state = ReleaseState::Starting;
            info.step = None;
            Release::new(info, cfg.clone())
        };
        // Kept builds come back as they were (not running); one whose
        // worktree is gone is forgotten.
        for p in &saved.kept {
            if p.info.worktree.join(".git").exists() {
                let rel = restore(p);
                rel.set(|i| i.state = ReleaseState::Cold);
                lock(&self.state).kept.push_back(rel);
            }
        }
        self.remove_leftovers(&saved).await;
        if let Some(p) = &saved.production {
            let rel = restore(p);
            lock(&self.state).production = Some(rel.clone());
            match self.launch(&rel).await {
                Ok(_) => {
                    let st = lock(&self.state);
                    rel.set(|i| i.state = ReleaseState::Live);
                    self.proxy.switch(rel.upstream());
                    self.persist(&st);
                    eprintln!("hotfix platform: production {} is back", rel.info().id);
                }
                Err(e) => {
                    eprintln!("hotfix platform: could not bring production back: {e}");
                    rel.set(|i| {
                        i.state = ReleaseState::Crashed;
                        i.exit_status =
                            Some(format!("did not come back after a platform restart: {e}"));
                    });
                    self.proxy.switch(Upstream {
                        port: None,
                        id: rel.info().id,
                        stats: Some(rel.stats.clone()),
                        release: rel.info().id,
                        note: format!(
                            "production release {} did not come back after a platform restart; see `hotfix platform status`",
                            rel.info().id
                        ),
                    });
                    self.persist_now();
                }
            }
        } else {
            self.proxy.switch(no_production());
        }
        // An abort in progress is completed: nothing of it runs any more.
        for p in &saved.aborting {
            self.discard(&restore(p)).await;
        }
        if let Some(c) = &saved.canary {
            let rel = restore(&c.release);
            let prod_live = lock(&self.state)
                .production
                .as_ref()
                .is_some_and(|p| p.info().state == ReleaseState::Live);
            let back = if prod_live {
                self.launch(&rel).await.map_err(|e| e.to_string())
            } else {
                Err("production did not come back".to_string())
            };
            match back {
                Ok(_) => {
                    let mut st = lock(&self.state);
                    rel.set(|i| i.state = ReleaseState::Live);
                    self.proxy
                        .set_canary(Some(rel.upstream()), weight_bp(c.weight).unwrap_or(0));
                    st.canary = Some(Canary {
                        rel: rel.clone(),
                        weight: c.weight,
                        since: c.since.clone(),
                    });
                    self.persist(&st);
                    eprintln!(
                        "hotfix platform: canary {} is back with {}% of the requests",
                        rel.info().id,
                        c.weight
                    );
                }
                Err(e) => {
                    // Safe side: production gets everything; the abort is recorded.
                    eprintln!(
                        "hotfix platform: canary {} did not come back ({e}); production gets all requests",
                        rel.info().id
                    );
                    self.discard(&rel).await;
                    self.persist_now();
                }
            }
        }
        if let Some(p) = &saved.previous {
            let rel = restore(p);
            let warm = p.info.state == ReleaseState::Warm
                && p.info
                    .warm_until
                    .as_deref()
                    .and_then(|w| w.parse::<jiff::Timestamp>().ok())
                    .is_some_and(|w| w > util::now());
            rel.set(|i| i.state = ReleaseState::Cold);
            lock(&self.state).previous = Some(rel.clone());
            if warm && self.launch(&rel).await.is_ok() {
                let until = p.info.warm_until.clone();
                rel.set(|i| {
                    i.state = ReleaseState::Warm;
                    i.warm_until = until.clone();
                });
                let left = until
                    .and_then(|w| w.parse::<jiff::Timestamp>().ok())
                    .map(|w| w.duration_since(util::now()))
                    .and_then(|d| Duration::try_from(d).ok())
                    .unwrap_or(Duration::ZERO);
                let up = Arc::new(rel.upstream());
                self.schedule_cool(rel.clone(), up, left);
            } else {
                rel.set(|i| {
                    i.state = ReleaseState::Cold;
                    i.warm_until = None;
                });
            }
            self.persist_now();
        }
        for (key, p) in &saved.previews {
            let rel = restore(p);
            lock(&self.state).previews.insert(key.clone(), rel.clone());
            match self.launch(&rel).await {
                Ok(_) => rel.set(|i| i.state = ReleaseState::Live),
                Err(e) => rel.set(|i| {
                    i.state = ReleaseState::Crashed;
                    i.exit_status =
                        Some(format!("did not come back after a platform restart: {e}"));
                }),
            }
            self.persist_now();
        }
        self.recovering.store(false, Ordering::SeqCst);
        self.persist_now();
    }

    /// Worktrees under `releases/` that no recorded release owns: what a
    /// platform killed in the middle of a checkout, a cache copy, a build
    /// or a promotion left (temporaries included). Its re-run makes a new
    /// release, so they are only disk to give back.
    async fn remove_leftovers(&self, saved: &StateFile) {
        let owned: std::collections::HashSet<PathBuf> = saved
            .production
            .iter()
            .chain(saved.previous.iter())
            .chain(saved.previews.values())
            .chain(saved.canary.iter().map(|c| &c.release))
            .chain(saved.aborting.iter())
            .chain(saved.kept.iter())
            .map(|p| p.info.worktree.clone())
            .collect();
        let Ok(mut dir) = tokio::fs::read_dir(self.paths.releases()).await else {
            return;
        };
        let mut stale = Vec::new();
        while let Ok(Some(e)) = dir.next_entry().await {
            let path = e.path();
            if !owned.contains(&path) {
                stale.push(path);
            }
        }
        let _g = self.git_lock.lock().await;
        for path in stale {
            eprintln!(
                "hotfix platform: removing {} (left by an interrupted release)",
                path.display()
            );
            git::worktree_remove(&self.cfg.repo_root, &path).await;
        }
    }

    /// Stops every process the platform started; the state file keeps what
    /// was running so the next start brings it back.
    pub async fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let _ = self.shutdown_tx.send(true);
        self.persist_now();
        self.spawner.stop_all(self.current().stop_timeout).await;
    }
}

pub(crate) fn no_production() -> Upstream {
    Upstream {
        port: None,
        id: String::new(),
        stats: None,
        release: "-".into(),
        note: "no production release yet; deploy one with `hotfix platform deploy` (the remote's main)".into(),
    }
}

fn preview_info(key: &str, rel: &Release) -> PreviewInfo {
    let release = rel.info();
    PreviewInfo {
        key: key.to_string(),
        url: format!("http://127.0.0.1:{}", release.port),
        release,
    }
}

/// A canary weight in percent (0-100, e.g. 12.5) as basis points.
fn weight_bp(weight: f64) -> Result<u32, PlatformError> {
    if !weight.is_finite() || !(0.0..=100.0).contains(&weight) {
        return Err(PlatformError::Invalid(format!(
            "canary weight {weight} must be a percentage from 0 to 100"
        )));
    }
    Ok((weight * 100.0).round() as u32)
}

/// Preview keys name directories and URLs: `HF-3`, `pr-12`, `hotfix_pdf`.
fn check_key(key: &str) -> Result<(), PlatformError> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && !key.starts_with(['.', '-'])
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(PlatformError::Invalid(format!(
            "preview key `{key}` must be 1-64 letters, digits, `-`, `_` or `.` (e.g. HF-3)"
        )))
    }
}

/// Whether process group `pgid` still runs inside our releases directory —
/// so a recorded pgid reused by an unrelated process is never killed.
fn group_is_ours(pgid: u32, releases: &std::path::Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        let cwd: Option<PathBuf> = std::fs::read_link(format!("/proc/{pgid}/cwd")).ok();
        cwd.is_some_and(|c| c.starts_with(releases))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (pgid, releases);
        false
    }
}
