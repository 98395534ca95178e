//! The parts of GitHub's webhook payloads hotfix reads (octokit/webhooks
//! schemas). Only what is used is declared; everything else GitHub sends is
//! ignored, so new fields never break the intake.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Repository {
    #[serde(default)]
    pub full_name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub login: String,
}

#[derive(Debug, Deserialize)]
pub struct GitRef {
    #[serde(rename = "ref")]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub head: GitRef,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Review {
    /// `approved`, `changes_requested`, `commented`, `dismissed` (any case).
    pub state: String,
    /// The head the reviewer saw.
    #[serde(default)]
    pub commit_id: Option<String>,
    pub user: User,
}

/// `pull_request_review`.
#[derive(Debug, Deserialize)]
pub struct ReviewEvent {
    pub action: String,
    pub review: Review,
    pub pull_request: PullRequest,
    #[serde(default)]
    pub repository: Option<Repository>,
}

/// `push`.
#[derive(Debug, Deserialize)]
pub struct PushEvent {
    /// `refs/heads/<branch>` or `refs/tags/<tag>`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    #[serde(default)]
    pub repository: Option<Repository>,
}

/// `pull_request`.
#[derive(Debug, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub pull_request: PullRequest,
    #[serde(default)]
    pub repository: Option<Repository>,
}

#[derive(Debug, Deserialize)]
pub struct DeploymentStatus {
    /// `error`, `failure`, `inactive`, `in_progress`, `queued`, `pending`, `success`.
    pub state: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub target_url: Option<String>,
    #[serde(default)]
    pub environment_url: Option<String>,
    #[serde(default)]
    pub log_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Deployment {
    pub sha: String,
    #[serde(default)]
    pub environment: Option<String>,
}

/// `deployment_status`.
#[derive(Debug, Deserialize)]
pub struct DeploymentStatusEvent {
    pub deployment_status: DeploymentStatus,
    pub deployment: Deployment,
    #[serde(default)]
    pub repository: Option<Repository>,
}

impl DeploymentStatusEvent {
    /// Where the deployment is and where to look: the environment name and
    /// the first URL GitHub gave (`log_url` replaces `target_url`).
    pub fn where_(&self) -> String {
        let s = &self.deployment_status;
        let env = s
            .environment
            .as_deref()
            .or(self.deployment.environment.as_deref())
            .unwrap_or("unknown environment");
        let url = [&s.target_url, &s.log_url, &s.environment_url]
            .into_iter()
            .flatten()
            .map(|u| u.trim())
            .find(|u| !u.is_empty());
        match url {
            Some(u) => format!("{env} {u}"),
            None => env.to_string(),
        }
    }
}
