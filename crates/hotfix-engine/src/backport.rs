//! `hotfix backport`: merge the hotfix into develop ("Don't forget this
//! step!"). Conflicts are predicted with `git merge-tree` first; a real
//! conflict is handed to the person in a separate worktree, never committed
//! with markers.

use std::path::{Path, PathBuf};

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;
use hotfix_git::{MergeTree, is_conflict_marker};

use crate::{Engine, EngineError, Result, short};

/// What the person asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackportMode {
    Start,
    Continue,
    Abort,
}

impl Engine {
    fn backport_worktree(&self, id: IncidentId) -> PathBuf {
        self.state_dir
            .join("worktrees")
            .join(format!("{id}-backport"))
    }

    pub fn backport(&self, id: IncidentId, mode: BackportMode) -> Result<IncidentState> {
        let s = self.load(id)?;
        let develop = self.cfg.git.develop.clone();
        if s.rollback.is_some() {
            return Err(EngineError::refused(
                "rolled_back",
                format!("{id} was rolled back"),
                "nothing to backport",
            ));
        }
        let Some(head) = s.head_sha.clone().filter(|_| s.merge_sha.is_some()) else {
            return Err(EngineError::refused(
                "not_merged",
                format!("{id} is not merged to {} yet", self.cfg.git.main),
                format!("ship it first: `hotfix ship {id}`"),
            ));
        };
        if s.backport_sha.is_some() && mode != BackportMode::Abort {
            // A crash between recording and removing left the worktree.
            let wt = self.backport_worktree(id);
            if wt.exists() {
                self.remove_backport_worktree(&wt);
            }
            self.ui
                .info(&format!("{id} is already backported to {develop}"));
            return Ok(s);
        }
        if mode == BackportMode::Abort {
            let Some((_, wt)) = &s.backport_conflict else {
                return Err(EngineError::refused(
                    "no_backport",
                    "no backport is in progress",
                    "nothing to abort",
                ));
            };
            // Recorded first: the person may be running this from inside it.
            self.append(&s, vec![EventKind::BackportAborted])?;
            self.remove_backport_worktree(Path::new(wt));
            self.ui
                .info(&format!("backport aborted; {develop} is as it was"));
            return self.load(id);
        }

        self.fetch()?;
        let tracking = self.tracking(&develop);
        let develop_sha = self.git.rev_parse(&tracking)?.ok_or_else(|| {
            EngineError::Failed(format!("{} has no branch {develop}", self.remote()))
        })?;
        // Already there (a re-run after a crash, or merged by hand)?
        if self.git.is_ancestor(&head, &develop_sha)? {
            return self.record_backport(&s, &head, &develop_sha);
        }

        if mode == BackportMode::Continue {
            return self.continue_backport(&s, &head);
        }
        // Start (Abort returned above).
        if let Some((files, wt)) = &s.backport_conflict {
            return Err(EngineError::refused(
                "backport_in_progress",
                format!(
                    "a backport is waiting for conflicts in {} to be resolved in {wt}",
                    files.join(", ")
                ),
                format!(
                    "resolve and `git add` them there, then `hotfix backport {id} --continue` (or `--abort`)"
                ),
            ));
        }
        let message = crate::text::backport_message(&s, &develop);
        match self.git.merge_tree(&develop_sha, &head, None)? {
            MergeTree::Clean { tree } => {
                let commit = self
                    .git
                    .commit_tree(&tree, &[&develop_sha, &head], &message)?;
                self.push_develop(&commit, &develop_sha)?;
                self.failpoint("backport.pushed");
                self.ui.info(&format!(
                    "merged {} into {develop} as {}",
                    s.branch,
                    short(&commit)
                ));
                let s = self.load(id)?;
                let now = self.remote_develop()?;
                self.record_backport(&s, &head, &now)
            }
            MergeTree::Conflicted { files } => {
                let wt = self.backport_worktree(id);
                self.abort_backport_worktree(&wt);
                self.git.worktree_add_detached(&wt, &develop_sha)?;
                let w = self.git.at(&wt);
                // Expected to stop with conflicts; the person takes over here.
                let _ = w.output(&["merge", "--no-ff", "--no-commit", "-m", &message, &head])?;
                let wt_s = wt.to_string_lossy().to_string();
                self.append(
                    &s,
                    vec![EventKind::BackportConflict {
                        files: files.clone(),
                        worktree: wt_s.clone(),
                    }],
                )?;
                Err(EngineError::refused(
                    "backport_conflict",
                    format!(
                        "backporting {id} into {develop} conflicts in:\n      {}\n    resolve them in the worktree {wt_s}",
                        files.join("\n      ")
                    ),
                    format!(
                        "cd {wt_s}, fix the files and `git add` them, then `hotfix backport {id} --continue`; `hotfix backport {id} --abort` leaves everything as before"
                    ),
                ))
            }
        }
    }

