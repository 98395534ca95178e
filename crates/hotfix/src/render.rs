//! Output for people and for machines. The JSON shapes are documented in the
//! README and kept stable.

use hotfix_core::display;

use hotfix_core::checklist::checklist;
use hotfix_core::duration::{span, span_of};
use hotfix_core::guards::missing_approvals;
use hotfix_core::provider::OutboxItem;
use hotfix_core::state::IncidentState;
use hotfix_core::timeline::{StepState, timeline};
use hotfix_engine::Engine;
use serde_json::{Value, json};

/// Appends one line of output to `o`, every control and bidi character of
/// what it shows escaped: titles, names, reasons, URLs and error texts come
/// from outside, and a CR/LF or ESC in one must neither forge a line nor
/// reach the terminal. Structure (blank lines) is written as empty rows.
macro_rules! row {
    ($o:expr, $($arg:tt)*) => {{
        let line = format!($($arg)*);
        $o.push_str(&display::line(&line));
        $o.push('\n');
    }};
}

pub fn status_value(e: &Engine, s: &IncidentState, undelivered: &[OutboxItem]) -> Value {
    let now = e.clock.now();
    let fresh: Vec<u64> = s.fresh_approvals().iter().map(|a| a.seq).collect();
    let analyses: Vec<Value> = s
        .analyses
        .iter()
        .map(|a| {
            json!({
                "name": a.name, "sha": a.sha, "at": a.at, "verdict": a.verdict,
                "last_value": a.last_value(), "baseline": a.baseline, "samples": a.samples,
                "query": if s.security { None } else { Some(&a.query) },
                "threshold": threshold_of(e, a),
                "failed_values": a.failed.as_ref().map(|(v, _)| v),
            })
        })
        .collect();
    let canary = s
        .canary
        .as_ref()
        .map(|c| json!({"sha": c.sha, "weight": c.weight, "aborted": c.aborted, "at": c.at}));
    let mut v = json!({
        "id": s.id.to_string(),
        "title": if s.security { format!("{} security incident", s.id) } else { s.title.clone() },
        "severity": s.severity,
        "state": s.phase(&e.cfg.policy).as_str(),
        "customer_facing": s.customer_facing,
        "security": s.security,
        "attempt": s.attempt,
        "branch": s.branch,
        "declared_at": s.declared_at,
        "declared_by": s.declared_by,
        "head_sha": s.head_sha,
        "pr": s.pr,
        "pr_url": s.pr_url,
        "preview_url": s.preview_url,
        "smoke_passed": s.smoke_passed_on_head(),
        "approvals": s.approvals.iter().map(|a| json!({
            "by": a.by, "role": a.role, "sha": a.sha, "at": a.at, "source": a.source,
            "fresh": fresh.contains(&a.seq),
            "withdrawn": a.withdrawn,
        })).collect::<Vec<_>>(),
        "missing_approvals": missing_approvals(s, &e.cfg.policy),
        "merge_sha": s.merge_sha,
        "deployed_sha": s.deployed_sha,
        "deployed_build": s.deployed_build.as_ref().map(|b| json!({
            "tested": b.tested, "built": b.built, "from_sha": b.from_sha,
            "build_ms": b.build_ms, "note": b.note, "summary": b.summary(),
        })),
        "healthy": s.healthy_sha.is_some(),
        "backported": s.backport_sha.is_some(),
        "backport_conflict": s.backport_conflict.as_ref().map(|(f, w)| json!({"files": f, "worktree": w})),
        "rolled_back": s.rollback.as_ref().map(|r| json!({"at": r.at, "reason": r.reason, "automatic": r.automatic, "forced": r.forced})),
        "rolled_back_to": s.rolled_back_to.as_ref().map(|r| json!({
            "at": r.at, "sha": r.sha, "deployment": r.deployment,
            "healthy": r.health.as_ref().map(|h| h.healthy),
            "probes": r.health.as_ref().map(|h| h.probes),
            "detail": r.health.as_ref().map(|h| h.detail.clone()),
        })),
        "rollback_in_progress": s.rollback_progress,
        "pr_closed": s.pr_closed,
        "rollbacks": s.rollbacks,
        "anti_patterns": s.anti_patterns.iter().map(|(p, r)| json!({"pattern": p, "reason": r})).collect::<Vec<_>>(),
        "timeline": timeline(s, &e.cfg.policy, now),
        "checklist": checklist(s),
        "postmortem": s.postmortem.as_ref().map(|(p, d)| json!({"path": p, "due": d})),
        "closed_at": s.closed_at,
        "triage": triage_value(s),
        "next_action": e.next_step(s),
        "undelivered_notifications": undelivered.iter().map(|i| json!({
            "notifier": i.notifier, "step": i.message.step, "attempts": i.attempts, "last_error": i.last_error,
        })).collect::<Vec<_>>(),
    });
    // Beyond what one `json!` expands: what verified the fix.
    v["analyses"] = Value::Array(analyses);
    v["canary"] = canary.unwrap_or(Value::Null);
    v["fix_verified_evidence"] = json!(hotfix_core::checklist::fix_verified(s).1);
    v
}

