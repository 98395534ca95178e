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
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hotfix_core::access::Reader;
use serde_json::json;

use crate::{AppState, ops};

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Counts by label values.
#[derive(Debug, Default)]
pub struct Labeled(Mutex<BTreeMap<Vec<String>, u64>>);

impl Labeled {
    pub fn inc(&self, labels: &[&str]) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry(labels.iter().map(|s| s.to_string()).collect())
                .or_insert(0) += 1;
        }
    }
    pub fn snapshot(&self) -> Vec<(Vec<String>, u64)> {
        self.0
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
            .unwrap_or_default()
    }
}

/// Latency histogram buckets, seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Default)]
pub struct Metrics {
    /// `route`, `method`, `status`.
    pub requests: Labeled,
    /// Cumulative bucket counts and sum (microseconds) of request durations.
    pub latency_buckets: [Counter; 10],
    pub latency_count: Counter,
    pub latency_sum_us: Counter,
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

impl Metrics {
    fn observe(&self, secs: f64) {
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.latency_buckets[i].inc();
            }
        }
        self.latency_count.inc();
        self.latency_sum_us.add((secs * 1e6) as u64);
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
    let method = req.method().to_string();
    let t = Instant::now();
    let resp = next.run(req).await;
    st.metrics.observe(t.elapsed().as_secs_f64());
    st.metrics
        .requests
        .inc(&[&route, &method, resp.status().as_str()]);
    resp
}

/// Alive and the store answers.
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

fn esc(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labeled(out: &mut String, name: &str, help: &str, keys: &[&str], l: &Labeled) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (vals, n) in l.snapshot() {
        let labels: Vec<String> = keys
            .iter()
            .zip(vals.iter())
            .map(|(k, v)| format!("{k}=\"{}\"", esc(v)))
            .collect();
        let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
    }
}

fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
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
            Ok((open, declined, undelivered))
        })
        .await;
    let m = &st.metrics;
    let mut out = String::new();
    labeled(
        &mut out,
        "hotfix_http_requests_total",
        "HTTP requests by route template, method and status.",
        &["route", "method", "status"],
        &m.requests,
    );
    let _ = writeln!(
        out,
        "# HELP hotfix_http_request_duration_seconds HTTP request durations.\n# TYPE hotfix_http_request_duration_seconds histogram"
    );
    for (i, b) in BUCKETS.iter().enumerate() {
        let _ = writeln!(
            out,
            "hotfix_http_request_duration_seconds_bucket{{le=\"{b}\"}} {}",
            m.latency_buckets[i].get()
        );
    }
    let _ = writeln!(
        out,
        "hotfix_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        m.latency_count.get()
    );
    let _ = writeln!(
        out,
        "hotfix_http_request_duration_seconds_sum {}",
        m.latency_sum_us.get() as f64 / 1e6
    );
    let _ = writeln!(
        out,
        "hotfix_http_request_duration_seconds_count {}",
        m.latency_count.get()
    );
    labeled(
        &mut out,
        "hotfix_alerts_received_total",
        "Alert deliveries stored in the inbox, by source: one per notification (an Alertmanager group, a Sentry or PagerDuty event), not per alert in it; a retry of a stored delivery is not counted again.",
        &["source"],
        &m.alerts_received,
    );
    labeled(
        &mut out,
        "hotfix_rejected_total",
        "Requests refused at the door (bad signature, bad body), by source and reason.",
        &["source", "reason"],
        &m.rejected,
    );
    counter(
        &mut out,
        "hotfix_incidents_declared_total",
        "Incidents declared by this replica.",
        m.incidents_declared.get(),
    );
    counter(
        &mut out,
        "hotfix_inbox_processed_total",
        "Inbox items processed by this replica.",
        m.inbox_processed.get(),
    );
    counter(
        &mut out,
        "hotfix_inbox_failed_total",
        "Inbox item processing failures (retried).",
        m.inbox_failed.get(),
    );
    counter(
        &mut out,
        "hotfix_notifications_sent_total",
        "Outbox items delivered by this replica.",
        m.outbox_sent.get(),
    );
    counter(
        &mut out,
        "hotfix_notifications_failed_total",
        "Outbox delivery failures (retried with backoff).",
        m.outbox_failed.get(),
    );
    let store_up = match gauges {
        Ok((open, declined, undelivered)) => {
            let _ = writeln!(
                out,
                "# HELP hotfix_incidents_open Open incidents by severity and phase.\n# TYPE hotfix_incidents_open gauge"
            );
            for ((sev, phase), n) in open {
                let _ = writeln!(
                    out,
                    "hotfix_incidents_open{{severity=\"{sev}\",phase=\"{phase}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP hotfix_incidents_declined_total Incidents declined or merged at triage, by reason (team-wide, from the log: the same on every replica).\n# TYPE hotfix_incidents_declined_total counter"
            );
            for (reason, n) in declined {
                let _ = writeln!(
                    out,
                    "hotfix_incidents_declined_total{{reason=\"{reason}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "# HELP hotfix_notifications_undelivered Notifications waiting in the outbox.\n# TYPE hotfix_notifications_undelivered gauge\nhotfix_notifications_undelivered {undelivered}"
            );
            1
        }
        Err(_) => 0,
    };
    let _ = writeln!(
        out,
        "# HELP hotfix_store_up Whether the store answered this scrape.\n# TYPE hotfix_store_up gauge\nhotfix_store_up {store_up}"
    );
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}
