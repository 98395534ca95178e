//! The texts hotfix writes: PR title and impact assessment, commit messages,
//! the post-mortem draft and its calendar invite.

use hotfix_core::config::Config;
use hotfix_core::event::EventKind;
use hotfix_core::state::IncidentState;
use hotfix_core::timeline::{clock, timeline};
use jiff::Timestamp;
use minijinja::{Environment, context};
use serde::Serialize;

const IMPACT: &str = include_str!("../templates/impact.md");
const POSTMORTEM: &str = include_str!("../templates/postmortem.md");

fn render(name: &str, src: &str, ctx: minijinja::Value) -> String {
    let mut env = Environment::new();
    env.set_trim_blocks(false);
    match env
        .add_template(name, src)
        .and_then(|_| env.get_template(name))
        .and_then(|t| t.render(ctx))
    {
        Ok(s) => s,
        // The templates are ours and tested; should one fail, say so in the text.
        Err(e) => format!("(could not render {name}: {e})"),
    }
}

/// `[HOTFIX] <title>`; a security incident shows nothing but its id.
pub fn pr_title(s: &IncidentState) -> String {
    if s.security {
        format!("[HOTFIX] {} security fix", s.id)
    } else {
        format!("[HOTFIX] {}", s.title)
    }
}

#[derive(Serialize)]
struct Row {
    label: &'static str,
    at: String,
    elapsed: String,
    target: String,
    done: bool,
    over: bool,
}