/// How triage went: who confirmed it, or why it was declined or merged;
/// what was merged into it; who reported it.
fn triage_value(s: &IncidentState) -> Value {
    json!({
        "in_triage": s.in_triage(),
        "confirmed_by": s.confirmed.as_ref().map(|(by, _)| by),
        "declined": s.declined.as_ref().map(|d| json!({
            "reason": d.reason.as_str(),
            "duplicate_of": d.duplicate_of.map(|i| i.to_string()),
            "merged_into": d.merged_into.map(|i| i.to_string()),
            "note": d.note,
            "by": d.by,
            "at": d.at,
        })),
        "absorbed": s.absorbed.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "reported_by": s.reported_by,
    })
}

/// The triage line of `hotfix status`, if triage decided anything.
fn triage_line(s: &IncidentState) -> Option<String> {
    if let Some(d) = &s.declined {
        return Some(match d.merged_into {
            Some(into) => format!("merged into {into} by {}", d.by),
            None => format!(
                "declined ({}{}) by {}{}",
                d.reason.label(),
                d.duplicate_of
                    .map(|i| format!(" of {i}"))
                    .unwrap_or_default(),
                d.by,
                if d.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", d.note)
                }
            ),
        });
    }
    s.confirmed
        .as_ref()
        .map(|(by, _)| format!("confirmed by {by}"))
}

