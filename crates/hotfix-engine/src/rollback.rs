//! The process's Rollback Plan: previous deployment back, merge reverted on
//! main, and on develop too when the hotfix was already backported (so a
//! later merge cannot silently carry the bad fix or its revert across).
//!
//! A rollback only undoes what production runs: an incident that is closed,
//! or that later incidents shipped on top of, is refused with what would be
//! lost, unless `--force` (recorded with its reason). Each step is recorded
//! as it happens (`rollback_step`), so a rollback cut short by a failure or
//! a crash shows as such in `status`, and running it again finishes it.

use hotfix_core::admit::rollback_refusals;
use hotfix_core::event::{EventKind, RollbackHealth, RollbackStep};
use hotfix_core::id::IncidentId;
use hotfix_core::provider::DeployAction;
use hotfix_core::state::IncidentState;
use hotfix_providers::health::{Watch, watch_with};

use crate::{Engine, EngineError, Result, short};

/// How a rollback is asked for.
struct Plan {
    reason: String,
    automatic: bool,
    forced: Option<String>,
}

impl Engine {
    /// `hotfix rollback ID --reason TEXT [--force]`.
    pub fn rollback(&self, id: IncidentId, reason: &str, force: bool) -> Result<IncidentState> {
        if reason.trim().is_empty() {
            return Err(EngineError::Usage("a rollback needs --reason TEXT".into()));
        }
        self.rollback_inner(id, reason, false, force.then(|| reason.to_string()))
    }

    pub(crate) fn rollback_inner(
        &self,
        id: IncidentId,
        reason: &str,
        automatic: bool,
        forced: Option<String>,
    ) -> Result<IncidentState> {
        let s = self.load(id)?;
        if s.rollback.is_some() {
            self.ui.info(&format!("{id} is already rolled back"));
            return Ok(s);
        }
        let Some(merge_sha) = s.merge_sha.clone() else {
            return Err(EngineError::refused(
                "not_merged",
                format!("{id} is not merged: production never ran it, nothing to roll back"),
                "keep fixing and `hotfix push`, or abandon the branch",
            ));
        };
        // A rollback under way goes on as it was decided.
        let plan = match &s.rollback_progress {
            Some(p) => {
                self.ui.info(&format!(
                    "{id}: finishing the rollback started earlier ({})",
                    p.reason
                ));
                Plan {
                    reason: p.reason.clone(),
                    automatic: p.automatic,
                    forced: p.forced.clone(),
                }
            }
            None => {
                if forced.is_none() {
                    self.refuse_not_live(&s)?;
                } else {
                    self.ui.warn(&format!(
                        "{id}: rollback forced past its guards; recorded on the incident"
                    ));
                }
                Plan {
                    reason: reason.to_string(),
                    automatic,
                    forced,
                }
            }
        };
        let done = s.rollback_progress.clone();
        let previous_main = match s.previous_main.clone().filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => self.first_parent(&merge_sha)?,
        };

        // 0. A canary still taking a share of requests goes to 0% first
        // (issue 12: a rollback during a paused canary step).
        let s = match s
            .canary
            .as_ref()
            .filter(|c| c.aborted.is_none() && c.weight < 100.0 && c.sha == merge_sha)
        {
            Some(c) => {
                if let Err(e) = self.deployer.canary_abort() {
                    self.ui.warn(&format!("the canary abort failed: {e}"));
                }
                self.append(
                    &s,
                    vec![hotfix_core::event::EventKind::CanaryAborted {
                        sha: c.sha.clone(),
                        reason: plan.reason.clone(),
                    }],
                )?;
                self.load(id)?
            }
            None => s,
        };

