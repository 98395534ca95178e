//! After the deploy: checklist, post-mortem, close.

use hotfix_core::checklist::{check_tick, open_items};
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;

use crate::{Engine, EngineError, Result};

impl Engine {
    /// Ticks checklist items by hand.
    pub fn tick(&self, id: IncidentId, keys: &[String]) -> Result<IncidentState> {
        for k in keys {
            check_tick(k).map_err(|e| EngineError::Usage(e.to_string()))?;
        }
        self.append_fresh(id, |s| {
            if s.is_closed() {
                return Err(EngineError::refused(
                    "closed",
                    format!("{id} is closed"),
                    "nothing to tick",
                ));
            }
            let mut v = vec![];
            for k in keys {
                if !s.checklist_done.contains(k)
                    && !v
                        .iter()
                        .any(|e| matches!(e, EventKind::ChecklistDone { key } if key == k))
                {
                    v.push(EventKind::ChecklistDone { key: k.clone() });
                }
            }
            Ok(v)
        })
    }

    /// Writes `postmortems/HF-N.md` and `postmortems/HF-N.ics` in the main
    /// work tree (not a backport worktree hotfix made, nor a linked one the
    /// command was run from: one place, where the team commits them to
    /// develop; see [`crate::text::postmortem_hint`]). An existing draft is
    /// never overwritten: people write in it.
    pub fn postmortem(&self, id: IncidentId) -> Result<(IncidentState, Vec<String>)> {
        let s = self.load(id)?;
        let now = self.clock.now();
        let resolved = s
            .resolved_at
            .or(s.rollback.as_ref().map(|r| r.at))
            .unwrap_or(now);
        let due = resolved
            .checked_add(
                jiff::SignedDuration::try_from(self.cfg.policy.targets.postmortem_within.0)
                    .unwrap_or(jiff::SignedDuration::from_hours(24)),
            )
            .unwrap_or(resolved);
        let due = if let Some((_, d)) = &s.postmortem {
            *d
        } else {
            due
        };
        let dir = self.main_worktree().join("postmortems");
        hotfix_fs::create_private_dir(&dir)
            .map_err(|e| EngineError::Failed(format!("cannot create {}: {e}", dir.display())))?;
        let md = dir.join(format!("{id}.md"));
        let ics = dir.join(format!("{id}.ics"));
        let mut written = vec![];
        if md.exists() {
            self.ui
                .info(&format!("{} exists; left as it is", md.display()));
        } else {
            let text = crate::text::postmortem(&s, &self.cfg, now, due);
            write_atomic(&md, &text)?;
            written.push(md.display().to_string());
        }
        let invite = crate::text::invite(&s, &self.cfg, &self.actor, due, now);
        write_atomic(&ics, &invite)?;
        written.push(ics.display().to_string());
        let rel = format!("postmortems/{id}.md");
        let s = self.append_fresh(id, |s| {
            Ok(if s.postmortem.is_some() {
                vec![]
            } else {
                vec![EventKind::PostmortemScheduled {
                    path: rel.clone(),
                    due,
                }]
            })
        })?;
        Ok((s, written))
    }

    /// Closes the incident once every checklist item is done.
    pub fn close(&self, id: IncidentId) -> Result<IncidentState> {
        self.append_fresh(id, |s| {
            if s.is_closed() {
                return Ok(vec![]);
            }
            let open = open_items(s);
            if !open.is_empty() {
                let mut lines: Vec<String> = open
                    .iter()
                    .map(|i| format!("{} ({})", i.label, i.key))
                    .collect();
                if open[0].key == "backported" {
                    lines[0] = format!(
                        "{} ({}) — don't forget this step: `hotfix backport {id}`",
                        open[0].label, open[0].key
                    );
                }
                return Err(EngineError::refused(
                    "checklist_open",
                    format!(
                        "{id} cannot be closed; open checklist items:\n      {}",
                        lines.join("\n      ")
                    ),
                    format!("tick what you did with `hotfix checklist {id} --done KEY`"),
                ));
            }
            Ok(vec![EventKind::Closed])
        })
    }
}

impl Engine {
    /// The repository's main work tree: the first of `git worktree list`
    /// unless it is bare; else the one this command runs in.
    fn main_worktree(&self) -> std::path::PathBuf {
        let listed = self
            .git
            .run(&["worktree", "list", "--porcelain"])
            .ok()
            .and_then(|out| {
                let mut first = out.split("\n\n").next()?.lines();
                let path = first.next()?.strip_prefix("worktree ")?.to_string();
                let bare = first.any(|l| l.trim() == "bare");
                (!bare).then(|| std::path::PathBuf::from(path))
            })
            .filter(|p| p.is_dir());
        listed.unwrap_or_else(|| self.git.root().to_path_buf())
    }
}

/// Writes a file (0600) so that a crash leaves either the old or the new content.
fn write_atomic(path: &std::path::Path, text: &str) -> Result<()> {
    hotfix_fs::write_private(path, text.as_bytes())
        .map_err(|e| EngineError::Failed(format!("cannot write {}: {e}", path.display())))
}
