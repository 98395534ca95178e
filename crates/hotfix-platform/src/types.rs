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
    /// While it is `starting`: the step it is at, so a waiting person knows
    /// whether the build or the health check takes the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<LaunchStep>,
    /// Who asked for it and why, as the deploy request said (releases
    /// brought back after a restart keep theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<DeployMeta>,
    /// How it got its build (cold, from a cache, promoted from a tested
    /// build) and how long that took; `None` until its worktree is ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildInfo>,
}

/// How a release got the build it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildHow {
    /// `build` ran from nothing: no cache was configured or none matched.
    Cold,
    /// `build` ran on top of the `[deploy] cache` paths copied from an
    /// earlier release with the same lockfiles.
    Cached,
    /// No build ran: the outputs of a release of the same tree (the
    /// smoke-tested preview) were linked into this one.
    Promoted,
    /// There is no `build` command: the checkout is all there is.
    None,
}

/// The build of one release, kept with it (`/v1/status`, `state.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    pub how: BuildHow,
    /// The git tree id of the release's sha: what promotion compares.
    pub tree: String,
    /// The release it was cached or promoted from (`r12-1a2b3c4`), and its sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_sha: Option<String>,
    /// sha256 of the lockfiles (and `[deploy] cache_key` files): releases
    /// with the same key may share a build cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Checkout, cache copy or promotion, and build: everything before `run`.
    pub ms: u64,
    /// The `build` command alone (none when promoted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_ms: Option<u64>,
    /// Why it built rather than promoted, or why the cache was not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl BuildInfo {
    /// `cold`, `cached from r12-1a2b3c4`, `promoted from r12-1a2b3c4`, `no build`.
    pub fn describe(&self) -> String {
        let from = self.from.as_deref().unwrap_or("?");
        match self.how {
            BuildHow::Cold => "cold".into(),
            BuildHow::Cached => format!("cached from {from}"),
            BuildHow::Promoted => format!("promoted from {from}"),
            BuildHow::None => "no build".into(),
        }
    }
}

/// The engine's hint for a production deploy: the build its preview made
/// and smoke-tested. The platform checks the tree itself; the hint only
/// says which release to prefer and lets the answer say "main moved".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewedHint {
    pub sha: String,
    pub tree: String,
}

/// Where a starting release is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchStep {
    /// `git worktree add` of its sha.
    Checkout,
    /// Linking the outputs of a tested build of the same tree (no build).
    Promote,
    /// Copying the `[deploy] cache` paths of an earlier build.
    Cache,
    /// The `build` command runs (its output goes to the release's log).
    Build,
    /// `run` started; waiting for the health path to answer 2xx.
    Health,
}

/// Why production (or a preview) changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployVia {
    /// A person put a ref into production by hand (`hotfix platform deploy`).
    Manual,
    /// The hotfix workflow of an incident (`push`, `ship`, `rollback`).
    Incident,
    /// A client of the control API that did not say.
    #[default]
    Api,
}

/// What a deploy request says about itself; kept with the release and in
/// the platform's history, so "who put this into production, and from
/// what" has an answer without reading shell history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployMeta {
    #[serde(default)]
    pub via: DeployVia,
    /// Who asked (a team identity), if the client said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What the person named (`origin/main`, a tag), when not a bare sha.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// The incident (`HF-3`) for deploys of the hotfix workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
}

/// The release settings of `[deploy]` that may change while the platform
/// runs. A client sends them with each request, so an edit of `hotfix.toml`
/// applies to the next deploy instead of waiting for a platform restart.
/// (The production `port` and `host` cannot change without one: the proxy
/// listens there.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSettings {
    /// Build command (argv), `None`: no build.
    #[serde(default)]
    pub build: Option<Vec<String>>,
    /// Run command (argv).
    pub run: Vec<String>,
    pub health_path: String,
    pub ready_timeout_ms: u64,
    pub build_timeout_ms: u64,
    pub warm_ms: u64,
    pub drain_ms: u64,
    pub stop_timeout_ms: u64,
    /// `[deploy] cache`: paths (relative to the repository root) copied
    /// from the newest build with the same lockfiles before `build`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache: Vec<String>,
    /// `[deploy] artifacts`: what a promotion carries over; empty: every
    /// untracked or ignored file of the tested build's worktree.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
    /// `[deploy] cache_key`: more files whose content keys the cache.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_key: Vec<String>,
}

/// One change of production, most recent first in [`PlatformStatus::history`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When production switched, RFC 3339.
    pub at: String,
    pub action: HistoryAction,
    /// The release that serves since then, and its sha.
    pub release: String,
    pub sha: String,
    /// The sha production served before, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
    #[serde(flatten)]
    pub meta: DeployMeta,
}

