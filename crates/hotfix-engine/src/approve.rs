//! `hotfix approve`: a role-checked approval of the current head.

use hotfix_core::event::EventKind;
use hotfix_core::guards::{ApproveCheck, check_approve};
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;

use crate::{Engine, EngineError, Result, short};

impl Engine {
    /// Records an approval by `who`. Two approvals racing both land (or the
    /// same person's twice lands once): the append re-checks on conflict.
    pub fn approve(
        &self,
        id: IncidentId,
        who: &str,
        source: &str,
    ) -> Result<(IncidentState, bool)> {
        let mut recorded = false;
        let s = self.append_fresh(id, |s| {
            recorded = false;
            match check_approve(s, &self.cfg, who) {
                Err(r) => Err(EngineError::Refused(vec![r])),
                Ok(ApproveCheck::AlreadyApproved) => Ok(vec![]),
                Ok(ApproveCheck::Record(role)) => {
                    recorded = true;
                    Ok(vec![EventKind::Approved {
                        by: who.to_string(),
                        role,
                        sha: s.head_sha.clone().unwrap_or_default(),
                        source: source.to_string(),
                    }])
                }
            }
        })?;
        let head = s.head_sha.as_deref().map(short).unwrap_or("");
        if recorded {
            self.ui.info(&format!("{id} approved by {who} on {head}"));
        } else {
            self.ui.info(&format!(
                "{who} already approved {id} on {head}; nothing to do"
            ));
        }
        Ok((s, recorded))
    }
}

impl Engine {
    /// `hotfix approve ID --withdraw`: `who` takes back their approval of
    /// the current head; it no longer counts (recorded, with the reason).
    pub fn withdraw(
        &self,
        id: IncidentId,
        who: &str,
        reason: &str,
        source: &str,
    ) -> Result<(IncidentState, bool)> {
        if reason.trim().is_empty() {
            return Err(EngineError::Usage(
                "a withdrawal needs --reason TEXT".into(),
            ));
        }
        let mut recorded = false;
        let s = self.append_fresh(id, |s| {
            let kinds = hotfix_core::guards::withdrawals(s, who, reason, source);
            recorded = !kinds.is_empty();
            Ok(kinds)
        })?;
        let head = s.head_sha.as_deref().map(short).unwrap_or("");
        if recorded {
            self.ui
                .info(&format!("{id}: approval by {who} on {head} withdrawn"));
        } else {
            self.ui.info(&format!(
                "{who} has no approval of {id} on {head} to withdraw; nothing to do"
            ));
        }
        Ok((s, recorded))
    }
}
