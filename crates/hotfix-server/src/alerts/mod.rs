//! Alert intake: `POST /api/v1/alerts/{source}` for Prometheus
//! Alertmanager (webhook payload version 4), Sentry, PagerDuty Events v2
//! and a generic JSON shape.
//!
//! The request path only checks who is sending and that the body is an
//! alert of that source, stores it durably in the inbox and answers 202:
//! senders time out and retry (Alertmanager retries any 5xx), so the answer
//! must be quick and must mean "stored". Deciding what the alert means
//! (declare an incident and page the on-call, record a repeat or a
//! resolve) happens in the inbox worker, [`process`], which any replica may
//! run and which is safe to run twice.

mod parse;
mod process;
pub mod rules;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use hotfix_core::id::IncidentId;
use hotfix_core::team::{InboxPut, InboxRecord};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use parse::{Alert, Member, ParseError, Parsed, Source, Status, parse};
pub use process::{link_key, process};

use crate::{ApiError, AppState, auth};

/// Largest body accepted. Alertmanager sends the whole group on every
/// notification (firing and resolved alerts alike) and cuts it only at the
/// receiver's `max_alerts`: a group of 1,500 alerts is about 735 KB, and a
/// body refused for its size is refused again on every retry, its resolve
/// included. 4 MB holds some 8,000 such alerts; past it the answer is 413
/// and the README says to set `max_alerts`.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// Sentry signs its webhooks with the integration's client secret.
pub const SENTRY_SIGNATURE: &str = "sentry-hook-signature";
/// Sentry's unique id of a delivery, kept as the inbox delivery key.
pub const SENTRY_REQUEST_ID: &str = "request-id";

pub fn routes() -> Router<AppState> {
    // The body is read by the handler itself, after the sender was checked
    // (`crate::extract::body_limit` knows this route's limit).
    Router::new().route("/api/v1/alerts/{source}", post(receive))
}

/// Why the body could not be read.
enum BodyError {
    TooLarge,
    Broken(String),
}

/// The body, up to [`MAX_BODY`].
async fn read_body(body: axum::body::Body) -> Result<Bytes, BodyError> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            // The limit here or the server-wide one (`extract::limit_bodies`),
            // however deep it is wrapped.
            let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&*e);
            while let Some(x) = cur {
                if x.is::<LengthLimitError>() {
                    return Err(BodyError::TooLarge);
                }
                cur = x.source();
            }
            Err(BodyError::Broken(e.to_string()))
        }
    }
}

fn too_large(st: &AppState, source: &str) -> ApiError {
    reject(
        st,
        source,
        "too_large",
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} KB", MAX_BODY / 1024),
        )
        .with_hint(
            "Alertmanager: set `max_alerts` on the webhook receiver (the rest is counted in `truncatedAlerts`)",
        ),
    )
}

/// Counts a refusal and passes the error on.
fn reject(st: &AppState, source: &str, reason: &str, e: ApiError) -> ApiError {
    st.metrics.rejected.inc(&[source, reason]);
    e
}