        // 1. Production back on the previous release.
        let deployed = s.deployed_sha.is_some() || s.health_failure.is_some();
        if deployed && !done.as_ref().is_some_and(|p| p.production) {
            let ctx = self.deploy_ctx(&s, &previous_main);
            let log = self.deployer.log_path(&ctx, DeployAction::Rollback);
            let step = self.ui.step(
                &format!("rolling production back to {}", short(&previous_main)),
                log.as_deref(),
            );
            match self
                .deployer
                .rollback(&ctx, s.previous_deployment.as_deref())
            {
                Ok(()) => step.done(&format!("production is back on {}", short(&previous_main))),
                Err(e) => {
                    step.fail("the production rollback failed");
                    return Err(self.stalled(
                        id,
                        &plan,
                        format!("production rollback failed: {e}"),
                    ));
                }
            }
            self.failpoint("rollback.deployed");
            let health = self.probe_restored(&previous_main);
            self.step(
                id,
                &plan,
                RollbackStep::Production {
                    previous_deployment: s.previous_deployment.clone(),
                    sha: Some(previous_main.clone()).filter(|p| !p.is_empty()),
                    health,
                },
            )?;
        }

        // 2. Revert the merge on main.
        let main = self.cfg.git.main.clone();
        let main_revert = match done.as_ref().and_then(|p| p.main_revert.clone()) {
            Some(r) => r,
            None => {
                let msg = crate::text::revert_message(&s, &main, &plan.reason);
                let r = self
                    .forge
                    .revert_merge(&main, &merge_sha, &msg)
                    .map_err(|e| {
                        self.stalled(
                            id,
                            &plan,
                            format!(
                                "production is rolled back, but reverting the merge on {main} failed: {e}"
                            ),
                        )
                    })?;
                self.ui
                    .info(&format!("reverted the merge on {main}: {}", short(&r)));
                self.failpoint("rollback.main_reverted");
                self.step(id, &plan, RollbackStep::MainReverted { sha: r.clone() })?;
                r
            }
        };

