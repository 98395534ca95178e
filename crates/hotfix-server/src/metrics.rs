//! `/metrics` in the Prometheus text format, and `/healthz`.
//!
//! Counters are per replica (Prometheus sums them); gauges about incidents
//! and the outbox are read from the shared store at scrape time, so every
//! replica reports the same team-wide numbers. So is the one counter about
//! incidents, `hotfix_incidents_declined_total{reason}` (a count of the
//! log's declines, which only grows): take its `max` across replicas, not
//! its sum. Scrapers are outside
//! readers (`hotfix_core::access`): labels come from the restricted view of
//! security incidents (only severity and phase, which it keeps), and never
//! name an incident.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hotfix_core::access::Reader;
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;

use crate::{AppState, ops};

/// A counter by label values, the label names fixed when it is made (so a
/// call site only passes the values, in the same order).
#[derive(Debug)]
pub struct Labeled {
    keys: &'static [&'static str],
    family: Family<Vec<(String, String)>, Counter>,
}

impl Labeled {
    fn new(keys: &'static [&'static str]) -> Labeled {
        Labeled {
            keys,
            family: Family::default(),
        }
    }

    /// Counts one more for `values` (one per label name; extra ones are
    /// ignored, missing ones are left out of the series).
    pub fn inc(&self, values: &[&str]) {
        self.inc_by(values, 1);
    }

    fn inc_by(&self, values: &[&str], n: u64) {
        let labels = self
            .keys
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.family.get_or_create(&labels).inc_by(n);
    }
}

/// The labels of a request's duration: the route template (never the path:
/// ids would explode the label set), the method, the status class.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
    status_class: &'static str,
}

/// Latency histogram buckets, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

fn duration_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// This replica's counters, registered in a `prometheus-client` registry
/// and rendered by it in the Prometheus text format (the one `promtool
/// check metrics` reads, and that every Prometheus scrapes).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// `route`, `method`, `status`.
    pub requests: Labeled,
    durations: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// `source`: deliveries stored in the inbox (duplicates not counted).
    pub alerts_received: Labeled,
    /// `source`, `reason`: rejected webhooks and alerts (bad signature, bad body).
    pub rejected: Labeled,
    pub incidents_declared: Counter,
    pub inbox_processed: Counter,
    pub inbox_failed: Counter,
    pub outbox_sent: Counter,
    pub outbox_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Metrics {
            registry: Registry::default(),
            requests: Labeled::new(&["route", "method", "status"]),
            durations: Family::new_with_constructor(duration_histogram),
            alerts_received: Labeled::new(&["source"]),
            rejected: Labeled::new(&["source", "reason"]),
            incidents_declared: Counter::default(),
            inbox_processed: Counter::default(),
            inbox_failed: Counter::default(),
            outbox_sent: Counter::default(),
            outbox_failed: Counter::default(),
        };
        // Counters are registered without `_total` (the encoder adds it) and
        // help texts without their final period (the registry adds it).
        let mut r = Registry::default();
        r.register(
            "hotfix_http_requests",
            "HTTP requests by route template, method and status",
            m.requests.family.clone(),
        );
        r.register(
            "hotfix_http_request_duration_seconds",
            "HTTP request durations by route template, method and status class",
            m.durations.clone(),
        );
        r.register(
            "hotfix_alerts_received",
            "Alert deliveries stored in the inbox, by source: one per notification (an Alertmanager group, a Sentry or PagerDuty event), not per alert in it; a retry of a stored delivery is not counted again",
            m.alerts_received.family.clone(),
        );
        r.register(
            "hotfix_rejected",
            "Requests refused at the door (bad signature, bad body), by source and reason",
            m.rejected.family.clone(),
        );
        r.register(
            "hotfix_incidents_declared",
            "Incidents declared by this replica",
            m.incidents_declared.clone(),
        );
        r.register(
            "hotfix_inbox_processed",
            "Inbox items processed by this replica",
            m.inbox_processed.clone(),
        );
        r.register(
            "hotfix_inbox_failed",
            "Inbox item processing failures (retried)",
            m.inbox_failed.clone(),
        );
        r.register(
            "hotfix_notifications_sent",
            "Outbox items delivered by this replica",
            m.outbox_sent.clone(),
        );
        r.register(
            "hotfix_notifications_failed",
            "Outbox delivery failures (retried with backoff)",
            m.outbox_failed.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    /// Counts one request: by its status, and its duration by status class.
    fn observe(&self, route: &str, method: &str, status: StatusCode, secs: f64) {
        self.requests.inc(&[route, method, status.as_str()]);
        self.durations
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
                status_class: status_class(status),
            })
            .observe(secs);
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The method as a label: the standard ones by name, any other as `other`
/// (a client may send any token as a method, and each would be a series).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
}