pub fn status_text(e: &Engine, s: &IncidentState, undelivered: &[OutboxItem]) -> String {
    let mut o = String::new();
    let now = e.clock.now();
    let title = display_title(s);
    row!(
        o,
        "{}  [{}] {}",
        s.id,
        s.severity.as_str().to_uppercase(),
        title
    );
    row!(
        o,
        "  state:     {}{}",
        s.phase(&e.cfg.policy).as_str(),
        if s.attempt > 1 {
            format!(" (attempt {})", s.attempt)
        } else {
            String::new()
        }
    );
    if let Some(l) = triage_line(s) {
        row!(o, "  triage:    {l}");
    }
    if !s.absorbed.is_empty() {
        let ids: Vec<String> = s.absorbed.iter().map(|i| i.to_string()).collect();
        row!(o, "  absorbed:  {}", ids.join(", "));
    }
    if let Some(who) = &s.reported_by {
        row!(o, "  reported:  by {who}");
    }
    row!(
        o,
        "  branch:    {}{}",
        s.branch,
        s.head_sha
            .as_deref()
            .map(|h| format!(" @ {}", short(h)))
            .unwrap_or_default()
    );
    if let Some(pr) = s.pr {
        row!(
            o,
            "  PR:        #{pr} {}",
            s.pr_url.as_deref().unwrap_or("")
        );
    }
    if let Some(u) = &s.preview_url {
        row!(
            o,
            "  preview:   {u} (smoke {})",
            if s.smoke_passed_on_head() {
                "passed"
            } else {
                "not passed"
            }
        );
    }
    if !s.approvals.is_empty() {
        let fresh: Vec<u64> = s.fresh_approvals().iter().map(|a| a.seq).collect();
        for a in &s.approvals {
            row!(
                o,
                "  approval:  {} ({}) on {}{}",
                a.by,
                a.role.label(),
                short(&a.sha),
                match (&a.withdrawn, fresh.contains(&a.seq)) {
                    (Some(why), _) => format!(" — withdrawn: {why}"),
                    (None, true) => String::new(),
                    (None, false) => " — stale".to_string(),
                }
            );
        }
    }
    let missing = missing_approvals(s, &e.cfg.policy);
    if !missing.is_empty() && s.merge_sha.is_none() {
        row!(o, "  needs:     {}", missing.join(" and "));
    }
    if let Some(m) = &s.merge_sha {
        let after = if s.healthy_sha.is_some() {
            " — production healthy".to_string()
        } else if let Some(r) = s.rollback.as_ref().and_then(|r| r.main_revert.as_deref()) {
            format!(
                " — rolled back, reverted on {} by {}",
                e.cfg.git.main,
                short(r)
            )
        } else if s.rolled_back_to.is_some() {
            " — rolled back".to_string()
        } else {
            String::new()
        };
        row!(o, "  merged:    {}{after}", short(m));
    }

    if let Some(c) = &s.canary {
        match &c.aborted {
            Some(why) => row!(o, "  canary:    {} aborted (0%): {why}", short(&c.sha)),
            None if c.weight >= 100.0 => row!(o, "  canary:    {} promoted", short(&c.sha)),
            None => row!(
                o,
                "  canary:    {} at {}%",
                short(&c.sha),
                hotfix_core::analysis::num(c.weight)
            ),
        }
    }
    for a in &s.analyses {
        row!(o, "  analysis:  {}", analysis_row(e, a));
    }
    // After a rollback production runs the previous release: say what and
    // how it is, and keep the fix's failure in the past tense.
    if let Some(now) = hotfix_engine::text::rolled_back_to_line(s) {
        row!(o, "  production: {now}");
        // Unless the rollback's reason says it already.
        if let Some(f) = &s.health_failure
            && !s
                .rollback
                .as_ref()
                .is_some_and(|r| r.reason.contains(f.as_str()))
        {
            row!(o, "  the fix:   failed in production — {f}");
        }
    } else if let Some(f) = &s.health_failure {
        row!(o, "  health:    FAILING — {f}");
    }
    if let Some(r) = &s.rollback {
        row!(
            o,
            "  rolled back ({}): {}{}",
            if r.automatic { "automatic" } else { "manual" },
            r.reason,
            r.forced
                .as_deref()
                .map(|f| format!(" — forced: {f}"))
                .unwrap_or_default()
        );
    }
    if let Some(p) = &s.rollback_progress {
        let done: Vec<&str> = [
            p.production
                .then_some("production back on the previous release"),
            p.main_revert.as_ref().map(|_| "merge reverted on main"),
            p.develop_revert
                .as_ref()
                .map(|_| "backport reverted on develop"),
        ]
        .into_iter()
        .flatten()
        .collect();
        row!(
            o,
            "  rollback:  INCOMPLETE — done: {}{}",
            if done.is_empty() {
                "nothing yet".to_string()
            } else {
                done.join(", ")
            },
            p.stalled
                .as_deref()
                .map(|w| format!("; stalled: {w}"))
                .unwrap_or_default()
        );
    }
    if let Some((files, wt)) = &s.backport_conflict {
        row!(
            o,
            "  backport:  conflicts in {} — resolve in {wt}",
            files.join(", ")
        );
    }
    for (p, r) in &s.anti_patterns {
        row!(o, "  anti-pattern: {} — {r}", p.label());
    }
    row!(o, "");
    row!(
        o,
        "  timeline (target: resolved within {})",
        span_of(e.cfg.policy.targets.resolved.0)
    );
    for t in timeline(s, &e.cfg.policy, now) {
        let (mark, note) = match t.state {
            StepState::Done => ("✓", ""),
            StepState::Late => ("✓", "OVER TARGET"),
            StepState::Pending => ("·", "so far"),
            StepState::Overdue => ("·", "so far, OVER TARGET"),
            StepState::RolledBack => ("↩", "rolled back"),
        };
        let target = t.target_s.map(span).unwrap_or_else(|| "—".into());
        let line = format!(
            "  {mark} {:<22} {:>7} / {target:<6}  {note}",
            t.label,
            span(t.elapsed_s)
        );
        row!(o, "{}", line.trim_end());
        // How production got its build, under the deploy row.
        if let Some(d) = &t.detail {
            row!(o, "      {d}");
        }
    }
    row!(o, "");
    row!(o, "  checklist");
    checklist_rows(&mut o, s);
    if !undelivered.is_empty() {
        row!(o, "");
        row!(o, "  undelivered notifications: {}", undelivered.len());
        for i in undelivered {
            row!(
                o,
                "    {} {} (attempts {}): {}",
                i.notifier,
                i.message.step,
                i.attempts,
                i.last_error.as_deref().unwrap_or("pending")
            );
        }
    }
    row!(o, "");
    row!(o, "next: {}", e.next_step(s));
    o
}

