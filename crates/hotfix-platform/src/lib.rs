//! # hotfix-platform: the embedded hosting platform
//!
//! What the `local` deploy provider talks to, so a team without a hosting
//! provider still gets what the hotfix process relies on: **PR previews**,
//! **production on a stable port with health checks**, and **instant
//! rollback**. It is real software, not a mock: real processes, real git
//! worktrees, a real reverse proxy.
//!
//! ## Model
//! - A **release** is one sha checked out (`git worktree add --detach`) in its
//!   own directory under the state dir, built there with `build`, run there
//!   with `run` on its own free `PORT` (plus `DATA_DIR`, `HOTFIX_RELEASE`,
//!   `HOTFIX_SHA`), and live once `GET <health_path>` answers 2xx within
//!   `ready_timeout`. If it does not, the error carries the tail of its log
//!   and nothing else changes.
//! - **Production** is served on the stable `port` by a reverse proxy inside
//!   the platform. A deploy starts the new release beside the old one and
//!   switches the proxy (one atomic pointer swap) only once the new one is
//!   healthy. The old release becomes the **previous** one and stays running
//!   (*warm*) for `warm`, so a rollback is a proxy switch; after that it is
//!   stopped (*cold*) but its worktree is kept, so a rollback restarts it
//!   without a rebuild. The release rolled back *from* is drained (requests in
//!   flight finish, up to `drain`), stopped and discarded; after a rollback
//!   there is no previous release until the next deploy. If production had
//!   crashed, the next deploy discards it and keeps the previous release as
//!   the rollback target. `warm = "0"` stops the previous release right after
//!   the switch (rollback then restarts it from its worktree).
//!   Production releases share `DATA_DIR = <state>/data/production`.
//! - **Previews** (one per key, e.g. `HF-3`) are served directly on their own
//!   port (`http://127.0.0.1:<port>`), each with a fresh `DATA_DIR` deleted
//!   when the preview is removed or replaced by a redeploy of its key.
//! - **Crashes**: a release that exits by itself after going live is marked
//!   `crashed` and reported in `/v1/status` with its exit status and log tail.
//!   It is **not restarted**: a crash loop in production should reach a person,
//!   and rollback is one command away. While production is crashed the proxy
//!   answers 503 with that explanation.
//! - **Settings per request**: the release settings of `[deploy]` (`build`,
//!   `run`, `health_path`, the timeouts, `warm`, `drain`) travel with each
//!   deploy request ([`ReleaseSettings`]), so an edit of `hotfix.toml`
//!   applies to the next deploy of a platform that runs in the background
//!   since long before. A release keeps the settings it was deployed with
//!   (a rollback to it restarts the command that matched its code); the
//!   last successful request's become the current ones (`/v1/status`
//!   shows them). Where production listens (`port`, `host`) changes only
//!   with a restart; the `local` deployer restarts an idle platform by
//!   itself and refuses a production deploy to a busy one with the command.
//! - **History**: every change of production (deploy or rollback) is
//!   recorded with when, the release and sha, what it replaced, and what
//!   the request said about itself ([`DeployMeta`]: `manual` by whom of
//!   which ref, or the incident), most recent first in `/v1/status`, kept
//!   across restarts.
//! - **Logs**: a release's output goes to a log named by target and commit
//!   ([`release_log`]), known before the deploy starts, so a client can
//!   name it while it waits; `/v1/status` lists the releases `starting`
//!   with their step (checkout, build, health).
//! - **Restarts**: the platform records production, previous and previews in
//!   `state.json` (written atomically). Started again — even after `kill -9` —
//!   it brings production back on the same port without a deploy (re-running
//!   `run` in the existing worktree; rebuilding only if the worktree is gone),
//!   then a still-warm previous and the previews (on their old ports when free).
//! - **No orphans**: each release (and build) runs in its own process group,
//!   killed (SIGTERM, `stop_timeout`, SIGKILL) on stop, shutdown, SIGINT,
//!   SIGTERM and SIGHUP. On Linux each child also gets `PR_SET_PDEATHSIG =
//!   SIGKILL`, so a `kill -9` of the platform takes its releases with it.
//!   A `run` command must stay in the foreground: when it exits, whatever it
//!   forked is killed with it.
//!
//! ## Control API
//! HTTP + JSON on `127.0.0.1:<random port>`, written with the pid and the
//! proxy port to `<state>/control.json`. Every request must carry
//! `Authorization: Bearer <token>`, the token (256 random bits) being in
//! `<state>/token`, mode 0600; anything else gets 401 and does nothing.
//!
//! | request | body | answer |
//! |---|---|---|
//! | `POST /v1/production/deploy` | [`DeployRequest`]: `{"sha": "...", "settings"?: {...}, "meta"?: {"via", "by", "reference", "incident"}}` | [`DeployOutcome`] once live (`{release, previous, url, built, elapsed_ms}`); redeploying the live sha is a no-op (and not recorded) |
//! | `POST /v1/production/rollback` | `{}` or [`RollbackRequest`] `{"to_sha"?, "settings"?, "meta"?}` | [`DeployOutcome`]; 409 if there is no previous release |
//! | `PUT /v1/previews/{key}` | [`DeployRequest`] | [`PreviewInfo`] (`{key, url, release}`) once live |
//! | `GET /v1/previews/{key}` | | [`PreviewInfo`]; 404 if none |
//! | `DELETE /v1/previews/{key}` | | `{"removed": true}`; 404 if none |
//! | `GET /v1/status` | | [`PlatformStatus`]: production, previous (`warm`/`cold`), previews, crashed, starting, history, settings |
//! | `POST /v1/shutdown` | | 202 `{"stopping": true}`; the platform stops its releases and exits |
//! | `GET /v1/stats` | | [`PlatformStats`]: per release (`production`, `canary`, `previous`) requests, 5xx, latency histogram, busiest paths |
//! | `POST /v1/canary` | [`CanaryRequest`] `{"sha", "weight", "settings"?, "meta"?}` | [`CanaryOutcome`] once the canary is healthy and gets `weight`% of the requests; 409 without a serving production |
//! | `POST /v1/canary/weight` | [`CanaryWeight`] `{"weight"}` | [`CanaryOutcome`]; 409 if no canary runs |
//! | `POST /v1/canary/promote` | `{}` or [`PromoteRequest`] `{"meta"?}` | [`DeployOutcome`]: the canary is production, the old production the warm previous |
//! | `POST /v1/canary/abort` | | [`CanaryOutcome`]: 0% to the canary at once, stopped once drained; a no-op without one |
//!
//! `GET /metrics` (no token: read-only counters, and the API listens on
//! 127.0.0.1 only) is the Prometheus text exposition of `/v1/stats`:
//! `hotfix_platform_requests_total{release,sha,role,code_class}`,
//! `hotfix_platform_request_duration_seconds` (histogram),
//! `hotfix_platform_route_requests_total{...,path}` and
//! `hotfix_platform_route_errors_5xx_total{...,path}`.
//!
//! ## Canary
//! A canary is a new production release started beside production (same
//! `DATA_DIR`) that gets `weight`% of the proxy's requests — exactly that
//! share of every 10 000 requests routed by weight, not a coin toss. Its
//! answers set the cookie `hotfix_release=<release id>`; a request whose
//! cookie or `X-Hotfix-Release` header names the canary (or production)
//! gets that release. Promote makes the same process production (nothing
//! restarts); abort sends it nothing from that moment, then stops it once
//! its requests in flight finished (`drain`). A canary that crashes is
//! unrouted at once. While a canary runs, another production deploy is
//! refused (promote or abort first) and a rollback aborts it first. The
//! canary and its weight are in `state.json`: a restarted platform routes
//! the same share to it again, and completes an abort that was draining.
//!
//! Errors answer `{"error": "<message for a person>", "kind": "<machine kind>"}`
//! with 400 (bad input), 401, 404, 409, 422 (build failed / not healthy: the
//! message has the log tail), 500, 503 (shutting down). The [`Client`] passes
//! that message on as it is ([`PlatformError::Remote`]), with no prefix.
//!
//! The token is as strong as the user's shell: a request may carry the
//! `run` and `build` commands. That is why it is 256 random bits in a file
//! only the user can read, and the API listens on 127.0.0.1 only.
//!
//! ## Configuration (`hotfix.toml`)
//! ```toml
//! [deploy]
//! provider      = "local"
//! build         = "cargo build --release"  # optional, run in the release worktree
//! run           = "./target/release/app"   # required; gets PORT and DATA_DIR
//! health_path   = "/health"                # default /health
//! port          = 8080                     # stable production port, default 8080
//! host          = "127.0.0.1"              # proxy listen address, default 127.0.0.1
//! warm          = "10m"                    # previous release kept running
//! ready_timeout = "30s"                    # health check deadline
//! drain         = "2s"                     # in-flight requests of a leaving release
//! build_timeout = "20m"
//! stop_timeout  = "2s"                     # SIGTERM → SIGKILL grace
//! canary        = ["10%", "50%"]           # canary steps (driven by the deploy client)
//! canary_pause  = "30s"                    # per step (`hotfix ship` watches each; default: its watch)
//! ```
//! Commands are split with `shell-words`; no shell ever runs them.
//!
//! ## State directory
//! Default `<git-common-dir>/hotfix/platform` (see [`default_state_dir`]); its
//! layout: `control.json`, `token`, `platform.pid`, `platform.lock`,
//! `platform.log`, `state.json`, `releases/<id>/`, `logs/` (one log per
//! commit and target, see [`release_log`]), `data/`.

mod buildcache;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod git;
mod paths;
mod platform;
mod procs;
mod proxy;
pub mod sample_service;
mod server;
mod stats;
mod sys;
mod types;
mod util;

pub use client::{Client, is_running, read_control, start_background, stop};
pub use config::{PlatformConfig, default_state_dir, parse_duration, split_command};
pub use error::PlatformError;
pub use paths::release_log;
pub use server::run_foreground;
pub use sys::default_sigpipe;
pub use types::{
    ApiError, BuildHow, BuildInfo, CanaryInfo, CanaryOutcome, CanaryRequest, CanaryWeight,
    ControlInfo, CrashReport, DeployMeta, DeployOutcome, DeployRequest, DeployVia, HistoryAction,
    HistoryEntry, LaunchStep, PlatformStats, PlatformStatus, PreviewInfo, PreviewedHint,
    PromoteRequest, ReleaseInfo, ReleaseKind, ReleaseSettings, ReleaseState, ReleaseStats,
    RollbackRequest, RouteStats,
};
pub use util::{free_port, log_tail};
