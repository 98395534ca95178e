//! The parts of GitHub's JSON we read, typed: pull requests, reviews,
//! check runs and commit statuses. Everything GitHub may omit or null is
//! optional; nothing is unwrapped.

use hotfix_core::provider::{CheckState, PrState, PullRequest};
use serde::Deserialize;

/// The parts of GitHub's pull request object we use. Everything optional
/// that GitHub may omit or null is optional here.
#[derive(Debug, Deserialize)]
pub(super) struct PrJson {
    pub(super) number: u64,
    #[serde(default)]
    pub(super) node_id: Option<String>,
    #[serde(default)]
    pub(super) html_url: Option<String>,
    #[serde(default)]
    pub(super) title: Option<String>,
    #[serde(default)]
    pub(super) body: Option<String>,
    pub(super) state: String,
    /// Only in the single-PR answer; lists have `merged_at` alone.
    #[serde(default)]
    pub(super) merged: Option<bool>,
    #[serde(default)]
    pub(super) merged_at: Option<String>,
    #[serde(default)]
    pub(super) merge_commit_sha: Option<String>,
    pub(super) head: RefJson,
    pub(super) base: RefJson,
    #[serde(default)]
    pub(super) user: Option<UserJson>,
    /// `null` while GitHub computes it.
    #[serde(default)]
    pub(super) mergeable: Option<bool>,
    #[serde(default)]
    pub(super) mergeable_state: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RefJson {
    #[serde(rename = "ref")]
    pub(super) name: String,
    pub(super) sha: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct UserJson {
    pub(super) login: String,
}

impl PrJson {
    pub(super) fn is_merged(&self) -> bool {
        self.merged.unwrap_or(self.merged_at.is_some())
    }

    pub(super) fn to_pr(&self) -> PullRequest {
        let merged = self.is_merged();
        PullRequest {
            number: self.number,
            url: self.html_url.clone().unwrap_or_default(),
            title: self.title.clone().unwrap_or_default(),
            body: self.body.clone().unwrap_or_default(),
            head: self.head.name.clone(),
            base: self.base.name.clone(),
            state: if merged {
                PrState::Merged
            } else if self.state == "open" {
                PrState::Open
            } else {
                PrState::Closed
            },
            merge_sha: if merged {
                self.merge_commit_sha.clone()
            } else {
                None
            },
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ReviewJson {
    #[serde(default)]
    pub(super) user: Option<UserJson>,
    pub(super) state: String,
    #[serde(default)]
    pub(super) commit_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CheckRunsJson {
    #[serde(default)]
    pub(super) check_runs: Vec<CheckRunJson>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CheckRunJson {
    pub(super) name: String,
    pub(super) status: String,
    #[serde(default)]
    pub(super) conclusion: Option<String>,
    #[serde(default)]
    pub(super) details_url: Option<String>,
    #[serde(default)]
    pub(super) html_url: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct CombinedStatusJson {
    #[serde(default)]
    pub(super) statuses: Vec<StatusJson>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StatusJson {
    pub(super) context: String,
    pub(super) state: String,
    #[serde(default)]
    pub(super) description: Option<String>,
    #[serde(default)]
    pub(super) target_url: Option<String>,
}

pub(super) fn check_run_state(status: &str, conclusion: Option<&str>) -> CheckState {
    if status != "completed" {
        // queued, in_progress, waiting, requested, pending
        return CheckState::Pending;
    }
    match conclusion {
        Some("success" | "neutral" | "skipped") => CheckState::Success,
        // failure, cancelled, timed_out, action_required, stale, and
        // anything new or missing: not green is not green.
        _ => CheckState::Failure,
    }
}

pub(super) fn status_state(state: &str) -> CheckState {
    match state {
        "success" => CheckState::Success,
        "pending" => CheckState::Pending,
        _ => CheckState::Failure,
    }
}

pub(super) fn worse(a: &CheckState, b: &CheckState) -> bool {
    let rank = |s: &CheckState| match s {
        CheckState::Success => 0,
        CheckState::Pending => 1,
        CheckState::Failure => 2,
    };
    rank(a) > rank(b)
}
