//! The texts hotfix writes: PR title and impact assessment, commit messages,
//! the post-mortem draft and its calendar invite.

use hotfix_core::config::Config;
use hotfix_core::duration::{span, span_of};
use hotfix_core::event::EventKind;
use hotfix_core::plural::count;
use hotfix_core::state::IncidentState;
use hotfix_core::timeline::{StepState, timeline, utc};
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
    /// `ok`, `over target`, `not done`, `not done, over target`, `rolled back`.
    verdict: &'static str,
    /// What else the row says (the deploy: how production got its build).
    detail: String,
}

fn rows(s: &IncidentState, cfg: &Config, now: Timestamp) -> Vec<Row> {
    timeline(s, &cfg.policy, now)
        .into_iter()
        .map(|t| Row {
            label: t.label,
            at: t.at.map(utc).unwrap_or_else(|| "—".into()),
            elapsed: span(t.elapsed_s),
            target: t.target_s.map(span).unwrap_or_else(|| "—".into()),
            done: t.done,
            over: t.over,
            verdict: match t.state {
                StepState::Done => "ok",
                StepState::Late => "over target",
                StepState::Pending => "not done",
                StepState::Overdue => "not done, over target",
                StepState::RolledBack => "rolled back",
            },
            detail: t.detail.unwrap_or_default(),
        })
        .collect()
}

