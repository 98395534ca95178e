//! One line of plain words per event, for the incident page's log.

use hotfix_core::event::{EventKind, RollbackStep};

use super::render::{short, time};

/// What the event says, for people.
pub fn describe(kind: &EventKind, security: bool) -> String {
    match kind {
        EventKind::Declared {
            title,
            severity,
            branch,
            ..
        } => {
            if security {
                format!("declared a {severity} security incident (details restricted)")
            } else {
                format!("declared {severity}: {title} (branch {branch})")
            }
        }
        EventKind::AttemptStarted {
            attempt, branch, ..
        } => format!("started attempt #{attempt} on {branch}"),
        EventKind::Pushed { sha, commits, diff } => format!(
            "pushed {} ({} commit{}, {} file{}, +{} −{})",
            short(sha),
            commits.len(),
            if commits.len() == 1 { "" } else { "s" },
            diff.files.len(),
            if diff.files.len() == 1 { "" } else { "s" },
            diff.lines_added,
            diff.lines_removed
        ),
        EventKind::PrOpened { number, url } => format!("opened PR #{number} {url}"),
        EventKind::PreviewDeployed { sha, url } => {
            format!("preview of {} deployed at {url}", short(sha))
        }
        EventKind::SmokePassed { sha, checks } => format!(
            "smoke checks passed on {} ({} check{})",
            short(sha),
            checks.len(),
            if checks.len() == 1 { "" } else { "s" }
        ),
        EventKind::SmokeFailed { sha, checks } => {
            let failed: Vec<&str> = checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name.as_str())
                .collect();
            format!(
                "smoke checks failed on {}: {}",
                short(sha),
                if failed.is_empty() {
                    "no details".to_string()
                } else {
                    failed.join(", ")
                }
            )
        }
        EventKind::Approved {
            by,
            role,
            sha,
            source,
        } => format!(
            "{by} approved {} as {} (via {source})",
            short(sha),
            role.label()
        ),
        EventKind::ApprovalWithdrawn {
            by,
            sha,
            reason,
            source,
        } => format!(
            "{by} withdrew the approval of {} (via {source}): {reason}",
            short(sha)
        ),
        EventKind::PrClosed { number } => format!("PR #{number} closed without merging"),
        EventKind::AntiPatternRecorded { pattern, reason } => {
            format!("anti-pattern recorded: {}: {reason}", pattern.label())
        }
        EventKind::Merged {
            merge_sha,
            head_sha,
            source,
            ..
        } => format!(
            "merged {} into main as {}{}",
            short(head_sha),
            short(merge_sha),
            if source == "cli" {
                String::new()
            } else {
                format!(" (on {source})")
            }
        ),
        EventKind::Deployed {
            sha,
            environment,
            build,
            ..
        } => format!(
            "{} deployed to {environment}{}",
            short(sha),
            build
                .as_ref()
                .map(|b| b.summary())
                .filter(|b| !b.is_empty())
                .map(|b| format!(" — {b}"))
                .unwrap_or_default()
        ),
        EventKind::HealthPassed { sha, probes } => format!(
            "production healthy on {} ({probes} probe{})",
            short(sha),
            if *probes == 1 { "" } else { "s" }
        ),
        EventKind::HealthFailed { sha, reason } => {
            format!("production unhealthy on {}: {reason}", short(sha))
        }
        EventKind::BackportConflict { files, .. } => {
            format!("backport conflicts in {}", files.join(", "))
        }
        EventKind::BackportAborted => "backport aborted".into(),
        EventKind::Backported { merge_sha } => {
            format!("backported to develop ({})", short(merge_sha))
        }
        EventKind::RollbackStep { step, .. } => match step {
            RollbackStep::Production { sha, health, .. } => format!(
                "rollback: production back on the previous release{}{}",
                sha.as_deref()
                    .map(|s| format!(" {}", short(s)))
                    .unwrap_or_default(),
                match health {
                    Some(h) if h.healthy => format!(
                        ", healthy ({} probe{})",
                        h.probes,
                        if h.probes == 1 { "" } else { "s" }
                    ),
                    Some(_) if security => ", still unhealthy".into(),
                    Some(h) => format!(", still unhealthy: {}", h.detail),
                    None => String::new(),
                }
            ),
            RollbackStep::MainReverted { sha } => {
                format!("rollback: merge reverted on main ({})", short(sha))
            }
            RollbackStep::DevelopReverted { sha } => {
                format!("rollback: backport reverted on develop ({})", short(sha))
            }
            RollbackStep::Stalled { what } => format!("rollback incomplete: {what}"),
        },
        EventKind::RolledBack {
            reason,
            automatic,
            forced,
            ..
        } => format!(
            "{} rolled back: {reason}{}",
            if *automatic {
                "automatically"
            } else {
                "manually"
            },
            forced
                .as_deref()
                .map(|f| format!(" (forced: {f})"))
                .unwrap_or_default()
        ),
        EventKind::ChecklistDone { key } => format!("ticked checklist item {key}"),
        EventKind::PostmortemScheduled { path, due } => {
            format!("post-mortem {path} scheduled, due {}", time(*due))
        }
        EventKind::Closed => "closed the incident".into(),
        EventKind::Note { text } => text.clone(),
        EventKind::AlertReceived {
            source,
            status,
            summary,
            ..
        } => format!("{source} alert {status}: {summary}"),
        EventKind::HeadMoved { sha, source } => {
            format!("branch head moved to {} ({source})", short(sha))
        }
        EventKind::Affects { components } => format!("affects {}", components.join(", ")),
        EventKind::ExternalUpdate {
            source,
            what,
            detail,
        } => format!("{source}: {what} {detail}"),
        EventKind::Confirmed { .. }
        | EventKind::Declined { .. }
        | EventKind::MergedInto { .. }
        | EventKind::Absorbed { .. }
        | EventKind::Escalated { .. }
        | EventKind::TriageOverdue
        | EventKind::ReportedBy { .. }
        | EventKind::AnalysisMeasured { .. }
        | EventKind::AnalysisFailed { .. }
        | EventKind::CanaryStep { .. }
        | EventKind::CanaryAborted { .. } => hotfix_engine::text::describe(kind),
    }
}

/// Events about previews and production (the incident page's deploys).
pub fn is_deploy(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::PreviewDeployed { .. }
            | EventKind::SmokePassed { .. }
            | EventKind::SmokeFailed { .. }
            | EventKind::Merged { .. }
            | EventKind::Deployed { .. }
            | EventKind::HealthPassed { .. }
            | EventKind::HealthFailed { .. }
            | EventKind::BackportConflict { .. }
            | EventKind::BackportAborted
            | EventKind::Backported { .. }
            | EventKind::RollbackStep { .. }
            | EventKind::RolledBack { .. }
            | EventKind::ExternalUpdate { .. }
    )
}
