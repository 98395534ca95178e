//! Output for people and for machines. The JSON shapes are documented in the
//! README and kept stable.

use hotfix_core::display;

use hotfix_core::checklist::checklist;
use hotfix_core::guards::missing_approvals;
use hotfix_core::next::next_action;
use hotfix_core::provider::OutboxItem;
use hotfix_core::state::IncidentState;
use hotfix_core::timeline::{clock, timeline};
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
    json!({
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
        "healthy": s.healthy_sha.is_some(),
        "backported": s.backport_sha.is_some(),
        "backport_conflict": s.backport_conflict.as_ref().map(|(f, w)| json!({"files": f, "worktree": w})),
        "rolled_back": s.rollback.as_ref().map(|r| json!({"at": r.at, "reason": r.reason, "automatic": r.automatic, "forced": r.forced})),
        "rollback_in_progress": s.rollback_progress,
        "pr_closed": s.pr_closed,
        "rollbacks": s.rollbacks,
        "anti_patterns": s.anti_patterns.iter().map(|(p, r)| json!({"pattern": p, "reason": r})).collect::<Vec<_>>(),
        "timeline": timeline(s, &e.cfg.policy, now),
        "checklist": checklist(s),
        "postmortem": s.postmortem.as_ref().map(|(p, d)| json!({"path": p, "due": d})),
        "closed_at": s.closed_at,
        "next_action": next_action(s, &e.cfg.policy),
        "undelivered_notifications": undelivered.iter().map(|i| json!({
            "notifier": i.notifier, "step": i.message.step, "attempts": i.attempts, "last_error": i.last_error,
        })).collect::<Vec<_>>(),
    })
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
        row!(
            o,
            "  merged:    {}{}",
            short(m),
            if s.healthy_sha.is_some() {
                " — production healthy"
            } else {
                ""
            }
        );
    }
    if let Some(f) = &s.health_failure {
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
        e.cfg.policy.targets.resolved
    );
    for t in timeline(s, &e.cfg.policy, now) {
        let mark = if t.done { "✓" } else { "·" };
        let target = t.target_s.map(clock).unwrap_or_else(|| "  —  ".into());
        let late = if t.over { "  OVER TARGET" } else { "" };
        let so_far = if t.done { "" } else { " so far" };
        row!(
            o,
            "  {mark} {:<22} {:>8} / {target}{so_far}{late}",
            t.label,
            clock(t.elapsed_s)
        );
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
    row!(o, "next: {}", next_action(s, &e.cfg.policy));
    o
}

/// The title as it may be shown: nothing of a security incident.
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
            "{} {} on port {} ({:?}, since {})",
            r.id,
            short(&r.sha),
            r.port,
            r.state,
            r.started_at
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
    if let Some(r) = &st.previous {
        row!(
            o,
            "  previous:   {}{}",
            rel(r),
            r.warm_until
                .as_deref()
                .map(|w| format!(", warm until {w}"))
                .unwrap_or_default()
        );
    }
    for p in &st.previews {
        row!(o, "  preview {}: {} — {}", p.key, p.url, rel(&p.release));
    }
    for c in &st.crashed {
        row!(
            o,
            "  CRASHED: {}",
            serde_json::to_string(c).unwrap_or_default()
        );
    }
    o
}
