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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotfix_core::duration::HumanDuration;
use hotfix_core::provider::{
    CheckState, Forge, ForgeApproval, ForgeCheck, ForgeError, NewPr, PrState, PullRequest,
};
use hotfix_git::{Git, GitError, MergeTree};
use serde::Deserialize;
use serde_json::{Value, json};

use super::merge::revert_trailer;

const PUBLIC_API: &str = "https://api.github.com";
const USER_AGENT: &str = concat!("hotfix/", env!("CARGO_PKG_VERSION"));
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

// ---------------------------------------------------------------- HTTP

/// An answer, whatever its status.
struct Resp {
    status: u16,
    link: Option<String>,
    body: String,
}

/// The REST/GraphQL client: headers, retries, redaction.
struct Http {
    agent: ureq::Agent,
    token: String,
    api_url: String,
    timeout: Duration,
    max_retries: u32,
    max_wait: Duration,
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// What to do about a 403/429 that is a rate limit.
enum Limited {
    /// Wait this long, then try again.
    Wait(Duration),
    /// The primary limit resets later than we are willing to sleep.
    Exhausted { reset_in_s: u64 },
}

impl Http {
    fn scrub(&self, text: &str) -> String {
        let t = if self.token.is_empty() {
            text.to_string()
        } else {
            text.replace(&self.token, "***")
        };
        crate::redact::redact(&t)
    }

    /// One request with the documented headers. `retry_5xx` is false for
    /// calls that are not safe to repeat blindly (the revert mutation).
    fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        retry_5xx: bool,
    ) -> Result<Resp, ForgeError> {
        let mut attempt: u32 = 0;
        loop {
            let (resp, limited) = self.once(method, url, body)?;
            let retry_in = match limited {
                Some(Limited::Exhausted { reset_in_s }) => {
                    return Err(ForgeError::Other(format!(
                        "GitHub rate limit exhausted for this token; it resets in {reset_in_s}s, longer than max_retry_wait ({}s): try again later",
                        self.max_wait.as_secs()
                    )));
                }
                Some(Limited::Wait(d)) => Some(d),
                None if resp.status >= 500 && retry_5xx => Some(Duration::from_millis(
                    500u64.saturating_mul(1 << attempt.min(6)),
                )),
                None => None,
            };
            let Some(wait) = retry_in else {
                return Ok(resp);
            };
            if attempt >= self.max_retries {
                let what = if resp.status >= 500 {
                    format!("GitHub kept failing ({})", resp.status)
                } else {
                    "GitHub kept rate-limiting this token".to_string()
                };
                return Err(ForgeError::Other(format!(
                    "{what} on {method} {}; gave up after {} attempts: {}",
                    self.path_of(url),
                    attempt + 1,
                    self.scrub(&message_of(&resp.body))
                )));
            }
            std::thread::sleep(wait.min(self.max_wait));
            attempt += 1;
        }
    }

