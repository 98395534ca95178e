//! `hotfix start`: declare the incident and cut `hotfix/NAME` from the
//! remote's current main.

use hotfix_core::config::{Config, ConfigSource};
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::Severity;
use hotfix_core::state::{IncidentState, Phase};

use hotfix_core::name::{title_from, valid_name};

use crate::{Engine, EngineError, Result, short};

/// The config's name in a repository.
const CONFIG_FILE: &str = "hotfix.toml";

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
        self.refuse_config_not_on_main(&branch)?;

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

    /// Refuses to cut the branch when the repository's config is not the
    /// one on the remote's main, which is the one the branch will carry.
    ///
    /// Why before anything is created: the branch is cut from the remote's
    /// main. A `hotfix.toml` committed on main but not pushed is not on it,
    /// so every later command on the branch would run without the team's
    /// config, and `hotfix init` there would write a default one into the
    /// hotfix. When both exist but differ, the remote's is the team's (a
    /// local main is often just behind): the branch carries it, and the
    /// person is told which sections differ.
    fn refuse_config_not_on_main(&self, branch: &str) -> Result<()> {
        // Only the repository's own file is compared: a `$HOTFIX_CONFIG`
        // file lives outside it, and the defaults come from no file.
        if !matches!(
            self.cfg.source,
            ConfigSource::WorkTree | ConfigSource::Revision(_)
        ) {
            return Ok(());
        }
        let remote = self.remote();
        let main = &self.cfg.git.main;
        let on_remote = self.git.show_file(&self.tracking(main), CONFIG_FILE)?;
        let push = format!("git push {remote} {main}");
        let Some(theirs) = on_remote else {
            let committed = self
                .git
                .show_file(&format!("refs/heads/{main}"), CONFIG_FILE)?
                .is_some();
            return Err(if committed {
                EngineError::refused(
                    "config_not_pushed",
                    format!(
                        "hotfix.toml is committed on {main} but not pushed: {branch} is cut from {remote}/{main}, which has no hotfix.toml, so the team's config would not be in effect on it"
                    ),
                    format!("run `{push}` first, then start again"),
                )
            } else {
                EngineError::refused(
                    "config_not_pushed",
                    format!(
                        "hotfix.toml is not on {remote}/{main}: {branch} is cut from there, so the team's config would not be in effect on it"
                    ),
                    format!(
                        "commit it on {main} and push it (`git checkout {main}`, `git add hotfix.toml`, `git commit -m \"hotfix.toml\"`, `{push}`), then start again"
                    ),
                )
            });
        };
        let team = Config::parse(&theirs).map_err(|e| {
            EngineError::Usage(format!(
                "{e} ({remote}/{main}:hotfix.toml): fix it on {main} and push it; {branch} would carry it"
            ))
        })?;
        if self.cfg.source == ConfigSource::WorkTree && !self.git.is_tracked(CONFIG_FILE)? {
            // An untracked file of the same name stops the checkout of a
            // branch that has one, after the incident is declared.
            return Err(EngineError::refused(
                "config_untracked",
                format!(
                    "hotfix.toml in this work tree is not committed, and {remote}/{main} has one (the team's): checking out {branch} would overwrite it"
                ),
                format!(
                    "move yours away (or delete it if {remote}/{main}'s is the one to use), then start again"
                ),
            ));
        }
        let differs = self.cfg.differing_sections(&team);
        if differs.is_empty() {
            return Ok(());
        }
        if differs.contains(&"[git]") {
            // The branch name, remote and main come from [git]: cut under
            // one config and worked under the other, they would not match.
            return Err(EngineError::refused(
                "config_differs",
                format!(
                    "your hotfix.toml's [git] differs from {remote}/{main}'s (the team's): the branch would be named and cut under one and worked on under the other"
                ),
                format!(
                    "use the team's (`git checkout {main} && git pull --ff-only`), or push yours (`{push}`), then start again"
                ),
            ));
        }
        self.ui.warn(&format!(
            "your hotfix.toml differs from {remote}/{main}'s in {}: {branch} is cut from {remote}/{main}, so from the next command on its hotfix.toml (the team's) is in effect; if yours is the newer one, push it (`{push}`)",
            differs.join(", ")
        ));
        Ok(())
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
