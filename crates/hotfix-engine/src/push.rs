//! `hotfix push`: push the branch, open the `[HOTFIX]` PR, deploy the preview,
//! run the smoke checks against it. Each part is skipped when the record (and
//! the world) says it is already done for this head.

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::provider::NewPr;
use hotfix_core::state::IncidentState;

use crate::{Engine, EngineError, Result, short};

impl Engine {
    pub fn push(&self, id: IncidentId) -> Result<IncidentState> {
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
                    "start a new attempt: `hotfix start NAME --severity {} --incident {id}`",
                    s.severity
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
        let body = crate::text::impact_assessment(&s, &self.cfg, self.clock.now());
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
            self.ui
                .info(&format!("deploying preview of {}", short(&sha)));
            let d = self.deployer.deploy_preview(&self.deploy_ctx(&s, &sha))?;
            self.failpoint("push.preview_deployed");
            let url = d.url.unwrap_or_default();
            self.ui.info(&format!("preview at {url}"));
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
        self.ui
            .info(&format!("running {} check(s) against {url}", checks.len()));
        let results = hotfix_providers::health::run_checks(
            &url,
            &checks,
            self.cfg.deploy.probe_timeout.0,
            self.cfg.deploy.probe_timeout.0,
        );
        for r in &results {
            self.ui.info(&format!(
                "  {} {} — {}",
                if r.ok { "ok  " } else { "FAIL" },
                r.name,
                r.detail
            ));
        }
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
