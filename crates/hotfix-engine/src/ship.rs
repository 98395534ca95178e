//! `hotfix ship`: guards, merge to main (sha-guarded), production deploy,
//! health watch, and the automatic rollback when production gets worse.

use hotfix_core::event::{AntiPattern, EventKind};
use hotfix_core::guards::{LocalBranch, Refusal, ShipFacts, ship_refusals, ship_refusals_with};
use hotfix_core::id::IncidentId;
use hotfix_core::next::Viewer;
use hotfix_core::provider::{CheckState, DeployAction, ForgeError};
use hotfix_core::state::IncidentState;
use hotfix_providers::health::Watch;

use crate::{Engine, EngineError, Result, short};

impl Engine {
    /// `backport`: merge into develop in the same atomic push as main (git-flow's
    /// finish), when both merge cleanly and the forge is the local one;
    /// otherwise `hotfix backport` does it after the deploy.
    pub fn ship(
        &self,
        id: IncidentId,
        allow_wide: Option<&str>,
        backport: bool,
    ) -> Result<IncidentState> {
        let mut s = self.load(id)?;
        if s.merge_sha.is_none() {
            s = self.ship_guards(s, allow_wide)?;
            s = self.merge(s, backport)?;
        } else if s.rollback.is_some() || s.is_closed() {
            return Err(EngineError::Refused(ship_refusals(&s, &self.cfg)));
        }
        let merge_sha = s.merge_sha.clone().unwrap_or_default();
        if self.deployer.health_url().is_none() {
            return Err(EngineError::Usage(
                "no production health URL: set [deploy] health_url in hotfix.toml (a deploy that is not health-checked is not verified)".into(),
            ));
        }

        // A canary first, where configured and the deployer splits traffic.
        if s.deployed_sha.as_deref() != Some(merge_sha.as_str())
            && !self.cfg.deploy.canary.is_empty()
        {
            s = self.canary(id, s, &merge_sha)?;
        }

        // Production deploy of the merge commit.
        if s.deployed_sha.as_deref() != Some(merge_sha.as_str()) {
            let (ctx, plan) = self.production_ctx(&s, &merge_sha);
            let log = self.deployer.log_path(&ctx, DeployAction::Production);
            let step = self.ui.step(&plan.step_title(&merge_sha), log.as_deref());
            match self.deployer.deploy_production(&ctx) {
                Ok(d) => {
                    let build = crate::build::record(&plan, d.build.as_ref());
                    step.done(&crate::build::done_line(&merge_sha, build.as_ref()));
                    self.failpoint("ship.deployed");
                    self.append(
                        &s,
                        vec![EventKind::Deployed {
                            sha: merge_sha.clone(),
                            environment: "production".into(),
                            deployment: d.id,
                            previous_deployment: None,
                            build,
                        }],
                    )?;
                    s = self.load(id)?;
                }
                Err(e) => {
                    // The first line says what happened; the log tail stays in the deploy log.
                    let full = e.to_string();
                    let reason = format!(
                        "production deploy failed: {}",
                        full.lines().next().unwrap_or("")
                    );
                    step.fail(&format!(
                        "production deploy of {} failed",
                        short(&merge_sha)
                    ));
                    self.ui.warn(&full);
                    self.append(
                        &s,
                        vec![EventKind::HealthFailed {
                            sha: merge_sha.clone(),
                            reason: reason.clone(),
                        }],
                    )?;
                    return self.auto_rollback(id, &reason);
                }
            }
        }

        // Health and every analysis, over the watch window.
        if s.healthy_sha.as_deref() != Some(merge_sha.as_str()) {
            s = self.watch_deploy(id, s, &merge_sha)?;
            if backport && s.backport_sha.is_none() {
                s = self.backport(id, crate::backport::BackportMode::Start)?;
            }
        }
        Ok(s)
    }