/// Counts every request by its route template (not its path: ids would
/// explode the label set).
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = method_label(req.method());
    let t = Instant::now();
    let resp = next.run(req).await;
    st.metrics
        .observe(&route, method, resp.status(), t.elapsed().as_secs_f64());
    resp
}

/// Alive and the store answers.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    tag = "meta",
    summary = "Liveness and store health",
    description = "200 when the process is up and the store answers; 503 otherwise. For load balancer checks.",
    security(()),
    responses(
        (status = 200, description = "healthy", body = crate::openapi::Health),
        (status = 503, description = "the store does not answer", body = crate::openapi::Health),
    ),
)]
async fn healthz(State(st): State<AppState>) -> Response {
    let r = st
        .blocking(|st| {
            st.store.watermark()?;
            Ok(())
        })
        .await;
    match r {
        Ok(()) => Json(json!({"status": "ok", "replica": st.replica})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "error": e.message})),
        )
            .into_response(),
    }
}

/// Every decline reason at zero: each series exists from the first
/// scrape, so `rate()` and `increase()` see the first decline.
fn declined_zero() -> BTreeMap<&'static str, u64> {
    use hotfix_core::event::DeclineReason as R;
    [R::FalseAlarm, R::NotUrgent, R::Duplicate]
        .into_iter()
        .map(|r| (r.as_str(), 0))
        .collect()
}

/// What a scrape reads from the shared store (the same on every replica).
struct TeamGauges {
    /// (severity, phase) of open incidents → how many.
    open: BTreeMap<(String, String), u64>,
    declined: BTreeMap<&'static str, u64>,
    undelivered: usize,
}

/// The team-wide series of one scrape, in a registry of their own: they are
/// read from the store each time, so a series that no longer exists (no
/// open incident left in a phase) is gone from the next scrape.
fn team_registry(g: Option<&TeamGauges>) -> Registry {
    let mut r = Registry::default();
    if let Some(g) = g {
        let open = Family::<Vec<(String, String)>, Gauge>::default();
        for ((sev, phase), n) in &g.open {
            open.get_or_create(&vec![
                ("severity".to_string(), sev.clone()),
                ("phase".to_string(), phase.clone()),
            ])
            .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        r.register(
            "hotfix_incidents_open",
            "Open incidents by severity and phase",
            open,
        );
        let declined = Family::<Vec<(String, String)>, Counter>::default();
        for (reason, n) in &g.declined {
            declined
                .get_or_create(&vec![("reason".to_string(), reason.to_string())])
                .inc_by(*n);
        }
        r.register(
            "hotfix_incidents_declined",
            "Incidents declined or merged at triage, by reason (team-wide, from the log: the same on every replica)",
            declined,
        );
        let undelivered = Gauge::<i64>::default();
        undelivered.set(i64::try_from(g.undelivered).unwrap_or(i64::MAX));
        r.register(
            "hotfix_notifications_undelivered",
            "Notifications waiting in the outbox",
            undelivered,
        );
    }
    let up = Gauge::<i64>::default();
    up.set(i64::from(g.is_some()));
    r.register(
        "hotfix_store_up",
        "Whether the store answered this scrape",
        up,
    );
    r
}

#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "meta",
    summary = "Prometheus metrics",
    description = "Counters per replica (requests by route, alerts received, webhooks rejected, inbox and outbox work) and team-wide gauges read from the store.",
    security(()),
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
    ),
)]
async fn metrics(State(st): State<AppState>) -> Response {
    let gauges = st
        .blocking(|st| {
            let mut open: BTreeMap<(String, String), u64> = BTreeMap::new();
            let mut declined = declined_zero();
            let all = ops::all(st)?;
            for v in all.seen(&Reader::Outside) {
                let s = v.state();
                if let Some(d) = &s.declined {
                    *declined.entry(d.reason.as_str()).or_insert(0) += 1;
                }
                if !s.is_closed() {
                    *open
                        .entry((
                            s.severity.as_str().into(),
                            s.phase(&st.cfg.policy).as_str().into(),
                        ))
                        .or_insert(0) += 1;
                }
            }
            let undelivered = st.store.undelivered()?.len();
            Ok(TeamGauges {
                open,
                declined,
                undelivered,
            })
        })
        .await
        .ok();
    let mut out = String::new();
    let rendered = prometheus_text::encode(&mut out, &st.metrics.registry)
        .and_then(|()| prometheus_text::encode(&mut out, &team_registry(gauges.as_ref())));
    if rendered.is_err() {
        // Writing to a String cannot fail; said rather than assumed.
        return crate::ApiError::internal("the metrics could not be rendered").into_response();
    }
    ([(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], out).into_response()
}
