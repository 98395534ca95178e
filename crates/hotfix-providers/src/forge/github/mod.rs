//! The GitHub forge (`[forge] provider = "github"`): pull requests, reviews,
//! required checks and merges through the REST API v3, and reverts through
//! the GraphQL `revertPullRequest` mutation (the one `gh pr revert` uses)
//! or through a pushed `git revert -m 1` branch.
//!
//! Everything GitHub sends is remote input: nothing here unwraps it. Rate
//! limits and 5xx answers are retried a bounded number of times with sleeps
//! that never exceed `max_retry_wait`; timeouts and refused connections are
//! [`ForgeError::Unreachable`]. The token only ever travels in the
//! `Authorization` header: it is scrubbed from every error message, not sent
//! to pagination links that leave the API host, and [`GithubForge`]'s
//! `Debug` does not show it.

use std::collections::BTreeMap;
use std::time::Duration;

use hotfix_core::duration::HumanDuration;
use hotfix_core::provider::{
    CheckState, Forge, ForgeApproval, ForgeCheck, ForgeError, NewPr, PrState, PullRequest,
};
use hotfix_git::{Git, GitError, MergeTree};
use serde::Deserialize;
use serde_json::{Value, json};

use super::merge::revert_trailer;

mod http;
mod payloads;
mod revert;

use http::*;
use payloads::*;

const PUBLIC_API: &str = "https://api.github.com";
const API_VERSION: &str = "2022-11-28";
/// Where to look when GitHub refuses the token.
const TOKEN_HINT: &str = "check the token in GITHUB_TOKEN or HOTFIX_GITHUB_TOKEN";
/// How many pages of a list we follow before giving up (100 items a page).
const MAX_PAGES: usize = 20;

// ---------------------------------------------------------------- config

/// How GitHub merges the PR (`merge_method` of the merge endpoint).
///
/// Only `merge` keeps the hotfix commits themselves reachable from `main`:
/// the backport to develop then sees the hotfix as already contained when
/// develop later merges main. `squash` and `rebase` write new commits on
/// `main`, so the backport merges the branch and main still differs in
/// history (git resolves it, but reachability checks no longer hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMethod {
    #[default]
    Merge,
    Squash,
    Rebase,
}

impl MergeMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMethod::Merge => "merge",
            MergeMethod::Squash => "squash",
            MergeMethod::Rebase => "rebase",
        }
    }
}

/// How a merge on `main` is reverted (both end in a PR merged like any
/// other, so branch protection applies to the revert too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RevertMode {
    /// GraphQL `revertPullRequest` (GitHub writes the revert branch and PR).
    #[default]
    Graphql,
    /// `git revert -m 1` computed locally, pushed as a branch, PR, merge.
    Branch,
}

/// The `[forge]` table of `hotfix.toml` for `provider = "github"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    /// `owner/name`.
    pub repo: String,
    /// REST base URL: `https://api.github.com`, or `https://HOST/api/v3`
    /// for GitHub Enterprise Server.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// GraphQL endpoint; derived from `api_url` when absent.
    #[serde(default)]
    pub graphql_url: Option<String>,
    #[serde(default)]
    pub merge_method: MergeMethod,
    #[serde(default)]
    pub revert: RevertMode,
    /// Check names that must exist and be green; empty = every check run
    /// and commit status reported on the head must be green.
    #[serde(default)]
    pub required_checks: Vec<String>,
    /// Team identity (as in `[team]`) → GitHub login.
    #[serde(default)]
    pub logins: BTreeMap<String, String>,
    /// Per HTTP request, connection to last body byte.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Retries after a rate limit or a 5xx answer.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The longest single sleep before a retry.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait: HumanDuration,
}

