//! The team dashboard: server-rendered pages that work without JavaScript
//! and update live through server-sent events.
//!
//! - `/login`, `/logout`: sign in with an API token ([`session`]).
//! - `/`: open incidents; `/incidents/{id}`: one incident with its timeline,
//!   approvals, checklist, deploys, notifications and the buttons the
//!   signed-in role may use ([`pages`], [`actions`]).
//! - `/log`: every incident, searchable, with the team's figures
//!   ([`stats`]); the same figures as JSON at `/api/v1/stats`.
//! - `/events`: the live-update stream ([`stream`]).
//!
//! Pages read incidents through one per-replica [`cache::Cache`] so they
//! stay fast with thousands of incidents.

pub mod actions;
pub mod cache;
pub mod chart;
pub mod describe;
pub mod pages;
pub mod render;
pub mod session;
pub mod stats;
pub mod stream;

use std::sync::OnceLock;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::watch;

pub use cache::Cache;

use crate::AppState;

/// What the dashboard keeps per replica (a field of [`crate::Inner`]).
#[derive(Default)]
pub struct Shared {
    pub cache: Cache,
    shutdown: OnceLock<watch::Receiver<bool>>,
}

/// Called by [`crate::start`]: live streams end when `shutdown` turns
/// true, and the cache is filled in the background so the first page after
/// a restart does not wait for every incident to be folded.
pub fn start(st: &AppState, shutdown: watch::Receiver<bool>) {
    let _ = st.dashboard.shutdown.set(shutdown);
    let st = st.clone();
    tokio::task::spawn_blocking(move || {
        // A failure here is not fatal: the first page tries again and
        // shows the error.
        let _ = st.dashboard.cache.get(&st);
    });
}

impl Shared {
    pub fn shutdown(&self) -> Option<watch::Receiver<bool>> {
        self.shutdown.get().cloned()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::index))
        .route("/incidents/{id}", get(pages::incident))
        .route("/incidents/{id}/actions/{action}", post(actions::act))
        .route("/log", get(pages::log))
        .route("/login", get(session::login_form).post(session::login))
        .route("/logout", post(session::logout))
        .route("/events", get(stream::events))
        .route("/api/v1/stats", get(stats::api))
        .route("/assets/dashboard.css", get(render::css))
        .route("/assets/live.js", get(render::js))
}