fn rows(s: &IncidentState, cfg: &Config, now: Timestamp) -> Vec<Row> {
    timeline(s, &cfg.policy, now)
        .into_iter()
        .map(|t| Row {
            label: t.label,
            at: t
                .at
                .map(|a| a.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                .unwrap_or_else(|| "—".into()),
            elapsed: clock(t.elapsed_s),
            target: t.target_s.map(clock).unwrap_or_else(|| "—".into()),
            done: t.done,
            over: t.over,
        })
        .collect()
}

pub fn impact_assessment(s: &IncidentState, cfg: &Config, now: Timestamp) -> String {
    let p = cfg.policy.for_severity(s.severity);
    let wide = s.diff.files.len() > cfg.policy.diff.max_files
        || s.diff.lines_changed() > cfg.policy.diff.max_lines;
    let approvals_required = if p.reviewers == 0 {
        format!("{} tech lead", p.tech_leads)
    } else {
        format!("{} tech lead + {} reviewer", p.tech_leads, p.reviewers)
    };
    render(
        "impact",
        IMPACT,
        context! {
            id => s.id.to_string(),
            severity => s.severity.as_str(),
            response => p.response,
            customer_facing => s.customer_facing,
            security => s.security,
            branch => s.branch,
            main => cfg.git.main,
            develop => cfg.git.develop,
            title => s.title,
            commits => s.commits,
            diff_files => s.diff.files.len(),
            lines_added => s.diff.lines_added,
            lines_removed => s.diff.lines_removed,
            wide => wide,
            max_files => cfg.policy.diff.max_files,
            max_lines => cfg.policy.diff.max_lines,
            markers => s.diff.conflict_markers.join(", "),
            watch => cfg.deploy.watch.to_string(),
            auto_rollback => cfg.deploy.auto_rollback,
            approvals_required => approvals_required,
            timeline => rows(s, cfg, now),
        },
    )
}

fn subject(s: &IncidentState) -> String {
    if s.security {
        format!("{} security fix", s.id)
    } else {
        s.title.clone()
    }
}

pub fn merge_message(s: &IncidentState, pr: u64) -> String {
    format!(
        "Merge {} (#{pr}): [HOTFIX] {}\n\nHotfix-Incident: {}\nSeverity: {}\n",
        s.branch,
        subject(s),
        s.id,
        s.severity
    )
}

pub fn backport_message(s: &IncidentState, develop: &str) -> String {
    format!(
        "Backport {} into {develop}: [HOTFIX] {}\n\nHotfix-Incident: {}\n",
        s.branch,
        subject(s),
        s.id
    )
}

pub fn revert_message(s: &IncidentState, branch: &str, reason: &str) -> String {
    let why = if s.security {
        "see the incident record".to_string()
    } else {
        reason.to_string()
    };
    format!(
        "Revert hotfix {} on {branch}: [HOTFIX] {}\n\nRolled back: {why}\nHotfix-Incident: {}",
        s.branch,
        subject(s),
        s.id
    )
}

/// One event in plain words (the CLI's log; the dashboard shares the
/// triage kinds' wording).
pub fn describe(k: &EventKind) -> String {
    match k {
        EventKind::Declared {
            severity,
            branch,
            base_sha,
            ..
        } => {
            if base_sha.is_empty() {
                format!("declared ({severity} proposed), branch {branch} not cut yet")
            } else {
                format!("declared ({severity}), branch {branch} cut")
            }
        }
        EventKind::AttemptStarted {
            attempt, branch, ..
        } => format!("attempt {attempt} started on {branch}"),
        EventKind::Pushed { sha, diff, .. } => format!(
            "pushed {} ({} files, {} lines)",
            crate::short(sha),
            diff.files.len(),
            diff.lines_changed()
        ),
        EventKind::PrOpened { number, .. } => format!("PR #{number} opened"),
        EventKind::PreviewDeployed { url, .. } => format!("preview deployed at {url}"),
        EventKind::SmokePassed { checks, .. } => format!("smoke checks passed ({})", checks.len()),
        EventKind::SmokeFailed { checks, .. } => format!(
            "smoke checks failed ({} failing)",
            checks.iter().filter(|c| !c.ok).count()
        ),
        EventKind::Approved { by, role, .. } => format!("approved by {by} ({})", role.label()),
        EventKind::ApprovalWithdrawn {
            by, reason, source, ..
        } => format!("approval by {by} withdrawn ({source}): {reason}"),
        EventKind::PrClosed { number } => format!("PR #{number} closed without merging"),
        EventKind::AntiPatternRecorded { pattern, reason } => {
            format!("anti-pattern: {} — {reason}", pattern.label())
        }
        EventKind::Merged {
            merge_sha, source, ..
        } => format!(
            "merged to main as {}{}",
            crate::short(merge_sha),
            if source == "cli" {
                String::new()
            } else {
                format!(" (on {source})")
            }
        ),
        EventKind::Deployed {
            sha, environment, ..
        } => format!("deployed {} to {environment}", crate::short(sha)),
        EventKind::HealthPassed { probes, .. } => format!("production healthy ({probes} probes)"),
        EventKind::HealthFailed { reason, .. } => format!("production unhealthy: {reason}"),
        EventKind::BackportConflict { files, .. } => {
            format!("backport conflicted in {}", files.join(", "))
        }
        EventKind::BackportAborted => "backport aborted".into(),
        EventKind::Backported { .. } => "backported to develop".into(),
        EventKind::RollbackStep { step, .. } => match step {
            hotfix_core::event::RollbackStep::Production { .. } => {
                "rollback: production back on the previous release".into()
            }
            hotfix_core::event::RollbackStep::MainReverted { sha } => {
                format!("rollback: merge reverted on main ({})", crate::short(sha))
            }
            hotfix_core::event::RollbackStep::DevelopReverted { sha } => {
                format!(
                    "rollback: backport reverted on develop ({})",
                    crate::short(sha)
                )
            }
            hotfix_core::event::RollbackStep::Stalled { what } => {
                format!("rollback incomplete: {what}")
            }
        },
        EventKind::RolledBack {
            reason,
            automatic,
            forced,
            ..
        } => format!(
            "{} rollback: {reason}{}",
            if *automatic { "automatic" } else { "manual" },
            forced
                .as_deref()
                .map(|f| format!(" (forced: {f})"))
                .unwrap_or_default()
        ),
        EventKind::ChecklistDone { key } => format!("checklist: {key}"),
        EventKind::PostmortemScheduled { .. } => "post-mortem scheduled".into(),
        EventKind::Closed => "closed".into(),
        EventKind::Note { text } => text.clone(),
        EventKind::AlertReceived {
            source,
            status,
            summary,
            ..
        } => format!("{source} alert {status}: {summary}"),
        EventKind::Affects { components } => format!("affects {}", components.join(", ")),
        EventKind::HeadMoved { sha, source } => format!(
            "branch head moved to {} (seen by {source}): earlier approvals are stale",
            crate::short(sha)
        ),
        EventKind::ExternalUpdate {
            source,
            what,
            detail,
        } => {
            if detail.is_empty() {
                format!("{source}: {what}")
            } else {
                format!("{source}: {what} ({detail})")
            }
        }
        EventKind::Confirmed {
            severity,
            public_text,
        } => format!(
            "confirmed at triage as {severity}{}",
            public_text
                .as_deref()
                .map(|t| format!("; status page: {t}"))
                .unwrap_or_default()
        ),
        EventKind::Declined {
            reason,
            duplicate_of,
            note,
        } => format!(
            "declined at triage: {}{}{}",
            reason.label(),
            duplicate_of.map(|d| format!(" of {d}")).unwrap_or_default(),
            if note.is_empty() {
                String::new()
            } else {
                format!(" ({note})")
            }
        ),
        EventKind::MergedInto { into } => format!("merged into {into} at triage"),
        EventKind::Absorbed { from } => format!("{from} merged into this incident"),
        EventKind::Escalated { from, to, reason } => {
            format!("escalated from {from} to {to}: {reason}")
        }
        EventKind::TriageOverdue => "still in triage past its target: tech leads paged".into(),
        EventKind::ReportedBy { who } => format!("reported by {who}"),
    }
}

/// One line per event, for people (`hotfix log`, post-mortem).
pub fn event_line(e: &hotfix_core::event::Event, security: bool) -> String {
    let what = match (&e.kind, security) {
        (EventKind::HealthFailed { .. }, true) => "production unhealthy".to_string(),
        (
            EventKind::RollbackStep {
                step: hotfix_core::event::RollbackStep::Stalled { .. },
                ..
            },
            true,
        ) => "rollback incomplete".to_string(),
        (EventKind::RolledBack { automatic, .. }, true) => format!(
            "{} rollback",
            if *automatic { "automatic" } else { "manual" }
        ),
        (k, _) => describe(k),
    };
    format!("{} {} — {what}", e.at.strftime("%H:%M:%S"), e.actor)
}

pub fn postmortem(s: &IncidentState, cfg: &Config, now: Timestamp, due: Timestamp) -> String {
    let ttr = s
        .resolved_at
        .map(|r| clock(r.as_second() - s.declared_at.as_second()))
        .unwrap_or_else(|| "not restored".into());
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    render(
        "postmortem",
        POSTMORTEM,
        context! {
            id => s.id.to_string(),
            title => if s.security { "security incident".to_string() } else { s.title.clone() },
            severity => s.severity.as_str(),
            customer_facing => s.customer_facing,
            security => s.security,
            declared_at => fmt(s.declared_at),
            declared_by => s.declared_by,
            resolved_at => s.resolved_at.map(fmt).unwrap_or_else(|| "not yet".into()),
            time_to_restore => ttr,
            resolved_target => cfg.policy.targets.resolved.to_string(),
            due => fmt(due),
            attempt => s.attempt,
            rollbacks => s.rollbacks,
            timeline => rows(s, cfg, now),
            log => s.events.iter().map(|e| event_line(e, s.security)).collect::<Vec<_>>(),
            anti_patterns => s.anti_patterns.iter().map(|(p, r)| format!("{}: {r}", p.label())).collect::<Vec<_>>(),
        },
    )
}

/// Escapes text for an iCalendar TEXT value (RFC 5545 §3.3.11).
fn ics_text(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace(';', "\\;")
        .replace(',', "\\,")
        .replace('\n', "\\n")
}

/// Folds content lines longer than 75 octets (RFC 5545 §3.1).
fn ics_fold(line: &str) -> String {
    let mut out = String::new();
    let mut len = 0;
    for ch in line.chars() {
        let n = ch.len_utf8();
        if len + n > 75 {
            out.push_str("\r\n ");
            len = 1;
        }
        out.push(ch);
        len += n;
    }
    out
}

/// A one-hour post-mortem invite, starting at the due time minus one hour so
/// it is held within the 24 hours.
pub fn invite(s: &IncidentState, due: Timestamp, now: Timestamp) -> String {
    let f = |t: Timestamp| t.strftime("%Y%m%dT%H%M%SZ").to_string();
    let start = due
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap_or(due);
    let summary = format!(
        "Post-mortem {}: {}",
        s.id,
        if s.security {
            "security incident"
        } else {
            s.title.as_str()
        }
    );
    let desc = format!(
        "Post-mortem for hotfix {} ({}). Draft: postmortems/{}.md. Due within 24 hours of resolution.",
        s.id, s.severity, s.id
    );
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//hotfix//post-mortem//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        "METHOD:REQUEST".to_string(),
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}-postmortem@hotfix", s.id),
        format!("DTSTAMP:{}", f(now)),
        format!("DTSTART:{}", f(start)),
        format!("DTEND:{}", f(due)),
        format!("SUMMARY:{}", ics_text(&summary)),
        format!("DESCRIPTION:{}", ics_text(&desc)),
        "END:VEVENT".to_string(),
        "END:VCALENDAR".to_string(),
    ];
    lines
        .iter()
        .map(|l| ics_fold(l))
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}