fn default_api_url() -> String {
    PUBLIC_API.to_string()
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_retries() -> u32 {
    3
}
fn default_max_retry_wait() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

fn valid_repo_part(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl GithubConfig {
    /// Parses and validates the `[forge]` table (without `provider`).
    pub fn from_table(table: &toml::Table) -> Result<GithubConfig, String> {
        let cfg: GithubConfig = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| format!("[forge] (github): {}", e.message()))?;
        match cfg.repo.split_once('/') {
            Some((o, n)) if valid_repo_part(o) && valid_repo_part(n) => {}
            _ => {
                return Err(format!(
                    "[forge] repo = {:?}: write it as \"owner/name\"",
                    cfg.repo
                ));
            }
        }
        for (key, url) in [
            ("api_url", Some(&cfg.api_url)),
            ("graphql_url", cfg.graphql_url.as_ref()),
        ] {
            if let Some(u) = url
                && !(u.starts_with("https://") || u.starts_with("http://"))
            {
                return Err(format!("[forge] {key} = {u:?} is not an http(s) URL"));
            }
        }
        Ok(cfg)
    }

    /// The GraphQL endpoint: `graphql_url` if set; `https://api.github.com/graphql`
    /// for the public API; `https://HOST/api/graphql` for Enterprise
    /// (`https://HOST/api/v3`); otherwise `<api_url>/graphql`.
    pub fn graphql_endpoint(&self) -> String {
        if let Some(u) = &self.graphql_url {
            return u.clone();
        }
        let api = self.api_url.trim_end_matches('/');
        match api.strip_suffix("/api/v3") {
            Some(host) => format!("{host}/api/graphql"),
            None => format!("{api}/graphql"),
        }
    }

    fn owner(&self) -> &str {
        self.repo.split_once('/').map_or("", |(o, _)| o)
    }
}

// ---------------------------------------------------------------- forge

/// The GitHub forge. Build it with [`GithubForge::new`].
pub struct GithubForge {
    cfg: GithubConfig,
    http: Http,
    git: Option<Git>,
    remote: String,
}

impl std::fmt::Debug for GithubForge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Deliberately without the token.
        f.debug_struct("GithubForge")
            .field("repo", &self.cfg.repo)
            .field("api_url", &self.cfg.api_url)
            .field("remote", &self.remote)
            .finish_non_exhaustive()
    }
}

fn git_err(e: GitError) -> ForgeError {
    ForgeError::Other(crate::redact::redact(&e.to_string()))
}

/// Splits a commit message into GitHub's title and body.
fn title_and_body(message: &str) -> (String, String) {
    let message = message.trim();
    match message.split_once('\n') {
        Some((t, rest)) => (t.trim().to_string(), rest.trim().to_string()),
        None => (message.to_string(), String::new()),
    }
}

impl GithubForge {
    /// `token` is sent as `Authorization: Bearer`; `git` and `remote` are
    /// only needed for `revert = "branch"`. The `User-Agent` GitHub requires
    /// is `hotfix/<version>`, set on the agent.
    pub fn new(cfg: GithubConfig, token: String, git: Option<Git>, remote: String) -> GithubForge {
        let timeout = cfg.timeout.0;
        let agent = crate::http::agent(timeout, crate::http::Redirects::Follow);
        let http = Http {
            agent,
            token,
            api_url: cfg.api_url.trim_end_matches('/').to_string(),
            timeout,
            max_retries: cfg.max_retries,
            max_wait: cfg.max_retry_wait.0,
        };
        GithubForge {
            cfg,
            http,
            git,
            remote,
        }
    }

    fn repo_url(&self, path: &str) -> String {
        format!("{}/repos/{}{path}", self.http.api_url, self.cfg.repo)
    }

    /// Maps a non-2xx answer to an error. `pr` turns 404 into `NotFound`.
    fn fail(&self, what: &str, resp: &Resp, pr: Option<u64>) -> ForgeError {
        let msg = self.http.scrub(&message_of(&resp.body));
        match (resp.status, pr) {
            (401, _) => ForgeError::Unauthorized(format!(
                "GitHub rejected the token on {what} (401: {msg}); {TOKEN_HINT}"
            )),
            (403, _) => ForgeError::Unauthorized(format!(
                "GitHub refused {what} (403: {msg}); the token may lack access to {} ({TOKEN_HINT})",
                self.cfg.repo
            )),
            (404, Some(n)) => ForgeError::NotFound(n),
            (404, None) => ForgeError::Other(format!(
                "{what}: not found (404: {msg}); does {} exist and can the token see it? ({TOKEN_HINT})",
                self.cfg.repo
            )),
            (s, _) => ForgeError::Other(format!("{what}: GitHub answered {s}: {msg}")),
        }
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: &Resp,
    ) -> Result<T, ForgeError> {
        serde_json::from_str(&resp.body).map_err(|e| {
            ForgeError::Other(format!(
                "{what}: GitHub sent a malformed answer ({e}): {}",
                self.http.scrub(&truncate(&resp.body, 120))
            ))
        })
    }

