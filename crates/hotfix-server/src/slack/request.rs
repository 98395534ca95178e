//! The request: signature, form, channel, person, deadline.

use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Form, FromRequest, State};
use axum::http::{HeaderMap, Request, header};
use hotfix_providers::signature::{SignatureError, verify_slack};
use serde::{Deserialize, Serialize};

use super::commands::{self, Command};
use crate::{ApiError, AppState, Secrets};

/// Slack waits 3 s; the rest is for the network and Slack itself.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(2500);

/// Slack's recommended replay window.
const MAX_AGE_S: i64 = 300;

const SOURCE: &str = "slack";

/// What Slack shows: to the caller only (`ephemeral`) or to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = SlackReply)]
pub struct Reply {
    pub response_type: &'static str,
    pub text: String,
}

impl Reply {
    /// Every reply's text goes through [`hotfix_core::display::block`]:
    /// names, titles and reasons in it came from outside.
    pub fn ephemeral(text: impl Into<String>) -> Reply {
        Reply {
            response_type: "ephemeral",
            text: safe(text.into()),
        }
    }
    pub fn in_channel(text: impl Into<String>) -> Reply {
        Reply {
            response_type: "in_channel",
            text: safe(text.into()),
        }
    }
}

fn safe(text: String) -> String {
    match hotfix_core::display::block(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(t) => t,
    }
}

