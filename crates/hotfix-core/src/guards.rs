//! What may happen next, and exactly why not.
//!
//! Each guard returns every reason at once, so a person in an incident fixes
//! everything in one go instead of discovering refusals one by one.

use std::fmt;

use serde::Serialize;

use crate::config::Config;
use crate::event::Role;
use crate::policy::Policy;
use crate::state::{Approval, IncidentState};

/// One reason a step may not happen, with what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.hint)
    }
}

fn refusal(code: &'static str, message: String, hint: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message,
        hint: hint.into(),
    }
}

fn short(sha: &str) -> &str {
    sha.get(..10).unwrap_or(sha)
}

/// Fresh approvals that count: current head, after the last push, not by a
/// person excluded from approving.
fn counting_approvals(s: &IncidentState) -> Vec<&Approval> {
    let excluded = s.non_approvers();
    let mut seen = std::collections::BTreeSet::new();
    s.fresh_approvals()
        .into_iter()
        .filter(|a| !excluded.contains(&a.by.to_ascii_lowercase()))
        .filter(|a| seen.insert(a.by.to_ascii_lowercase()))
        .collect()
}

/// What approvals are still missing for the severity's policy (empty = enough).
pub fn missing_approvals(s: &IncidentState, policy: &Policy) -> Vec<String> {
    let p = policy.for_severity(s.severity);
    let approvals = counting_approvals(s);
    let leads = approvals
        .iter()
        .filter(|a| a.role == Role::TechLead)
        .count() as u32;
    let reviewers = approvals
        .iter()
        .filter(|a| a.role == Role::Reviewer)
        .count() as u32;
    let mut missing = vec![];
    let lead_short = p.tech_leads.saturating_sub(leads);
    // Extra tech-lead approvals may fill reviewer slots.
    let extra_leads = leads.saturating_sub(p.tech_leads);
    let rev_short = p.reviewers.saturating_sub(reviewers + extra_leads);
    if lead_short > 0 {
        missing.push(format!(
            "{lead_short} tech lead approval{}",
            if lead_short == 1 { "" } else { "s" }
        ));
    }
    if rev_short > 0 {
        missing.push(format!(
            "{rev_short} reviewer approval{}",
            if rev_short == 1 { "" } else { "s" }
        ));
    }
    missing
}

/// Everything that stops `ship`. Empty = may ship.
pub fn ship_refusals(s: &IncidentState, cfg: &Config) -> Vec<Refusal> {
    let policy = &cfg.policy;
    let p = policy.for_severity(s.severity);
    let mut out = vec![];
    if s.is_closed() {
        out.push(refusal(
            "closed",
            format!("{} is closed", s.id),
            "open a new incident with `hotfix start`",
        ));
        return out;
    }
    if s.rollback.is_some() {
        out.push(refusal(
            "rolled_back",
            format!(
                "{} was rolled back: {}",
                s.id,
                s.rollback.as_ref().map(|r| r.reason.as_str()).unwrap_or("")
            ),
            format!(
                "start a new attempt with `hotfix start NAME --severity {} --incident {}`",
                s.severity, s.id
            ),
        ));
        return out;
    }
    let Some(head) = s.head_sha.as_deref() else {
        out.push(refusal(
            "not_pushed",
            "nothing has been pushed yet".into(),
            "commit the fix on the hotfix branch and run `hotfix push`",
        ));
        return out;
    };
    if s.pr_closed {
        out.push(refusal(
            "pr_closed",
            format!(
                "PR #{} was closed without merging",
                s.pr.unwrap_or_default()
            ),
            "reopen it on the forge, or run `hotfix push` to open a new one",
        ));
    }
    if p.preview && s.preview_sha.as_deref() != Some(head) {
        out.push(refusal(
            "no_preview",
            format!("no preview deploy of the current head {}", short(head)),
            "run `hotfix push` to deploy a preview (never skip PR preview testing)",
        ));
    }
    if (p.smoke || p.area_checks) && !s.smoke_passed_on_head() {
        let what = match &s.smoke {
            Some((sha, false, checks)) if sha == head => {
                let failed: Vec<_> = checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| c.name.clone())
                    .collect();
                format!(
                    "smoke checks failed on {}: {}",
                    short(head),
                    failed.join(", ")
                )
            }
            _ => format!(
                "smoke checks have not passed on a preview of the current head {}",
                short(head)
            ),
        };
        out.push(refusal("no_smoke", what, "fix and run `hotfix push` again"));
    }
    let stale: Vec<&Approval> = s
        .approvals
        .iter()
        .filter(|a| Some(a.sha.as_str()) != s.head_sha.as_deref() || Some(a.seq) < s.last_push_seq)
        .collect();
    let excluded = s.non_approvers();
    for a in s.fresh_approvals() {
        if excluded.contains(&a.by.to_ascii_lowercase()) {
            out.push(refusal(
                "self_approval",
                format!("{} cannot approve: nobody approves their own hotfix (they started it or authored a commit)", a.by),
                "ask a tech lead who did not work on the fix",
            ));
        }
    }
    let missing = missing_approvals(s, policy);
    if !missing.is_empty() {
        let mut msg = format!(
            "{} severity needs {}; missing {}",
            s.severity,
            required_text(p.tech_leads, p.reviewers),
            missing.join(" and ")
        );
        if !stale.is_empty() {
            let names: Vec<String> = stale
                .iter()
                .map(|a| format!("{} (on {})", a.by, short(&a.sha)))
                .collect();
            msg.push_str(&format!(
                "; stale after the last push: {}",
                names.join(", ")
            ));
        }
        out.push(refusal(
            "approvals",
            msg,
            format!(
                "ask for `hotfix approve {} --as PERSON` on head {}",
                s.id,
                short(head)
            ),
        ));
    }
    if !s.wide_diff_allowed {
        let d = &s.diff;
        if d.files.len() > policy.diff.max_files || d.lines_changed() > policy.diff.max_lines {
            out.push(refusal(
                "wide_diff",
                format!(
                    "the diff is not focused: {} files and {} changed lines (policy: at most {} files, {} lines)",
                    d.files.len(),
                    d.lines_changed(),
                    policy.diff.max_files,
                    policy.diff.max_lines
                ),
                "keep hotfixes focused; if this really is one fix, `hotfix ship --allow-wide --reason TEXT` records it as an anti-pattern",
            ));
        }
        if !d.conflict_markers.is_empty() {
            out.push(refusal(
                "conflict_markers",
                format!("conflict markers in {}", d.conflict_markers.join(", ")),
                "resolve them, commit and `hotfix push` again",
            ));
        }
    }
    out
}