#[utoipa::path(
    post,
    path = "/api/v1/alerts/{source}",
    operation_id = "receiveAlert",
    tag = "intake",
    summary = "Receive an alert",
    description = "Checks the sender (any token, an `intake` token being the one meant for monitoring tools; or Sentry's signature) and the body's shape, stores it durably and answers 202; the inbox worker then declares an incident in triage (by `[[alerts.rules]]`: each alert of an Alertmanager group by its first matching rule, the group by its most severe match, named and titled after that alert; paging the on-call), records a repeat, escalates the incident when a more severe alert joins the group, or records a resolve (never closing anything; resolving and firing again are posted to the channel). Alerts of an incident merged at triage land on the one it was merged into; repeats of a declined incident's group are ignored until it resolves; a new group key for alerts (by fingerprint) already on an open incident is linked to it. A redelivery of the same body is a duplicate. Bodies up to 4 MB (Alertmanager: set `max_alerts`; `truncatedAlerts` is counted). Bad bodies get a 4xx (never a 5xx, which senders retry).",
    params(
        ("source" = crate::openapi::AlertSource, Path, description = "who sends it (another source is a 404)"),
        ("Request-ID" = Option<String>, Header, description = "Sentry's delivery id, the dedup key of a Sentry delivery"),
    ),
    security(("bearer" = []), ("basic" = []), ("sentrySignature" = [])),
    request_body(content = crate::openapi::AlertBody, content_type = "application/json"),
    responses(
        (status = 202, description = "stored (or a duplicate of what was stored)", body = crate::openapi::AlertAccepted),
        (status = 400, description = "not JSON, or not an alert of this source (code bad_json or bad_shape; the hint gives the expected shape)", body = crate::openapi::Error),
        (status = 401, response = crate::openapi::Unauthorized),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "no such alert source", body = crate::openapi::Error),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 503, response = crate::openapi::Unavailable),
    ),
)]
async fn receive(
    State(st): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(src) = Source::parse(&source) else {
        // Not labelled with what was asked for: that would let anyone grow
        // the metric's label set.
        return Err(reject(
            &st,
            "unknown",
            "unknown_source",
            ApiError::not_found(
                "no such alert source: use /api/v1/alerts/alertmanager, sentry, pagerduty or generic",
            ),
        ));
    };
    let s = src.as_str();

    // Who sends it: an API token (bearer or basic), or for Sentry its signature.
    let by_token = match auth::token_of(&headers) {
        Some(t) => match auth::authenticate(&st, t).await? {
            Some(_) => true,
            None => {
                return Err(reject(
                    &st,
                    s,
                    "unauthorized",
                    ApiError::unauthorized("unknown or revoked API token"),
                ));
            }
        },
        None => false,
    };
    let signature = (src == Source::Sentry)
        .then(|| headers.get(SENTRY_SIGNATURE))
        .flatten()
        .map(|v| v.to_str().unwrap_or("").to_string());
    if !by_token && signature.is_none() {
        return Err(reject(
            &st,
            s,
            "unauthorized",
            ApiError::unauthorized(
                "no API token: send `Authorization: Bearer <token>` or HTTP basic auth with the token as password (create one with `hotfix serve token create`)",
            ),
        ));
    }

    // A body declared too large is answered before any of it is read.
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large(&st, s));
    }
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return Err(too_large(&st, s)),
        Err(BodyError::Broken(why)) => {
            return Err(reject(
                &st,
                s,
                "bad_body",
                ApiError::bad_request(format!("the body could not be read: {why}")),
            ));
        }
    };

    if let (false, Some(sig)) = (by_token, &signature) {
        let Some(secret) = st.secrets.sentry_client.as_deref() else {
            return Err(reject(
                &st,
                s,
                "unauthorized",
                ApiError::unauthorized(format!(
                    "Sentry-Hook-Signature cannot be checked: {} is not set on the server; set it or send an API token",
                    crate::Secrets::SENTRY_CLIENT_ENV
                )),
            ));
        };
        // Sentry's header is the bare hex digest; GitHub's check takes the
        // same digest behind `sha256=` and compares in constant time.
        let ok = hotfix_providers::signature::verify_github(
            secret.as_bytes(),
            &body,
            &format!("sha256={}", sig.trim()),
        );
        if !ok {
            return Err(reject(
                &st,
                s,
                "bad_signature",
                ApiError::unauthorized("Sentry-Hook-Signature does not match the body").with_hint(
                    format!(
                        "check that {} is the integration's client secret",
                        crate::Secrets::SENTRY_CLIENT_ENV
                    ),
                ),
            ));
        }
    }

    let Ok(text) = std::str::from_utf8(&body) else {
        return Err(reject(
            &st,
            s,
            "bad_json",
            ApiError::bad_request("the body is not UTF-8 JSON"),
        ));
    };
    if let Err(e) = parse(src, &body, "pending") {
        return Err(reject(
            &st,
            s,
            e.reason(),
            ApiError::new(StatusCode::BAD_REQUEST, e.reason(), e.to_string()).with_hint(format!(
                "POST /api/v1/alerts/{s} takes {}",
                expected_shape(src)
            )),
        ));
    }

    let key = delivery_key(src, &headers, &body);
    let text = text.to_string();
    let put = st
        .blocking(move |st| Ok(st.store.inbox_put(s, &key, &text, st.now_s())?))
        .await?;
    let (id, duplicate) = match put {
        InboxPut::Stored(id) => {
            // One per delivery stored: a sender's retry of the same
            // delivery is answered 202 again but was already counted.
            st.metrics.alerts_received.inc(&[s]);
            (id, false)
        }
        InboxPut::Duplicate(id) => (id, true),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "inbox_id": id, "duplicate": duplicate })),
    ))
}

