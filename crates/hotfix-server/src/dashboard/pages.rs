//! The signed-in pages: open incidents (`/`), one incident
//! (`/incidents/{id}`) and the incident log with its figures (`/log`).
//! Every page is complete HTML without JavaScript; `live.js` only swaps in
//! a fresh `<main>` when the store changes.
//!
//! Every incident on these pages is an [`ops::Seen`] for the signed-in
//! person: a security incident they may not read shows its restricted
//! view (`hotfix_core::access`) in the lists, the search, the incident page
//! and each live refresh of them, which fetches the page again as them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hotfix_core::checklist::{checklist, open_items};
use hotfix_core::guards::{ApproveCheck, check_approve, missing_approvals};
use hotfix_core::notify::message_for;
use hotfix_core::state::IncidentState;
use hotfix_core::team::ApiRole;
use hotfix_core::timeline::{StepState, timeline};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::cache::View;
use super::describe::{describe, is_deploy};
use super::render::{self, Layout, short, span, time, words};
use super::session::{self, encode};
use super::stats::{Filter, FilterQuery, compute};
use crate::auth::{Caller, MaybeCaller};
use crate::extract::parse_id;
use crate::ops::{Seen, Snapshot};
use crate::{ApiError, AppState, ops};

/// Rows per page on `/` and `/log`.
pub const PAGE: usize = 100;

/// What every signed-in page does around its own content: the sign-in
/// check first (a signed-out visitor goes to the form whatever else the
/// request says), then the request's own `input` (a malformed one is an
/// error page), one read of the incident cache off the async threads,
/// the layout, and clearing the flash it showed. `build` returns the
/// page's title and body.
async fn signed_in<I, F>(
    st: AppState,
    c: MaybeCaller,
    uri: &Uri,
    headers: &HeaderMap,
    nav: &'static str,
    input: Result<I, ApiError>,
    build: F,
) -> Response
where
    I: Send + 'static,
    F: FnOnce(&AppState, &Caller, &View, I) -> Result<(String, String), ApiError> + Send + 'static,
{
    let caller = match session::require(c, uri) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let flash = session::take_flash(headers);
    let shown = flash.is_some();
    let who = caller.clone();
    let r = match input {
        Err(e) => Err(e),
        Ok(input) => {
            st.blocking(move |st| {
                let view = st.dashboard.cache.get(st)?;
                let (title, content) = build(st, &caller, &view, input)?;
                render::page(
                    Layout {
                        title,
                        user: Some(&caller),
                        nav,
                        flash,
                        watermark: Some(view.watermark),
                    },
                    content,
                )
            })
            .await
        }
    };
    let mut resp = match r {
        Ok(b) => render::html(StatusCode::OK, b),
        Err(e) => render::error_page(&e, Some(&who)),
    };
    if shown {
        session::clear_flash(&mut resp);
    }
    resp
}

/// A query string that did not parse.
fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::bad_request(e.body_text())
}

fn page_number(raw: Option<&str>) -> Result<usize, ApiError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::bad_request(format!("page `{p}` is not a page number"))),
    }
}

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    title: String,
    severity: &'static str,
    phase: String,
    customer_facing: bool,
    security: bool,
    declared_at: String,
    elapsed: String,
    over: bool,
    restored: bool,
    /// Declared → production first healthy on the fix.
    ttr: Option<String>,
    next: String,
    rollbacks: u32,
}

/// Declared → production first healthy on the fix, in seconds.
fn time_to_restore(s: &IncidentState) -> Option<i64> {
    s.resolved_at
        .map(|r| r.as_second() - s.declared_at.as_second())
}

fn row(st: &AppState, v: &Seen, now: jiff::Timestamp) -> Row {
    let s = v.state();
    let sum = ops::summary(st, v, now);
    let target = st.cfg.policy.targets.resolved.0.as_secs() as i64;
    let ttr = time_to_restore(s);
    Row {
        id: sum.id,
        title: sum.title,
        severity: s.severity.as_str(),
        phase: render::phase_label(s, &sum.phase),
        customer_facing: s.customer_facing,
        security: s.security,
        declared_at: time(s.declared_at),
        elapsed: span(sum.elapsed_s),
        over: match ttr {
            Some(t) => t > target,
            None => !s.is_closed() && sum.elapsed_s > target,
        },
        restored: ttr.is_some(),
        ttr: ttr.map(span),
        next: sum.next,
        rollbacks: s.rollbacks,
    }
}

