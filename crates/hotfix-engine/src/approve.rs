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