/// What production runs after a rollback, in words: `the previous
/// release (0123456789), healthy (1 probe)`. `None` before a rollback put
/// it back. Security incidents keep the probe's detail to themselves.
pub fn rolled_back_to_line(s: &IncidentState) -> Option<String> {
    let r = s.rolled_back_to.as_ref()?;
    let what = match (&r.sha, &r.deployment) {
        (Some(sha), Some(d)) => format!(
            "the previous release {} (deployment {d})",
            crate::short(sha)
        ),
        (Some(sha), None) => format!("the previous release {}", crate::short(sha)),
        (None, Some(d)) => format!("the previous release (deployment {d})"),
        (None, None) => "the previous release".to_string(),
    };
    let health = match &r.health {
        Some(h) if h.healthy => format!("healthy ({})", count(h.probes, "probe")),
        Some(h) if s.security || h.detail.is_empty() => "still UNHEALTHY".to_string(),
        Some(h) => format!("still UNHEALTHY: {}", h.detail),
        None => "health not checked after the rollback".to_string(),
    };
    Some(format!("{what}, {health}"))
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
            diff_files => count(s.diff.files.len(), "file"),
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
            "pushed {} ({}, {})",
            crate::short(sha),
            count(diff.files.len(), "file"),
            count(diff.lines_changed(), "line")
        ),
        EventKind::PrOpened { number, .. } => format!("PR #{number} opened"),
        EventKind::PreviewDeployed { url, .. } => format!("preview deployed at {url}"),
        EventKind::SmokePassed { checks, .. } => {
            format!("smoke checks passed ({})", count(checks.len(), "check"))
        }
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
            sha,
            environment,
            build,
            ..
        } => format!(
            "deployed {} to {environment}{}",
            crate::short(sha),
            build
                .as_ref()
                .map(|b| b.summary())
                .filter(|b| !b.is_empty())
                .map(|b| format!(" — {b}"))
                .unwrap_or_default()
        ),
        EventKind::HealthPassed { probes, .. } => {
            format!("production healthy ({})", count(*probes, "probe"))
        }
        EventKind::HealthFailed { reason, .. } => format!("production unhealthy: {reason}"),
        EventKind::BackportConflict { files, .. } => {
            format!("backport conflicted in {}", files.join(", "))
        }
        EventKind::BackportAborted => "backport aborted".into(),
        EventKind::Backported { .. } => "backported to develop".into(),
        EventKind::RollbackStep { step, .. } => match step {
            hotfix_core::event::RollbackStep::Production { sha, health, .. } => format!(
                "rollback: production back on the previous release{}{}",
                sha.as_deref()
                    .map(|s| format!(" {}", crate::short(s)))
                    .unwrap_or_default(),
                match health {
                    Some(h) if h.healthy => {
                        format!(", healthy ({})", count(h.probes, "probe"))
                    }
                    Some(h) => format!(", still unhealthy: {}", h.detail),
                    None => String::new(),
                }
            ),
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
        EventKind::AnalysisMeasured {
            name,
            samples,
            baseline,
            verdict,
            ..
        } => analysis_line(name, samples, *baseline, verdict),
        EventKind::AnalysisFailed {
            name,
            values,
            threshold,
            ..
        } => format!(
            "analysis {name} failed: {} against {threshold}",
            values
                .iter()
                .map(|v| number(*v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        EventKind::CanaryStep { sha, weight } if *weight >= 100.0 => {
            format!("canary {} promoted: it is production", crate::short(sha))
        }
        EventKind::CanaryStep { sha, weight } => {
            format!(
                "canary: {}% of requests to {}",
                number(*weight),
                crate::short(sha)
            )
        }
        EventKind::CanaryAborted { sha, reason } => format!(
            "canary {} aborted (0% at once): {reason}",
            crate::short(sha)
        ),
    }
}

/// A measured value as people read it (the analysis's own formatting).
pub fn number(v: f64) -> String {
    hotfix_core::analysis::num(v)
}

/// `analysis 5xx ratio pass: 12 samples, last 0.002 (baseline 0.001)`.
pub fn analysis_line(
    name: &str,
    samples: &[(u32, Option<f64>)],
    baseline: Option<f64>,
    verdict: &str,
) -> String {
    let with_data = samples.iter().filter(|(_, v)| v.is_some()).count();
    let last = samples.iter().rev().find_map(|(_, v)| *v);
    format!(
        "analysis {name} {verdict}: {}{}{}{}",
        count(samples.len(), "sample"),
        if with_data < samples.len() {
            format!(" ({} without data)", samples.len() - with_data)
        } else {
            String::new()
        },
        last.map(|v| format!(", last {}", number(v)))
            .unwrap_or_default(),
        baseline
            .map(|b| format!(" (baseline {})", number(b)))
            .unwrap_or_default()
    )
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
        (
            EventKind::RollbackStep {
                step:
                    hotfix_core::event::RollbackStep::Production {
                        health: Some(h), ..
                    },
                ..
            },
            true,
        ) if !h.healthy => {
            "rollback: production back on the previous release, still unhealthy".to_string()
        }
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
        .map(|r| span(r.as_second() - s.declared_at.as_second()))
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
            resolved_target => span_of(cfg.policy.targets.resolved.0),
            rolled_back_to => rolled_back_to_line(s),
            build => s.deployed_build.as_ref().map(|b| b.summary()).filter(|b| !b.is_empty()),
            due => fmt(due),
            attempt => s.attempt,
            rollbacks => s.rollbacks,
            timeline => rows(s, cfg, now),
            log => s.events.iter().map(|e| event_line(e, s.security)).collect::<Vec<_>>(),
            anti_patterns => s.anti_patterns.iter().map(|(p, r)| format!("{}: {r}", p.label())).collect::<Vec<_>>(),
            analyses => analysis_rows(s, cfg),
            verified => hotfix_core::checklist::fix_verified(s).1,
        },
    )
}

/// One analysis of one watch, for the post-mortem's table.
#[derive(Debug, Serialize)]
pub struct AnalysisRow {
    pub name: String,
    pub release: String,
    pub at: String,
    pub verdict: String,
    pub samples: String,
    pub values: String,
    pub threshold: String,
    pub query: String,
}