    fn continue_backport(&self, s: &IncidentState, head: &str) -> Result<IncidentState> {
        let id = s.id;
        let develop = self.cfg.git.develop.clone();
        let Some((files, wt)) = s.backport_conflict.clone() else {
            return Err(EngineError::refused(
                "no_backport",
                "no backport is waiting for conflict resolution",
                format!("start it with `hotfix backport {id}`"),
            ));
        };
        let wt = PathBuf::from(wt);
        if !wt.exists() {
            return Err(EngineError::Failed(format!(
                "the backport worktree {} is gone; `hotfix backport {id} --abort` and start again",
                wt.display()
            )));
        }
        let w = self.git.at(&wt);
        let unmerged = w.unmerged_files()?;
        if !unmerged.is_empty() {
            return Err(EngineError::refused(
                "unresolved",
                format!(
                    "still unresolved in {}: {}",
                    wt.display(),
                    unmerged.join(", ")
                ),
                "fix them and `git add` each file, then `--continue` again",
            ));
        }
        let mut marked = vec![];
        for f in &files {
            if let Ok(text) = std::fs::read_to_string(wt.join(f))
                && text.lines().any(is_conflict_marker)
            {
                marked.push(f.clone());
            }
        }
        if !marked.is_empty() {
            return Err(EngineError::refused(
                "conflict_markers",
                format!("conflict markers remain in {}", marked.join(", ")),
                "remove them (never commit conflict markers), `git add`, then `--continue` again",
            ));
        }
        let merging = w
            .output(&["rev-parse", "-q", "--verify", "MERGE_HEAD"])?
            .status
            .success();
        if merging {
            let message = crate::text::backport_message(s, &develop);
            w.run(&["commit", "--quiet", "--no-verify", "-m", &message])?;
        }
        let commit = w.rev_parse("HEAD")?.unwrap_or_default();
        if !self.git.is_ancestor(head, &commit)? {
            return Err(EngineError::Failed(format!(
                "the worktree's HEAD {} does not contain the hotfix; `hotfix backport {id} --abort` and start again",
                short(&commit)
            )));
        }
        let parent = w.rev_parse("HEAD^1")?.unwrap_or_default();
        self.push_develop(&commit, &parent)?;
        self.failpoint("backport.pushed");
        // Recorded first, the worktree removed after (by record_backport):
        // the person may be running this from inside it.
        let now = self.remote_develop()?;
        let s = self.load(id)?;
        self.record_backport(&s, head, &now)
    }

    /// Where the remote's develop is now, asked of the remote itself (one
    /// ref advertisement, cheaper than a fetch); the commit is local already.
    fn remote_develop(&self) -> Result<String> {
        let develop = &self.cfg.git.develop;
        self.git
            .remote_branch_sha(self.remote(), develop)?
            .ok_or_else(|| {
                EngineError::Failed(format!("{} has no branch {develop}", self.remote()))
            })
    }

    fn push_develop(&self, commit: &str, expected_old: &str) -> Result<()> {
        let develop = &self.cfg.git.develop;
        let refspec = format!("{commit}:refs/heads/{develop}");
        let lease = (format!("refs/heads/{develop}"), expected_old.to_string());
        self.git
            .push(self.remote(), &[refspec], true, &[lease])
            .map_err(|e| {
                EngineError::Failed(format!(
                    "pushing {develop} failed (did it move meanwhile? run the backport again): {}",
                    hotfix_providers::redact::redact(&e.to_string())
                ))
            })
    }

    /// Verifies the hotfix is reachable from the remote's develop, then records it.
    fn record_backport(
        &self,
        s: &IncidentState,
        head: &str,
        develop_sha: &str,
    ) -> Result<IncidentState> {
        let develop = &self.cfg.git.develop;
        if !self.git.is_ancestor(head, develop_sha)? {
            return Err(EngineError::Failed(format!(
                "the hotfix {} is not reachable from {}/{develop} after the push",
                short(head),
                self.remote()
            )));
        }
        let range = format!("{head}..{develop_sha}");
        let merge = self
            .git
            .find_merge_of(&range, head)?
            .unwrap_or_else(|| develop_sha.to_string());
        self.append(
            s,
            vec![EventKind::Backported {
                merge_sha: merge.clone(),
            }],
        )?;
        self.ui.info(&format!(
            "verified: {} is reachable from {}/{develop}",
            short(head),
            self.remote()
        ));
        if let Some((_, wt)) = &s.backport_conflict {
            self.remove_backport_worktree(Path::new(wt));
        }
        self.load(s.id)
    }

    /// Removes the finished backport's worktree and says so, with where to
    /// go when the person's shell is in it (as the conflict hint asked).
    fn remove_backport_worktree(&self, wt: &Path) {
        let existed = wt.exists();
        let inside = std::env::current_dir()
            .ok()
            .zip(wt.canonicalize().ok())
            .is_some_and(|(cwd, wt)| cwd.canonicalize().unwrap_or(cwd).starts_with(wt));
        self.abort_backport_worktree(wt);
        if !existed {
            return;
        }
        if inside {
            self.ui.info(&format!(
                "removed the backport worktree {}; your shell is still in it: `cd {}`",
                wt.display(),
                self.git.root().display()
            ));
        } else {
            self.ui
                .info(&format!("removed the backport worktree {}", wt.display()));
        }
    }

    pub(crate) fn abort_backport_worktree(&self, wt: &Path) {
        if wt.exists() {
            let _ = self.git.at(wt).output(&["merge", "--abort"]);
        }
        let _ = self.git.worktree_remove(wt);
    }
}
