//! `hotfix start`: declare the incident and cut `hotfix/NAME` from the
//! remote's current main.

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::Severity;
use hotfix_core::state::{IncidentState, Phase};

use hotfix_core::name::{title_from, valid_name};

use crate::{Engine, EngineError, Result, short};

pub struct StartArgs {
    pub name: String,
    pub severity: Severity,
    pub title: Option<String>,
    pub customer_facing: bool,
    pub security: bool,
    /// Cut the branch of this reported incident, or start a new attempt
    /// for this rolled-back one.
    pub incident: Option<IncidentId>,
    /// Who reported it, when not the person starting it (a customer, the
    /// support desk): recorded right after the declaration, and told on
    /// resolution ("verify fix with original reporter").
    pub reported_by: Option<String>,
}

impl Engine {
    pub fn start(&self, a: &StartArgs) -> Result<IncidentState> {
        if !valid_name(&a.name) {
            return Err(EngineError::refused(
                "invalid_name",
                format!("`{}` is not a valid hotfix name", a.name),
                "use letters, digits, `-`, `_` or `.`, e.g. `pdf-crash` (the branch becomes hotfix/pdf-crash)",
            ));
        }
        let branch = format!("{}{}", self.cfg.git.prefix, a.name);
        if !self.git.valid_branch_name(&branch)? {
            return Err(EngineError::refused(
                "invalid_name",
                format!("`{branch}` is not a valid git branch name"),
                "choose another name",
            ));
        }

        // A re-run after a crash: the incident for this branch exists already.
        let mine = match self.newest_on_branch(&branch, true)? {
            // The reported incident this start cuts the branch of.
            Some(s) if s.phase(&self.cfg.policy) == Phase::Reported && a.incident == Some(s.id) => {
                None
            }
            // Reported and not triaged yet: nobody takes it before a tech
            // lead confirms it.
            Some(s) if s.phase(&self.cfg.policy) == Phase::Triage => {
                return Err(in_triage(&s, &a.name));
            }
            Some(s) if s.phase(&self.cfg.policy) == Phase::Reported => {
                return Err(EngineError::refused(
                    "reported",
                    format!("{} was reported for {branch} and has no branch yet", s.id),
                    format!(
                        "take it over: `hotfix start {} --incident {} --severity {}`",
                        a.name, s.id, s.severity
                    ),
                ));
            }
            other => other,
        };
        if let Some(s) = mine {
            if s.head_sha.is_none() && s.phase(&self.cfg.policy) == Phase::Fixing {
                self.ui.info(&format!(
                    "{} already declared for {branch}; finishing the start",
                    s.id
                ));
                let s = self.record_reporter(s, a.reported_by.as_deref())?;
                return self.finish_start(s, false);
            }
            return Err(EngineError::refused(
                "branch_exists",
                format!(
                    "{branch} already belongs to {} ({})",
                    s.id,
                    s.phase(&self.cfg.policy).as_str()
                ),
                format!(
                    "continue it with `hotfix status {}`, or choose another name",
                    s.id
                ),
            ));
        }

        // The fetch runs while the local checks do: both take tens of
        // milliseconds on a large repository, and a fetch changes nothing of
        // the user's (remote-tracking refs only).
        self.ui.info(&format!("fetching {}", self.remote()));
        let fetching = {
            let git = self.git.clone();
            let remote = self.remote().to_string();
            std::thread::spawn(move || git.fetch(&remote))
        };
        self.refuse_dirty(
            "commit or stash them first (`git stash`); hotfix left them exactly as they are",
        )?;

        let attempt_of = match a.incident {
            None => None,
            Some(id) => {
                let s = self.load(id).map_err(|_| {
                    EngineError::Usage(format!("no incident {id}: `hotfix log` lists them"))
                })?;
                let phase = s.phase(&self.cfg.policy);
                if phase == Phase::Triage {
                    return Err(in_triage(&s, &a.name));
                }
                if phase != Phase::RolledBack && phase != Phase::Reported {
                    return Err(EngineError::refused(
                        "not_rolled_back",
                        format!(
                            "{id} is {}, not rolled back",
                            s.phase(&self.cfg.policy).as_str()
                        ),
                        "`--incident` cuts the branch of a reported incident (declared from an alert) or starts a new attempt after a rollback",
                    ));
                }
                Some(s)
            }
        };

        if self.git.local_branch_sha(&branch)?.is_some() {
            return Err(EngineError::refused(
                "branch_exists",
                format!("branch {branch} already exists locally"),
                "choose another name, or delete the old branch if it is yours (`git branch -D`)",
            ));
        }
        match fetching.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(self.fetch_failed(&e)),
            Err(_) => return Err(EngineError::Failed("the fetch thread panicked".into())),
        }
        // After `fetch --prune` the remote-tracking refs are exactly the remote's.
        if self.git.rev_parse(&self.tracking(&branch))?.is_some() {
            return Err(EngineError::refused(
                "branch_exists",
                format!("branch {branch} already exists on {}", self.remote()),
                "choose another name: someone may already be working on this hotfix",
            ));
        }
        let main = &self.cfg.git.main;
        let base = self.git.rev_parse(&self.tracking(main))?.ok_or_else(|| {
            EngineError::Failed(format!("{} has no branch {main}", self.remote()))
        })?;