/// Every analysis every watch of the incident recorded, every attempt
/// included (a rolled-back attempt's numbers are why it was rolled back).
pub fn analysis_rows(s: &IncidentState, cfg: &Config) -> Vec<AnalysisRow> {
    let mut rows: Vec<AnalysisRow> = vec![];
    for e in &s.events {
        match &e.kind {
            EventKind::AnalysisMeasured {
                name,
                sha,
                samples,
                baseline,
                verdict,
                query,
            } => {
                let vals: Vec<f64> = samples.iter().filter_map(|(_, v)| *v).collect();
                let values = if vals.is_empty() {
                    "no data".to_string()
                } else {
                    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
                    let max = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    format!(
                        "min {} · max {} · last {}{}",
                        number(min),
                        number(max),
                        number(vals[vals.len() - 1]),
                        baseline
                            .map(|b| format!(" · baseline {}", number(b)))
                            .unwrap_or_default()
                    )
                };
                rows.push(AnalysisRow {
                    name: name.clone(),
                    release: crate::short(sha).to_string(),
                    at: e.at.strftime("%H:%M:%S").to_string(),
                    verdict: verdict.clone(),
                    samples: format!("{} ({} with data)", samples.len(), vals.len()),
                    values,
                    threshold: cfg
                        .analysis
                        .iter()
                        .find(|c| c.name == *name)
                        .map(|c| c.threshold())
                        .unwrap_or_default(),
                    query: if s.security {
                        "restricted".into()
                    } else {
                        query.replace('|', "\\|")
                    },
                });
            }
            EventKind::AnalysisFailed {
                name,
                sha,
                values,
                threshold,
                ..
            } => {
                let short = crate::short(sha);
                if let Some(r) = rows
                    .iter_mut()
                    .rev()
                    .find(|r| r.name == *name && r.release == short)
                {
                    r.verdict = format!(
                        "fail: {} against {threshold}",
                        values
                            .iter()
                            .map(|v| number(*v))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    r.threshold = threshold.clone();
                }
            }
            _ => {}
        }
    }
    rows
}

/// Where the post-mortem files go once written: the draft is the team's
/// document, committed to develop like any other doc (main takes hotfixes
/// and releases only, and a commit there would skip the process); the
/// invite is sent from a calendar, not committed.
pub fn postmortem_hint(s: &IncidentState, cfg: &Config) -> String {
    format!(
        "commit postmortems/{id}.md to {develop} with the incident's docs (`git add postmortems/{id}.md` on {develop}; not to {main}, which takes hotfixes and releases only); open postmortems/{id}.ics in your calendar to send the invite",
        id = s.id,
        develop = cfg.git.develop,
        main = cfg.git.main,
    )
}

/// Escapes text for an iCalendar TEXT value (RFC 5545 §3.3.11). A TEXT
/// value may hold no control character but a tab: a newline becomes `\n`,
/// a CR is dropped, any other control character a space.
fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            '\t' => out.push('\t'),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Folds content lines longer than 75 octets (RFC 5545 §3.1), never inside
/// a UTF-8 character.
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

/// The mail address of a team identity, if it is one: hotfix names people
/// by the identity they act as (`lead@example.com` in `[team]`, a git
/// email, `HOTFIX_USER`), and only an address-shaped one can be invited.
/// Strict on purpose: the value goes into a `mailto:` URI and a quoted
/// parameter, so nothing that could end either (`"`, `;`, `:`, `,`,
/// spaces, controls) passes.
pub fn mail_address(identity: &str) -> Option<String> {
    let id = identity.trim();
    let (local, domain) = id.split_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && domain.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then(|| id.to_ascii_lowercase())
}

/// Whether an actor is a person (not an alert source, a timer or the
/// server's watch, which act as `alertmanager (alert)`, `hotfix (timer)`).
fn is_person(actor: &str) -> bool {
    let a = actor.trim();
    !a.is_empty() && !a.ends_with(')')
}

/// Who the post-mortem invite goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitees {
    /// Who sends it: the person running `hotfix postmortem` when they have
    /// an address, else the first tech lead in `[team]` who has one.
    pub organizer: Option<String>,
    /// The tech leads of `[team]` and the people on the incident (who
    /// declared it, pushed, approved, shipped, rolled back), by address,
    /// once each, without the organizer.
    pub attendees: Vec<String>,
    /// The same people without a mail address: named in the description
    /// so that whoever sends the invite adds them by hand.
    pub unreachable: Vec<String>,
}