    /// GET a JSON value, expecting 200.
    fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        url: &str,
        pr: Option<u64>,
    ) -> Result<T, ForgeError> {
        let resp = self.http.send("GET", url, None, true)?;
        if resp.status != 200 {
            return Err(self.fail(what, &resp, pr));
        }
        self.parse(what, &resp)
    }

    /// GET every page of a list (`Link: rel="next"`), `extract` pulling
    /// the items out of each page. Links leaving the API host are refused:
    /// the token must not follow them.
    fn get_pages<T>(
        &self,
        what: &str,
        first: &str,
        pr: Option<u64>,
        extract: impl Fn(&Self, &Resp) -> Result<Vec<T>, ForgeError>,
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut url = first.to_string();
        for _ in 0..MAX_PAGES {
            let resp = self.http.send("GET", &url, None, true)?;
            if resp.status != 200 {
                return Err(self.fail(what, &resp, pr));
            }
            out.extend(extract(self, &resp)?);
            match resp.link.as_deref().and_then(next_link) {
                Some(next) if next.starts_with(&format!("{}/", self.http.api_url)) => url = next,
                Some(next) => {
                    return Err(ForgeError::Other(format!(
                        "{what}: GitHub's next page {next} is not under {}; not following it with the token",
                        self.http.api_url
                    )));
                }
                None => return Ok(out),
            }
        }
        Ok(out)
    }

    fn fetch_pr(&self, number: u64) -> Result<PrJson, ForgeError> {
        self.get_json(
            &format!("get PR #{number}"),
            &self.repo_url(&format!("/pulls/{number}")),
            Some(number),
        )
    }

    fn open_prs_for(&self, head: &str) -> Result<Vec<PrJson>, ForgeError> {
        let url = self.repo_url(&format!(
            "/pulls?head={}&state=open&per_page=100",
            enc(&format!("{}:{head}", self.cfg.owner()))
        ));
        self.get_json(&format!("list open PRs from {head}"), &url, None)
    }

    /// Login → team identity, case-insensitively (GitHub logins are).
    fn identity_of(&self, login: &str) -> Option<&str> {
        self.cfg
            .logins
            .iter()
            .find(|(_, l)| l.eq_ignore_ascii_case(login))
            .map(|(id, _)| id.as_str())
    }

    fn post_reviewers(&self, number: u64, logins: &[String]) -> Result<Resp, ForgeError> {
        self.http.send(
            "POST",
            &self.repo_url(&format!("/pulls/{number}/requested_reviewers")),
            Some(&json!({ "reviewers": logins })),
            true,
        )
    }
}

impl Forge for GithubForge {
    fn find_open_pr(&self, head: &str) -> Result<Option<PullRequest>, ForgeError> {
        let prs = self.open_prs_for(head)?;
        // The query already filters by head; matching again guards against
        // a server that ignores the filter (never return someone else's PR).
        Ok(prs.iter().find(|p| p.head.name == head).map(PrJson::to_pr))
    }

    /// Idempotent: GitHub allows one open PR per head and base, and answers
    /// 422 "A pull request already exists"; then the existing one is returned.
    fn open_pr(&self, pr: &NewPr) -> Result<PullRequest, ForgeError> {
        let body = json!({ "title": pr.title, "body": pr.body, "head": pr.head, "base": pr.base });
        let resp = self
            .http
            .send("POST", &self.repo_url("/pulls"), Some(&body), true)?;
        match resp.status {
            200 | 201 => Ok(self.parse::<PrJson>("open PR", &resp)?.to_pr()),
            422 if resp.body.contains("already exists") => {
                self.find_open_pr(&pr.head)?.ok_or_else(|| {
                    ForgeError::Other(format!(
                        "GitHub says a PR from {} already exists but lists none open",
                        pr.head
                    ))
                })
            }
            422 => Err(ForgeError::Other(format!(
                "open PR {} → {}: GitHub refused it (422: {}); is {} pushed and does {} exist?",
                pr.head,
                pr.base,
                self.http.scrub(&message_of(&resp.body)),
                pr.head,
                pr.base
            ))),
            _ => Err(self.fail("open PR", &resp, None)),
        }
    }