        // 3. And on develop, if it got there.
        let develop = self.cfg.git.develop.clone();
        let mut develop_revert = done.as_ref().and_then(|p| p.develop_revert.clone());
        if let Some((_, wt)) = &s.backport_conflict {
            self.abort_backport_worktree(std::path::Path::new(wt));
        }
        if let Some(b) = &s.backport_sha
            && develop_revert.is_none()
        {
            let msg = crate::text::revert_message(&s, &develop, &plan.reason);
            // The backport was a git merge pushed by hotfix (not a forge PR):
            // revert it the same way, whatever the forge.
            let r = hotfix_providers::forge::merge::revert_on(
                &self.git,
                self.remote(),
                &develop,
                b,
                &msg,
            )
            .map_err(|e| {
                self.stalled(
                    id,
                    &plan,
                    format!(
                        "main is reverted, but reverting the backport on {develop} failed: {e}; revert {} on {develop} by hand (`git revert -m 1`), then run `hotfix rollback {id} --reason TEXT` again",
                        short(b)
                    ),
                )
            })?;
            self.ui.info(&format!(
                "reverted the backport on {develop}: {}",
                short(&r)
            ));
            self.failpoint("rollback.develop_reverted");
            self.step(id, &plan, RollbackStep::DevelopReverted { sha: r.clone() })?;
            develop_revert = Some(r);
        }
        self.append_fresh(id, |s| {
            Ok(if s.rollback.is_some() {
                vec![]
            } else {
                vec![EventKind::RolledBack {
                    reason: plan.reason.clone(),
                    automatic: plan.automatic,
                    main_revert: Some(main_revert.clone()),
                    develop_revert: develop_revert.clone(),
                    forced: plan.forced.clone(),
                }]
            })
        })
    }

    /// Refuses a rollback that would undo more than this incident: it is
    /// closed, later incidents shipped on top of it, or production runs
    /// something else than its deployment.
    fn refuse_not_live(&self, s: &IncidentState) -> Result<()> {
        let others = self.with_ledger(|l| l.others(s))?;
        let mut refusals = rollback_refusals(s, &others);
        if refusals.is_empty()
            && let Some(mine) = deployment_of(s)
            && let Ok(Some(now)) = self.deployer.current_production()
            && now != mine
        {
            refusals.push(hotfix_core::guards::Refusal {
                code: "not_live",
                message: format!(
                    "{} is not what production runs: production serves deployment {now}, {} deployed {mine}",
                    s.id, s.id
                ),
                hint: format!(
                    "roll back what production runs now, or `hotfix rollback {} --force --reason TEXT` (recorded)",
                    s.id
                ),
            });
        }
        if refusals.is_empty() {
            Ok(())
        } else {
            Err(EngineError::Refused(refusals))
        }
    }

    /// Records one step of the rollback.
    fn step(&self, id: IncidentId, plan: &Plan, step: RollbackStep) -> Result<IncidentState> {
        self.append_fresh(id, |_| {
            Ok(vec![EventKind::RollbackStep {
                step: step.clone(),
                reason: plan.reason.clone(),
                automatic: plan.automatic,
                forced: plan.forced.clone(),
            }])
        })
    }

    /// Records that a step failed (so `status` says the rollback is
    /// incomplete) and returns the error to report.
    fn stalled(&self, id: IncidentId, plan: &Plan, what: String) -> EngineError {
        let what = hotfix_providers::redact::redact(&what);
        if let Err(e) = self.step(id, plan, RollbackStep::Stalled { what: what.clone() }) {
            self.ui
                .warn(&format!("could not record the incomplete rollback: {e}"));
        }
        EngineError::Failed(format!(
            "{what}\n  the rollback of {id} is incomplete; run `hotfix rollback {id} --reason TEXT` again to finish it"
        ))
    }

    /// The rollback's own health check: production's health URL probed
    /// until one probe answers 2xx, or `unhealthy_after` fail in a row
    /// (the watch's settings, without its window: the previous release
    /// served before, so one good answer says it serves again). `None`
    /// when there is no health URL to probe.
    fn probe_restored(&self, sha: &str) -> Option<RollbackHealth> {
        let url = self.deployer.health_url()?;
        let d = &self.cfg.deploy;
        let w = Watch {
            url,
            window: std::time::Duration::ZERO,
            interval: d.probe_interval.0,
            unhealthy_after: d.unhealthy_after.max(1),
            timeout: d.probe_timeout.0,
        };
        // One line, no secrets, short: it goes into the log and on screens.
        let clean = |t: &str| -> String {
            hotfix_core::display::line(&hotfix_providers::redact::redact(t))
                .chars()
                .take(300)
                .collect()
        };
        let mut last = String::new();
        let outcome = watch_with(&w, self.probe.as_ref(), |_, r| {
            last = match r {
                Ok(status) => format!("status {status}"),
                Err(e) => clean(e),
            };
        });
        let health = match outcome {
            Ok(probes) => {
                self.ui.info(&format!(
                    "production healthy on {} ({})",
                    short(sha),
                    hotfix_core::plural::count(probes, "probe")
                ));
                RollbackHealth {
                    healthy: true,
                    probes,
                    detail: last,
                }
            }
            Err(reason) => {
                self.ui.warn(&format!(
                    "production is back on {} but still unhealthy: {reason}",
                    short(sha)
                ));
                RollbackHealth {
                    healthy: false,
                    probes: d.unhealthy_after.max(1),
                    detail: clean(&reason),
                }
            }
        };
        Some(health)
    }

    /// `sha^1`, fetching when a hosted forge made the commit.
    fn first_parent(&self, sha: &str) -> Result<String> {
        if self.git.rev_parse(sha)?.is_none() {
            self.fetch()?;
        }
        Ok(self.git.rev_parse(&format!("{sha}^1"))?.unwrap_or_default())
    }
}

/// The deployment id production got for this incident's merge, if the
/// deploy provider gave one.
fn deployment_of(s: &IncidentState) -> Option<String> {
    let merge = s.merge_sha.as_deref()?;
    s.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::Deployed {
            sha, deployment, ..
        } if sha == merge => deployment.clone(),
        _ => None,
    })
}
