//! The parts of GitHub's webhook payloads hotfix reads (octokit/webhooks
//! schemas). Only what is used is declared; everything else GitHub sends is
//! ignored, so new fields never break the intake, and every field added
//! after the first version is optional (`#[serde(default)]`), so older
//! payloads still parse: what is missing is then treated as unknown, never
//! as a match.

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

/// One end of a pull request (`head` or `base`).
#[derive(Debug, Deserialize)]
pub struct GitRef {
    /// The branch name (no `refs/heads/`).
    #[serde(rename = "ref")]
    pub name: String,
    /// The commit the branch is at.
    #[serde(default)]
    pub sha: Option<String>,
    /// The repository the branch is in: for the head of a fork's PR, the
    /// fork (`null` when the fork was deleted).
    #[serde(default)]
    pub repo: Option<Repository>,
}

impl GitRef {
    pub fn repo_name(&self) -> Option<&str> {
        self.repo.as_ref().and_then(|r| r.full_name.as_deref())
    }
}

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub head: GitRef,
    #[serde(default)]
    pub base: Option<GitRef>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    /// Who merged it (`null` until merged).
    #[serde(default)]
    pub merged_by: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct Review {
    /// GitHub's id of the review: the same review delivered again (under
    /// another delivery id) has the same one.
    #[serde(default)]
    pub id: Option<u64>,
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
    /// Where the branch was before the push (zeros: it was created).
    #[serde(default)]
    pub before: Option<String>,
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
    /// `synchronize`: the head before the update.
    #[serde(default)]
    pub before: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payloads_without_the_newer_fields_still_parse() {
        let e: ReviewEvent = serde_json::from_value(json!({
            "action": "submitted",
            "review": {"state": "approved", "user": {"login": "octocat"}},
            "pull_request": {"number": 2, "head": {"ref": "hotfix/x"}}
        }))
        .expect("parses");
        assert_eq!(e.review.id, None);
        assert!(e.pull_request.base.is_none());
        assert_eq!(e.pull_request.head.repo_name(), None);
        // A deleted fork: `head.repo` is null.
        let e: PullRequestEvent = serde_json::from_value(json!({
            "action": "closed",
            "pull_request": {"number": 2, "head": {"ref": "hotfix/x", "repo": null},
                "base": {"ref": "main", "repo": {"full_name": "o/r"}}, "merged_by": null}
        }))
        .expect("parses");
        assert_eq!(e.pull_request.head.repo_name(), None);
        assert!(e.pull_request.merged_by.is_none());
        let p: PushEvent =
            serde_json::from_value(json!({"ref": "refs/heads/x", "after": "a"})).expect("parses");
        assert_eq!(p.before, None);
    }
}
