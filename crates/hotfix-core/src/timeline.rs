//! Each step's elapsed time since the incident was declared, against the
//! process targets.

use jiff::Timestamp;
use serde::Serialize;

use crate::event::EventKind;
use crate::guards::missing_approvals;
use crate::policy::Policy;
use crate::state::IncidentState;

/// One row of the timeline (`status --json` `timeline[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub label: &'static str,
    /// When it was done; `None` while it is not.
    pub at: Option<Timestamp>,
    /// Seconds since declared when done, or so far when not.
    pub elapsed_s: i64,
    pub target_s: Option<i64>,
    pub done: bool,
    /// Done late, or not done and already past its target.
    pub over: bool,
}

fn secs(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// The timeline as of `now`. Steps of the current attempt only; rollbacks appear
/// as rows of their own.
pub fn timeline(s: &IncidentState, policy: &Policy, now: Timestamp) -> Vec<Step> {
    let t = &policy.targets;
    let start = s.declared_at;
    let attempt_from = s
        .events
        .iter()
        .rposition(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
        .unwrap_or(0);
    let current = &s.events[attempt_from..];
    let last = |pred: &dyn Fn(&EventKind) -> bool| {
        current.iter().rev().find(|e| pred(&e.kind)).map(|e| e.at)
    };
    let head = s.head_sha.clone().unwrap_or_default();

    // A reported incident is triaged when a person decides (or cuts its
    // branch); one declared with its branch was triaged by declaring it.
    let triage = s.triaged_at();
    let fix = last(&|k| matches!(k, EventKind::Pushed { .. }));
    let preview = last(&|k| matches!(k, EventKind::SmokePassed { sha, .. } if *sha == head));
    let approval = if s.head_sha.is_some() && missing_approvals(s, policy).is_empty() {
        s.fresh_approvals().iter().map(|a| a.at).max()
    } else if s.merge_sha.is_some() {
        // Merged: approvals were enough when it merged.
        s.approvals.iter().map(|a| a.at).max()
    } else {
        None
    };
    let deploy = last(&|k| matches!(k, EventKind::HealthPassed { .. }));
    let backport = last(&|k| matches!(k, EventKind::Backported { .. }));

    let mut rows = vec![];
    let mut push = |step: &'static str,
                    label: &'static str,
                    at: Option<Timestamp>,
                    target: Option<std::time::Duration>| {
        let done = at.is_some();
        let until = at.unwrap_or(now);
        let elapsed_s = until.as_second() - start.as_second();
        let target_s = target.map(secs);
        let over = target_s.is_some_and(|t| elapsed_s > t);
        rows.push(Step {
            step,
            label,
            at,
            elapsed_s,
            target_s,
            done,
            over,
        });
    };
    push("triage", "Alert & triage", triage, Some(t.triage.0));
    push("fix", "Create branch & fix", fix, Some(t.fix.0));
    push("preview", "Test in preview", preview, Some(t.preview.0));
    push(
        "approval",
        "Emergency approval",
        approval,
        Some(t.approval.0),
    );
    push("deploy", "Production deploy", deploy, Some(t.deploy.0));
    push(
        "backport",
        "Backport to develop",
        backport,
        Some(t.backport.0),
    );
    push(
        "resolved",
        "Issue resolved",
        s.resolved_at,
        Some(t.resolved.0),
    );
    for e in &s.events {
        if let EventKind::RolledBack { .. } = e.kind {
            push("rolled_back", "Rolled back", Some(e.at), None);
        }
    }
    rows
}

/// `mm:ss` (or `h:mm:ss`) for people.
pub fn clock(secs: i64) -> String {
    let s = secs.max(0);
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}
