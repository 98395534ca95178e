//! GitHub webhooks, `POST /api/v1/webhooks/github`.
//!
//! Reviews, pushes, merges and deployments of a hotfix branch often happen on
//! GitHub rather than through the CLI; the webhook keeps the incident log in
//! step with them, so an approval given in the GitHub UI counts, a dismissed
//! review or *changes requested* takes it back, a push (or a PR update) made
//! there makes the approvals of the old head stale, and a merge there is the
//! incident's merge (recorded with the bypass of its guards when they still
//! refused the ship).
//!
//! Only the incident's own PR counts: its number, in the `[forge]`
//! repository, into main, from the incident's branch in that same repository
//! (not a fork's branch of the same name); its branch into develop is its
//! backport. Reviews are known by GitHub's review id and pushes by where they
//! move the branch from and to, so a signed body sent again under a new
//! delivery id changes nothing ([`process`] has the details).
//!
//! The door ([`intake`]) only authenticates the delivery
//! (`X-Hub-Signature-256`), drops events we do not act on and stores the rest
//! durably in the inbox before answering: GitHub gives up on a delivery after
//! 10 s, and once we said 202 a crash must not lose it. The inbox worker
//! applies it to the incident log ([`process`]) with the same server-side
//! rules as the JSON API.

pub(crate) mod intake;
mod payload;
mod process;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::post;

pub use process::process;

use crate::AppState;

/// GitHub caps webhook payloads at 25 MB; axum's default limit (2 MB) would
/// refuse a large push with a confusing 413 that GitHub retries forever.
pub const MAX_PAYLOAD: usize = 25 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/webhooks/github",
        post(intake::webhook).layer(DefaultBodyLimit::max(MAX_PAYLOAD)),
    )
}