fn expected_shape(src: Source) -> &'static str {
    match src {
        Source::Alertmanager => {
            "an Alertmanager webhook (payload version 4: groupKey, status, alerts[])"
        }
        Source::Sentry => {
            "a Sentry integration webhook (action, data.metric_alert | data.issue | data.event)"
        }
        Source::Pagerduty => {
            "a PagerDuty Events API v2 event (event_action, dedup_key, payload{summary, source, severity})"
        }
        Source::Generic => {
            "{\"key\": \"...\", \"status\": \"firing|resolved\", \"title\": \"...\", \"severity\": \"critical\", \"labels\": {...}, \"url\": \"...\"}"
        }
    }
}

/// The delivery's identity in the inbox: Sentry's `Request-ID`, else the
/// body's SHA-256 (a sender's retry of the same body is the same delivery).
fn delivery_key(src: Source, headers: &HeaderMap, body: &[u8]) -> String {
    if src == Source::Sentry
        && let Some(id) = headers
            .get(SENTRY_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 200 && v.chars().all(|c| c.is_ascii_graphic()))
    {
        return format!("sentry-request:{id}");
    }
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// What an inbox item was, for `GET /api/v1/inbox`: the alert's key (an
/// Alertmanager group key, a PagerDuty dedup key, ...), the name of the
/// alert it is about (for a group, the one its rule matched, as the
/// incident is named), its status and how many alerts it stands for (with
/// Alertmanager's `truncatedAlerts`). All `null` for an item that is not an
/// alert (a GitHub delivery) or not readable as one. An item about a
/// security incident `restricted` says the caller may not read shows no
/// key or name either: they may tell what the incident is about.
pub fn describe(
    st: &AppState,
    item: &InboxRecord,
    restricted: &dyn Fn(IncidentId) -> bool,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut out = serde_json::Map::new();
    for k in ["key", "alertname", "status", "alerts"] {
        out.insert(k.into(), Value::Null);
    }
    let Some(src) = Source::parse(&item.source) else {
        return Ok(out);
    };
    let Some(body) = st.store.inbox_body(item.id)? else {
        return Ok(out);
    };
    let Ok(Parsed::Alert(a)) = parse(src, body.as_bytes(), &format!("inbox-{}", item.id)) else {
        return Ok(out);
    };
    let m = rules::first_match(&st.cfg.alerts.rules, &a).and_then(|m| m.member);
    let a = a.focus(m);
    let mentioned = item
        .outcome
        .as_deref()
        .unwrap_or_default()
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter_map(|w| w.parse::<IncidentId>().ok());
    let linked = st.store.alert_link_get(src.as_str(), &a.key)?;
    let hidden = mentioned.chain(linked).any(restricted);
    if !hidden {
        out.insert("key".into(), Value::String(a.key.clone()));
        out.insert("alertname".into(), Value::String(a.name.clone()));
    }
    out.insert("status".into(), json!(a.status.as_str()));
    out.insert("alerts".into(), json!(a.count()));
    Ok(out)
}
