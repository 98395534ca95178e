//! The door: authenticate, filter, store, answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use hotfix_core::team::InboxPut;
use hotfix_providers::signature::verify_github;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState, Secrets};

/// The inbox source name the workers dispatch on.
pub const SOURCE: &str = "github";

/// The events [`super::process`] acts on, with the actions that matter
/// (`None`: every action). Anything else is answered `ignored` and not
/// stored, so the inbox holds only work.
const HANDLED: &[(&str, Option<&[&str]>)] = &[
    ("pull_request_review", Some(&["submitted", "dismissed"])),
    ("push", None),
    (
        "pull_request",
        Some(&["closed", "synchronize", "edited", "reopened"]),
    ),
    ("deployment_status", None),
];

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Why an event is not stored, or `None` when [`super::process`] handles it.
fn not_handled(event: &str, payload: &Value) -> Option<String> {
    let Some((_, actions)) = HANDLED.iter().find(|(e, _)| *e == event) else {
        return Some(format!("event `{event}` is not used by hotfix"));
    };
    let Some(actions) = actions else {
        return None;
    };
    let action = payload.get("action").and_then(Value::as_str).unwrap_or("");
    if actions.contains(&action) {
        None
    } else {
        Some(format!("`{event}` action `{action}` is not used by hotfix"))
    }
}

/// The key that makes a redelivery a duplicate: GitHub's delivery GUID (the
/// same on a manual "Redeliver"), else the body's hash.
fn delivery_key(headers: &HeaderMap, body: &[u8]) -> String {
    match header_str(headers, "x-github-delivery") {
        Some(d)
            if d.len() <= 100
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) =>
        {
            d.to_string()
        }
        _ => format!("sha256:{}", hex::encode(Sha256::digest(body))),
    }
}

/// `POST /api/v1/webhooks/github`.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/github",
    operation_id = "githubWebhook",
    tag = "intake",
    summary = "Receive a GitHub webhook",
    description = "Reviews (approvals given on GitHub count, mapped to team identities), pushes (a head moved outside hotfix makes old approvals stale), PR merges and deployment statuses of hotfix branches. Events hotfix does not use are answered 202 `ignored` and not stored. Content type must be application/json.",
    params(
        ("X-GitHub-Event" = String, Header, description = "`pull_request_review`, `push`, `pull_request`, `deployment_status`, `ping`, ..."),
        ("X-GitHub-Delivery" = Option<String>, Header, description = "GitHub's delivery id, the dedup key"),
    ),
    security(("githubSignature" = [])),
    request_body(content = Object, content_type = "application/json", description = "a GitHub webhook payload"),
    responses(
        (status = 200, description = "`ping` answered `pong`", body = crate::openapi::WebhookAccepted),
        (status = 202, description = "stored, a duplicate, or ignored", body = crate::openapi::WebhookAccepted),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 401, description = "missing or invalid X-Hub-Signature-256", body = crate::openapi::Error),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 503, description = "no webhook secret configured on the server", body = crate::openapi::Error),
    ),
)]
pub async fn webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Never accept unsigned deliveries: without a secret anyone who can reach
    // the server could approve a hotfix or move its head.
    let Some(secret) = st.secrets.github_webhook.as_deref() else {
        st.metrics.rejected.inc(&[SOURCE, "not_configured"]);
        return Err(ApiError::unavailable(
            "GitHub webhooks are not enabled on this server (no webhook secret)",
        )
        .with_hint(format!(
            "set {} to the secret of the repository's webhook and restart `hotfix serve`",
            Secrets::GITHUB_WEBHOOK_ENV
        )));
    };
    let signed = header_str(&headers, "x-hub-signature-256")
        .is_some_and(|sig| verify_github(secret.as_bytes(), &body, sig));
    if !signed {
        st.metrics.rejected.inc(&[SOURCE, "bad_signature"]);
        return Err(ApiError::unauthorized(
            "missing or invalid X-Hub-Signature-256: the delivery is not signed with this server's webhook secret",
        )
        .with_hint(format!(
            "the webhook's secret on GitHub must equal {}; the content type must be application/json",
            Secrets::GITHUB_WEBHOOK_ENV
        )));
    }
    let bad_body = |msg: String| {
        st.metrics.rejected.inc(&[SOURCE, "bad_body"]);
        ApiError::bad_request(msg)
    };
    let Some(event) = header_str(&headers, "x-github-event") else {
        return Err(bad_body("no X-GitHub-Event header".into()));
    };
    if event.len() > 64
        || !event
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(bad_body("X-GitHub-Event is not an event name".into()));
    }
    if event == "ping" {
        return Ok((StatusCode::OK, Json(json!({ "status": "pong" }))));
    }
    let form = header_str(&headers, header::CONTENT_TYPE.as_str())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Err(
            bad_body("the webhook sends form-encoded payloads; hotfix reads JSON".into())
                .with_hint("edit the webhook on GitHub: Content type = application/json"),
        );
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        Ok(_) => return Err(bad_body("the payload is not a JSON object".into())),
        Err(e) => return Err(bad_body(format!("the payload is not JSON: {e}"))),
    };
    if let Some(reason) = not_handled(event, &payload) {
        return Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "ignored", "event": event, "reason": reason })),
        ));
    }
    let delivery = delivery_key(&headers, &body);
    // Keep the payload byte for byte (it parsed, so it is UTF-8 JSON) inside
    // an envelope that carries the event name, which is only in a header.
    let raw =
        std::str::from_utf8(&body).map_err(|_| bad_body("the payload is not UTF-8".into()))?;
    let stored = format!(
        r#"{{"event":{},"delivery":{},"payload":{raw}}}"#,
        Value::from(event),
        Value::from(delivery.as_str())
    );
    let put = st
        .blocking(move |st| Ok(st.store.inbox_put(SOURCE, &delivery, &stored, st.now_s())?))
        .await?;
    let (status, id) = match put {
        InboxPut::Stored(id) => ("accepted", id),
        InboxPut::Duplicate(id) => ("duplicate", id),
    };
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": status, "event": event, "inbox_id": id })),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_events_and_actions_hotfix_uses_are_kept() {
        let a = |action: &str| json!({ "action": action });
        assert_eq!(not_handled("pull_request_review", &a("submitted")), None);
        assert_eq!(not_handled("pull_request_review", &a("dismissed")), None);
        assert!(not_handled("pull_request_review", &a("edited")).is_some());
        for kept in ["closed", "synchronize", "edited", "reopened"] {
            assert_eq!(not_handled("pull_request", &a(kept)), None, "{kept}");
        }
        // hotfix opens its PRs itself; labels and assignees change nothing.
        assert!(not_handled("pull_request", &a("opened")).is_some());
        assert!(not_handled("pull_request", &a("labeled")).is_some());
        assert_eq!(not_handled("push", &json!({})), None);
        assert_eq!(not_handled("deployment_status", &a("created")), None);
        assert!(not_handled("issues", &a("opened")).is_some());
    }

    #[test]
    fn the_delivery_guid_is_the_key_else_the_body_hash() {
        let mut h = HeaderMap::new();
        let by_hash = delivery_key(&h, b"{}");
        assert!(by_hash.starts_with("sha256:") && by_hash.len() == 71);
        h.insert(
            "x-github-delivery",
            "72d3162e-cc78-11e3-81ab-4c9367dc0958".parse().unwrap(),
        );
        assert_eq!(
            delivery_key(&h, b"{}"),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
        h.insert("x-github-delivery", "a b".parse().unwrap());
        assert_eq!(delivery_key(&h, b"{}"), by_hash);
    }
}
