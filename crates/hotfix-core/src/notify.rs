//! The messages the workflow sends, one per step, in the shape of a
//! `#dev-alerts` post. Security incidents carry nothing beyond the incident id
//! ("Do NOT discuss details publicly").

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::event::EventKind;
use crate::id::IncidentId;
use crate::state::IncidentState;

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub incident: IncidentId,
    /// The event name that caused it (`declared`, `merged`, ...).
    pub step: String,
    pub severity: String,
    pub channel: String,
    pub text: String,
    /// People to mention (the tech leads on declare).
    #[serde(default)]
    pub mentions: Vec<String>,
    pub customer_facing: bool,
    pub security: bool,
    pub at: Timestamp,
    /// The incident's title; empty for security incidents.
    #[serde(default)]
    pub title: String,
    /// The PR, when there is one (for links).
    #[serde(default)]
    pub pr_url: Option<String>,
    /// The incident was still in triage (not confirmed by a person): the
    /// public status page does not show it unless `[status]
    /// publish_unconfirmed` says so.
    #[serde(default)]
    pub triage: bool,
    /// What the public status page may say about the incident
    /// ([`IncidentState::status_text`]); `None`: a generic text.
    #[serde(default)]
    pub public_text: Option<String>,
}

/// The message for an event, if that event is worth one; `s` is the
/// incident as the event leaves it.
pub fn message_for(
    s: &IncidentState,
    kind: &EventKind,
    at: Timestamp,
    channel: &str,
    tech_leads: &[String],
) -> Option<Message> {
    let id = s.id;
    let sev = s.severity.as_str().to_uppercase();
    let what = s.public_title();
    let text = match kind {
        // Declared from an alert or Slack: no branch yet, nobody on it yet.
        EventKind::Declared { base_sha, .. } if base_sha.is_empty() => format!(
            ":rotating_light: {id} [{sev}] reported: {what}. In triage: a tech lead confirms it (`hotfix triage {id} confirm --severity {}`) or declines it (`hotfix triage {id} decline --reason false_alarm`); then the on-call developer takes it with `{}`.",
            s.severity.as_str(),
            take_command(s)
        ),
        EventKind::Declared { branch, .. } => format!(
            ":rotating_light: {id} [{sev}] hotfix started: {what}. Branch `{}`.",
            if s.security {
                "hotfix/…"
            } else {
                branch.as_str()
            }
        ),
        EventKind::AttemptStarted { attempt, .. } => {
            format!(
                ":rotating_light: {id} [{sev}] new hotfix attempt #{attempt} after rollback: {what}."
            )
        }
        EventKind::PrOpened { number, .. } => {
            format!(":git-pull-request: {id} PR #{number} opened: [HOTFIX] {what}.")
        }
        EventKind::SmokePassed { .. } => format!(
            ":white_check_mark: {id} preview passed its smoke checks; waiting for approval."
        ),
        EventKind::SmokeFailed { .. } => format!(":x: {id} preview failed its smoke checks."),
        EventKind::Approved { by, role, .. } => {
            format!(":+1: {id} approved by {by} ({}).", role.label())
        }
        EventKind::Merged { .. } => {
            format!(":merged: {id} merged to main; deploying to production.")
        }
        EventKind::HealthPassed { .. } => match s.reported_by.as_deref() {
            Some(who) if !s.security => format!(
                ":tada: {id} fix deployed; production healthy. {what} resolved. Reported by {who}: please verify the fix with them."
            ),
            _ => format!(":tada: {id} fix deployed; production healthy. {what} resolved."),
        },
        EventKind::Confirmed { .. } => format!(
            ":white_check_mark: {id} [{sev}] confirmed at triage: {what}. On-call developer, take it: `{}`.",
            take_command(s)
        ),
        EventKind::Declined {
            reason,
            duplicate_of,
            ..
        } => format!(
            ":no_bell: {id} declined at triage: {}{}. Closed; nothing to ship.",
            reason.label(),
            duplicate_of.map(|d| format!(" of {d}")).unwrap_or_default()
        ),
        EventKind::MergedInto { into } => {
            format!(":link: {id} merged into {into} at triage: its alerts land there from now on.")
        }
        EventKind::Escalated { from, to, reason } => {
            if s.security {
                format!(":arrow_double_up: {id} escalated from {from} to {to}.")
            } else {
                format!(":arrow_double_up: {id} escalated from {from} to {to}: {reason}.")
            }
        }
        EventKind::TriageOverdue => format!(
            ":hourglass: {id} [{sev}] is still in triage past its target: a tech lead confirms (`hotfix triage {id} confirm`) or declines it."
        ),
        EventKind::HealthFailed { reason, .. } => {
            if s.security {
                format!(":warning: {id} production unhealthy after deploy.")
            } else {
                format!(":warning: {id} production unhealthy after deploy: {reason}")
            }
        }
        EventKind::Backported { .. } => {
            format!(":arrows_counterclockwise: {id} backported to develop.")
        }
        EventKind::RolledBack {
            reason, automatic, ..
        } => {
            let how = if *automatic {
                "automatically rolled back"
            } else {
                "rolled back"
            };
            // What production runs now, so nobody reads "rolled back" as "down".
            let now = match s.rolled_back_to.as_ref() {
                Some(r) => {
                    let sha = r
                        .sha
                        .as_deref()
                        .map(|x| format!(" ({})", x.get(..10).unwrap_or(x)))
                        .unwrap_or_default();
                    match &r.health {
                        Some(h) if h.healthy => {
                            format!(" Production runs the previous release{sha}, healthy.")
                        }
                        Some(_) => format!(
                            " Production runs the previous release{sha} and is STILL UNHEALTHY."
                        ),
                        None => format!(" Production runs the previous release{sha}."),
                    }
                }
                None => String::new(),
            };
            if s.security {
                format!(":rewind: {id} {how}; merge reverted.{now}")
            } else {
                format!(":rewind: {id} {how}: {reason}. Merge reverted on main.{now}")
            }
        }
        EventKind::PostmortemScheduled { due, .. } => {
            format!(
                ":calendar: {id} post-mortem scheduled, due by {}.",
                crate::timeline::utc(*due)
            )
        }
        EventKind::Closed => format!(":lock: {id} closed."),
        EventKind::ApprovalWithdrawn { by, reason, .. } => {
            if s.security {
                format!(":raised_hand: {id} approval by {by} withdrawn.")
            } else {
                format!(":raised_hand: {id} approval by {by} withdrawn: {reason}.")
            }
        }
        EventKind::PrClosed { number } => {
            format!(":no_entry_sign: {id} PR #{number} was closed without merging.")
        }
        EventKind::RollbackStep {
            step: crate::event::RollbackStep::Stalled { what: w },
            ..
        } => {
            if s.security {
                format!(
                    ":warning: {id} rollback is incomplete; re-run `hotfix rollback {id} --reason TEXT`."
                )
            } else {
                format!(
                    ":warning: {id} rollback is incomplete: {w}; re-run `hotfix rollback {id} --reason TEXT`."
                )
            }
        }
        EventKind::AntiPatternRecorded {
            pattern: crate::event::AntiPattern::BypassedGuards,
            ..
        } => format!(":warning: {id} was merged outside hotfix past its guards (recorded)."),
        // Steps that are not worth a post of their own (the step before or
        // after them says it), listed so a new kind must be decided here.
        EventKind::Pushed { .. }
        | EventKind::PreviewDeployed { .. }
        | EventKind::AntiPatternRecorded { .. }
        | EventKind::Deployed { .. }
        | EventKind::BackportConflict { .. }
        | EventKind::BackportAborted
        | EventKind::RollbackStep { .. }
        | EventKind::ChecklistDone { .. }
        | EventKind::Note { .. }
        | EventKind::AlertReceived { .. }
        | EventKind::HeadMoved { .. }
        | EventKind::Affects { .. }
        | EventKind::ExternalUpdate { .. }
        | EventKind::Absorbed { .. }
        | EventKind::ReportedBy { .. }
        // The watch's verdict (`health_failed` with the numbers) and the
        // rollback after it say what an analysis or an aborted canary found.
        | EventKind::AnalysisMeasured { .. }
        | EventKind::AnalysisFailed { .. }
        | EventKind::CanaryStep { .. }
        | EventKind::CanaryAborted { .. } => return None,
    };
    let mentions = match kind {
        EventKind::Declared { .. }
        | EventKind::Escalated { .. }
        | EventKind::TriageOverdue
        | EventKind::AttemptStarted { .. }
        | EventKind::RolledBack { .. }
        | EventKind::RollbackStep { .. }
        | EventKind::AntiPatternRecorded { .. } => tech_leads.to_vec(),
        _ => vec![],
    };
    Some(Message {
        incident: id,
        step: kind.name().to_string(),
        severity: s.severity.as_str().to_string(),
        channel: channel.to_string(),
        text,
        mentions,
        customer_facing: s.customer_facing,
        security: s.security,
        at,
        title: s.shared_title(),
        // A security fix's PR may live in a private fork whose address
        // names the advisory (`hotfix_core::access`).
        pr_url: if s.security { None } else { s.pr_url.clone() },
        triage: s.in_triage(),
        public_text: s.status_text(false),
    })
}

/// The command that takes a confirmed incident, as it runs when copied:
/// name and severity filled in (a security incident's name stays `NAME`).
pub fn take_command(s: &IncidentState) -> String {
    format!(
        "hotfix start {} --incident {} --severity {}",
        if s.security { "NAME" } else { s.name.as_str() },
        s.id,
        s.severity.as_str()
    )
}