    /// The watch window after a deploy of `merge_sha`: the health URL and
    /// every `[[analysis]]`. Unhealthy → the automatic rollback with the
    /// numbers; no data under `inconclusive = "pause"` → stop without a
    /// verdict (exit 3): a re-run of `hotfix ship` watches again.
    fn watch_deploy(
        &self,
        id: IncidentId,
        s: IncidentState,
        merge_sha: &str,
    ) -> Result<IncidentState> {
        let watched_from = s.events.len();
        let (result, _) = self.watch_for(&s, merge_sha, self.cfg.deploy.watch.0, "production")?;
        use crate::watch::Outcome;
        let mut batch = result.events(merge_sha);
        match &result.outcome {
            Outcome::Healthy { probes } => batch.push(EventKind::HealthPassed {
                sha: merge_sha.to_string(),
                probes: *probes,
            }),
            Outcome::Unhealthy(reason) => batch.push(EventKind::HealthFailed {
                sha: merge_sha.to_string(),
                reason: reason.clone(),
            }),
            Outcome::Inconclusive(_) => {}
        }
        // The team server watches the deploy too: a verdict it appended
        // while this watch ran wins (as the server keeps one of ours),
        // decided on the fresh log.
        let s = self.append_fresh(id, |st| {
            let meanwhile = st.events.get(watched_from..).unwrap_or_default();
            Ok(
                if meanwhile.iter().any(|e| e.kind.settles_deploy(merge_sha)) {
                    vec![]
                } else {
                    batch.clone()
                },
            )
        })?;
        let moved_on = |s: &IncidentState| {
            EngineError::Failed(format!(
                "{id} moved on while production was watched ({}): `hotfix status {id}` shows where it stands",
                s.phase(&self.cfg.policy).as_str()
            ))
        };
        if s.rollback.is_some() || s.is_closed() {
            return Err(moved_on(&s));
        }
        if s.healthy_sha.as_deref() == Some(merge_sha) {
            // The watch's own verdict was shown as its step ended.
            if !matches!(result.outcome, Outcome::Healthy { .. }) {
                self.ui
                    .info("production healthy: the team server's watch passed it first");
            }
            Ok(s)
        } else if let Some(reason) = s.health_failure.clone() {
            self.auto_rollback(id, &format!("production unhealthy after deploy: {reason}"))
        } else if let Outcome::Inconclusive(why) = &result.outcome {
            Err(EngineError::Waiting(format!(
                "{id} is not verified: production is healthy but the analysis had no data ({why})\n  check that the metric source answers and that the new release gets traffic, then re-run `hotfix ship {id}` (it watches again), or roll back with `hotfix rollback {id} --reason TEXT`"
            )))
        } else {
            Err(moved_on(&s))
        }
    }

