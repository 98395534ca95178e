//! Production: a deploy starts the new release beside the old one and switches
//! the proxy only once it is healthy; the old one becomes the warm previous
//! release, cooled down later; a rollback switches back (restarting a cold
//! previous from its worktree). These are the moves the hotfix process relies
//! on, serialised by `prod_lock`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::proxy::Upstream;
use crate::types::{
    DeployMeta, DeployOutcome, HistoryAction, PreviewedHint, ReleaseKind, ReleaseSettings,
    ReleaseState,
};
use crate::{PlatformError, git, util};

use super::{Inner, Release, State, lock, short};

impl Inner {
    pub(super) fn outcome(&self, built: bool, t0: Instant) -> Result<DeployOutcome, PlatformError> {
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
    pub(super) fn retire(
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

    /// After `after`, stops the previous release if it is still the warm
    /// previous (its worktree stays: a later rollback restarts it, no rebuild).
    pub(super) fn schedule_cool(
        self: &Arc<Self>,
        rel: Arc<Release>,
        up: Arc<Upstream>,
        after: Duration,
    ) {
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
}
