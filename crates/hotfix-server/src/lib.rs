//! The team server, `hotfix serve`.
//!
//! One developer's SQLite log is not enough for a team: the on-call
//! developer, the tech lead, the monitoring system, GitHub and Slack all act
//! on the same incident. The server is that shared hub. It keeps no state of
//! its own in memory that matters: everything is in the store (the incident
//! event log plus the team tables), so several replicas can run behind a load
//! balancer on one PostgreSQL, and work that must happen once (delivering the
//! outbox, processing what came in, timers, watching production) is claimed
//! with leases in that store.
//!
//! The workflow logic stays in `hotfix-core` (pure) and the store calls are
//! synchronous; handlers run them on blocking threads ([`AppState::blocking`]).

pub mod alerts;
pub mod api;
pub mod auth;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod github;
pub mod live;
pub mod log;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod slack;
pub mod status;
pub mod wire;
pub mod workers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use hotfix_core::config::Config;
use hotfix_core::provider::Notifier;
use hotfix_core::team::ServerStore;
use hotfix_engine::Clock;

pub use error::ApiError;

/// Secrets the server reads from its environment (never from `hotfix.toml`,
/// never logged).
#[derive(Clone, Default)]
pub struct Secrets {
    /// `HOTFIX_GITHUB_WEBHOOK_SECRET`: verifies `X-Hub-Signature-256`.
    pub github_webhook: Option<String>,
    /// `SLACK_SIGNING_SECRET`: verifies `/hotfix` slash commands.
    pub slack_signing: Option<String>,
    /// `SENTRY_CLIENT_SECRET`: verifies `Sentry-Hook-Signature` on
    /// `POST /api/v1/alerts/sentry` (Sentry cannot send a bearer token).
    pub sentry_client: Option<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "github_webhook",
                &self.github_webhook.as_ref().map(|_| "***"),
            )
            .field("slack_signing", &self.slack_signing.as_ref().map(|_| "***"))
            .field("sentry_client", &self.sentry_client.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Secrets {
    /// The names of the environment variables, for the README and errors.
    pub const GITHUB_WEBHOOK_ENV: &'static str =
        hotfix_core::env_vars::HOTFIX_GITHUB_WEBHOOK_SECRET;
    pub const SLACK_SIGNING_ENV: &'static str = hotfix_core::env_vars::SLACK_SIGNING_SECRET;
    pub const SENTRY_CLIENT_ENV: &'static str = hotfix_core::env_vars::SENTRY_CLIENT_SECRET;

    pub fn from_env() -> Secrets {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Secrets {
            github_webhook: get(Self::GITHUB_WEBHOOK_ENV),
            slack_signing: get(Self::SLACK_SIGNING_ENV),
            sentry_client: get(Self::SENTRY_CLIENT_ENV),
        }
    }
}

/// How background work behaves; tests shorten the intervals.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Run the background loops at all (off for some request-only tests).
    pub enabled: bool,
    /// How often each loop looks for work.
    pub tick: std::time::Duration,
    /// How long a claim (inbox item, outbox item, watch) is held before
    /// another replica may take it over.
    pub lease_s: i64,
    /// The embedded platform's state directory, when the server runs on
    /// the platform's host: the watch then measures `provider = "platform"`
    /// analyses from its counters, as the CLI's watch does
    /// (`HOTFIX_PLATFORM_DIR`; without it such an analysis has no data).
    pub platform_dir: Option<PathBuf>,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        WorkerSettings {
            enabled: true,
            tick: std::time::Duration::from_millis(500),
            lease_s: 30,
            platform_dir: None,
        }
    }
}

/// Everything the server is built from.
pub struct ServerParts {
    pub store: Arc<dyn ServerStore>,
    pub cfg: Config,
    pub secrets: Secrets,
    pub notifiers: Vec<Box<dyn Notifier>>,
    pub clock: Clock,
    /// Where files the server writes go (post-mortem drafts, notification log).
    pub data_dir: PathBuf,
    /// This replica's name in leases (host + pid by default).
    pub replica: String,
    pub workers: WorkerSettings,
}

/// The shared state of every handler. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn ServerStore>,
    pub cfg: Config,
    pub secrets: Secrets,
    pub notifiers: Vec<Box<dyn Notifier>>,
    pub clock: Clock,
    pub data_dir: PathBuf,
    pub replica: String,
    pub workers: WorkerSettings,
    pub metrics: metrics::Metrics,
    pub live: live::Live,
    /// This replica's probe counts of the deploys it watches.
    pub watch: workers::watching::WatchMemory,
    /// The dashboard's incident cache and its end-of-stream signal.
    pub dashboard: dashboard::Shared,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(p: ServerParts) -> AppState {
        AppState(Arc::new(Inner {
            store: p.store,
            cfg: p.cfg,
            secrets: p.secrets,
            notifiers: p.notifiers,
            clock: p.clock,
            data_dir: p.data_dir,
            replica: p.replica,
            workers: p.workers,
            metrics: metrics::Metrics::default(),
            live: live::Live::new(),
            watch: Default::default(),
            dashboard: dashboard::Shared::default(),
        }))
    }

    /// Runs store and workflow code (synchronous) off the async threads.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
    {
        let st = self.clone();
        tokio::task::spawn_blocking(move || f(&st))
            .await
            .map_err(|e| ApiError::internal(format!("worker thread failed: {e}")))?
    }

    /// Unix seconds now, by the server's clock.
    pub fn now_s(&self) -> i64 {
        self.clock.now().as_second()
    }
}

/// Every route of the server.
pub fn router(st: AppState) -> Router {
    Router::new()
        .merge(api::routes())
        .merge(alerts::routes())
        .merge(github::routes())
        .merge(slack::routes())
        .merge(dashboard::routes())
        .merge(status::routes())
        .merge(metrics::routes())
        .merge(openapi::routes())
        // Routes with a larger or smaller limit set their own (inner) one.
        .layer(axum::extract::DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(axum::middleware::from_fn(extract::limit_bodies))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            metrics::track,
        ))
        // The log: refusals inside the request's span, the span made with
        // the request id (the client's `x-request-id`, else a new one),
        // which goes back in the answer.
        .layer(axum::middleware::from_fn(log::refusals))
        .layer(
            tower_http::trace::TraceLayer::new_for_http()
                .make_span_with(log::RequestSpan)
                .on_response(
                    tower_http::trace::DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Millis),
                ),
        )
        .layer(tower_http::request_id::PropagateRequestIdLayer::new(
            axum::http::HeaderName::from_static(log::REQUEST_ID),
        ))
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            axum::http::HeaderName::from_static(log::REQUEST_ID),
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(st)
}

/// A running server: its address and the handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub shutdown: tokio::sync::watch::Sender<bool>,
    pub done: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Binds `listen` (port 0 picks a free one), starts the background workers
/// and serves until `shutdown` is set, with the connection limits of
/// `[server]` ([`wire`]). `done` ends when every request in flight has
/// been answered.
pub async fn start(st: AppState, listen: &str) -> std::io::Result<Running> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    live::spawn(st.clone(), tx.subscribe());
    dashboard::start(&st, tx.subscribe());
    if st.workers.enabled {
        workers::spawn(st.clone(), tx.subscribe());
    }
    let limits = wire::Limits::from_config(&st.cfg.server);
    let app = router(st);
    let done = tokio::spawn(wire::serve(listener, app, limits, rx));
    Ok(Running {
        addr,
        shutdown: tx,
        done,
    })
}
