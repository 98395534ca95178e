//! The platform itself: releases, production switch and rollback, previews,
//! canaries, the state file and recovery after a restart.
//!
//! Locking: `state` (a std mutex, never held across an await) guards the
//! in-memory model, the state file and every proxy switch, so the three always
//! agree. `prod_lock` serialises production deploys and rollbacks;
//! `preview_lock` serialises preview changes, so a slow preview build never
//! delays a rollback.
//!
//! This module holds what every part shares: the model ([`Release`],
//! [`State`], [`Inner`]), construction, the settings in effect, the history
//! record and shutdown. Each responsibility is its own `impl Inner` in a
//! submodule, so a change to one (say, how a build is promoted) is read and
//! reviewed without reading the rest:
//!
//! - [`state`]: the `state.json` format and writing it;
//! - [`release`]: one release's life: id, start, health check, crash, stop, discard;
//! - [`build`]: getting a new worktree its build (promotion, `[deploy] cache`, `build`);
//! - [`production`]: deploy, the switch, the warm previous release, rollback;
//! - [`canary`]: a canary beside production: start, weight, abort, promote;
//! - [`preview`]: previews per key and the builds kept after their removal;
//! - [`status`]: what `/v1/status` and `/v1/stats` report;
//! - [`recover`]: bringing back what `state.json` recorded after a restart.

mod build;
mod canary;
mod preview;
mod production;
mod recover;
mod release;
mod state;
mod status;

pub(crate) use state::StateFile;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::PlatformConfig;
use crate::paths::Paths;
use crate::procs::Spawner;
use crate::proxy::{HttpClient, Proxy, Upstream};
use crate::stats::Counters;
use crate::types::{
    CrashReport, DeployMeta, HistoryAction, HistoryEntry, PreviewedHint, ReleaseInfo,
    ReleaseSettings,
};
use crate::{PlatformError, util};
use canary::Canary;

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
    /// discard waits for them (see `build::Pin`).
    pins: AtomicUsize,
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