/// Where a list page is: its number, how many there are, and the links
/// to the pages before and after.
#[derive(Debug, Serialize)]
struct Pager {
    page: usize,
    pages: usize,
    prev: Option<String>,
    next: Option<String>,
}

/// Page `page` (from 1; past the end: the last one) of `hits` as rows;
/// `link` is the address of a page.
fn paginate(
    st: &AppState,
    hits: &[Seen],
    page: usize,
    now: jiff::Timestamp,
    link: impl Fn(usize) -> String,
) -> (Vec<Row>, Pager) {
    let pages = hits.len().div_ceil(PAGE).max(1);
    let page = page.min(pages);
    let rows = hits
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .map(|v| row(st, v, now))
        .collect();
    let pager = Pager {
        page,
        pages,
        prev: (page > 1).then(|| link(page - 1)),
        next: (page < pages).then(|| link(page + 1)),
    };
    (rows, pager)
}

#[derive(Debug, Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<String>,
}

/// `GET /`: the open incidents, newest first.
pub async fn index(
    State(st): State<AppState>,
    c: MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Response {
    let input = q
        .map_err(bad_query)
        .and_then(|Query(q)| page_number(q.page.as_deref()));
    signed_in(
        st,
        c,
        &uri,
        &headers,
        "incidents",
        input,
        |st, caller, view, page| {
            let reader = ops::reader_of(caller);
            let all = Snapshot(view.incidents.clone());
            let mut open: Vec<Seen> = all
                .seen(&reader)
                .filter(|v| !v.state().is_closed())
                .collect();
            open.reverse();
            let now = st.clock.now();
            // Waiting for a tech lead, oldest first: the one waiting longest
            // is the first to decide.
            let triage: Vec<Value> = open
                .iter()
                .rev()
                .filter(|v| v.state().in_triage())
                .map(|v| {
                    let s = v.state();
                    let age = now.as_second() - s.declared_at.as_second();
                    json!({
                        "id": s.id.to_string(),
                        "title": s.title,
                        "severity": s.severity.as_str(),
                        "age": span(age),
                        "over": age > st.cfg.policy.targets.triage.0.as_secs() as i64,
                        "alert": s.alert_status,
                        "declared_by": s.declared_by,
                    })
                })
                .collect();
            let (rows, pager) = paginate(st, &open, page, now, |p| format!("/?page={p}"));
            let content = render::render(
                "index.html",
                json!({
                    "triage": triage,
                    "triage_target": span(st.cfg.policy.targets.triage.0.as_secs() as i64),
                    "rows": rows,
                    "open": open.len(),
                    "target": span(st.cfg.policy.targets.resolved.0.as_secs() as i64),
                    "pager": pager,
                }),
            )?;
            Ok((format!("{} open", open.len()), content))
        },
    )
    .await
}

/// The buttons `caller` gets on `s`.
fn actions(st: &AppState, caller: &Caller, s: &IncidentState) -> Value {
    let closed = s.is_closed();
    let (approve, approve_note) = match check_approve(s, &st.cfg, &caller.user) {
        Ok(ApproveCheck::AlreadyApproved) => (
            None,
            Some(format!(
                "You approved {} already.",
                short(s.head_sha.as_deref().unwrap_or(""))
            )),
        ),
        Ok(ApproveCheck::Record(_)) => match ops::approval_role(st, caller, s) {
            Ok(role) => (
                Some(json!({
                    "head": s.head_sha,
                    "short": short(s.head_sha.as_deref().unwrap_or("")),
                    "role": role.label(),
                })),
                None,
            ),
            Err(e) => (None, Some(e.message)),
        },
        Err(_) => (None, None),
    };
    let lead = caller.role >= ApiRole::TechLead;
    // Declined or merged at triage: closed without the checklist.
    let open: Vec<&str> = if s.declined.is_some() {
        vec![]
    } else {
        open_items(s).iter().map(|i| i.key).collect()
    };
    json!({
        "approve": approve,
        "approve_note": approve_note,
        "close": lead && !closed && open.is_empty(),
        "close_blocked": (lead && !closed && !open.is_empty())
            .then(|| format!("Close needs the checklist done: {}", open.join(", "))),
        "tick": !closed && s.declined.is_none(),
        "triage": triage_actions(st, caller, s),
    })
}

/// The triage forms `caller` gets on `s`: confirm while it is in triage,
/// decline and merge until its branch is cut; only for a tech lead in
/// `[team]` with a tech_lead token (the rulebook decides again on the
/// click). Others see why there are none.
fn triage_actions(st: &AppState, caller: &Caller, s: &IncidentState) -> Value {
    let confirm = s.in_triage();
    let decline = s.reported
        && !s.is_closed()
        && s.declined.is_none()
        && s.attempt == 1
        && s.base_sha.is_empty()
        && s.head_sha.is_none();
    if !decline {
        return Value::Null;
    }
    let lead = caller.role >= ApiRole::TechLead && st.cfg.is_tech_lead(&caller.user);
    if !lead {
        return json!({
            "note": if confirm {
                "In triage: a tech lead (in hotfix.toml [team], with a tech_lead token) confirms, declines or merges it."
            } else {
                "Confirmed; a tech lead may still decline or merge it until its branch is cut."
            },
        });
    }
    json!({
        "confirm": confirm,
        "severity": s.severity.as_str(),
        "public_text": s.status_text(false).unwrap_or_default(),
    })
}

/// How triage went, for the incident page.
fn triage_facts(s: &IncidentState) -> Value {
    json!({
        "in_triage": s.in_triage(),
        "confirmed": s.confirmed.as_ref().map(|(by, at)| json!({"by": by, "at": time(*at)})),
        "declined": s.declined.as_ref().map(|d| json!({
            "reason": d.reason.label(),
            "duplicate_of": d.duplicate_of.map(|i| i.to_string()),
            "merged_into": d.merged_into.map(|i| i.to_string()),
            "note": d.note,
            "by": d.by,
            "at": time(d.at),
        })),
        "absorbed": s.absorbed.iter().map(|i| i.to_string()).collect::<Vec<_>>(),
        "reported_by": s.reported_by,
        "public_text": s.public_text,
    })
}

/// `GET /incidents/{id}`.
pub async fn incident(
    State(st): State<AppState>,
    c: MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    let input = parse_id(&raw);
    signed_in(
        st,
        c,
        &uri,
        &headers,
        "incidents",
        input,
        |st, caller, view, id| {
            let v = Snapshot(view.incidents.clone())
                .get(id, &ops::reader_of(caller))
                .ok_or_else(|| ApiError::not_found(format!("no incident {id}")))?;
            let content = incident_body(st, caller, &v)?;
            Ok((format!("{id} {}", v.state().title), content))
        },
    )
    .await
}

/// Only http(s) URLs become links: a URL a client appended could be
/// `javascript:` (the CSP would block it too).
fn web_link(u: &str) -> bool {
    let l = u.trim_start().to_ascii_lowercase();
    l.starts_with("https://") || l.starts_with("http://")
}

fn incident_body(st: &AppState, caller: &Caller, v: &Seen) -> Result<String, ApiError> {
    let s = v.state();
    // The event lines say a security incident's details only to those who
    // read it in full (the restricted view has placeholders anyway).
    let hide = v.restricted();
    let now = st.clock.now();
    let sum = ops::summary(st, v, now);
    let steps = timeline(s, &st.cfg.policy, now);
    let scale = steps
        .iter()
        .flat_map(|r| [r.elapsed_s, r.target_s.unwrap_or(0)])
        .max()
        .unwrap_or(0)
        .max(60) as f64;
    let pct = |v: i64| format!("{:.1}", (v.max(0) as f64 / scale * 100.0).min(100.0));
    let timeline: Vec<Value> = steps
        .iter()
        .map(|r| {
            let state = match r.state {
                StepState::Done => "done",
                StepState::Late => "late",
                StepState::Pending => "running",
                StepState::Overdue => "overdue",
                StepState::RolledBack => "rolled_back",
            };
            json!({
                "label": r.label,
                "state": state,
                "elapsed": span(r.elapsed_s),
                "target": r.target_s.map(span),
                "w": pct(r.elapsed_s),
                "t": r.target_s.map(pct),
            })
        })
        .collect();
    let fresh: Vec<u64> = s.fresh_approvals().iter().map(|a| a.seq).collect();
    let approvals: Vec<Value> = s
        .approvals
        .iter()
        .map(|a| {
            json!({
                "by": a.by, "role": a.role.label(), "sha": short(&a.sha), "at": time(a.at),
                "source": a.source, "fresh": fresh.contains(&a.seq),
                "withdrawn": a.withdrawn,
                // The signed-in person may take their own standing approval back.
                "mine": a.by.eq_ignore_ascii_case(&caller.user) && a.withdrawn.is_none()
                    && fresh.contains(&a.seq) && s.merge_sha.is_none(),
            })
        })
        .collect();
    let items: Vec<Value> = checklist(s)
        .into_iter()
        .map(|i| json!({"key": i.key, "label": i.label, "done": i.done, "auto": i.auto, "evidence": i.evidence}))
        .collect();
    let deploys: Vec<Value> = s
        .events
        .iter()
        .filter(|e| is_deploy(&e.kind))
        .map(|e| json!({"at": time(e.at), "type": words(e.kind.name()), "text": describe(&e.kind, hide)}))
        .collect();
    let pending: Vec<Value> = st
        .store
        .undelivered()?
        .into_iter()
        .filter(|o| o.message.incident == s.id)
        .map(|o| {
            json!({"notifier": o.notifier, "step": o.message.step, "attempts": o.attempts,
                   "last_error": o.last_error.as_deref().map(|e| v.scrub(e))})
        })
        .collect();
    let notified: Vec<Value> = if st.notifiers.is_empty() {
        vec![]
    } else {
        s.events
            .iter()
            .filter_map(|e| {
                message_for(
                    s,
                    &e.kind,
                    e.at,
                    &st.cfg.notify.channel,
                    &st.cfg.team.tech_leads,
                )
                .map(|m| json!({"at": time(e.at), "step": words(&m.step), "text": m.text}))
            })
            .collect()
    };
    let events: Vec<Value> = s
        .events
        .iter()
        .rev()
        .map(|e| {
            json!({"seq": e.seq, "at": time(e.at), "actor": e.actor, "type": words(e.kind.name()),
                   "text": describe(&e.kind, hide)})
        })
        .collect();
    let notifiers: Vec<&str> = st.notifiers.iter().map(|n| n.name()).collect();
    render::render(
        "incident.html",
        json!({
            "id": sum.id,
            "title": sum.title,
            "severity": sum.severity,
            "phase": render::phase_label(s, &sum.phase),
            "customer_facing": s.customer_facing,
            "security": s.security,
            "restricted": v.restricted(),
            "declared_at": time(s.declared_at),
            "declared_by": s.declared_by,
            "elapsed": span(sum.elapsed_s),
            "restored_after": time_to_restore(s).map(span),
            "next": sum.next,
            "branch": s.branch,
            "attempt": s.attempt,
            "components": s.components,
            "timeline": timeline,
            "approvals": approvals,
            "missing": if s.is_closed() || s.merge_sha.is_some() { vec![] } else { missing_approvals(s, &st.cfg.policy) },
            "checklist": items,
            "state": {
                "head": s.head_sha.as_deref().map(short),
                "pr": s.pr,
                "pr_url": s.pr_url,
                "pr_href": s.pr_url.as_deref().filter(|u| web_link(u)),
                "preview_url": s.preview_url,
                "preview_href": s.preview_url.as_deref().filter(|u| web_link(u)),
                "smoke": s.smoke.as_ref().map(|(sha, ok, _)| json!({"sha": short(sha), "ok": ok})),
                "merge": s.merge_sha.as_deref().map(short),
                "deployed": s.deployed_sha.as_deref().map(short),
                // After a rollback production runs the previous release:
                // that is what the Production row shows, the fix's deploy
                // a row of its own, rolled back.
                "rolled_back_to": s.rolled_back_to.as_ref().map(|r| json!({
                    "sha": r.sha.as_deref().map(short),
                    "deployment": r.deployment,
                    "healthy": r.health.as_ref().map(|h| h.healthy),
                    "probes": r.health.as_ref().map(|h| hotfix_core::plural::count(h.probes, "probe")),
                    "detail": r.health.as_ref().map(|h| h.detail.clone()).filter(|d| !d.is_empty()),
                })),
                "healthy": s.healthy_sha.as_deref().map(short),
                "health_failure": s.health_failure,
                "backport": s.backport_sha.as_deref().map(short),
                "rollbacks": s.rollbacks,
            },
            "deploys": deploys,
            "charts": super::chart::charts(&s.analyses, &st.cfg.analysis),
            "canary": s.canary.as_ref().map(|c| json!({
                "sha": short(&c.sha),
                "weight": hotfix_core::analysis::num(c.weight),
                "aborted": c.aborted,
            })),
            "pending": pending,
            "notified": notified,
            "notifiers": notifiers,
            "events": events,
            "triage": triage_facts(s),
            "actions": actions(st, caller, s),
        }),
    )
}

/// `GET /log?q=&severity=&state=&page=`: every incident, newest first, and
/// the figures over the ones that match.
pub async fn log(
    State(st): State<AppState>,
    c: MaybeCaller,
    uri: Uri,
    headers: HeaderMap,
    q: Result<Query<FilterQuery>, QueryRejection>,
) -> Response {
    let input = q.map_err(bad_query).and_then(|Query(q)| {
        Ok((
            Filter::parse(&q)?,
            page_number(q.page.as_deref())?,
            q.q.unwrap_or_default(),
        ))
    });
    signed_in(st, c, &uri, &headers, "log", input, |st, caller, view, (filter, page, text)| {
        let now = st.clock.now();
        let reader = ops::reader_of(caller);
        let all = Snapshot(view.incidents.clone());
        let mut hits: Vec<Seen> = all.seen(&reader).filter(|v| filter.matches(v)).collect();
        hits.reverse();
        let stats = compute(hits.iter().map(|v| v.state()), &st.cfg.policy, now);
        let severity = filter.severity.map(|s| s.as_str()).unwrap_or("");
        let (rows, pager) = paginate(st, &hits, page, now, |p| {
            format!(
                "/log?q={}&severity={severity}&state={}&page={p}",
                encode(text.trim()),
                filter.state
            )
        });
        let fmt = |v: Option<i64>| v.map(span).unwrap_or_else(|| "—".into());
        let steps: Vec<Value> = stats
            .steps
            .iter()
            .map(|s| {
                json!({
                    "label": s.label, "done": s.done, "late": s.late,
                    "median": fmt(s.median_s), "target": fmt(s.target_s),
                    "over": matches!((s.median_s, s.target_s), (Some(m), Some(t)) if m > t),
                })
            })
            .collect();
        let content = render::render(
            "log.html",
            json!({
                "q": text,
                "severity": severity,
                "state": filter.state,
                "rows": rows,
                "matched": hits.len(),
                "stats": stats,
                "figures": {
                    "ttr_median": fmt(stats.time_to_restore.median_s),
                    "ttr_p90": fmt(stats.time_to_restore.p90_s),
                    "target": span(stats.resolved_target.target_s),
                    "share": stats.resolved_target.share.map(|v| format!("{:.0}%", v * 100.0)).unwrap_or_else(|| "—".into()),
                    "per_hotfix": stats.rollbacks.per_hotfix.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into()),
                },
                "steps": steps,
                "pager": pager,
            }),
        )?;
        Ok(("Incident log".into(), content))
    })
    .await
}
