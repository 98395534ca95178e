//! Recovery after a restart (even after `kill -9`): kill what the last run
//! left running in our release directories, remove worktrees no recorded
//! release owns, then bring back production (same proxy port), an abort in
//! progress, the canary, a still-warm previous and the previews, from
//! `state.json`. Apart because it runs once, at start, holding both deploy
//! locks, and must stay safe to repeat after a crash in the middle of it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::proxy::Upstream;
use crate::types::ReleaseState;
use crate::{git, sys, util};

use super::canary::{Canary, weight_bp};
use super::state::{Persisted, StateFile};
use super::{Inner, Release, lock, no_production};

impl Inner {
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