    /// The URL without the API base, for messages.
    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.api_url.trim_end_matches('/'))
            .unwrap_or(url)
    }

    fn once(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(Resp, Option<Limited>), ForgeError> {
        let auth = format!("Bearer {}", self.token);
        macro_rules! hdrs {
            ($rb:expr) => {
                $rb.header("Authorization", &auth)
                    .header("Accept", "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", API_VERSION)
            };
        }
        let empty = json!({});
        let res = match method {
            "GET" => hdrs!(self.agent.get(url)).call(),
            "DELETE" => hdrs!(self.agent.delete(url)).call(),
            "POST" => hdrs!(self.agent.post(url)).send_json(body.unwrap_or(&empty)),
            "PUT" => hdrs!(self.agent.put(url)).send_json(body.unwrap_or(&empty)),
            "PATCH" => hdrs!(self.agent.patch(url)).send_json(body.unwrap_or(&empty)),
            other => {
                return Err(ForgeError::Other(format!(
                    "unsupported HTTP method {other}"
                )));
            }
        };
        let mut r = res.map_err(|e| self.transport_error(method, url, e))?;
        let status = r.status().as_u16();
        let link = header(&r, "link");
        let retry_after = header(&r, "retry-after");
        let remaining = header(&r, "x-ratelimit-remaining");
        let reset = header(&r, "x-ratelimit-reset");
        let body = r
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(method, url, e))?;
        let limited = if status == 403 || status == 429 {
            rate_limit(
                status,
                retry_after.as_deref(),
                remaining.as_deref(),
                reset.as_deref(),
                &body,
                self.max_wait,
            )
        } else {
            None
        };
        Ok((Resp { status, link, body }, limited))
    }

    fn transport_error(&self, method: &str, url: &str, e: ureq::Error) -> ForgeError {
        let path = self.path_of(url).to_string();
        let detail = self.scrub(&e.to_string());
        match e {
            ureq::Error::Timeout(_) => ForgeError::Unreachable(format!(
                "no answer to {method} {path} within {:?} (timeout): {detail}",
                self.timeout
            )),
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectProxyFailed(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled => {
                ForgeError::Unreachable(format!("{method} {path}: {detail}"))
            }
            ureq::Error::TlsRequired | ureq::Error::Tls(_) => ForgeError::Unreachable(format!(
                "{method} {path}: {detail} (this build has no TLS support for https URLs)"
            )),
            _ => ForgeError::Other(format!("{method} {path}: {detail}")),
        }
    }
}

/// Classifies a 403/429. GitHub documents: primary limit = remaining `0`,
/// wait until `x-ratelimit-reset`; secondary limit = `retry-after` seconds,
/// or at least a minute when absent. A 403 that is none of these is a
/// permission problem and not retried.
fn rate_limit(
    status: u16,
    retry_after: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
    body: &str,
    max_wait: Duration,
) -> Option<Limited> {
    if let Some(secs) = retry_after.and_then(|s| s.parse::<u64>().ok()) {
        return Some(Limited::Wait(Duration::from_secs(secs)));
    }
    if remaining == Some("0") {
        let reset_at = reset.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let reset_in_s = reset_at.saturating_sub(now_s());
        // Retrying before the reset is useless: fail fast if it is too far.
        if Duration::from_secs(reset_in_s) > max_wait {
            return Some(Limited::Exhausted { reset_in_s });
        }
        return Some(Limited::Wait(Duration::from_secs(reset_in_s + 1)));
    }
    if status == 429 || body.to_ascii_lowercase().contains("secondary rate limit") {
        return Some(Limited::Wait(Duration::from_secs(60)));
    }
    None
}

/// GitHub's `message` plus each `errors[].message`, or the start of the body.
fn message_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts: Vec<String> = Vec::new();
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                parts.push(m.to_string());
            }
            if let Some(errs) = v.get("errors").and_then(Value::as_array) {
                for e in errs {
                    if let Some(m) = e.get("message").and_then(Value::as_str) {
                        parts.push(m.to_string());
                    } else if let Some(c) = e.get("code").and_then(Value::as_str) {
                        let field = e.get("field").and_then(Value::as_str).unwrap_or("");
                        parts.push(format!("{field} {c}").trim().to_string());
                    }
                }
            }
            if parts.is_empty() {
                truncate(body, 200)
            } else {
                parts.join("; ")
            }
        }
        Err(_) => truncate(body, 200),
    }
}

