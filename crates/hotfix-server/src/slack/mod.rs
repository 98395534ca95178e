//! The Slack slash command `/hotfix`, `POST /api/v1/slack/commands`.
//!
//! The process says to work the incident in #dev-alerts; the slash command
//! lets people declare, look and approve from there. Slack signs every
//! request (`X-Slack-Signature` over the timestamp and the raw body), so the
//! signature plus the `[server.slack_users]` mapping authenticate the person;
//! their `[team]` entry gives the role, as for a token.
//!
//! Slack shows anything but a 200 within 3 s as a failure, so once the
//! signature is good every answer is a 200 with a message, and the work runs
//! under a deadline: if the store is slow the person is told the result will
//! show in the channel (the work carries on and its notifications go out).

mod commands;
pub(crate) mod request;

use axum::Router;
use axum::routing::post;

pub use request::{ANSWER_WITHIN, Reply};

use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/slack/commands", post(request::command))
}
