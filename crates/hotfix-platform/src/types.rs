//! The JSON shapes of the control API, shared by the server and [`crate::Client`].

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where a release is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Being checked out, built or started; not serving yet.
    Starting,
    /// Serving: production behind the proxy, or a preview on its own port.
    Live,
    /// The previous production release, still running so rollback is instant.
    Warm,
    /// Not running, worktree kept: a rollback to it restarts it (no rebuild).
    Cold,
    /// Exited by itself after going live; not restarted (see `/v1/status`).
    Crashed,
    /// Stopped on purpose and discarded.
    Stopped,
}

/// Production release or preview.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    Production,
    Preview,
}

/// One release: a sha checked out in its own worktree and run on its own port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// `r<N>-<short sha>`, unique for the life of the state directory.
    pub id: String,
    pub sha: String,
    pub kind: ReleaseKind,
    /// The preview key (`HF-3`) for previews.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The release's own port (`PORT`); production traffic reaches it through the proxy.
    pub port: u16,
    /// When its process was (last) started, RFC 3339.
    pub started_at: String,
    pub state: ReleaseState,
    pub worktree: PathBuf,
    pub data_dir: PathBuf,
    /// Build and run output of this release.
    pub log_path: PathBuf,
    /// For the previous release: when it stops running (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_until: Option<String>,
    /// How its process ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<String>,
}

/// Answer of a production deploy or rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployOutcome {
    /// The release now serving production.
    pub release: ReleaseInfo,
    /// The release a next rollback would go back to, if any.
    pub previous: Option<ReleaseInfo>,
    /// The stable production URL.
    pub url: String,
    /// Whether this operation ran the build command.
    pub built: bool,
    /// Wall time of the whole operation, in milliseconds.
    pub elapsed_ms: u64,
}

/// Answer of a preview deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewInfo {
    pub key: String,
    /// `http://127.0.0.1:<port>`: the preview is served directly on its own port.
    pub url: String,
    pub release: ReleaseInfo,
}

/// A release that exited by itself after going live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrashReport {
    pub release: ReleaseInfo,
    pub exit_status: String,
    /// When the platform noticed, RFC 3339.
    pub at: String,
    pub log_path: PathBuf,
    pub log_tail: String,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformStatus {
    pub pid: u32,
    /// The stable production URL (the proxy).
    pub url: String,
    pub port: u16,
    /// True while the platform brings back releases recorded before a restart.
    pub recovering: bool,
    pub production: Option<ReleaseInfo>,
    /// `state` tells whether it is `warm` (instant rollback) or `cold`.
    pub previous: Option<ReleaseInfo>,
    pub previews: Vec<PreviewInfo>,
    /// Most recent first, at most 20.
    pub crashed: Vec<CrashReport>,
}

/// What `control.json` holds: how to reach a running platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControlInfo {
    /// Port of the control API on 127.0.0.1.
    pub port: u16,
    pub pid: u32,
    /// The stable production port (the proxy).
    pub proxy_port: u16,
    pub started_at: String,
}

impl ControlInfo {
    /// `http://127.0.0.1:<port>` of the control API.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Body of `POST /v1/production/deploy` and `PUT /v1/previews/{key}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeployRequest {
    pub sha: String,
}

/// Body of `POST /v1/production/rollback` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    #[serde(default)]
    pub to_sha: Option<String>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub kind: String,
}