fn truncate(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Percent-encodes a query or path component (RFC 3986 unreserved kept).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `rel="next"` target of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

// ---------------------------------------------------------------- payloads

/// The parts of GitHub's pull request object we use. Everything optional
/// that GitHub may omit or null is optional here.
#[derive(Debug, Deserialize)]
struct PrJson {
    number: u64,
    #[serde(default)]
    node_id: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    body: Option<String>,
    state: String,
    /// Only in the single-PR answer; lists have `merged_at` alone.
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<String>,
    #[serde(default)]
    merge_commit_sha: Option<String>,
    head: RefJson,
    base: RefJson,
    #[serde(default)]
    user: Option<UserJson>,
    /// `null` while GitHub computes it.
    #[serde(default)]
    mergeable: Option<bool>,
    #[serde(default)]
    mergeable_state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RefJson {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
}

#[derive(Debug, Deserialize)]
struct UserJson {
    login: String,
}

impl PrJson {
    fn is_merged(&self) -> bool {
        self.merged.unwrap_or(self.merged_at.is_some())
    }

    fn to_pr(&self) -> PullRequest {
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
struct ReviewJson {
    #[serde(default)]
    user: Option<UserJson>,
    state: String,
    #[serde(default)]
    commit_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CheckRunsJson {
    #[serde(default)]
    check_runs: Vec<CheckRunJson>,
}

#[derive(Debug, Deserialize)]
struct CheckRunJson {
    name: String,
    status: String,
    #[serde(default)]
    conclusion: Option<String>,
    #[serde(default)]
    details_url: Option<String>,
    #[serde(default)]
    html_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CombinedStatusJson {
    #[serde(default)]
    statuses: Vec<StatusJson>,
}

#[derive(Debug, Deserialize)]
struct StatusJson {
    context: String,
    state: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    target_url: Option<String>,
}

fn check_run_state(status: &str, conclusion: Option<&str>) -> CheckState {
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

fn status_state(state: &str) -> CheckState {
    match state {
        "success" => CheckState::Success,
        "pending" => CheckState::Pending,
        _ => CheckState::Failure,
    }
}

fn worse(a: &CheckState, b: &CheckState) -> bool {
    let rank = |s: &CheckState| match s {
        CheckState::Success => 0,
        CheckState::Pending => 1,
        CheckState::Failure => 2,
    };
    rank(a) > rank(b)
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
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(USER_AGENT)
            .build()
            .into();
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

    /// Runs a GraphQL operation; `errors[]` in a 200 answer is an error.
    fn graphql(&self, what: &str, query: &str, variables: Value) -> Result<Value, ForgeError> {
        let url = self.cfg.graphql_endpoint();
        let body = json!({ "query": query, "variables": variables });
        // Not retried on 5xx: a mutation may have happened; the caller's
        // idempotency search finds its result on the next run instead.
        let resp = self.http.send("POST", &url, Some(&body), false)?;
        if resp.status != 200 {
            return Err(self.fail(what, &resp, None));
        }
        let v: Value = self.parse(what, &resp)?;
        if let Some(errs) = v.get("errors").and_then(Value::as_array)
            && !errs.is_empty()
        {
            let msgs: Vec<String> = errs
                .iter()
                .map(|e| {
                    let m = e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("(no message)");
                    match e.get("type").and_then(Value::as_str) {
                        Some(t) => format!("{t}: {m}"),
                        None => m.to_string(),
                    }
                })
                .collect();
            return Err(ForgeError::Other(format!(
                "{what}: GitHub GraphQL error: {}",
                self.http.scrub(&msgs.join("; "))
            )));
        }
        Ok(v.get("data").cloned().unwrap_or(Value::Null))
    }

    /// A revert PR made earlier for `merge_sha` (or for PR `source`): the
    /// trailer `Reverts-Merge: <sha>` in its body, or GitHub's own revert
    /// branch name `revert-<n>-…`. Looks at the 100 most recent PRs into
    /// `base`; closed-unmerged ones are ignored (someone abandoned them).
    fn find_revert_pr(
        &self,
        base: &str,
        merge_sha: &str,
        source: Option<u64>,
    ) -> Result<Option<PrJson>, ForgeError> {
        let url = self.repo_url(&format!(
            "/pulls?state=all&base={}&sort=created&direction=desc&per_page=100",
            enc(base)
        ));
        let prs: Vec<PrJson> = self.get_json(&format!("list PRs into {base}"), &url, None)?;
        let trailer = revert_trailer(merge_sha);
        let prefix = source.map(|n| format!("revert-{n}-"));
        Ok(prs.into_iter().find(|p| {
            let by_trailer = p.body.as_deref().is_some_and(|b| b.contains(&trailer));
            let by_branch = prefix
                .as_deref()
                .is_some_and(|pre| p.head.name.starts_with(pre));
            (by_trailer || by_branch) && (p.state == "open" || p.is_merged())
        }))
    }

    /// Merges a revert PR, waiting (bounded) for GitHub to compute
    /// `mergeable` first: a fresh PR answers 405 while it is `null`.
    /// `expected` is the head we pushed ourselves (branch mode); otherwise
    /// the head GitHub reports for its own revert branch.
    fn merge_revert_pr(
        &self,
        number: u64,
        expected: Option<&str>,
        message: &str,
    ) -> Result<String, ForgeError> {
        let mut pr = self.fetch_pr(number)?;
        let mut tries = 0;
        while pr.mergeable.is_none() && !pr.is_merged() && tries < self.cfg.max_retries {
            std::thread::sleep(Duration::from_secs(1).min(self.http.max_wait));
            pr = self.fetch_pr(number)?;
            tries += 1;
        }
        let head = expected.unwrap_or(&pr.head.sha).to_string();
        self.merge_fetched(pr, &head, message)
    }

    /// [`Forge::merge_pr`] of a PR just fetched.
    fn merge_fetched(
        &self,
        pr: PrJson,
        expected_head: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        let number = pr.number;
        if pr.is_merged() {
            return pr.merge_commit_sha.ok_or_else(|| {
                ForgeError::Other(format!(
                    "PR #{number} is merged but GitHub gives no merge_commit_sha"
                ))
            });
        }
        if pr.state != "open" {
            return Err(ForgeError::NotMergeable(format!("PR #{number} is closed")));
        }
        let (title, body) = title_and_body(message);
        let req = json!({
            "sha": expected_head,
            "merge_method": self.cfg.merge_method.as_str(),
            "commit_title": title,
            "commit_message": body,
        });
        let resp = self.http.send(
            "PUT",
            &self.repo_url(&format!("/pulls/{number}/merge")),
            Some(&req),
            true,
        )?;
        let msg = self.http.scrub(&message_of(&resp.body));
        match resp.status {
            200 => {
                let v: Value = self.parse(&format!("merge PR #{number}"), &resp)?;
                v.get("sha")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| {
                        ForgeError::Other(format!("merge PR #{number}: GitHub's answer has no sha"))
                    })
            }
            405 => {
                // Maybe merged meanwhile; otherwise say why not, as GitHub does.
                let now = self.fetch_pr(number)?;
                if now.is_merged()
                    && let Some(sha) = now.merge_commit_sha
                {
                    return Ok(sha);
                }
                let state = match now.mergeable_state.as_deref() {
                    Some("dirty") => " (mergeable_state: dirty — conflicts with the base branch)".to_string(),
                    Some("blocked") => " (mergeable_state: blocked — a required review or check is missing)".to_string(),
                    Some("behind") => " (mergeable_state: behind — the branch must be updated with the base first)".to_string(),
                    Some(s) => format!(" (mergeable_state: {s})"),
                    None => String::new(),
                };
                Err(ForgeError::NotMergeable(format!("GitHub: {msg}{state}")))
            }
            409 => {
                let now = self.fetch_pr(number)?;
                if now.is_merged()
                    && let Some(sha) = now.merge_commit_sha
                {
                    return Ok(sha);
                }
                Err(ForgeError::HeadMoved {
                    branch: now.head.name,
                    expected: expected_head.to_string(),
                    actual: now.head.sha,
                })
            }
            422 => Err(ForgeError::NotMergeable(format!(
                "GitHub refused the merge request (422: {msg}); check merge_method = \"{}\" is allowed on {}",
                self.cfg.merge_method.as_str(),
                self.cfg.repo
            ))),
            _ => Err(self.fail(&format!("merge PR #{number}"), &resp, Some(number))),
        }
    }

    fn revert_graphql(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        // The PR whose merge commit this is.
        let prs: Vec<PrJson> = self.get_json(
            &format!("find the PR merged as {merge_sha}"),
            &self.repo_url(&format!("/commits/{}/pulls", enc(merge_sha))),
            None,
        )?;
        let source = prs
            .into_iter()
            .find(|p| p.is_merged() && p.merge_commit_sha.as_deref() == Some(merge_sha))
            .ok_or_else(|| {
                ForgeError::NotMergeable(format!(
                    "no merged pull request in {} has merge commit {merge_sha}; revert = \"branch\" can revert any merge commit",
                    self.cfg.repo
                ))
            })?;
        if let Some(existing) = self.find_revert_pr(base, merge_sha, Some(source.number))? {
            return self.merge_revert_pr(existing.number, None, message);
        }
        let node_id = source.node_id.clone().ok_or_else(|| {
            ForgeError::Other(format!(
                "PR #{} has no node_id in GitHub's answer",
                source.number
            ))
        })?;
        let (title, body) = title_and_body(message);
        let body = format!("{body}\n\n{}", revert_trailer(merge_sha))
            .trim()
            .to_string();
        let data = self.graphql(
            &format!("revert PR #{}", source.number),
            "mutation($id: ID!, $title: String, $body: String) { revertPullRequest(input: {pullRequestId: $id, title: $title, body: $body}) { revertPullRequest { number url } } }",
            json!({ "id": node_id, "title": title, "body": body }),
        )?;
        let number = data
            .pointer("/revertPullRequest/revertPullRequest/number")
            .and_then(Value::as_u64)
            .ok_or_else(|| {
                ForgeError::Other(format!(
                    "revert PR #{}: GitHub's answer has no revertPullRequest.number",
                    source.number
                ))
            })?;
        self.merge_revert_pr(number, None, message)
    }

    fn revert_branch(
        &self,
        base: &str,
        merge_sha: &str,
        message: &str,
    ) -> Result<String, ForgeError> {
        let git = self.git.as_ref().ok_or_else(|| {
            ForgeError::Other("revert = \"branch\" needs the local git repository".into())
        })?;
        if let Some(existing) = self.find_revert_pr(base, merge_sha, None)? {
            return self.merge_revert_pr(existing.number, None, message);
        }
        let remote = &self.remote;
        let short: String = merge_sha.chars().take(12).collect();
        let branch = format!("hotfix-revert-{short}");
        let trailer = revert_trailer(merge_sha);
        let (title, body) = title_and_body(message);
        git.fetch(remote).map_err(git_err)?;
        let base_sha = git
            .rev_parse(&format!("refs/remotes/{remote}/{base}"))
            .map_err(git_err)?
            .ok_or_else(|| ForgeError::NotMergeable(format!("{remote} has no branch {base}")))?;
        if !git.is_ancestor(merge_sha, &base_sha).map_err(git_err)? {
            return Err(ForgeError::NotMergeable(format!(
                "{merge_sha} is not on {remote}/{base}: nothing to revert there"
            )));
        }
        // A revert branch pushed by an earlier run that stopped before the PR.
        let pushed = git
            .rev_parse(&format!("refs/remotes/{remote}/{branch}"))
            .map_err(git_err)?;
        let head = match pushed {
            Some(sha)
                if git
                    .find_commit_with(&format!("{base_sha}..{sha}"), &trailer)
                    .map_err(git_err)?
                    .is_some() =>
            {
                sha
            }
            _ => {
                let parent = format!("{merge_sha}^1");
                let tree = match git
                    .merge_tree(&base_sha, &parent, Some(merge_sha))
                    .map_err(git_err)?
                {
                    MergeTree::Clean { tree } => tree,
                    MergeTree::Conflicted { files } => return Err(ForgeError::Conflict(files)),
                };
                let full = format!("{}\n\n{trailer}\n", message.trim());
                let commit = git
                    .commit_tree(&tree, &[&base_sha], &full)
                    .map_err(git_err)?;
                let refspec = format!("+{commit}:refs/heads/{branch}");
                git.push(remote, &[refspec], false, &[]).map_err(git_err)?;
                commit
            }
        };
        let pr = self.open_pr(&NewPr {
            title,
            body: format!("{body}\n\n{trailer}").trim().to_string(),
            head: branch,
            base: base.to_string(),
        })?;
        if let (PrState::Merged, Some(sha)) = (&pr.state, &pr.merge_sha) {
            return Ok(sha.clone());
        }
        self.merge_revert_pr(pr.number, Some(&head), message)
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
