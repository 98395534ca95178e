//! The public status page: `GET /status` (HTML) and `GET /status.json`,
//! no sign-in.
//!
//! Customers see the `[status]` components and their state, and the
//! customer-facing incidents, current and of the last 30 days, in status
//! words (investigating, identified, monitoring, resolved). What they see is
//! built from an allow-list of fields ([`PublicIncident`]): never a person,
//! a SHA, a branch, a PR link or a note.
//!
//! Triage decides what is shown at all ([`shown`]): an incident still in
//! triage is left out until a tech lead confirms it (unless `[status]
//! publish_unconfirmed`), and one declined or merged at triage never shows,
//! not even as resolved (nothing happened that customers need to read
//! about). Components, the overall state and the lists are all computed from
//! that one shown set, so a component never shows an outage that no listed
//! incident explains, and `overall` is never better than a component. An
//! incident is called by its public text ([`IncidentState::status_text`]),
//! else [`GENERIC_TITLE`]: an alert's own words only with `[status]
//! publish_alert_text`. A `--security` incident shows at
//! most one generic line ("We are investigating an issue") and the state of
//! the components it affects, nothing else, and is not listed once closed.
//! The incidents it is built from are what an outside reader gets
//! (`hotfix_core::access::Reader::Outside`: the restricted view of every
//! security incident), so even a mistake here could not show a detail.

use std::collections::BTreeMap;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hotfix_core::access::Reader;
use hotfix_core::config::StatusConfig;
use hotfix_core::policy::Policy;
use hotfix_core::severity::Severity;
use hotfix_core::state::{IncidentState, Phase};
use jiff::Timestamp;
use serde::Serialize;

use crate::dashboard::render;
use crate::{ApiError, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/status", get(page))
        .route("/status.json", get(json))
}

/// How long closed incidents stay under "past incidents".
pub const PAST_DAYS: i64 = 30;

/// At most this many incidents in each list (the page stays small and
/// fast on a bad day; the counts say how many more there are).
pub const MAX_LISTED: usize = 50;

/// What the generic line of a security incident says.
pub const SECURITY_LINE: &str = "We are investigating an issue";

/// What an incident without a public text is called (an alert-declared
/// one nobody gave a public text at triage).
pub const GENERIC_TITLE: &str = "Service disruption";

/// A component's (or the whole service's) state, from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    Operational,
    DegradedPerformance,
    PartialOutage,
    MajorOutage,
}

impl ComponentState {
    pub fn label(self) -> &'static str {
        match self {
            ComponentState::Operational => "Operational",
            ComponentState::DegradedPerformance => "Degraded performance",
            ComponentState::PartialOutage => "Partial outage",
            ComponentState::MajorOutage => "Major outage",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ComponentState::Operational => "operational",
            ComponentState::DegradedPerformance => "degraded_performance",
            ComponentState::PartialOutage => "partial_outage",
            ComponentState::MajorOutage => "major_outage",
        }
    }
}

/// The effect of one open incident: a critical one is a major outage, a
/// high one a partial outage, until production runs a verified fix (then
/// the incident is "monitoring" and the component is operational again).
fn impact(s: &IncidentState) -> ComponentState {
    if s.resolved_at.is_some() {
        ComponentState::Operational
    } else {
        match s.severity {
            Severity::Critical => ComponentState::MajorOutage,
            Severity::High => ComponentState::PartialOutage,
        }
    }
}

/// Whether the public page shows `s` at all: customer-facing; not declined
/// or merged at triage (never, not even as resolved); and confirmed by a
/// person unless `publish_unconfirmed` lets triage show.
pub fn shown(s: &IncidentState, cfg: &StatusConfig) -> bool {
    s.customer_facing && s.declined.is_none() && (cfg.publish_unconfirmed || !s.in_triage())
}

/// What the public page calls `s`: see [`IncidentState::status_text`].
fn public_title(s: &IncidentState, cfg: &StatusConfig) -> String {
    s.status_text(cfg.publish_alert_text)
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| GENERIC_TITLE.to_string())
}