/// The invitees of `s`'s post-mortem, `runner` running the command.
pub fn invitees(s: &IncidentState, cfg: &Config, runner: &str) -> Invitees {
    let leads = cfg.team.tech_leads.iter().map(|l| l.trim().to_string());
    let on_it = hotfix_core::access::people(s).into_iter();
    let mut everyone: Vec<String> = vec![];
    for p in leads
        .chain(on_it)
        .chain(std::iter::once(runner.trim().to_string()))
    {
        if is_person(&p) && !everyone.iter().any(|e| e.eq_ignore_ascii_case(&p)) {
            everyone.push(p);
        }
    }
    let organizer =
        mail_address(runner).or_else(|| cfg.team.tech_leads.iter().find_map(|l| mail_address(l)));
    let mut attendees: Vec<String> = vec![];
    let mut unreachable = vec![];
    for p in everyone {
        match mail_address(&p) {
            Some(a) if organizer.as_deref() == Some(a.as_str()) => {}
            Some(a) => {
                if !attendees.contains(&a) {
                    attendees.push(a);
                }
            }
            None => unreachable.push(p),
        }
    }
    Invitees {
        organizer,
        attendees,
        unreachable,
    }
}

/// A one-hour post-mortem invite, starting at the due time minus one hour so
/// it is held within the 24 hours, from `runner` (who runs `hotfix
/// postmortem`) to the tech leads and the people on the incident.
///
/// RFC 5545 (CRLF line ends, lines folded at 75 octets, TEXT escaped) with
/// RFC 5546's rule for `METHOD:REQUEST`: it names an ORGANIZER and
/// ATTENDEEs. When nobody involved has a mail address there is no one to
/// request anything of, and the invite is a `METHOD:PUBLISH` event to
/// import instead; people without an address are named in DESCRIPTION.
pub fn invite(
    s: &IncidentState,
    cfg: &Config,
    runner: &str,
    due: Timestamp,
    now: Timestamp,
) -> String {
    let f = |t: Timestamp| t.strftime("%Y%m%dT%H%M%SZ").to_string();
    let start = due
        .checked_sub(jiff::SignedDuration::from_hours(1))
        .unwrap_or(due);
    let who = invitees(s, cfg, runner);
    let summary = format!(
        "Post-mortem {}: {}",
        s.id,
        if s.security {
            "security incident"
        } else {
            s.title.as_str()
        }
    );
    let mut desc = format!(
        "Post-mortem for hotfix {} ({}). Draft: postmortems/{}.md (commit it to {}). Due within {} of resolution.",
        s.id,
        s.severity,
        s.id,
        cfg.git.develop,
        span_of(cfg.policy.targets.postmortem_within.0)
    );
    if !who.unreachable.is_empty() {
        desc.push_str(&format!(
            "\nAlso invite (no mail address in hotfix.toml [team]): {}.",
            who.unreachable
                .iter()
                .map(|p| hotfix_core::display::line(p).into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let request = who.organizer.is_some();
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".to_string(),
        "PRODID:-//hotfix//post-mortem//EN".to_string(),
        "CALSCALE:GREGORIAN".to_string(),
        format!("METHOD:{}", if request { "REQUEST" } else { "PUBLISH" }),
        "BEGIN:VEVENT".to_string(),
        format!("UID:{}-postmortem@hotfix", s.id),
        format!("DTSTAMP:{}", f(now)),
        format!("DTSTART:{}", f(start)),
        format!("DTEND:{}", f(due)),
        "SEQUENCE:0".to_string(),
        "STATUS:CONFIRMED".to_string(),
        format!("SUMMARY:{}", ics_text(&summary)),
        format!("DESCRIPTION:{}", ics_text(&desc)),
    ];
    if let Some(o) = &who.organizer {
        lines.push(format!("ORGANIZER;CN=\"{o}\":mailto:{o}"));
        for a in &who.attendees {
            lines.push(format!(
                "ATTENDEE;CN=\"{a}\";ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:{a}"
            ));
        }
    }
    lines.push("END:VEVENT".to_string());
    lines.push("END:VCALENDAR".to_string());
    lines
        .iter()
        .map(|l| ics_fold(l))
        .collect::<Vec<_>>()
        .join("\r\n")
        + "\r\n"
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotfix_core::event::{Event, Role};
    use hotfix_core::id::IncidentId;
    use hotfix_core::severity::Severity;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    /// An incident declared by `declarer`, approved by `approver`, merged
    /// by `shipper`.
    fn incident(title: &str, declarer: &str, approver: &str, shipper: &str) -> IncidentState {
        let head = "b".repeat(40);
        let kinds = vec![
            (
                declarer,
                EventKind::Declared {
                    name: "pdf".into(),
                    title: title.into(),
                    severity: Severity::High,
                    customer_facing: true,
                    security: false,
                    branch: "hotfix/pdf".into(),
                    base_sha: "a".repeat(40),
                },
            ),
            (
                approver,
                EventKind::Approved {
                    by: approver.into(),
                    role: Role::TechLead,
                    sha: head.clone(),
                    source: "cli".into(),
                },
            ),
            (
                shipper,
                EventKind::Merged {
                    merge_sha: "c".repeat(40),
                    head_sha: head,
                    previous_main: "a".repeat(40),
                    previous_deployment: None,
                    source: "cli".into(),
                },
            ),
        ];
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, (who, kind))| Event {
                incident: IncidentId(7),
                seq: i as u64 + 1,
                at: at(i as i64 * 60),
                actor: who.into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap()
    }

    fn team(leads: &[&str]) -> Config {
        let list: Vec<String> = leads.iter().map(|l| format!("{l:?}")).collect();
        Config::parse(&format!("[team]\ntech_leads = [{}]\n", list.join(", "))).unwrap()
    }

    /// One unfolded content line: name, parameters, value.
    #[derive(Debug)]
    struct Prop {
        name: String,
        params: Vec<(String, String)>,
        value: String,
    }

    /// Parses an iCalendar object strictly (RFC 5545 §3.1, §3.3.11; RFC
    /// 5546 §3.2.2 for REQUEST) and panics on the first violation.
    fn parse_strict(ics: &str) -> Vec<Prop> {
        assert!(ics.ends_with("\r\n"), "ends with CRLF");
        let body = &ics[..ics.len() - 2];
        let physical: Vec<&str> = body.split("\r\n").collect();
        let mut logical: Vec<String> = vec![];
        for l in physical {
            assert!(
                !l.contains('\r') && !l.contains('\n'),
                "bare CR/LF in {l:?}"
            );
            assert!(l.len() <= 75, "{} octets: {l:?}", l.len());
            match l.strip_prefix(' ').or_else(|| l.strip_prefix('\t')) {
                Some(rest) => logical
                    .last_mut()
                    .expect("continuation first")
                    .push_str(rest),
                None => logical.push(l.to_string()),
            }
        }
        let token =
            |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let props: Vec<Prop> = logical
            .iter()
            .map(|l| {
                // The name and parameters end at the first ':' outside quotes.
                let mut quoted = false;
                let colon = l
                    .char_indices()
                    .find(|(_, c)| {
                        if *c == '"' {
                            quoted = !quoted;
                        }
                        *c == ':' && !quoted
                    })
                    .map(|(i, _)| i)
                    .unwrap_or_else(|| panic!("no value in {l:?}"));
                let (head, value) = (&l[..colon], &l[colon + 1..]);
                assert!(
                    value.chars().all(|c| c == '\t' || !c.is_control()),
                    "control character in {l:?}"
                );
                let mut parts = head.split(';');
                let name = parts.next().unwrap().to_string();
                assert!(token(&name), "bad name in {l:?}");
                let params = parts
                    .map(|p| {
                        let (k, v) = p
                            .split_once('=')
                            .unwrap_or_else(|| panic!("bad param {p:?}"));
                        assert!(token(k), "bad param name {k:?}");
                        let ok = match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                            Some(inner) => !inner.contains('"'),
                            None => !v.contains([',', ';', ':', '"']),
                        };
                        assert!(ok, "bad param value {v:?}");
                        (k.to_string(), v.trim_matches('"').to_string())
                    })
                    .collect();
                Prop {
                    name,
                    params,
                    value: value.to_string(),
                }
            })
            .collect();
        // Components nest: VCALENDAR around one VEVENT.
        let names: Vec<String> = props
            .iter()
            .filter(|p| p.name == "BEGIN" || p.name == "END")
            .map(|p| format!("{}:{}", p.name, p.value))
            .collect();
        assert_eq!(
            names,
            [
                "BEGIN:VCALENDAR",
                "BEGIN:VEVENT",
                "END:VEVENT",
                "END:VCALENDAR"
            ]
        );
        let n = |name: &str| props.iter().filter(|p| p.name == name).count();
        for once in [
            "VERSION", "PRODID", "UID", "DTSTAMP", "DTSTART", "DTEND", "SUMMARY", "METHOD",
        ] {
            assert_eq!(n(once), 1, "{once} once");
        }
        // TEXT escapes: a backslash only before \ ; , n N; no bare ; or ,.
        for p in props
            .iter()
            .filter(|p| p.name == "SUMMARY" || p.name == "DESCRIPTION")
        {
            let mut chars = p.value.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => assert!(
                        matches!(chars.next(), Some('\\' | ';' | ',' | 'n' | 'N')),
                        "bad escape in {:?}",
                        p.value
                    ),
                    ';' | ',' => panic!("unescaped {c} in {:?}", p.value),
                    _ => {}
                }
            }
        }
        for p in props
            .iter()
            .filter(|p| p.name == "ORGANIZER" || p.name == "ATTENDEE")
        {
            let addr = p
                .value
                .strip_prefix("mailto:")
                .unwrap_or_else(|| panic!("{} is not a mailto: {:?}", p.name, p.value));
            assert_eq!(mail_address(addr).as_deref(), Some(addr), "{addr}");
        }
        let method = props.iter().find(|p| p.name == "METHOD").unwrap();
        if method.value == "REQUEST" {
            assert_eq!(n("ORGANIZER"), 1, "a REQUEST names its organizer");
            assert!(n("ATTENDEE") >= 1, "a REQUEST has attendees");
        }
        props
    }

    fn values<'a>(props: &'a [Prop], name: &str) -> Vec<&'a str> {
        props
            .iter()
            .filter(|p| p.name == name)
            .map(|p| p.value.as_str())
            .collect()
    }

    /// RFC 5545 TEXT, unescaped.
    fn unescape(v: &str) -> String {
        v.replace("\\n", "\n")
            .replace("\\,", ",")
            .replace("\\;", ";")
            .replace("\\\\", "\\")
    }

    #[test]
    fn the_invite_goes_from_the_runner_to_the_leads_and_the_people_on_it() {
        let title = "Exports; CSV, PDF \\ ünïcødé — ".repeat(4);
        let s = incident(&title, "dev@example.com", "lead@example.com", "alice");
        let cfg = team(&["Lead@Example.com", "lead2@example.com", "carol"]);
        let ics = invite(&s, &cfg, "lead@example.com", at(86_400), at(3600));
        let props = parse_strict(&ics);
        assert_eq!(values(&props, "METHOD"), ["REQUEST"]);
        assert_eq!(
            values(&props, "ORGANIZER"),
            ["mailto:lead@example.com"],
            "{ics}"
        );
        let mut attendees = values(&props, "ATTENDEE");
        attendees.sort();
        assert_eq!(
            attendees,
            ["mailto:dev@example.com", "mailto:lead2@example.com"],
            "the organizer once, as organizer; everyone else by address"
        );
        let att = props.iter().find(|p| p.name == "ATTENDEE").unwrap();
        assert!(att.params.iter().any(|(k, v)| k == "RSVP" && v == "TRUE"));
        // The title survives escaping and folding byte for byte.
        let summary = unescape(values(&props, "SUMMARY")[0]);
        assert_eq!(summary, format!("Post-mortem HF-7: {title}"));
        // People without an address are named for the sender to add.
        let desc = unescape(values(&props, "DESCRIPTION")[0]);
        assert!(
            desc.contains("no mail address in hotfix.toml [team]): carol, alice."),
            "{desc}"
        );
        assert!(desc.contains("commit it to develop"), "{desc}");
    }

    #[test]
    fn without_a_single_address_the_invite_is_published_not_requested() {
        let s = incident("PDF export crashes", "bob", "carol", "bob");
        let cfg = team(&["carol"]);
        let ics = invite(&s, &cfg, "bob", at(86_400), at(3600));
        let props = parse_strict(&ics);
        assert_eq!(values(&props, "METHOD"), ["PUBLISH"]);
        assert!(values(&props, "ORGANIZER").is_empty() && values(&props, "ATTENDEE").is_empty());
        let desc = unescape(values(&props, "DESCRIPTION")[0]);
        assert!(desc.contains("carol, bob."), "{desc}");
    }

    #[test]
    fn the_organizer_falls_back_to_a_tech_lead_with_an_address() {
        let s = incident(
            "PDF export crashes",
            "dev@example.com",
            "lead@example.com",
            "dev@example.com",
        );
        let cfg = team(&["lead@example.com"]);
        let who = invitees(&s, &cfg, "runner-without-address");
        assert_eq!(who.organizer.as_deref(), Some("lead@example.com"));
        assert_eq!(who.attendees, ["dev@example.com"]);
        assert_eq!(who.unreachable, ["runner-without-address"]);
        // Automated actors are nobody to invite.
        let s = incident(
            "x",
            "alertmanager (alert)",
            "lead@example.com",
            "dev@example.com",
        );
        assert!(
            !invitees(&s, &cfg, "lead@example.com")
                .unreachable
                .iter()
                .any(|p| p.contains("alert"))
        );
    }

    #[test]
    fn only_address_shaped_identities_are_mail_addresses() {
        assert_eq!(
            mail_address(" Lead@Example.COM "),
            Some("lead@example.com".into())
        );
        for bad in [
            "lead",
            "lead@localhost",
            "a\"b@example.com",
            "a;b@example.com",
            "a b@example.com",
            "a@exa:mple.com",
            "a@-example.com",
            "@example.com",
            "a@example.com\r\nATTENDEE:mailto:x@y.z",
        ] {
            assert_eq!(mail_address(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_post_mortem_lists_every_analysis_with_its_numbers() {
        let mut s = incident("PDF export crashes", "dev@x", "lead@x", "dev@x");
        let m = "c".repeat(40);
        for kind in [
            EventKind::Deployed {
                sha: m.clone(),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: None,
            },
            EventKind::AnalysisMeasured {
                name: "5xx ratio".into(),
                sha: m.clone(),
                samples: vec![
                    (0, Some(0.001)),
                    (5, None),
                    (10, Some(0.2)),
                    (15, Some(0.3)),
                ],
                baseline: None,
                verdict: "fail".into(),
                query: "sum(rate(errors[1m])) | x".into(),
            },
            EventKind::AnalysisFailed {
                name: "5xx ratio".into(),
                sha: m.clone(),
                values: vec![0.2, 0.3],
                threshold: "max 0.01".into(),
                query: "q".into(),
            },
        ] {
            s.push(at(600), "dev@x", &kind);
        }
        let cfg = Config::parse("").unwrap();
        let text = postmortem(&s, &cfg, at(900), at(90_000));
        assert!(text.contains("## Verification in production"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("| 5xx ratio |"))
            .unwrap_or_else(|| panic!("no analysis row in:\n{text}"));
        assert!(row.contains("| cccccccccc |"), "{row}");
        assert!(row.contains("fail: 0.2, 0.3 against max 0.01"), "{row}");
        assert!(row.contains("4 (3 with data)"), "{row}");
        assert!(row.contains("min 0.001 · max 0.3 · last 0.3"), "{row}");
        // A `|` in the query does not break the table.
        assert!(row.contains("errors[1m])) \\| x"), "{row}");
    }

    #[test]
    fn the_post_mortem_shows_production_ran_the_tested_build_as_evidence() {
        let mut s = incident("PDF export crashes", "dev@x", "lead@x", "dev@x");
        let m = "c".repeat(40);
        for kind in [
            EventKind::Deployed {
                sha: m.clone(),
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: Some(hotfix_core::event::DeployBuild {
                    tested: true,
                    built: false,
                    from_sha: Some("b".repeat(40)),
                    build_ms: Some(42),
                    note: None,
                }),
            },
            EventKind::HealthPassed {
                sha: m.clone(),
                probes: 3,
            },
        ] {
            s.push(at(600), "dev@x", &kind);
        }
        let cfg = Config::parse("").unwrap();
        let text = postmortem(&s, &cfg, at(900), at(90_000));
        assert!(
            text.contains(
                "- **Production build:** the tested build of bbbbbbbbbb promoted (no build, 42ms)"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "production ran the build the preview smoke-tested (promoted from bbbbbbbbbb)"
            ),
            "{text}"
        );
        let deploy = text
            .lines()
            .find(|l| l.starts_with("| Production deploy |"))
            .unwrap_or_else(|| panic!("no deploy row in:\n{text}"));
        assert!(
            deploy.contains("— the tested build of bbbbbbbbbb promoted"),
            "{deploy}"
        );
        assert!(
            text.contains("deployed cccccccccc to production — the tested build"),
            "{text}"
        );
        // A deploy that built says why, and claims no tested build.
        let mut s = incident("PDF export crashes", "dev@x", "lead@x", "dev@x");
        s.push(
            at(600),
            "dev@x",
            &EventKind::Deployed {
                sha: m,
                environment: "production".into(),
                deployment: None,
                previous_deployment: None,
                build: Some(hotfix_core::event::DeployBuild {
                    tested: false,
                    built: true,
                    from_sha: Some("b".repeat(40)),
                    build_ms: Some(65_000),
                    note: Some("main moved since the preview of bbbbbbbbbb".into()),
                }),
            },
        );
        let text = postmortem(&s, &cfg, at(900), at(90_000));
        assert!(
            text.contains(
                "- **Production build:** built in 1m05s: main moved since the preview of bbbbbbbbbb"
            ),
            "{text}"
        );
        assert!(!text.contains("smoke-tested"), "{text}");
    }

    #[test]
    fn counts_read_in_the_singular_for_one() {
        let diff = hotfix_core::event::DiffStat {
            files: vec!["app/pdf.py".into()],
            lines_added: 1,
            lines_removed: 0,
            ..Default::default()
        };
        let line = describe(&EventKind::Pushed {
            sha: "b".repeat(40),
            commits: vec![],
            diff,
        });
        assert!(line.ends_with("(1 file, 1 line)"), "{line}");
    }
}
