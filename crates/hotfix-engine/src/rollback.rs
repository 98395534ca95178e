//! The process's Rollback Plan: previous deployment back, merge reverted on
//! main, and on develop too when the hotfix was already backported (so a
//! later merge cannot silently carry the bad fix or its revert across).

use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;

use crate::{Engine, EngineError, Result, short};

impl Engine {
    pub fn rollback(&self, id: IncidentId, reason: &str) -> Result<IncidentState> {
        if reason.trim().is_empty() {
            return Err(EngineError::Usage("a rollback needs --reason TEXT".into()));
        }
        self.rollback_inner(id, reason, false)
    }

    pub(crate) fn rollback_inner(
        &self,
        id: IncidentId,
        reason: &str,
        automatic: bool,
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
        let previous_main = s.previous_main.clone().unwrap_or_default();

        // 1. Production back on the previous release.
        if s.deployed_sha.is_some() || s.health_failure.is_some() {
            self.ui.info(&format!(
                "rolling production back to {}",
                short(&previous_main)
            ));
            self.deployer.rollback(
                &self.deploy_ctx(&s, &previous_main),
                s.previous_deployment.as_deref(),
            )?;
            self.failpoint("rollback.deployed");
        }

        // 2. Revert the merge on main.
        let main = self.cfg.git.main.clone();
        let msg = crate::text::revert_message(&s, &main, reason);
        let main_revert = self
            .forge
            .revert_merge(&main, &merge_sha, &msg)
            .map_err(|e| {
                EngineError::Failed(format!(
                    "production is rolled back, but reverting the merge on {main} failed: {e}"
                ))
            })?;
        self.ui.info(&format!(
            "reverted the merge on {main}: {}",
            short(&main_revert)
        ));
        self.failpoint("rollback.main_reverted");

        // 3. And on develop, if it got there.
        let develop = self.cfg.git.develop.clone();
        let mut develop_revert = None;
        if let Some((_, wt)) = &s.backport_conflict {
            self.abort_backport_worktree(std::path::Path::new(wt));
        }
        if let Some(b) = &s.backport_sha {
            let msg = crate::text::revert_message(&s, &develop, reason);
            // The backport was a git merge pushed by hotfix (not a forge PR):
            // revert it the same way, whatever the forge.
            let r = hotfix_providers::forge::merge::revert_on(&self.git, self.remote(), &develop, b, &msg).map_err(|e| {
                EngineError::Failed(format!(
                    "main is reverted, but reverting the backport on {develop} failed: {e}; revert {b} on {develop} by hand, then run this again"
                ))
            })?;
            self.ui.info(&format!(
                "reverted the backport on {develop}: {}",
                short(&r)
            ));
            develop_revert = Some(r);
        }
        self.failpoint("rollback.develop_reverted");
        self.append(
            &s,
            vec![EventKind::RolledBack {
                reason: reason.to_string(),
                automatic,
                main_revert: Some(main_revert),
                develop_revert,
            }],
        )?;
        self.load(id)
    }
}