/// The status words customers know, from the phase.
pub fn status_word(s: &IncidentState, policy: &Policy) -> &'static str {
    match s.phase(policy) {
        Phase::Closed | Phase::Declined => "resolved",
        _ if s.resolved_at.is_some() => "monitoring",
        Phase::Triage | Phase::Reported => "investigating",
        Phase::Deployed | Phase::Backported => "monitoring",
        Phase::Fixing
        | Phase::InReview
        | Phase::AwaitingApproval
        | Phase::ReadyToShip
        | Phase::Merged
        | Phase::RollingBack
        | Phase::RolledBack => "identified",
    }
}

fn message(word: &str) -> &'static str {
    match word {
        "investigating" => "We are investigating reports of a problem.",
        "identified" => "The issue has been identified and a fix is being implemented.",
        "monitoring" => "A fix has been deployed and we are monitoring the results.",
        _ => "This incident has been resolved.",
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicComponent {
    pub name: String,
    pub status: ComponentState,
    pub label: &'static str,
}

/// An incident as the public sees it. Only these fields leave the server.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicIncident {
    /// `HF-12`; none for the security line.
    pub id: Option<String>,
    pub title: String,
    /// investigating | identified | monitoring | resolved.
    pub status: &'static str,
    pub message: &'static str,
    pub impact: ComponentState,
    /// The `[status]` components it affects.
    pub components: Vec<String>,
    pub started_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublicStatus {
    pub title: String,
    /// The worst state of any component or of the service as a whole
    /// (the same as `overall`).
    pub status: ComponentState,
    pub description: &'static str,
    pub components: Vec<PublicComponent>,
    /// The state of the service as a whole: the worst of every component
    /// and of `unlisted`, so never better than any component.
    pub overall: ComponentState,
    /// The state from the shown incidents that name none of the listed
    /// components (they affect the service, no component in particular).
    pub unlisted: ComponentState,
    pub current: Vec<PublicIncident>,
    /// Current incidents beyond the first [`MAX_LISTED`].
    pub more_current: usize,
    pub past: Vec<PublicIncident>,
    /// Past incidents beyond the first [`MAX_LISTED`].
    pub more_past: usize,
    pub updated_at: Timestamp,
}

/// The status page as of `now`, from every incident.
pub fn public_status<'a>(
    incidents: impl IntoIterator<Item = &'a IncidentState>,
    cfg: &StatusConfig,
    policy: &Policy,
    now: Timestamp,
) -> PublicStatus {
    let mut comp: BTreeMap<&str, ComponentState> = cfg
        .components
        .iter()
        .map(|c| (c.as_str(), ComponentState::Operational))
        .collect();
    let mut unlisted = ComponentState::Operational;
    let mut current = vec![];
    let mut security_line = false;
    let mut past: Vec<(Timestamp, PublicIncident)> = vec![];
    let cutoff = now.as_second() - PAST_DAYS * 86_400;
    for s in incidents {
        if !shown(s, cfg) {
            continue;
        }
        let listed: Vec<String> = s
            .components
            .iter()
            .filter(|c| comp.contains_key(c.as_str()))
            .cloned()
            .collect();
        if let Some(closed) = s.closed_at {
            if !s.security && closed.as_second() >= cutoff {
                past.push((
                    closed,
                    PublicIncident {
                        id: Some(s.id.to_string()),
                        title: public_title(s, cfg),
                        status: "resolved",
                        message: message("resolved"),
                        impact: ComponentState::Operational,
                        components: listed,
                        started_at: Some(s.declared_at),
                        resolved_at: Some(s.resolved_at.unwrap_or(closed)),
                    },
                ));
            }
            continue;
        }
        let effect = impact(s);
        if listed.is_empty() {
            unlisted = unlisted.max(effect);
        }
        for c in &listed {
            if let Some(v) = comp.get_mut(c.as_str()) {
                *v = (*v).max(effect);
            }
        }
        if s.security {
            security_line = true;
            continue;
        }
        let word = status_word(s, policy);
        current.push(PublicIncident {
            id: Some(s.id.to_string()),
            title: public_title(s, cfg),
            status: word,
            message: message(word),
            impact: effect,
            components: listed,
            started_at: Some(s.declared_at),
            resolved_at: s.resolved_at,
        });
    }
    current.reverse();
    if security_line {
        current.push(PublicIncident {
            id: None,
            title: SECURITY_LINE.into(),
            status: "investigating",
            message: "We are investigating an issue and will post updates here.",
            impact: ComponentState::Operational,
            components: vec![],
            started_at: None,
            resolved_at: None,
        });
    }
    past.sort_by_key(|p| std::cmp::Reverse(p.0));
    let more_current = current.len().saturating_sub(MAX_LISTED);
    current.truncate(MAX_LISTED);
    let more_past = past.len().saturating_sub(MAX_LISTED);
    past.truncate(MAX_LISTED);
    let components: Vec<PublicComponent> = cfg
        .components
        .iter()
        .map(|c| {
            let st = comp
                .get(c.as_str())
                .copied()
                .unwrap_or(ComponentState::Operational);
            PublicComponent {
                name: c.clone(),
                status: st,
                label: st.label(),
            }
        })
        .collect();
    let worst = components
        .iter()
        .map(|c| c.status)
        .fold(unlisted, ComponentState::max);
    PublicStatus {
        title: cfg.title.clone(),
        status: worst,
        description: match worst {
            ComponentState::Operational => "All systems operational",
            other => other.label(),
        },
        components,
        overall: worst,
        unlisted,
        current,
        more_current,
        past: past.into_iter().map(|(_, p)| p).collect(),
        more_past,
        updated_at: now,
    }
}

