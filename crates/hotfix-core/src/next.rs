//! "What do I do now?" for every phase: the line every command ends with.

use crate::guards::missing_approvals;
use crate::policy::Policy;
use crate::state::{IncidentState, Phase};

/// The next action, as a command the person can run.
pub fn next_action(s: &IncidentState, policy: &Policy) -> String {
    let id = s.id;
    let phase = s.phase(policy);
    if s.pr_closed
        && matches!(
            phase,
            Phase::InReview | Phase::AwaitingApproval | Phase::ReadyToShip
        )
    {
        return format!(
            "PR #{} was closed without merging: reopen it, or run `hotfix push {id}` to open a new one",
            s.pr.unwrap_or_default()
        );
    }
    match phase {
        Phase::Triage => format!(
            "a tech lead triages it: `hotfix triage {id} confirm --severity {}` if it is real, else `hotfix triage {id} decline --reason false_alarm|not_urgent` or `hotfix triage {id} merge --into HF-N`",
            s.severity.as_str()
        ),
        Phase::Reported => format!(
            "take it and cut the branch: `hotfix start {} --incident {id} --severity {}`",
            s.name,
            s.severity.as_str()
        ),
        Phase::Fixing => format!("commit the fix on {} and run `hotfix push {id}`", s.branch),
        Phase::InReview => match &s.smoke {
            Some((sha, false, _)) if Some(sha) == s.head_sha.as_ref() => {
                format!("smoke checks failed: fix, commit and run `hotfix push {id}` again")
            }
            _ => format!("run `hotfix push {id}` to deploy the preview and run the smoke checks"),
        },
        Phase::AwaitingApproval => format!(
            "needs {}: `hotfix approve {id} --as PERSON`",
            missing_approvals(s, policy).join(" and ")
        ),
        Phase::ReadyToShip => format!("ship it: `hotfix ship {id}`"),
        Phase::Merged => match &s.health_failure {
            Some(_) => format!("production is unhealthy: `hotfix rollback {id} --reason TEXT`"),
            None => format!("finish the production deploy: `hotfix ship {id}`"),
        },
        Phase::Deployed => {
            if s.backport_conflict.is_some() {
                format!(
                    "resolve the backport conflicts, then `hotfix backport {id} --continue` (or `--abort`)"
                )
            } else {
                format!("backport to develop (don't forget this step!): `hotfix backport {id}`")
            }
        }
        Phase::Backported => {
            if s.postmortem.is_none() {
                format!("schedule the post-mortem: `hotfix postmortem {id}`")
            } else {
                let open = crate::checklist::open_items(s);
                if open.is_empty() {
                    format!("close the incident: `hotfix close {id}`")
                } else {
                    format!(
                        "finish the checklist: `hotfix checklist {id} --done {}`",
                        open.iter().map(|i| i.key).collect::<Vec<_>>().join(" ")
                    )
                }
            }
        }
        Phase::RollingBack => {
            let p = s.rollback_progress.as_ref();
            format!(
                "the rollback is not finished{}: run `hotfix rollback {id} --reason TEXT` again to finish it",
                p.and_then(|p| p.stalled.as_deref())
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            )
        }
        Phase::RolledBack => format!(
            "reassess and start a new attempt: `hotfix start NAME --severity {} --incident {id}`",
            s.severity
        ),
        Phase::Closed => "nothing: the incident is closed".to_string(),
        Phase::Declined => match s.declined.as_ref().and_then(|d| d.merged_into) {
            Some(into) => format!("nothing: merged into {into}"),
            None => "nothing: declined at triage".to_string(),
        },
    }
}
