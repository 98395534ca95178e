//! One error type for the whole crate. Every message names what failed and,
//! where there is one, the next thing a person in an incident can do.

use std::path::PathBuf;

/// Everything that can go wrong in the platform, its client, or the sample
/// service.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The configuration cannot work (bad command line, bad duration, ...).
    #[error("platform config: {0}")]
    Config(String),

    /// A request to the platform was malformed (bad sha, bad preview key).
    #[error("{0}")]
    Invalid(String),

    /// Something the request refers to does not exist (a preview key, a sha
    /// that is neither production nor previous).
    #[error("{0}")]
    NotFound(String),

    /// The request cannot be honoured in the current state (e.g. rollback with
    /// no previous release).
    #[error("{0}")]
    Conflict(String),

    /// A `git` command failed.
    #[error("git {args}: {detail}")]
    Git { args: String, detail: String },

    /// The release's build command failed or timed out.
    #[error("build of release {release} failed: {detail}\n--- last lines of {log} ---\n{tail}")]
    Build {
        release: String,
        detail: String,
        log: PathBuf,
        tail: String,
    },

    /// The release started but never became healthy (or exited while starting).
    #[error(
        "release {release} did not become healthy: {detail}\n--- last lines of {log} ---\n{tail}"
    )]
    NotHealthy {
        release: String,
        detail: String,
        log: PathBuf,
        tail: String,
    },

    /// The platform is not running (no `control.json`, or it does not answer).
    #[error(
        "the hotfix platform is not running for {state_dir}: {detail}; start it with `hotfix platform start`"
    )]
    NotRunning { state_dir: PathBuf, detail: String },

    /// Another platform already owns this state directory.
    #[error(
        "another hotfix platform (pid {pid}) already runs on {state_dir}; stop it with `hotfix platform stop`"
    )]
    AlreadyRunning { state_dir: PathBuf, pid: u32 },

    /// The control API refused the token.
    #[error(
        "the platform refused our token (401): {0}; the token file may belong to an older platform — restart it with `hotfix platform stop && hotfix platform start`"
    )]
    Unauthorized(String),

    /// Something answered the control API's address with an error that is
    /// not the platform's own (no JSON error body).
    #[error("platform API error (HTTP {status}): {message}")]
    Api { status: u16, message: String },

    /// The platform failed a request and said why, in a message that is
    /// whole already (what failed, a release's log tail): shown as it is,
    /// so the layers above add their context once.
    #[error("{message}")]
    Remote {
        status: u16,
        kind: String,
        message: String,
    },

    /// Could not talk HTTP to the platform.
    #[error("cannot reach the platform control API at {url}: {detail}")]
    Http { url: String, detail: String },

    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    /// A JSON document (state file, control file, API body) is malformed.
    #[error("{context}: {detail}")]
    Json { context: String, detail: String },

    /// Something took longer than it may.
    #[error("{0}")]
    Timeout(String),

    /// The platform is shutting down and took no new work.
    #[error("the platform is shutting down")]
    ShuttingDown,
}

impl PlatformError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        PlatformError::Io {
            context: context.into(),
            source,
        }
    }

    /// The HTTP status the control API answers this error with.
    pub(crate) fn http_status(&self) -> u16 {
        match self {
            PlatformError::Config(_) | PlatformError::Invalid(_) => 400,
            PlatformError::Unauthorized(_) => 401,
            PlatformError::NotFound(_) => 404,
            PlatformError::Conflict(_) | PlatformError::AlreadyRunning { .. } => 409,
            PlatformError::Build { .. } | PlatformError::NotHealthy { .. } => 422,
            PlatformError::ShuttingDown => 503,
            PlatformError::Timeout(_) => 504,
            PlatformError::Remote { status, .. } => *status,
            _ => 500,
        }
    }

    /// A short machine-readable kind, sent along with the message.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            PlatformError::Config(_) => "config",
            PlatformError::Invalid(_) => "invalid",
            PlatformError::NotFound(_) => "not_found",
            PlatformError::Conflict(_) => "conflict",
            PlatformError::Git { .. } => "git",
            PlatformError::Build { .. } => "build_failed",
            PlatformError::NotHealthy { .. } => "not_healthy",
            PlatformError::NotRunning { .. } => "not_running",
            PlatformError::AlreadyRunning { .. } => "already_running",
            PlatformError::Unauthorized(_) => "unauthorized",
            PlatformError::Api { .. } => "api",
            PlatformError::Remote { .. } => "remote",
            PlatformError::Http { .. } => "http",
            PlatformError::Io { .. } => "io",
            PlatformError::Json { .. } => "json",
            PlatformError::Timeout(_) => "timeout",
            PlatformError::ShuttingDown => "shutting_down",
        }
    }
}
