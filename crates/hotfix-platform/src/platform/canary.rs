//! The canary: a new production release started beside production that gets
//! `weight`% of the proxy's requests, re-weighted, aborted (drained, then
//! discarded) or promoted to production without a restart. Apart from
//! [`super::production`] because a canary is its own state machine beside
//! production (`State::canary`, `state.json`'s `canary` and `aborting`).

use std::sync::Arc;
use std::time::Instant;

use crate::proxy::Upstream;
use crate::types::{
    CanaryInfo, CanaryOutcome, DeployMeta, DeployOutcome, HistoryAction, PreviewedHint,
    ReleaseKind, ReleaseSettings, ReleaseState,
};
use crate::{PlatformError, git, util};

use super::{Inner, Release, lock, short};

/// A release that gets `weight` percent of production's requests.
pub(super) struct Canary {
    pub(super) rel: Arc<Release>,
    pub(super) weight: f64,
    pub(super) since: String,
}

impl Canary {
    pub(super) fn info(&self) -> CanaryInfo {
        CanaryInfo {
            release: self.rel.info(),
            weight: self.weight,
            since: self.since.clone(),
        }
    }
}

impl Inner {
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
}

/// A canary weight in percent (0-100, e.g. 12.5) as basis points.
pub(super) fn weight_bp(weight: f64) -> Result<u32, PlatformError> {
    if !weight.is_finite() || !(0.0..=100.0).contains(&weight) {
        return Err(PlatformError::Invalid(format!(
            "canary weight {weight} must be a percentage from 0 to 100"
        )));
    }
    Ok((weight * 100.0).round() as u32)
}