/// The title as it may be shown: nothing of a security incident.
/// What an analysis is held against: the failure's own words, else the
/// configured threshold of the analysis by that name.
fn threshold_of(e: &Engine, a: &hotfix_core::state::AnalysisResult) -> Option<String> {
    a.failed.as_ref().map(|(_, t)| t.clone()).or_else(|| {
        e.cfg
            .analysis
            .iter()
            .find(|c| c.name == a.name)
            .map(|c| c.threshold())
    })
}

/// `5xx ratio ✓ pass — last 0.002 (max 0.01), 7 samples on 3fa4dbfedf`.
fn analysis_row(e: &Engine, a: &hotfix_core::state::AnalysisResult) -> String {
    use hotfix_core::analysis::num;
    let mark = match a.verdict.as_str() {
        "pass" => "✓",
        "fail" => "✗",
        _ => "?",
    };
    let value = match &a.failed {
        Some((values, _)) => format!(
            "failed with {}",
            values
                .iter()
                .map(|v| num(*v))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => match a.last_value() {
            Some(v) => format!("last {}", num(v)),
            None => "no data".to_string(),
        },
    };
    format!(
        "{} {mark} {} — {value}{}{}, {} on {}",
        a.name,
        a.verdict,
        threshold_of(e, a)
            .map(|t| format!(" ({t})"))
            .unwrap_or_default(),
        a.baseline
            .map(|b| format!(", baseline {}", num(b)))
            .unwrap_or_default(),
        hotfix_core::plural::count(a.samples.len(), "sample"),
        short(&a.sha)
    )
}

fn display_title(s: &IncidentState) -> String {
    s.public_title()
}

fn checklist_rows(o: &mut String, s: &IncidentState) {
    for i in checklist(s) {
        row!(
            o,
            "  [{}] {:<42} {}{}",
            if i.done { "x" } else { " " },
            i.label,
            i.key,
            if i.auto { " (auto)" } else { "" }
        );
        // What backs the tick ("verify fix with original reporter"): the
        // alert that reported it resolving after the deploy.
        if let Some(ev) = &i.evidence {
            row!(o, "      {ev}");
        }
    }
}

pub fn checklist_text(s: &IncidentState) -> String {
    let mut o = String::new();
    row!(o, "{} post-hotfix checklist", s.id);
    checklist_rows(&mut o, s);
    o
}

pub fn log_json(e: &Engine, all: &[IncidentState]) -> String {
    let v: Vec<Value> = all
        .iter()
        .map(|s| {
            json!({
                "id": s.id.to_string(),
                "title": if s.security { format!("{} security incident", s.id) } else { s.title.clone() },
                "severity": s.severity,
                "state": s.phase(&e.cfg.policy).as_str(),
                "branch": s.branch,
                "declared_at": s.declared_at,
                "resolved_at": s.resolved_at,
                "closed_at": s.closed_at,
                "rollbacks": s.rollbacks,
                "events": s.events,
            })
        })
        .collect();
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

pub fn log_text(e: &Engine, all: &[IncidentState]) -> String {
    let mut o = String::new();
    if all.is_empty() {
        row!(o, "no incidents yet");
    }
    for s in all {
        let title = display_title(s);
        row!(
            o,
            "{}  [{}] {} — {}",
            s.id,
            s.severity,
            title,
            s.phase(&e.cfg.policy).as_str()
        );
        for ev in &s.events {
            row!(o, "    {}", hotfix_engine::text::event_line(ev, s.security));
        }
    }
    o
}

/// A timestamp the platform reports (RFC 3339, nanoseconds and all) the
/// way people read one: `2026-12-03 11:42:07 UTC`.
fn when(rfc3339: &str) -> String {
    rfc3339
        .parse::<jiff::Timestamp>()
        .map(hotfix_core::timeline::utc)
        .unwrap_or_else(|_| rfc3339.to_string())
}

fn short(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}

pub fn platform_text(st: &hotfix_platform::PlatformStatus) -> String {
    let mut o = String::new();
    row!(
        o,
        "platform pid {} — production at {}{}",
        st.pid,
        st.url,
        if st.recovering { " (recovering)" } else { "" }
    );
    let rel = |r: &hotfix_platform::ReleaseInfo| {
        format!(
            "{} {} on port {} ({}, since {}){}",
            r.id,
            short(&r.sha),
            r.port,
            format!("{:?}", r.state).to_ascii_lowercase(),
            when(&r.started_at),
            // Issue 13: how it got its build, and how long that took.
            r.build
                .as_ref()
                .map(|b| format!(", {} in {:.1}s", b.describe(), b.ms as f64 / 1000.0))
                .unwrap_or_default()
        )
    };
    match &st.production {
        Some(r) => {
            row!(o, "  production: {}", rel(r));
        }
        None => {
            row!(o, "  production: none yet");
        }
    }
    if let Some(c) = &st.canary {
        row!(
            o,
            "  canary:     {} at {}% of requests (since {}; sticky: cookie hotfix_release / header X-Hotfix-Release)",
            rel(&c.release),
            hotfix_core::analysis::num(c.weight),
            when(&c.since)
        );
    }
    if let Some(r) = &st.previous {
        row!(
            o,
            "  previous:   {}{}",
            rel(r),
            r.warm_until
                .as_deref()
                .map(|w| format!(", warm until {}", when(w)))
                .unwrap_or_default()
        );
    }
    for p in &st.previews {
        row!(o, "  preview {}: {} — {}", p.key, p.url, rel(&p.release));
    }
    // A crash is said in words: which release, when, how it ended, the
    // log to read and its last lines (the JSON is in `--json`). One that no
    // longer serves anything is history, marked so.
    for c in &st.crashed {
        let serving = st.production.as_ref().is_some_and(|p| p.id == c.release.id)
            || st.previews.iter().any(|p| p.release.id == c.release.id);
        row!(
            o,
            "  crashed:    {} {} ({}) at {}: {}{}",
            c.release.id,
            short(&c.release.sha),
            format!("{:?}", c.release.kind).to_ascii_lowercase(),
            when(&c.at),
            c.exit_status,
            if serving { "" } else { " (replaced since)" }
        );
        row!(o, "              log: {}", c.log_path.display());
        if serving {
            for l in crash_tail(&c.log_tail, 3) {
                row!(o, "              | {l}");
            }
        }
    }
    o
}

/// The last `n` lines the release itself wrote (the platform's own
/// `[hotfix-platform …]` bookkeeping lines and blank lines left out).
fn crash_tail(tail: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = tail
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("[hotfix-platform "))
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use hotfix_core::event::{Event, EventKind};
    use hotfix_core::id::IncidentId;
    use hotfix_core::severity::Severity;
    use jiff::Timestamp;

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + s).unwrap()
    }

    /// Reported by an alert, fixed and deployed at 600, healthy at 700;
    /// the alert that reported it resolves at `resolved`.
    fn fixed(resolved: i64) -> IncidentState {
        let m = "m".repeat(40);
        let kinds = vec![
            (
                0,
                EventKind::Declared {
                    name: "checkout".into(),
                    title: "Checkout down".into(),
                    severity: Severity::Critical,
                    customer_facing: true,
                    security: false,
                    branch: "hotfix/checkout".into(),
                    base_sha: String::new(),
                },
            ),
            (
                0,
                EventKind::AlertReceived {
                    source: "alertmanager".into(),
                    status: "firing".into(),
                    key: "{}:{alertname=\"HighErrorRate\"}".into(),
                    summary: "5xx".into(),
                },
            ),
            (
                600,
                EventKind::Deployed {
                    sha: m.clone(),
                    environment: "production".into(),
                    deployment: None,
                    previous_deployment: None,
                    build: None,
                },
            ),
            (
                700,
                EventKind::HealthPassed {
                    sha: m.clone(),
                    probes: 3,
                },
            ),
            (
                resolved,
                EventKind::AlertReceived {
                    source: "alertmanager".into(),
                    status: "resolved".into(),
                    key: "{}:{alertname=\"HighErrorRate\"}".into(),
                    summary: "5xx".into(),
                },
            ),
        ];
        let events: Vec<Event> = kinds
            .into_iter()
            .enumerate()
            .map(|(i, (t, kind))| Event {
                incident: IncidentId(4),
                seq: i as u64 + 1,
                at: at(t),
                actor: "alertmanager (alert)".into(),
                kind,
            })
            .collect();
        IncidentState::fold(&events).unwrap()
    }

    #[test]
    fn the_checklist_shows_the_reporting_alert_resolving_after_the_deploy() {
        let text = checklist_text(&fixed(900));
        let evidence = format!(
            "the alertmanager alert that reported it resolved at {} UTC, after the deploy",
            at(900).strftime("%Y-%m-%d %H:%M:%S")
        );
        let lines: Vec<&str> = text.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.contains("fix_verified"))
            .unwrap();
        assert!(lines[i + 1].contains(&evidence), "{text}");
    }
}
