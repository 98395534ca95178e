//! `hotfix push`: push the branch, open the `[HOTFIX]` PR, deploy the preview,
//! run the smoke checks against it. Each part is skipped when the record (and
//! the world) says it is already done for this head.

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::provider::{DeployAction, NewPr};
use hotfix_core::state::IncidentState;

use crate::{Engine, EngineError, Result, short};

/// Ends a PR body that a person wrote (`hotfix push --impact`): invisible
/// on the forge, it tells a later push to keep the body, not regenerate it.
const IMPACT_GIVEN: &str = "<!-- hotfix: impact assessment given with --impact -->";

/// GitHub refuses a PR body over 65536 characters; leave room for the marker.
const MAX_IMPACT: usize = 60_000;

impl Engine {
    /// `impact`: the impact assessment a person wrote, as the PR body
    /// instead of the generated one (`None`: keep one given earlier, else
    /// generate it).
    pub fn push(&self, id: IncidentId, impact: Option<&str>) -> Result<IncidentState> {
        let impact = impact.map(checked_impact).transpose()?;
        let s = self.load(id)?;
        if s.is_closed() {
            return Err(EngineError::refused(
                "closed",
                format!("{id} is closed"),
                "nothing to push",
            ));
        }
        if s.rollback.is_some() {
            return Err(EngineError::refused(
                "rolled_back",
                format!("{id} was rolled back; its branch {} is done", s.branch),
                format!(
                    "start a new attempt: {}",
                    hotfix_core::next::new_attempt(&s)
                ),
            ));
        }
        if s.merge_sha.is_some() {
            return Err(EngineError::refused(
                "merged",
                format!("{id} is already merged to {}", self.cfg.git.main),
                format!(
                    "a further change needs a new incident or a rollback first; next: `hotfix status {id}`"
                ),
            ));
        }
        let sha = self.git.local_branch_sha(&s.branch)?.ok_or_else(|| {
            EngineError::Failed(format!(
                "branch {} is missing locally; recreate it with `git checkout -b {} {}/{}`",
                s.branch,
                s.branch,
                self.remote(),
                s.branch
            ))
        })?;
        if sha == s.base_sha {
            return Err(EngineError::refused(
                "no_commits",
                format!("{} has no commits beyond {}", s.branch, self.cfg.git.main),
                "commit the fix on the hotfix branch first",
            ));
        }
        if self.git.current_branch()?.as_deref() == Some(s.branch.as_str()) {
            let dirty = self.git.dirty_files()?;
            if !dirty.is_empty() {
                self.ui.warn(&format!(
                    "uncommitted changes are not part of the push: {}",
                    dirty.join(", ")
                ));
            }
        }

        // 1. The branch on the remote.
        self.fetch()?;
        let remote_sha = self.git.rev_parse(&self.tracking(&s.branch))?;
        if remote_sha.as_deref() != Some(sha.as_str()) {
            if let Some(r) = &remote_sha {
                let ours = s.head_sha.as_deref() == Some(r.as_str());
                if !ours && !self.git.is_ancestor(r, &sha)? {
                    return Err(EngineError::refused(
                        "diverged",
                        format!(
                            "{}/{} has commits that are not in your {} ({})",
                            self.remote(),
                            s.branch,
                            s.branch,
                            short(r)
                        ),
                        format!(
                            "someone else pushed: `git pull --rebase {} {}` then `hotfix push`",
                            self.remote(),
                            s.branch
                        ),
                    ));
                }
            }
            let refspec = format!("refs/heads/{}:refs/heads/{}", s.branch, s.branch);
            let lease = (
                format!("refs/heads/{}", s.branch),
                remote_sha.clone().unwrap_or_default(),
            );
            self.git
                .push(self.remote(), &[refspec], true, &[lease])
                .map_err(|e| {
                    EngineError::Failed(format!(
                        "push of {} failed: {}",
                        s.branch,
                        hotfix_providers::redact::redact(&e.to_string())
                    ))
                })?;
            self.ui
                .info(&format!("pushed {} at {}", s.branch, short(&sha)));
        }
        self.failpoint("push.pushed");
        let s = if !push_recorded(&s, &sha) {
            let base = self
                .git
                .merge_base(&self.tracking(&self.cfg.git.main), &sha)?
                .unwrap_or_else(|| s.base_sha.clone());
            let commits = self.git.commits(&base, &sha)?;
            let diff = self.git.diff_stat(&base, &sha)?;
            // Re-decided on the fresh log: the team server may record the
            // forge's echo of this very push (`head_moved`) in between.
            self.append_fresh(id, |s| {
                if push_recorded(s, &sha) {
                    return Ok(vec![]);
                }
                Ok(vec![EventKind::Pushed {
                    sha: sha.clone(),
                    commits: commits.clone(),
                    diff: diff.clone(),
                }])
            })?
        } else {
            s
        };
        self.failpoint("push.recorded");

        // 2. The PR.
        let title = crate::text::pr_title(&s);
        let body = self.pr_body(&s, impact.as_deref())?;
        // A PR closed on the forge without merging is replaced (or found
        // reopened) rather than updated.
        let s = match s.pr.filter(|_| !s.pr_closed) {
            Some(n) => {
                self.forge.update_pr(n, &title, &body)?;
                s
            }
            None => {
                let pr = match self.forge.find_open_pr(&s.branch)? {
                    Some(pr) => pr,
                    None => self.forge.open_pr(&NewPr {
                        title: title.clone(),
                        body,
                        head: s.branch.clone(),
                        base: self.cfg.git.main.clone(),
                    })?,
                };
                self.failpoint("push.pr_opened");
                self.ui
                    .info(&format!("opened PR #{}: {}", pr.number, pr.title));
                self.append(
                    &s,
                    vec![EventKind::PrOpened {
                        number: pr.number,
                        url: pr.url,
                    }],
                )?;
                // "Tag Tech Lead for immediate review."
                let mut people = self.cfg.team.tech_leads.clone();
                if self.cfg.policy.for_severity(s.severity).reviewers > 0 {
                    people.extend(self.cfg.team.reviewers.iter().cloned());
                }
                people.retain(|p| !s.non_approvers().contains(&p.to_ascii_lowercase()));
                if let Err(e) = self.forge.request_reviews(pr.number, &people) {
                    self.ui.warn(&format!("could not request reviews: {e}"));
                }
                self.load(id)?
            }
        };

        // 3. The preview of exactly this head.
        let p = self.cfg.policy.for_severity(s.severity).clone();
        if !p.preview {
            self.ui
                .info("the policy needs no preview for this severity");
            return Ok(s);
        }
        let s = if s.preview_sha.as_deref() != Some(sha.as_str()) {
            let ctx = self.deploy_ctx(&s, &sha);
            let log = self.deployer.log_path(&ctx, DeployAction::Preview);
            let step = self.ui.step(
                &format!("deploying preview of {}", short(&sha)),
                log.as_deref(),
            );
            let d = match self.deployer.deploy_preview(&ctx) {
                Ok(d) => d,
                Err(e) => {
                    step.fail(&format!("preview deploy of {} failed", short(&sha)));
                    return Err(e.into());
                }
            };
            self.failpoint("push.preview_deployed");
            let url = d.url.unwrap_or_default();
            // The build time per release, where the deployer reports it.
            let took = d
                .build
                .as_ref()
                .map(|b| hotfix_core::event::DeployBuild {
                    built: b.built,
                    build_ms: b.build_ms,
                    ..Default::default()
                })
                .map(|b| b.summary())
                .filter(|b| !b.is_empty())
                .map(|b| format!(" ({b})"))
                .unwrap_or_default();
            step.done(&format!("preview at {url}{took}"));
            self.append(
                &s,
                vec![EventKind::PreviewDeployed {
                    sha: sha.clone(),
                    url,
                }],
            )?;
            self.load(id)?
        } else {
            s
        };

        // 4. Smoke (and, where the policy asks, affected-area) checks.
        let mut checks = vec![];
        if p.smoke {
            checks.extend(self.cfg.smoke.iter().cloned());
        }
        if p.area_checks {
            checks.extend(self.cfg.area_checks.iter().cloned());
        }
        if (p.smoke || p.area_checks) && checks.is_empty() {
            return Err(EngineError::Usage(format!(
                "the {} policy requires smoke checks but hotfix.toml has no [[smoke]]{} entries",
                s.severity,
                if p.area_checks {
                    " or [[area_checks]]"
                } else {
                    ""
                }
            )));
        }
        if s.smoke_passed_on_head() || checks.is_empty() {
            return Ok(s);
        }
        let url = s.preview_url.clone().unwrap_or_default();
        let step = self.ui.step(
            &format!(
                "running {} against {url}",
                hotfix_core::plural::count(checks.len(), "check")
            ),
            None,
        );
        let results = hotfix_providers::health::run_checks(
            &url,
            &checks,
            self.cfg.deploy.probe_timeout.0,
            self.cfg.deploy.probe_timeout.0,
        );
        let passed = results.iter().filter(|r| r.ok).count();
        let tally = format!(
            "{passed} of {} passed",
            hotfix_core::plural::count(results.len(), "check")
        );
        if passed == results.len() {
            step.done(&tally);
        } else {
            step.fail(&tally);
        }
        for r in &results {
            self.ui.info(&format!(
                "  {} {} — {}",
                if r.ok { "ok  " } else { "FAIL" },
                r.name,
                r.detail
            ));
        }
        self.say_which_checks_ran(s.severity, &p, &results);
        let ok = results.iter().all(|r| r.ok);
        let failed: Vec<String> = results
            .iter()
            .filter(|r| !r.ok)
            .map(|r| format!("{} ({})", r.name, r.detail))
            .collect();
        let kind = if ok {
            EventKind::SmokePassed {
                sha: sha.clone(),
                checks: results,
            }
        } else {
            EventKind::SmokeFailed {
                sha: sha.clone(),
                checks: results,
            }
        };
        self.append(&s, vec![kind])?;
        if !ok {
            return Err(EngineError::refused(
                "smoke_failed",
                format!(
                    "smoke checks failed on the preview of {}: {}",
                    short(&sha),
                    failed.join("; ")
                ),
                "fix it, commit, and run `hotfix push` again",
            ));
        }
        self.load(id)
    }
}