fn required_text(leads: u32, reviewers: u32) -> String {
    match (leads, reviewers) {
        (l, 0) => format!("{l} tech lead approval{}", if l == 1 { "" } else { "s" }),
        (l, r) => format!(
            "{l} tech lead + {r} reviewer approval{}",
            if l + r == 1 { "" } else { "s" }
        ),
    }
}

/// The outcome of checking an approval request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproveCheck {
    /// Record an approval in this role.
    Record(Role),
    /// The same person already approved this head: nothing to do.
    AlreadyApproved,
}

/// May `who` approve this incident now?
pub fn check_approve(s: &IncidentState, cfg: &Config, who: &str) -> Result<ApproveCheck, Refusal> {
    if s.is_closed() {
        return Err(refusal(
            "closed",
            format!("{} is closed", s.id),
            "nothing to approve",
        ));
    }
    if s.merge_sha.is_some() {
        return Err(refusal(
            "merged",
            format!("{} is already merged", s.id),
            "nothing to approve",
        ));
    }
    if s.rollback.is_some() {
        return Err(refusal(
            "rolled_back",
            format!("{} was rolled back", s.id),
            "approve the new attempt once it is pushed",
        ));
    }
    if s.head_sha.is_none() {
        return Err(refusal(
            "not_pushed",
            "nothing to approve yet: the fix has not been pushed".into(),
            "approve after `hotfix push` opened the PR",
        ));
    }
    let role = if cfg.is_tech_lead(who) {
        Role::TechLead
    } else if cfg.is_reviewer(who) {
        Role::Reviewer
    } else {
        return Err(refusal(
            "not_an_approver",
            format!(
                "{who} may not approve: only the tech leads and reviewers in hotfix.toml [team] may"
            ),
            "ask a tech lead, or add the person to [team] in hotfix.toml",
        ));
    };
    if s.non_approvers().contains(&who.to_ascii_lowercase()) {
        return Err(refusal(
            "self_approval",
            format!(
                "{who} may not approve {}: nobody approves their own hotfix (started it or authored a commit)",
                s.id
            ),
            "ask a tech lead who did not work on the fix",
        ));
    }
    if s.fresh_approvals()
        .iter()
        .any(|a| a.by.eq_ignore_ascii_case(who))
    {
        return Ok(ApproveCheck::AlreadyApproved);
    }
    Ok(ApproveCheck::Record(role))
}

/// The events that withdraw `who`'s approvals of the current head (none
/// when they have none that counts): `hotfix approve --withdraw`, the API,
/// the dashboard, a dismissed review or *changes requested* on the forge.
pub fn withdrawals(
    s: &IncidentState,
    who: &str,
    reason: &str,
    source: &str,
) -> Vec<crate::event::EventKind> {
    // One person has at most one approval that counts (a second is
    // `AlreadyApproved`): withdrawing it is one event.
    s.fresh_approvals()
        .into_iter()
        .find(|a| a.by.eq_ignore_ascii_case(who))
        .map(|a| crate::event::EventKind::ApprovalWithdrawn {
            by: who.to_string(),
            sha: a.sha.clone(),
            reason: reason.to_string(),
            source: source.to_string(),
        })
        .into_iter()
        .collect()
}