/// What changed production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryAction {
    Deploy,
    Rollback,
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
    /// Releases being checked out, built or started right now (with their
    /// log), so a client waiting on a deploy can show where it is.
    #[serde(default)]
    pub starting: Vec<ReleaseInfo>,
    /// Every change of production (deploys and rollbacks), most recent
    /// first, at most 50.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The release settings of the last successful deploy (or of the
    /// platform's start), which requests that send none use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ReleaseSettings>,
    /// The canary served beside production, if one runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryInfo>,
    /// Builds kept after their preview was removed (not running): a
    /// production deploy of the same tree promotes one instead of
    /// building, and they seed the build cache. Newest first, a few.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builds: Vec<ReleaseInfo>,
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
    /// The settings to build and run this release with (and to keep for
    /// later requests); none: the platform's current ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ReleaseSettings>,
    #[serde(default)]
    pub meta: DeployMeta,
    /// Production: the build the preview made and smoke-tested, to promote
    /// when its tree equals this sha's (the platform checks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previewed: Option<PreviewedHint>,
}

/// Body of `POST /v1/production/rollback` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RollbackRequest {
    #[serde(default)]
    pub to_sha: Option<String>,
    /// As in [`DeployRequest`]: used if the rollback has to start a release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ReleaseSettings>,
    #[serde(default)]
    pub meta: DeployMeta,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub kind: String,
}

/// `GET /v1/stats`: what the production proxy counted, per release.
/// Counters are cumulative since the release started serving in this
/// platform process: a client computes a window by differencing two
/// snapshots (a smaller count than before means the platform restarted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformStats {
    /// When the snapshot was taken, RFC 3339.
    pub at: String,
    pub releases: Vec<ReleaseStats>,
}

/// The traffic of one release through the production proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStats {
    pub id: String,
    pub sha: String,
    /// `production`, `previous`, `canary` (or `preview`).
    pub role: String,
    /// Answers sent (any status, including the proxy's own 502).
    pub requests: u64,
    pub errors_5xx: u64,
    /// Sum of the latencies of `requests` (request in → answer body sent).
    pub latency_sum_ms: f64,
    /// Cumulative histogram: `(le, count)` = answers that took at most `le`
    /// ms. The last bound is `+inf` (`null` in JSON); its count equals `requests`.
    #[serde(with = "le_buckets")]
    pub latency_buckets_ms: Vec<(f64, u64)>,
    /// The 50 busiest paths (without the query), busiest first.
    pub routes: Vec<RouteStats>,
}

/// The traffic of one path of a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteStats {
    pub path: String,
    pub requests: u64,
    pub errors_5xx: u64,
}

/// JSON has no infinity: `+inf` travels as `null`.
mod le_buckets {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[(f64, u64)], s: S) -> Result<S::Ok, S::Error> {
        let out: Vec<(Option<f64>, u64)> = v
            .iter()
            .map(|(le, n)| (le.is_finite().then_some(*le), *n))
            .collect();
        out.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(f64, u64)>, D::Error> {
        let v: Vec<(Option<f64>, u64)> = Vec::deserialize(d)?;
        Ok(v.into_iter()
            .map(|(le, n)| (le.unwrap_or(f64::INFINITY), n))
            .collect())
    }
}

/// A canary: a new release served beside production to a share of requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryInfo {
    pub release: ReleaseInfo,
    /// Percent of requests (0-100) sent to it; clients whose cookie
    /// `hotfix_release` or header `X-Hotfix-Release` names it always get it.
    pub weight: f64,
    /// When it started serving, RFC 3339.
    pub since: String,
}

/// Body of `POST /v1/canary`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CanaryRequest {
    pub sha: String,
    /// Percent of requests (0-100).
    pub weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<ReleaseSettings>,
    #[serde(default)]
    pub meta: DeployMeta,
    /// As in [`DeployRequest::previewed`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previewed: Option<PreviewedHint>,
}

/// Body of `POST /v1/canary/weight`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CanaryWeight {
    pub weight: f64,
}

/// Answer of `POST /v1/canary`, `/v1/canary/weight` and `/v1/canary/abort`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryOutcome {
    /// The canary now (`None` after an abort).
    pub canary: Option<CanaryInfo>,
    /// The release that serves the rest of the requests.
    pub production: Option<ReleaseInfo>,
    /// The stable production URL.
    pub url: String,
    /// Whether this operation ran the build command.
    pub built: bool,
    pub elapsed_ms: u64,
}

/// Body of `POST /v1/canary/promote` (optional): who/why for the history;
/// none: what the canary request said.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PromoteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<DeployMeta>,
}