impl Engine {
    /// The text a person gave as the impact assessment, if `body` (a PR
    /// body) is one: what `hotfix pr` shows as written by them.
    pub fn given_impact(body: &str) -> Option<&str> {
        body.trim_end()
            .strip_suffix(IMPACT_GIVEN)
            .map(str::trim_end)
    }

    /// The PR body: the assessment given now, else the one given on an
    /// earlier push (a re-push must not overwrite what a person wrote),
    /// else the generated one.
    fn pr_body(&self, s: &IncidentState, given: Option<&str>) -> Result<String> {
        if let Some(text) = given {
            if s.security {
                self.ui.warn(&format!(
                    "{} is a security incident: everyone who can read the PR reads this assessment; keep the details out",
                    s.id
                ));
            }
            return Ok(format!("{text}\n\n{IMPACT_GIVEN}\n"));
        }
        if let Some(n) = s.pr {
            match self.forge.get_pr(n) {
                Ok(pr) if Engine::given_impact(&pr.body).is_some() => return Ok(pr.body),
                Ok(_) => {}
                // A PR closed on the forge is replaced: a lost body of it
                // only means the new one is generated.
                Err(_) if s.pr_closed => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(crate::text::impact_assessment(
            s,
            &self.cfg,
            self.clock.now(),
        ))
    }
}

/// An impact assessment as given: one text a forge and a terminal can show
/// (Windows line ends made plain), not empty, not huge.
fn checked_impact(text: &str) -> Result<String> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim_end();
    if text.trim().is_empty() {
        return Err(EngineError::Usage(
            "the impact assessment is empty: give the text, or leave --impact out for the generated one".into(),
        ));
    }
    if text.len() > MAX_IMPACT {
        return Err(EngineError::Usage(format!(
            "the impact assessment is {} bytes; at most {MAX_IMPACT} fit in a PR body",
            text.len()
        )));
    }
    if let Some((n, line)) = text.lines().enumerate().find(|(_, l)| {
        l.chars()
            .any(|c| c != '\t' && hotfix_core::display::is_unsafe(c))
    }) {
        let c = line
            .chars()
            .find(|c| *c != '\t' && hotfix_core::display::is_unsafe(*c))
            .map(|c| format!("U+{:04X}", c as u32))
            .unwrap_or_default();
        return Err(EngineError::Usage(format!(
            "the impact assessment has a control character ({c}) on line {}: plain text or Markdown only",
            n + 1
        )));
    }
    Ok(text.to_string())
}

impl Engine {
    /// One line per kind of check, so the person sees that the affected
    /// areas were tested (or that nothing tested them) and not only a count.
    /// `results` are the smoke checks first, then the area checks, as run.
    fn say_which_checks_ran(
        &self,
        severity: hotfix_core::severity::Severity,
        p: &hotfix_core::policy::SeverityPolicy,
        results: &[hotfix_core::event::CheckResult],
    ) {
        let smoke = if p.smoke { self.cfg.smoke.len() } else { 0 };
        let list = |rs: &[hotfix_core::event::CheckResult]| {
            rs.iter()
                .map(|r| format!("{} {}", r.name, if r.ok { "✓" } else { "✗" }))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if p.smoke {
            self.ui.info(&format!(
                "smoke checks: {}",
                list(results.get(..smoke).unwrap_or_default())
            ));
        }
        match (p.area_checks, self.cfg.area_checks.is_empty()) {
            (true, false) => self.ui.info(&format!(
                "area checks: {}",
                list(results.get(smoke..).unwrap_or_default())
            )),
            // A file that states it is refused when parsed: this is the
            // built-in policy, which a minimal config did not write down.
            (true, true) => self.ui.warn(&format!(
                "policy.{severity}.area_checks is on (the built-in policy) but no [[area_checks]] is configured: no affected-area check ran; list the affected areas in hotfix.toml"
            )),
            (false, false) => self.ui.info(&format!(
                "area checks: not run (policy.{severity}.area_checks = false)"
            )),
            (false, true) => {}
        }
    }
}

/// Is this push of `sha` recorded with its commits and diff? A `head_moved`
/// seen by the forge's webhook names the head but not who wrote it, so the
/// push is still recorded after one (the self-approval and wide-diff guards
/// need the commits and the diff).
fn push_recorded(s: &hotfix_core::state::IncidentState, sha: &str) -> bool {
    s.events
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::Pushed { sha: p, .. } => Some(p == sha),
            EventKind::HeadMoved { .. } | EventKind::AttemptStarted { .. } => Some(false),
            _ => None,
        })
        .unwrap_or(false)
}