/// The fields of Slack's form hotfix reads (Slack sends more; they are
/// ignored). `user_id` and `channel_id` are always sent by Slack, so a body
/// without them is not a slash command.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct SlashCommand {
    pub user_id: String,
    pub channel_id: String,
    #[serde(default)]
    pub channel_name: String,
    #[serde(default)]
    pub text: String,
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Parses the form from the bytes the signature was checked on (the
/// signature covers the raw body, so it must be read before parsing).
async fn parse_form(body: Bytes) -> Result<SlashCommand, String> {
    let req = Request::builder()
        .method("POST")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    Form::<SlashCommand>::from_request(req, &())
        .await
        .map(|Form(f)| f)
        .map_err(|e| e.body_text())
}

/// Is this the channel `/hotfix` answers in? The setting may be a name
/// (`#dev-alerts`, `dev-alerts`) or a channel id (`C024BE91L`).
fn channel_ok(allowed: &str, c: &SlashCommand) -> bool {
    let a = allowed.trim();
    let name = a.trim_start_matches('#');
    (!c.channel_id.is_empty() && a == c.channel_id)
        || (!c.channel_name.is_empty() && name.eq_ignore_ascii_case(c.channel_name.trim()))
}

/// `POST /api/v1/slack/commands`.
#[utoipa::path(
    post,
    path = "/api/v1/slack/commands",
    operation_id = "slackCommand",
    tag = "intake",
    summary = "The /hotfix Slack slash command",
    description = "Slack signs the raw body. Once the signature is good every answer is a 200 with a message (Slack shows anything else as a failure), within 2.5 s; the person is identified by [server.slack_users] and their role by [team]. Only answers in [server] slack_channel (default: [notify] channel).",
    params(("X-Slack-Request-Timestamp" = String, Header, description = "unix seconds, signed with the body")),
    security(("slackSignature" = [])),
    request_body(content = SlashCommand, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "what Slack shows", body = Reply),
        (status = 401, description = "not a signed Slack request (bad signature, or older than 5 minutes)", body = crate::openapi::Error),
        (status = 413, response = crate::openapi::PayloadTooLarge),
        (status = 503, description = "no signing secret configured on the server", body = crate::openapi::Error),
    ),
)]
pub async fn command(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Reply>, ApiError> {
    let Some(secret) = st.secrets.slack_signing.as_deref() else {
        st.metrics.rejected.inc(&[SOURCE, "not_configured"]);
        return Err(ApiError::unavailable(
            "the /hotfix slash command is not enabled on this server (no signing secret)",
        )
        .with_hint(format!(
            "set {} to the Slack app's signing secret and restart `hotfix serve`",
            Secrets::SLACK_SIGNING_ENV
        )));
    };
    let verified = match (
        header_str(&headers, "x-slack-request-timestamp"),
        header_str(&headers, "x-slack-signature"),
    ) {
        (Some(ts), Some(sig)) => {
            verify_slack(secret.as_bytes(), ts, &body, sig, st.now_s(), MAX_AGE_S)
        }
        _ => Err(SignatureError::Malformed),
    };
    if let Err(e) = verified {
        let reason = match e {
            SignatureError::Expired { .. } => "expired",
            _ => "bad_signature",
        };
        st.metrics.rejected.inc(&[SOURCE, reason]);
        return Err(ApiError::unauthorized(format!(
            "not a signed Slack request: {e}"
        ))
        .with_hint(format!(
            "Slack signs with the app's signing secret ({}); requests older than {MAX_AGE_S} s are refused",
            Secrets::SLACK_SIGNING_ENV
        )));
    }
    // From here on Slack made the request: answer 200 whatever happens, or
    // Slack shows the person a bare "failed with the error …".
    let form = match parse_form(body).await {
        Ok(f) => f,
        Err(e) => {
            st.metrics.rejected.inc(&[SOURCE, "bad_body"]);
            return Ok(Json(Reply::ephemeral(format!(
                "hotfix could not read this slash command ({e}).\n{}",
                commands::USAGE
            ))));
        }
    };
    let channel = st
        .cfg
        .server
        .slack_channel
        .clone()
        .unwrap_or_else(|| st.cfg.notify.channel.clone());
    if !channel_ok(&channel, &form) {
        return Ok(Json(Reply::ephemeral(format!(
            "use /hotfix in {channel}: incidents are worked where everyone sees them"
        ))));
    }
    let Some(who) = st.cfg.server.slack_users.get(form.user_id.trim()).cloned() else {
        return Ok(Json(Reply::ephemeral(format!(
            "your Slack user {} is not mapped to a team identity, so hotfix cannot tell who you are; ask an admin to add it to [server.slack_users] in hotfix.toml",
            form.user_id.trim()
        ))));
    };
    let cmd = match commands::parse(&form.text) {
        Ok(Command::Help) => return Ok(Json(Reply::ephemeral(commands::USAGE))),
        Ok(c) => c,
        Err(reply) => return Ok(Json(reply)),
    };
    let work = st.blocking(move |st| Ok(commands::run(st, &who, cmd)));
    let reply = match tokio::time::timeout(ANSWER_WITHIN, work).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Reply::ephemeral(format!("hotfix could not do that: {}", e.message)),
        // The blocking work is not cancelled: it finishes, and what it
        // records is notified to the channel as usual.
        Err(_) => Reply::ephemeral(format!(
            "still working on it (the incident store is slow); the result will show in {channel}"
        )),
    };
    Ok(Json(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(channel_id: &str, channel_name: &str) -> SlashCommand {
        SlashCommand {
            user_id: "U1".into(),
            channel_id: channel_id.into(),
            channel_name: channel_name.into(),
            text: String::new(),
        }
    }

    #[test]
    fn the_channel_is_matched_by_name_or_id() {
        assert!(channel_ok("#dev-alerts", &cmd("C1", "dev-alerts")));
        assert!(channel_ok("dev-alerts", &cmd("C1", "Dev-Alerts")));
        assert!(channel_ok("C024BE91L", &cmd("C024BE91L", "renamed")));
        assert!(!channel_ok("#dev-alerts", &cmd("C1", "random")));
        assert!(!channel_ok("C024BE91L", &cmd("C999", "dev-alerts")));
        assert!(!channel_ok("#dev-alerts", &cmd("", "")));
    }

    #[tokio::test]
    async fn a_form_without_the_slack_fields_is_refused() {
        let f = parse_form(Bytes::from_static(
            b"user_id=U1&channel_id=C1&text=status+HF-2",
        ))
        .await
        .unwrap();
        assert_eq!(f.text, "status HF-2");
        assert!(parse_form(Bytes::from_static(b"not a form")).await.is_err());
    }
}