    fn update_pr(&self, number: u64, title: &str, body: &str) -> Result<(), ForgeError> {
        let resp = self.http.send(
            "PATCH",
            &self.repo_url(&format!("/pulls/{number}")),
            Some(&json!({ "title": title, "body": body })),
            true,
        )?;
        match resp.status {
            200 => Ok(()),
            _ => Err(self.fail(&format!("update PR #{number}"), &resp, Some(number))),
        }
    }

    fn get_pr(&self, number: u64) -> Result<PullRequest, ForgeError> {
        Ok(self.fetch_pr(number)?.to_pr())
    }

    /// `PUT …/merge` with `sha` = the tested head: GitHub refuses (409)
    /// when the head moved. Idempotent: a merged PR returns its merge
    /// commit, also when it got merged between our GET and our PUT.
    fn merge_pr(
        &self,
        number: u64,
        expected_head: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        self.merge_fetched(self.fetch_pr(number)?, expected_head, message)
    }

    /// `revert = "graphql"`: finds the PR merged as `merge_sha`
    /// (`GET /commits/{sha}/pulls`), runs `revertPullRequest` (the body gets
    /// the trailer `Reverts-Merge: <sha>`), merges the revert PR and returns
    /// its merge commit. `revert = "branch"`: pushes `hotfix-revert-<sha12>`
    /// with a `git revert -m 1` commit, opens a PR, merges it. Idempotent in
    /// both: an open or merged PR into `base` carrying the trailer (or on
    /// GitHub's `revert-<n>-…` branch) is merged or returned instead.
    fn revert_merge(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        match self.cfg.revert {
            RevertMode::Graphql => self.revert_graphql(base, merge_sha, message),
            RevertMode::Branch => self.revert_branch(base, merge_sha, message),
        }
    }

    fn close_pr(&self, number: u64) -> Result<(), ForgeError> {
        let resp = self.http.send(
            "PATCH",
            &self.repo_url(&format!("/pulls/{number}")),
            Some(&json!({ "state": "closed" })),
            true,
        )?;
        match resp.status {
            200 => Ok(()),
            _ => Err(self.fail(&format!("close PR #{number}"), &resp, Some(number))),
        }
    }

    /// Identities without a `[forge.logins]` entry are skipped (GitHub
    /// cannot be asked about them). A 422 is not fatal: GitHub refuses to
    /// request a review from the PR's author or from non-collaborators,
    /// and approvals are still gathered and checked by the policy. On a 422
    /// the request is repeated once without the PR's author.
    fn request_reviews(&self, number: u64, people: &[String]) -> Result<(), ForgeError> {
        let logins: Vec<String> = people
            .iter()
            .filter_map(|p| {
                self.cfg
                    .logins
                    .iter()
                    .find(|(id, _)| id.eq_ignore_ascii_case(p))
                    .map(|(_, login)| login.clone())
            })
            .collect();
        if logins.is_empty() {
            return Ok(());
        }
        let resp = self.post_reviewers(number, &logins)?;
        match resp.status {
            200 | 201 => Ok(()),
            422 => {
                let pr = self.fetch_pr(number)?;
                let author = pr.user.map(|u| u.login).unwrap_or_default();
                let rest: Vec<String> = logins
                    .into_iter()
                    .filter(|l| !l.eq_ignore_ascii_case(&author))
                    .collect();
                if !rest.is_empty() && !author.is_empty() {
                    let again = self.post_reviewers(number, &rest)?;
                    if !matches!(again.status, 200 | 201 | 422) {
                        return Err(self.fail(
                            &format!("request reviews on PR #{number}"),
                            &again,
                            Some(number),
                        ));
                    }
                }
                Ok(())
            }
            _ => Err(self.fail(
                &format!("request reviews on PR #{number}"),
                &resp,
                Some(number),
            )),
        }
    }

