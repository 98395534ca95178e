//! A signed JSON event per workflow step, POSTed to a URL the team chooses
//! (a chat bridge, an incident tool, an internal audit log).
//!
//! Contract for receivers:
//! * body: `{"incident", "step", "severity", "text", "title", "customer_facing",
//!   "security", "at", "pr_url", "mentions", "outbox_id"}` (JSON, UTF-8);
//! * `X-Hotfix-Event: <step>`;
//! * `X-Hotfix-Delivery: <outbox_id>`: the same id on every retry of the same
//!   notification. Delivery is at-least-once (a crash after the POST and
//!   before the outbox records it sends it again), so receivers dedupe on it;
//! * `X-Hotfix-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` when
//!   a secret is set, the scheme GitHub uses, so existing verifiers work;
//! * any 2xx means delivered; anything else is retried with backoff.
//!
//! For security incidents the title is already empty and the text redacted;
//! the PR link is left out too, since the receiver's audience is unknown.

use std::time::Duration;

use hotfix_core::duration::HumanDuration;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};
use serde::Deserialize;

use super::http;

/// The environment variable the binary reads the signing secret from.
pub const SECRET_ENV: &str = hotfix_core::env_vars::HOTFIX_WEBHOOK_SECRET;
/// The environment variable that may give the URL instead of `hotfix.toml`
/// (for URLs that carry a token of their own).
pub const URL_ENV: &str = hotfix_core::env_vars::HOTFIX_WEBHOOK_URL;

/// `[notify.webhook]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where events go. Optional here because `HOTFIX_WEBHOOK_URL` may give it
    /// (and wins when both are set).
    #[serde(default)]
    pub url: Option<String>,
    /// Give one delivery this long (default 5s): delivery runs inside
    /// people's commands and is retried anyway.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

impl WebhookConfig {
    /// Validates the `[notify.webhook]` table; unknown keys are errors.
    pub fn from_table(t: &toml::Table) -> Result<WebhookConfig, String> {
        t.clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("[notify.webhook]: {}", e.message()))
    }
}

/// Posts each step as a signed JSON event.
pub struct WebhookNotifier {
    url: String,
    secret: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WebhookNotifier {
    /// Never shows the URL or the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("signed", &self.secret.is_some())
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    /// `url_from_env` (`HOTFIX_WEBHOOK_URL`) wins over `config.url`; one of
    /// them must be set. `secret` (`HOTFIX_WEBHOOK_SECRET`) turns signing on;
    /// an empty secret counts as none.
    pub fn new(
        config: WebhookConfig,
        url_from_env: Option<String>,
        secret: Option<String>,
    ) -> Result<WebhookNotifier, String> {
        let url = url_from_env
            .filter(|u| !u.trim().is_empty())
            .or(config.url.filter(|u| !u.trim().is_empty()))
            .ok_or_else(|| format!("[notify.webhook] needs a URL: set `url` there or {URL_ENV}"))?;
        http::check_url("[notify.webhook] url", &url)?;
        Ok(WebhookNotifier {
            url: url.trim().to_string(),
            secret: secret.filter(|s| !s.is_empty()),
            agent: http::agent(Duration::max(config.timeout.0, Duration::from_millis(1))),
        })
    }

    fn err(&self, message: String) -> NotifyError {
        let mut secrets = vec![self.url.as_str()];
        if let Some(s) = &self.secret {
            secrets.push(s);
        }
        NotifyError {
            notifier: "webhook".into(),
            message: http::scrub(&message, &secrets),
        }
    }
}

/// The event body, in a fixed field order (receivers hash the raw bytes).
pub fn event_body(outbox_id: i64, msg: &Message) -> serde_json::Value {
    serde_json::json!({
        "incident": msg.incident.to_string(),
        "step": msg.step,
        "severity": msg.severity,
        "text": msg.text,
        "title": if msg.security { "" } else { msg.title.as_str() },
        "customer_facing": msg.customer_facing,
        "security": msg.security,
        "at": msg.at.to_string(),
        "pr_url": if msg.security { None } else { msg.pr_url.as_deref() },
        "mentions": msg.mentions,
        "outbox_id": outbox_id,
    })
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the value of
/// `X-Hotfix-Signature-256`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    format!(
        "sha256={}",
        crate::signature::sign_hmac_sha256_hex(secret, body)
    )
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }

    fn send(&self, outbox_id: i64, msg: &Message, _memory: &dyn Memory) -> Result<(), NotifyError> {
        let body = serde_json::to_vec(&event_body(outbox_id, msg))
            .map_err(|e| self.err(format!("cannot encode the event: {e}")))?;
        let delivery = outbox_id.to_string();
        let sig = self.secret.as_ref().map(|s| signature(s.as_bytes(), &body));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("X-Hotfix-Event", msg.step.as_str()),
            ("X-Hotfix-Delivery", delivery.as_str()),
        ];
        if let Some(sig) = &sig {
            headers.push(("X-Hotfix-Signature-256", sig.as_str()));
        }
        let reply = http::send(&self.agent, http::Method::Post, &self.url, &headers, &body)
            .map_err(|e| self.err(e))?;
        if reply.is_success() {
            return Ok(());
        }
        let detail = http::snippet(&reply.body, 200);
        let why = match reply.status {
            429 => http::retry_hint(reply.retry_after.as_deref()),
            401 | 403 => format!(
                "the receiver refused the delivery ({}){}: check {SECRET_ENV} matches the receiver's secret",
                reply.status,
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
            300..=399 => format!(
                "the receiver answered {} (a redirect, not followed): point the webhook URL at the final address",
                reply.status
            ),
            s => format!(
                "the receiver answered {s}{}; will retry",
                if detail.is_empty() {
                    String::new()
                } else {
                    format!(": {detail}")
                }
            ),
        };
        Err(self.err(why))
    }
}