        let now = self.clock.now();
        let title = a.title.clone().unwrap_or_else(|| title_from(&a.name));
        let s = match attempt_of {
            None => {
                let kind = EventKind::Declared {
                    name: a.name.clone(),
                    title: title.clone(),
                    severity: a.severity,
                    customer_facing: a.customer_facing,
                    security: a.security,
                    branch: branch.clone(),
                    base_sha: base.clone(),
                };
                let id =
                    self.with_ledger(|l| l.declare(&self.actor(), now, kind, &|_, _| vec![]))?;
                self.deliver();
                self.load(id)?
            }
            Some(prev) => {
                // A reported incident's first branch is attempt 1.
                let attempt = if prev.phase(&self.cfg.policy) == Phase::Reported {
                    prev.attempt
                } else {
                    prev.attempt + 1
                };
                self.append(
                    &prev,
                    vec![EventKind::AttemptStarted {
                        attempt,
                        name: a.name.clone(),
                        branch: branch.clone(),
                        base_sha: base.clone(),
                        severity: a.severity,
                    }],
                )?;
                self.load(prev.id)?
            }
        };
        let s = self.record_reporter(s, a.reported_by.as_deref())?;
        self.failpoint("start.declared");
        self.ui.info(&format!(
            "{} {}: {} [{}], cut from {}/{main} at {}",
            s.id,
            if s.attempt > 1 {
                format!("attempt {}", s.attempt)
            } else {
                "declared".to_string()
            },
            s.public_title(),
            s.severity,
            self.remote(),
            short(&base)
        ));
        self.finish_start(s, true)
    }

    /// Records who reported the incident (`--reported-by`) unless the log
    /// says so already: a re-run after a crash appends it once.
    fn record_reporter(&self, s: IncidentState, who: Option<&str>) -> Result<IncidentState> {
        let Some(who) = who.map(str::trim).filter(|w| !w.is_empty()) else {
            return Ok(s);
        };
        if s.reported_by.as_deref() == Some(who) {
            return Ok(s);
        }
        self.append_fresh(s.id, |s| {
            Ok(if s.reported_by.as_deref() == Some(who) {
                vec![]
            } else {
                vec![EventKind::ReportedBy {
                    who: who.to_string(),
                }]
            })
        })
    }

    /// Refuses while tracked files have uncommitted changes (and touches none of them).
    fn refuse_dirty(&self, hint: &str) -> Result<()> {
        let dirty = self.git.dirty_files()?;
        if dirty.is_empty() {
            return Ok(());
        }
        Err(EngineError::refused(
            "dirty_tree",
            format!(
                "the work tree has uncommitted changes: {}",
                dirty.join(", ")
            ),
            hint,
        ))
    }

    /// Creates and checks out the branch if a crash left that undone.
    fn finish_start(&self, s: IncidentState, tree_checked: bool) -> Result<IncidentState> {
        if self.git.local_branch_sha(&s.branch)?.is_none() {
            self.git.create_branch(&s.branch, &s.base_sha)?;
        }
        self.failpoint("start.branched");
        if self.git.current_branch()?.as_deref() != Some(s.branch.as_str()) {
            if !tree_checked {
                self.refuse_dirty(&format!(
                    "commit or stash them, then `git checkout {}`",
                    s.branch
                ))?;
            }
            let branch_sha = self.git.local_branch_sha(&s.branch)?;
            if branch_sha.is_some() && self.git.rev_parse("HEAD")? == branch_sha {
                // Same commit, clean tree: only HEAD moves (no index refresh,
                // no file touched), which is what checkout would do, faster.
                self.git.switch_head(&s.branch)?;
            } else {
                self.git.checkout(&s.branch)?;
            }
        }
        self.ui.info(&format!("on branch {}", s.branch));
        Ok(s)
    }
}

/// `hotfix start` on an incident still in triage: the rulebook's refusal
/// (`in_triage`), said before anything is fetched or checked out.
fn in_triage(s: &IncidentState, name: &str) -> EngineError {
    EngineError::refused(
        "in_triage",
        format!(
            "{} was reported for {} and is in triage: a tech lead confirms it before anyone cuts its branch",
            s.id, s.branch
        ),
        format!(
            "a tech lead runs `hotfix triage {id} confirm --severity {sev}`; then take it: `hotfix start {name} --incident {id} --severity {sev}`",
            id = s.id,
            sev = s.severity
        ),
    )
}