    /// The latest APPROVED / CHANGES_REQUESTED / DISMISSED review per user
    /// (COMMENTED and PENDING do not change a verdict); approved ones count,
    /// with the reviewed `commit_id`. Logins missing from `[forge.logins]`
    /// are not in the policy and are ignored.
    fn approvals(&self, number: u64) -> Result<Vec<ForgeApproval>, ForgeError> {
        let what = format!("list reviews of PR #{number}");
        let reviews: Vec<ReviewJson> = self.get_pages(
            &what,
            &self.repo_url(&format!("/pulls/{number}/reviews?per_page=100")),
            Some(number),
            |me, r| me.parse(&what, r),
        )?;
        // Chronological order: a later verdict replaces an earlier one.
        let mut latest: Vec<(String, String, Option<String>)> = Vec::new();
        for r in reviews {
            let Some(user) = r.user else { continue };
            let state = r.state.to_ascii_uppercase();
            if !matches!(
                state.as_str(),
                "APPROVED" | "CHANGES_REQUESTED" | "DISMISSED"
            ) {
                continue;
            }
            match latest
                .iter_mut()
                .find(|(l, _, _)| l.eq_ignore_ascii_case(&user.login))
            {
                Some(e) => {
                    e.1 = state;
                    e.2 = r.commit_id;
                }
                None => latest.push((user.login, state, r.commit_id)),
            }
        }
        Ok(latest
            .into_iter()
            .filter(|(_, s, _)| s == "APPROVED")
            .filter_map(|(login, _, sha)| {
                let by = self.identity_of(&login)?.to_string();
                Some(ForgeApproval {
                    by,
                    login,
                    sha: sha.unwrap_or_default(),
                })
            })
            .collect())
    }

    /// Check runs and commit statuses on `sha`, by name. With
    /// `required_checks` empty every reported one is required (none
    /// reported: nothing required); with names, exactly those, and a name
    /// nobody reported yet is `Pending`. A name reported twice keeps the
    /// worse state.
    fn required_checks(&self, sha: &str) -> Result<Vec<ForgeCheck>, ForgeError> {
        let what_runs = format!("list check runs on {sha}");
        let runs: Vec<CheckRunJson> = self.get_pages(
            &what_runs,
            &self.repo_url(&format!("/commits/{}/check-runs?per_page=100", enc(sha))),
            None,
            |me, r| Ok(me.parse::<CheckRunsJson>(&what_runs, r)?.check_runs),
        )?;
        let what_status = format!("get the combined status of {sha}");
        let statuses: Vec<StatusJson> = self.get_pages(
            &what_status,
            &self.repo_url(&format!("/commits/{}/status?per_page=100", enc(sha))),
            None,
            |me, r| Ok(me.parse::<CombinedStatusJson>(&what_status, r)?.statuses),
        )?;
        let mut seen: Vec<ForgeCheck> = Vec::new();
        let mut add = |c: ForgeCheck| match seen.iter_mut().find(|s| s.name == c.name) {
            Some(s) => {
                if worse(&c.state, &s.state) {
                    *s = c;
                }
            }
            None => seen.push(c),
        };
        for r in runs {
            let state = check_run_state(&r.status, r.conclusion.as_deref());
            let what = r.conclusion.clone().unwrap_or_else(|| r.status.clone());
            let detail = match r.details_url.or(r.html_url) {
                Some(u) => format!("check run {what} ({u})"),
                None => format!("check run {what}"),
            };
            add(ForgeCheck {
                name: r.name,
                state,
                detail,
            });
        }
        for s in statuses {
            let mut detail = format!("status {}", s.state);
            if let Some(d) = s.description.filter(|d| !d.is_empty()) {
                detail.push_str(&format!(": {d}"));
            }
            if let Some(u) = s.target_url.filter(|u| !u.is_empty()) {
                detail.push_str(&format!(" ({u})"));
            }
            add(ForgeCheck {
                name: s.context,
                state: status_state(&s.state),
                detail,
            });
        }
        if self.cfg.required_checks.is_empty() {
            return Ok(seen);
        }
        Ok(self
            .cfg
            .required_checks
            .iter()
            .map(|name| match seen.iter().find(|c| &c.name == name) {
                Some(c) => c.clone(),
                None => ForgeCheck {
                    name: name.clone(),
                    state: CheckState::Pending,
                    detail: format!("not reported on {sha} yet"),
                },
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component stays one component: `/` of a branch name, `+` (a space
    /// in a query), `%`, `#`, `?` and every byte of a multi-byte character
    /// are escaped; unreserved characters are not.
    #[test]
    fn components_are_escaped_whole() {
        assert_eq!(enc("acme:hotfix/pdf"), "acme%3Ahotfix%2Fpdf");
        assert_eq!(enc("a+b c%d#e?f&g=h"), "a%2Bb%20c%25d%23e%3Ff%26g%3Dh");
        assert_eq!(enc("hotfix/ünï"), "hotfix%2F%C3%BCn%C3%AF");
        assert_eq!(enc("AZaz09-_.~"), "AZaz09-_.~");
    }
}