async fn build(st: &AppState) -> Result<PublicStatus, ApiError> {
    st.blocking(|st| {
        let all = crate::ops::all(st)?;
        let seen: Vec<crate::ops::Seen> = all.seen(&Reader::Outside).collect();
        Ok(public_status(
            seen.iter().map(|v| v.state()),
            &st.cfg.status,
            &st.cfg.policy,
            st.clock.now(),
        ))
    })
    .await
}

/// Short public caching: during an outage the page is hit hard, and a CDN
/// may serve it for a few seconds.
const PUBLIC_CACHE: &str = "public, max-age=10";

#[utoipa::path(
    get,
    path = "/status.json",
    operation_id = "publicStatus",
    tag = "meta",
    summary = "The public status page as JSON",
    description = "No sign-in; cacheable; `Access-Control-Allow-Origin: *`. Customer-facing incidents only, in status words, under their public text. An incident still in triage is left out until a tech lead confirms it (`[status] publish_unconfirmed`), and one declined or merged at triage never shows. Components, `overall`, `unlisted` and the lists come from the same shown incidents. The same data as the HTML page at /status.",
    security(()),
    responses(
        (status = 200, description = "the status", body = PublicStatus),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
async fn json(State(st): State<AppState>) -> Response {
    match build(&st).await {
        Ok(p) => {
            let mut r = Json(p).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(PUBLIC_CACHE),
            );
            // Public data: other sites may embed it.
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            r
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Serialize)]
struct View<'a> {
    p: &'a PublicStatus,
    current: Vec<Row<'a>>,
    past: Vec<Row<'a>>,
    updated: String,
    v: &'static str,
}

#[derive(Serialize)]
struct Row<'a> {
    i: &'a PublicIncident,
    started: Option<String>,
    resolved: Option<String>,
}

fn rows(v: &[PublicIncident]) -> Vec<Row<'_>> {
    v.iter()
        .map(|i| Row {
            i,
            started: i.started_at.map(render::time),
            resolved: i.resolved_at.map(render::time),
        })
        .collect()
}

async fn page(State(st): State<AppState>) -> Response {
    let body = build(&st).await.and_then(|p| {
        render::render(
            "status.html",
            View {
                p: &p,
                current: rows(&p.current),
                past: rows(&p.past),
                updated: render::time(p.updated_at),
                v: render::ASSET_VERSION,
            },
        )
    });
    match body {
        Ok(b) => {
            let mut r = render::html(StatusCode::OK, b);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static(PUBLIC_CACHE),
            );
            r
        }
        Err(e) => render::error_page(&e, None),
    }
}