    /// Watches health and every analysis for `window` (a step shown as
    /// watching `what`), and shows how it ended.
    fn watch_for(
        &self,
        s: &IncidentState,
        merge_sha: &str,
        window: std::time::Duration,
        what: &str,
    ) -> Result<(crate::watch::WatchResult, ())> {
        let url = self.deployer.health_url().unwrap_or_default();
        let d = &self.cfg.deploy;
        let analyses = &self.cfg.analysis;
        let shown = match d.canary_pause {
            _ if window == d.watch.0 => d.watch.to_string(),
            Some(p) if p.0 == window => p.to_string(),
            _ => hotfix_core::duration::span_of(window),
        };
        let title = if analyses.is_empty() {
            format!("watching {url} for {shown}")
        } else {
            format!(
                "watching {what}: {url} and {} for {shown}",
                hotfix_core::plural::count_as(analyses.len(), "analysis", "analyses"),
            )
        };
        let step = self.ui.step(&title, None);
        let w = Watch {
            url,
            window,
            interval: d.probe_interval.0,
            unhealthy_after: d.unhealthy_after,
            timeout: d.probe_timeout.0,
        };
        // One loop for health alone and health with analyses (with none,
        // it is the plain health watch).
        let result = {
            let mut m = crate::watch::Measurer::new(
                analyses,
                self.git.root(),
                // Asked of git only when an analysis may read the platform.
                (!analyses.is_empty())
                    .then(|| self.platform_dir())
                    .flatten(),
                w.window,
                merge_sha,
                s.previous_main.clone().filter(|p| !p.is_empty()),
            );
            crate::watch::watch_with_analysis(
                &w,
                self.probe.as_ref(),
                analyses,
                |i| m.measure(i),
                |seen| match seen {
                    crate::watch::Seen::Probe(n, Err(e)) => {
                        self.ui.warn(&format!("probe {n}: {e}"))
                    }
                    crate::watch::Seen::Measured {
                        name,
                        error: Some(e),
                        ..
                    } => self.ui.warn(&format!("analysis {name}: {e}")),
                    _ => {}
                },
            )
        };
        use crate::watch::Outcome;
        match &result.outcome {
            Outcome::Healthy { probes } => step.done(&format!(
                "{what} is healthy after {}{}",
                hotfix_core::plural::count(*probes, "probe"),
                if result.analyses.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", {} passed",
                        hotfix_core::plural::count_as(
                            result.analyses.len(),
                            "analysis",
                            "analyses"
                        )
                    )
                }
            )),
            Outcome::Unhealthy(reason) => step.fail(&format!("{what} unhealthy: {reason}")),
            Outcome::Inconclusive(why) => step.fail(&format!("analysis inconclusive: {why}")),
        }
        Ok((result, ()))
    }

    /// The canary steps of `[deploy] canary`: start the merge beside
    /// production at the first weight, watch health and every analysis for
    /// `canary_pause`, raise the weight, and promote at the end (recorded
    /// as `canary_step`s, then `deployed`). Any unhealthy signal aborts it
    /// at once (0% to the new release) and rolls the merge back; production
    /// never ran it in full, so there is no release to put back. A re-run
    /// after a crash or a pause resumes at the step recorded last.
    fn canary(&self, id: IncidentId, s: IncidentState, merge_sha: &str) -> Result<IncidentState> {
        let steps = self.cfg.deploy.canary_steps().map_err(EngineError::Usage)?;
        let pause = self
            .cfg
            .deploy
            .canary_pause
            .map(|p| p.0)
            .unwrap_or(self.cfg.deploy.watch.0);
        let (ctx, plan) = self.production_ctx(&s, merge_sha);
        // How the canary got its build (its start says; the promotion may
        // repeat it). A re-run that resumes past the start has only the plan.
        let mut started: Option<hotfix_core::provider::BuildReport> = None;
        let mut s = s;
        for (i, &weight) in steps.iter().enumerate() {
            let current = s
                .canary
                .as_ref()
                .filter(|c| c.sha == merge_sha && c.aborted.is_none())
                .map(|c| c.weight);
            if current.is_some_and(|c| c > weight) {
                continue;
            }
            if current.is_none_or(|c| c < weight) {
                // What the canary starts from, said before it starts.
                if i == 0
                    && current.is_none()
                    && let Some(n) = plan.note()
                {
                    self.ui
                        .info(&format!("canary of {}: {n}", short(merge_sha)));
                }
                let step = self.ui.step(
                    &format!(
                        "canary: {}% of requests to {}",
                        hotfix_core::analysis::num(weight),
                        short(merge_sha)
                    ),
                    None,
                );
                let r = if i == 0 && current.is_none() {
                    self.deployer
                        .canary_start(&ctx, weight)
                        .map(|d| started = d.build)
                } else {
                    self.deployer.canary_weight(weight)
                };
                match r {
                    Ok(()) => step.done(&format!(
                        "{} takes {}% of requests",
                        short(merge_sha),
                        hotfix_core::analysis::num(weight)
                    )),
                    Err(hotfix_core::provider::DeployError::NotConfigured(why))
                        if current.is_none() && i == 0 =>
                    {
                        step.fail(why);
                        self.ui.warn(&format!(
                            "[deploy] canary is set but {why}: switching production in full"
                        ));
                        return Ok(s);
                    }
                    Err(e) => {
                        step.fail("the canary step failed");
                        let reason = format!(
                            "canary step to {}% failed: {}",
                            hotfix_core::analysis::num(weight),
                            e.to_string().lines().next().unwrap_or("")
                        );
                        return self.abort_canary(id, merge_sha, &reason, vec![]);
                    }
                }
                s = self.append_fresh(id, |st| {
                    Ok(
                        if st
                            .canary
                            .as_ref()
                            .is_some_and(|c| c.sha == merge_sha && c.weight >= weight)
                        {
                            vec![]
                        } else {
                            vec![EventKind::CanaryStep {
                                sha: merge_sha.to_string(),
                                weight,
                            }]
                        },
                    )
                })?;
                self.failpoint("ship.canary_step");
            }
            let (result, _) = self.watch_for(&s, merge_sha, pause, "the canary")?;
            let events = result.events(merge_sha);
            use crate::watch::Outcome;
            match result.outcome {
                Outcome::Healthy { .. } => {
                    if !events.is_empty() {
                        self.append(&s, events)?;
                        s = self.load(id)?;
                    }
                }
                Outcome::Unhealthy(reason) => {
                    return self.abort_canary(id, merge_sha, &reason, events);
                }
                Outcome::Inconclusive(why) => {
                    if !events.is_empty() {
                        self.append(&s, events)?;
                    }
                    return Err(EngineError::Waiting(format!(
                        "{id} is not verified: the canary of {} at {}% is healthy but the analysis had no data ({why})\n  check that the metric source answers and that the canary gets traffic, then re-run `hotfix ship {id}` (it watches this step again), or roll back with `hotfix rollback {id} --reason TEXT` (the canary is aborted)",
                        short(merge_sha),
                        hotfix_core::analysis::num(weight)
                    )));
                }
            }
        }
        let step = self
            .ui
            .step(&format!("promoting the canary {}", short(merge_sha)), None);
        let d = match self.deployer.canary_promote() {
            Ok(d) => d,
            Err(e) => {
                step.fail("the promotion failed");
                let reason = format!(
                    "promoting the canary failed: {}",
                    e.to_string().lines().next().unwrap_or("")
                );
                return self.abort_canary(id, merge_sha, &reason, vec![]);
            }
        };
        let build = crate::build::record(&plan, d.build.as_ref().or(started.as_ref()));
        step.done(&crate::build::done_line(merge_sha, build.as_ref()));
        self.append(
            &s,
            vec![
                EventKind::CanaryStep {
                    sha: merge_sha.to_string(),
                    weight: 100.0,
                },
                EventKind::Deployed {
                    sha: merge_sha.to_string(),
                    environment: "production".into(),
                    deployment: d.id,
                    previous_deployment: None,
                    build,
                },
            ],
        )?;
        self.load(id)
    }

    /// The canary back to 0% at once, recorded with the numbers, then the
    /// automatic rollback of the merge (production never ran it in full).
    fn abort_canary(
        &self,
        id: IncidentId,
        merge_sha: &str,
        reason: &str,
        analysis_events: Vec<EventKind>,
    ) -> Result<IncidentState> {
        self.ui.warn(&format!("aborting the canary: {reason}"));
        if let Err(e) = self.deployer.canary_abort() {
            self.ui.warn(&format!("the canary abort failed: {e}"));
        }
        let mut batch = analysis_events;
        batch.push(EventKind::CanaryAborted {
            sha: merge_sha.to_string(),
            reason: reason.to_string(),
        });
        let s = self.load(id)?;
        self.append(&s, batch)?;
        self.auto_rollback(
            id,
            &format!("canary {} aborted: {reason}", short(merge_sha)),
        )
    }

    /// The embedded platform's state directory, where it keeps its stats
    /// (`[deploy] provider = "local"`; as the CLI opens it).
    fn platform_dir(&self) -> Option<std::path::PathBuf> {
        (self.cfg.deploy.provider == "local")
            .then(|| self.git.common_dir().ok())
            .flatten()
            .map(|d| d.join("hotfix").join("platform"))
    }

    fn auto_rollback(&self, id: IncidentId, reason: &str) -> Result<IncidentState> {
        if !self.cfg.deploy.auto_rollback {
            return Err(EngineError::Failed(format!(
                "{reason}\n  auto_rollback is off: roll back with `hotfix rollback {id} --reason TEXT`"
            )));
        }
        self.ui.warn("rolling back");
        // An aborted canary: production never ran the merge in full.
        let never_deployed = self.load(id).is_ok_and(|s| s.deployed_sha.is_none());
        self.rollback_inner(id, reason, true, None)?;
        let again = match self.load(id) {
            Ok(s) => hotfix_core::next::new_attempt(&s),
            Err(_) => format!("`hotfix start` and `--incident {id}`"),
        };
        let where_now = if never_deployed {
            "production never ran it in full (it stayed on the previous release)"
        } else {
            "production is back on the previous release"
        };
        Err(EngineError::Failed(format!(
            "{id} was rolled back automatically: {reason}\n  {where_now} and the merge is reverted on {}; reassess and start a new attempt with {again}",
            self.cfg.git.main
        )))
    }

    /// Approvals given on the forge (GitHub reviews) become events, under the
    /// same rules as `hotfix approve`: role named by the policy, not the
    /// author, on the current head.
    pub fn sync_forge_approvals(&self, id: IncidentId) -> Result<IncidentState> {
        let s = self.load(id)?;
        let Some(pr) = s.pr else { return Ok(s) };
        let approvals = match self.forge.approvals(pr) {
            Ok(a) => a,
            Err(e) => {
                self.ui.warn(&format!("cannot read the PR's reviews: {e}"));
                return Ok(s);
            }
        };
        let mut s = s;
        // A review that no longer approves on the forge (dismissed, or
        // changes requested since) takes its approval back here too.
        let gone: Vec<String> = s
            .fresh_approvals()
            .iter()
            .filter(|h| h.source == "github")
            .filter(|h| {
                !approvals
                    .iter()
                    .any(|a| a.by.eq_ignore_ascii_case(&h.by) && a.sha == h.sha)
            })
            .map(|h| h.by.clone())
            .collect();
        for by in gone {
            self.ui.warn(&format!(
                "{by}'s review on the forge no longer approves (dismissed or changes requested): their approval is withdrawn"
            ));
            s = self.append_fresh(id, |st| {
                Ok(hotfix_core::guards::withdrawals(
                    st,
                    &by,
                    "the review on the forge no longer approves (dismissed or changes requested)",
                    "github",
                ))
            })?;
        }
        for a in approvals {
            if s.head_sha.as_deref() != Some(a.sha.as_str()) {
                continue;
            }
            let recorded = self.append_fresh(id, |st| {
                Ok(
                    match hotfix_core::guards::check_approve(st, &self.cfg, &a.by) {
                        Ok(hotfix_core::guards::ApproveCheck::Record(role)) => {
                            vec![EventKind::Approved {
                                by: a.by.clone(),
                                role,
                                sha: a.sha.clone(),
                                source: "github".into(),
                            }]
                        }
                        _ => vec![],
                    },
                )
            });
            s = match recorded {
                Ok(s) => s,
                // The team server records forge reviews itself (its
                // webhook); in remote mode it refuses them from a client.
                Err(EngineError::Refused(r)) => {
                    self.ui.warn(&format!(
                        "the review by {} on the forge was not recorded: {}",
                        a.by,
                        r.iter()
                            .map(|r| r.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ));
                    self.load(id)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(s)
    }

    /// The forge's required checks on the head: the failing ones
    /// (`name (detail)`) and the ones still running.
    fn required_checks(&self, s: &IncidentState) -> Result<(Vec<String>, Vec<String>)> {
        let head = s.head_sha.clone().unwrap_or_default();
        let checks = self.forge.required_checks(&head)?;
        let failing = checks
            .iter()
            .filter(|c| c.state == CheckState::Failure)
            .map(|c| format!("{} ({})", c.name, c.detail))
            .collect();
        let pending = checks
            .iter()
            .filter(|c| c.state == CheckState::Pending)
            .map(|c| c.name.clone())
            .collect();
        Ok((failing, pending))
    }

    /// Where the person's branch stands against the pushed head: what was
    /// tested must be what is on the branch now. A clone without the branch,
    /// one behind the head, or one that lacks the head (pushed elsewhere)
    /// has nothing of its own to push.
    fn local_branch(&self, s: &IncidentState) -> Result<LocalBranch> {
        let Some(head) = s.head_sha.as_deref() else {
            return Ok(LocalBranch::InStep);
        };
        let Some(local) = self.git.local_branch_sha(&s.branch)? else {
            return Ok(LocalBranch::InStep);
        };
        if local == head
            || self.git.rev_parse(head)?.is_none()
            || self.git.is_ancestor(&local, head)?
        {
            return Ok(LocalBranch::InStep);
        }
        Ok(if self.git.is_ancestor(head, &local)? {
            let commits = self.git.commits(head, &local)?.len().max(1);
            LocalBranch::Ahead { local, commits }
        } else {
            LocalBranch::Rewritten { local }
        })
    }

    /// Every reason not to ship, at once and in the order to fix them (a
    /// pending push first, approvals of the head it makes last); required
    /// checks that are only still running, and nothing else, wait (exit 3).
    fn ship_refusals(&self, s: &IncidentState) -> Result<Vec<Refusal>> {
        let local = self.local_branch(s)?;
        let (checks_failed, checks_pending) =
            if local == LocalBranch::InStep && s.head_sha.is_some() {
                match self.required_checks(s) {
                    Ok(c) => c,
                    Err(e) => {
                        // Not knowing the forge's checks must not hide the
                        // rest; with nothing else in the way it stops ship.
                        let known = ship_refusals(s, &self.cfg);
                        if known.is_empty() {
                            return Err(e);
                        }
                        self.ui
                            .warn(&format!("cannot read the required checks: {e}"));
                        (vec![], vec![])
                    }
                }
            } else {
                (vec![], vec![])
            };
        let remote = self.store.is_remote();
        let facts = ShipFacts {
            viewer: Viewer::new(Some(&self.actor), remote),
            local,
            checks_failed,
            checks_pending,
        };
        Ok(ship_refusals_with(s, &self.cfg, &facts))
    }

    fn ship_guards(&self, s: IncidentState, allow_wide: Option<&str>) -> Result<IncidentState> {
        let mut s = self.sync_forge_approvals(s.id)?;
        let mut refusals = self.ship_refusals(&s)?;
        let wide = |c: &str| c == "wide_diff" || c == "conflict_markers";
        if let Some(reason) = allow_wide
            && refusals.iter().any(|r| wide(r.code))
        {
            if reason.trim().is_empty() {
                return Err(EngineError::Usage(
                    "--allow-wide needs --reason TEXT".into(),
                ));
            }
            let what: Vec<String> = refusals
                .iter()
                .filter(|r| wide(r.code))
                .map(|r| r.message.clone())
                .collect();
            self.append(
                &s,
                vec![EventKind::AntiPatternRecorded {
                    pattern: AntiPattern::WideDiff,
                    reason: format!("{reason} ({})", what.join("; ")),
                }],
            )?;
            self.ui
                .warn("wide diff allowed; recorded as an anti-pattern on the incident");
            s = self.load(s.id)?;
            refusals = self.ship_refusals(&s)?;
        }
        if let [only] = refusals.as_slice()
            && only.code == "checks_pending"
        {
            return Err(EngineError::Waiting(format!(
                "{}; {}",
                only.message, only.hint
            )));
        }
        if !refusals.is_empty() {
            return Err(EngineError::Refused(refusals));
        }
        Ok(s)
    }

    fn merge(&self, s: IncidentState, backport: bool) -> Result<IncidentState> {
        let id = s.id;
        let head = s.head_sha.clone().unwrap_or_default();
        let pr = s
            .pr
            .ok_or_else(|| EngineError::refused("no_pr", "no PR is open", "run `hotfix push`"))?;
        // The forge fetches; the previous main is the merge's first parent.
        let main = self.cfg.git.main.clone();
        let message = crate::text::merge_message(&s, pr);
        // What production runs now, so a rollback can go back to exactly it
        // (on a platform that deploys main by itself, the merge starts the deploy).
        let previous_deployment = match self.deployer.current_production() {
            Ok(d) => d,
            Err(e) => {
                self.ui
                    .warn(&format!("cannot tell what production runs now: {e}"));
                None
            }
        };
        let develop = self.cfg.git.develop.clone();
        let mut backported = None;
        let mut combined_main: Option<String> = None;
        if backport && self.cfg.forge.provider == "local" {
            let develop_message = crate::text::backport_message(&s, &develop);
            match hotfix_providers::forge::merge::merge_both(
                &self.git,
                self.remote(),
                (&main, &message),
                (&develop, &develop_message),
                (&s.branch, &head),
            )? {
                Some((m, d)) => {
                    self.ui.info(&format!(
                        "merged into {main} ({}) and {develop} ({}) in one atomic push",
                        short(&m),
                        short(&d)
                    ));
                    combined_main = Some(m);
                    backported = Some(d);
                }
                None => self.ui.warn(&format!(
                    "{develop} does not merge cleanly together with {main}: merging {main} only; `hotfix backport` afterwards"
                )),
            }
        }
        let merge_sha = if let Some(m) = combined_main {
            self.forge.record_merge(pr, &m)?;
            m
        } else {
            self.ui
                .info(&format!("merging PR #{pr} ({}) into {main}", short(&head)));
            match self.forge.merge_pr(pr, &head, &message) {
                Ok(m) => m,
                Err(ForgeError::HeadMoved {
                    branch,
                    expected,
                    actual,
                }) => {
                    return Err(EngineError::refused(
                        "head_moved",
                        format!(
                            "{branch} moved since the preview was tested: expected {}, found {}",
                            short(&expected),
                            short(&actual)
                        ),
                        "run `hotfix push` so the new head is previewed, smoke-tested and approved",
                    ));
                }
                Err(ForgeError::Conflict(files)) => {
                    return Err(EngineError::refused(
                        "merge_conflict",
                        format!("merging into {main} conflicts in {}", files.join(", ")),
                        format!(
                            "merge {}/{main} into {} and resolve, then `hotfix push` again",
                            self.remote(),
                            s.branch
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.failpoint("ship.merged");
        // A merge made by a hosted forge is not in this clone yet.
        if self.git.rev_parse(&merge_sha)?.is_none() {
            self.fetch()?;
        }
        // The previous main is the merge's first parent, whatever a re-run saw.
        let previous_main = self
            .git
            .rev_parse(&format!("{merge_sha}^1"))?
            .unwrap_or_default();
        let mut events = vec![EventKind::Merged {
            merge_sha: merge_sha.clone(),
            head_sha: head.clone(),
            previous_main,
            previous_deployment,
            source: "cli".into(),
        }];
        if let Some(d) = backported {
            events.push(EventKind::Backported { merge_sha: d });
        }
        self.append(&s, events)?;
        self.ui.info(&format!("merged as {}", short(&merge_sha)));
        // The preview has served its purpose.
        if let Err(e) = self.deployer.remove_preview(&self.deploy_ctx(&s, &head)) {
            self.ui.warn(&format!("could not remove the preview: {e}"));
        }
        self.load(id)
    }
}
