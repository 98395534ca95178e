//! The Railway deployer (`[deploy] provider = "railway"`, settings in
//! `[deploy.railway]`): Railway's public GraphQL API
//! (`POST https://backboard.railway.com/graphql/v2`).
//!
//! Railway builds PR environments and deploys `main` by itself; hotfix finds
//! and waits for the deployments of the exact shas it cares about, and rolls
//! production back to the deployment it recorded before the merge.
//! Statuses follow the schema's `DeploymentStatus`; a value this build does
//! not know is treated as a failure with its name, never a crash.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hotfix_core::duration::HumanDuration;
use hotfix_core::provider::{DeployCtx, DeployError, Deployer, Deployment};
use serde::Deserialize;
use serde_json::{Value, json};

const USER_AGENT: &str = concat!("hotfix/", env!("CARGO_PKG_VERSION"));

/// How hotfix authenticates (the binary reads the environment).
#[derive(Clone)]
pub enum RailwayAuth {
    /// `RAILWAY_API_TOKEN`: an account or workspace token, `Authorization: Bearer`.
    Bearer(String),
    /// `RAILWAY_TOKEN`: a project token, `Project-Access-Token` (sees one environment only).
    ProjectAccessToken(String),
}

impl RailwayAuth {
    fn secret(&self) -> &str {
        match self {
            RailwayAuth::Bearer(t) | RailwayAuth::ProjectAccessToken(t) => t,
        }
    }
    fn env_name(&self) -> &'static str {
        match self {
            RailwayAuth::Bearer(_) => "RAILWAY_API_TOKEN",
            RailwayAuth::ProjectAccessToken(_) => "RAILWAY_TOKEN",
        }
    }
}

/// `[deploy.railway]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RailwayConfig {
    /// Project id.
    pub project: String,
    /// Service id.
    pub service: String,
    /// The production environment's id.
    pub environment: String,
    #[serde(default = "default_api_url")]
    pub api_url: String,
    #[serde(default = "default_deploy_timeout")]
    pub preview_timeout: HumanDuration,
    #[serde(default = "default_deploy_timeout")]
    pub deploy_timeout: HumanDuration,
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// If no deployment of the merge commit shows up this long after the
    /// merge, hotfix asks Railway to deploy it (`serviceInstanceDeployV2`).
    #[serde(default = "default_trigger_after")]
    pub trigger_after: HumanDuration,
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// Overrides the production health URL (default: https://<service domain><health_path>).
    #[serde(default)]
    pub health_url: Option<String>,
    /// Scheme put in front of Railway's domains (tests use `http`).
    #[serde(default = "default_scheme")]
    pub url_scheme: String,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    #[serde(default = "default_retry_wait")]
    pub max_retry_wait: HumanDuration,
}

fn default_api_url() -> String {
    "https://backboard.railway.com/graphql/v2".into()
}
fn default_deploy_timeout() -> HumanDuration {
    HumanDuration::mins(15)
}
fn default_poll() -> HumanDuration {
    HumanDuration::secs(5)
}
fn default_trigger_after() -> HumanDuration {
    HumanDuration::secs(90)
}
fn default_health_path() -> String {
    "/health".into()
}
fn default_scheme() -> String {
    "https".into()
}
fn default_timeout() -> HumanDuration {
    HumanDuration::secs(30)
}
fn default_retries() -> u32 {
    3
}
fn default_retry_wait() -> HumanDuration {
    HumanDuration::secs(60)
}

impl RailwayConfig {
    pub fn from_table(t: &toml::Table) -> Result<RailwayConfig, String> {
        let c: RailwayConfig = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        for (k, v) in [
            ("project", &c.project),
            ("service", &c.service),
            ("environment", &c.environment),
        ] {
            if v.trim().is_empty() {
                return Err(format!("`{k}` (an id) is required"));
            }
        }
        if !c.health_path.starts_with('/') {
            return Err(format!(
                "health_path `{}` must start with `/`",
                c.health_path
            ));
        }
        Ok(c)
    }
}

/// One deployment as hotfix needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailwayDeployment {
    pub id: String,
    pub status: String,
    pub commit: Option<String>,
    pub url: Option<String>,
    pub can_rollback: bool,
}

enum Progress {
    Running,
    Done,
    Failed(String),
}

/// The meaning of a `DeploymentStatus` for a hotfix.
fn classify(status: &str) -> Progress {
    match status {
        "SUCCESS" => Progress::Done,
        "INITIALIZING" | "QUEUED" | "WAITING" | "BUILDING" | "DEPLOYING" => Progress::Running,
        "FAILED" => Progress::Failed("the build or deploy failed (a failed health check included); see the deployment's logs on Railway".into()),
        "CRASHED" => Progress::Failed("the service crashed after starting".into()),
        "SKIPPED" => Progress::Failed("Railway skipped it (Wait for CI saw a failing check, or watch paths excluded the change)".into()),
        "NEEDS_APPROVAL" => Progress::Failed("the deployment needs an approval on Railway: a person must approve it there, then run this again".into()),
        "REMOVED" | "REMOVING" => Progress::Failed("the deployment was removed (superseded or cancelled)".into()),
        "SLEEPING" => Progress::Done,
        other => Progress::Failed(format!("unknown deployment status {other}")),
    }
}

pub struct RailwayDeployer {
    cfg: RailwayConfig,
    auth: RailwayAuth,
    agent: ureq::Agent,
    health: OnceLock<Option<String>>,
}

const DEPLOYMENTS: &str = "query ServiceDeployments($input: DeploymentListInput!, $first: Int) { deployments(input: $input, first: $first) { edges { node { id status createdAt staticUrl url canRollback canRedeploy meta } } } }";
const PR_ENVIRONMENTS: &str = "query PrEnvironments($projectId: String!, $first: Int, $after: String) { environments(projectId: $projectId, isEphemeral: true, first: $first, after: $after) { edges { node { id name isEphemeral meta { prNumber branch } } } pageInfo { hasNextPage endCursor } } }";
const DOMAINS: &str = "query ServiceDomains($projectId: String!, $environmentId: String!, $serviceId: String!) { domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) { serviceDomains { domain } customDomains { domain } } }";
const DEPLOYMENT: &str = "query DeploymentById($id: String!) { deployment(id: $id) { id status staticUrl url canRollback canRedeploy meta } }";
const ROLLBACK: &str = "mutation Rollback($id: String!) { deploymentRollback(id: $id) }";
const REDEPLOY: &str =
    "mutation Redeploy($id: String!) { deploymentRedeploy(id: $id) { id status } }";
const DEPLOY_COMMIT: &str = "mutation DeployCommit($environmentId: String!, $serviceId: String!, $commitSha: String) { serviceInstanceDeployV2(environmentId: $environmentId, serviceId: $serviceId, commitSha: $commitSha) }";

fn parse_deployment(n: &Value) -> Option<RailwayDeployment> {
    let meta = &n["meta"];
    let commit = meta["commitHash"]
        .as_str()
        .or_else(|| meta["commitSha"].as_str())
        .map(str::to_string);
    Some(RailwayDeployment {
        id: n["id"].as_str()?.to_string(),
        status: n["status"].as_str().unwrap_or("UNKNOWN").to_string(),
        commit,
        url: n["staticUrl"]
            .as_str()
            .or_else(|| n["url"].as_str())
            .filter(|u| !u.is_empty())
            .map(str::to_string),
        can_rollback: n["canRollback"].as_bool().unwrap_or(false),
    })
}

fn same_commit(a: Option<&str>, sha: &str) -> bool {
    a.is_some_and(|c| !c.is_empty() && (sha.starts_with(c) || c.starts_with(sha)))
}

impl RailwayDeployer {
    pub fn new(cfg: RailwayConfig, auth: RailwayAuth) -> RailwayDeployer {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(cfg.timeout.0))
            .http_status_as_error(false)
            .user_agent(USER_AGENT)
            .build()
            .into();
        RailwayDeployer {
            cfg,
            auth,
            agent,
            health: OnceLock::new(),
        }
    }

    /// Never lets the token out in a message.
    fn scrub(&self, s: &str) -> String {
        let secret = self.auth.secret();
        if secret.is_empty() {
            return crate::redact::redact(s);
        }
        crate::redact::redact(&s.replace(secret, "***"))
    }

    /// One GraphQL call, with bounded retries on 429 (honouring `Retry-After`) and 5xx.
    pub fn graphql(&self, query: &str, variables: Value) -> Result<Value, DeployError> {
        let body = json!({ "query": query, "variables": variables });
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .agent
                .post(&self.cfg.api_url)
                .header("Content-Type", "application/json");
            req = match &self.auth {
                RailwayAuth::Bearer(t) => req.header("Authorization", &format!("Bearer {t}")),
                RailwayAuth::ProjectAccessToken(t) => req.header("Project-Access-Token", t),
            };
            let mut resp = match req.send(body.to_string().as_bytes()) {
                Ok(r) => r,
                Err(e) => {
                    return Err(DeployError::Unreachable(format!(
                        "Railway API: {}",
                        self.scrub(&e.to_string())
                    )));
                }
            };
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = resp
                .body_mut()
                .with_config()
                .limit(4 * 1024 * 1024)
                .read_to_string()
                .unwrap_or_default();
            if status == 429 || status >= 500 {
                if attempt > self.cfg.max_retries {
                    return Err(DeployError::Unreachable(format!(
                        "Railway API answered {status} {} times{}",
                        attempt,
                        if status == 429 { " (rate limited)" } else { "" }
                    )));
                }
                let wait = Duration::from_secs(retry_after.unwrap_or(1 << attempt.min(5)));
                std::thread::sleep(wait.min(self.cfg.max_retry_wait.0));
                continue;
            }
            if status == 401 || status == 403 {
                return Err(DeployError::Failed(format!(
                    "Railway refused the token ({status}): check {}",
                    self.auth.env_name()
                )));
            }
            let v: Value = serde_json::from_str(&text).map_err(|e| {
                DeployError::Failed(format!(
                    "Railway sent a malformed answer (HTTP {status}): {e}"
                ))
            })?;
            if let Some(errs) = v["errors"].as_array().filter(|e| !e.is_empty()) {
                let msg = errs
                    .iter()
                    .filter_map(|e| e["message"].as_str())
                    .collect::<Vec<_>>()
                    .join("; ");
                let hint = if msg.to_ascii_lowercase().contains("not authorized") {
                    format!(
                        " (check {}; a project token sees one environment only: use a workspace token in RAILWAY_API_TOKEN)",
                        self.auth.env_name()
                    )
                } else {
                    String::new()
                };
                return Err(DeployError::Failed(format!(
                    "Railway: {}{hint}",
                    self.scrub(&msg)
                )));
            }
            if !(200..300).contains(&status) {
                return Err(DeployError::Failed(format!(
                    "Railway API answered {status}"
                )));
            }
            return Ok(v["data"].clone());
        }
    }

    /// Deployments of the service in an environment, newest first.
    pub fn deployments(
        &self,
        environment: &str,
        only_success: bool,
        first: u32,
    ) -> Result<Vec<RailwayDeployment>, DeployError> {
        let mut input = json!({
            "projectId": self.cfg.project,
            "environmentId": environment,
            "serviceId": self.cfg.service,
        });
        if only_success {
            input["status"] = json!({ "in": ["SUCCESS"] });
        }
        let d = self.graphql(DEPLOYMENTS, json!({ "input": input, "first": first }))?;
        Ok(d["deployments"]["edges"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| parse_deployment(&e["node"]))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The PR environment of PR `number`, if Railway made one.
    fn pr_environment(&self, number: u64) -> Result<Option<String>, DeployError> {
        let mut after: Option<String> = None;
        for _ in 0..50 {
            let d = self.graphql(
                PR_ENVIRONMENTS,
                json!({ "projectId": self.cfg.project, "first": 50, "after": after }),
            )?;
            let env = &d["environments"];
            if let Some(found) = env["edges"].as_array().and_then(|edges| {
                edges
                    .iter()
                    .find(|e| e["node"]["meta"]["prNumber"].as_u64() == Some(number))
                    .and_then(|e| e["node"]["id"].as_str().map(str::to_string))
            }) {
                return Ok(Some(found));
            }
            if env["pageInfo"]["hasNextPage"].as_bool() != Some(true) {
                return Ok(None);
            }
            after = env["pageInfo"]["endCursor"].as_str().map(str::to_string);
        }
        Ok(None)
    }

    fn domain_url(&self, environment: &str) -> Result<Option<String>, DeployError> {
        let d = self.graphql(
            DOMAINS,
            json!({ "projectId": self.cfg.project, "environmentId": environment, "serviceId": self.cfg.service }),
        )?;
        let pick = |k: &str| {
            d["domains"][k]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|x| x["domain"].as_str())
                .map(str::to_string)
        };
        Ok(pick("serviceDomains")
            .or_else(|| pick("customDomains"))
            .map(|dom| self.with_scheme(&dom)))
    }

    fn with_scheme(&self, u: &str) -> String {
        if u.contains("://") {
            u.to_string()
        } else {
            format!("{}://{u}", self.cfg.url_scheme)
        }
    }

    /// Waits until the deployment of `sha` in `environment` is terminal.
    fn wait_for(
        &self,
        environment: &str,
        sha: &str,
        timeout: Duration,
        trigger: bool,
    ) -> Result<RailwayDeployment, DeployError> {
        let start = Instant::now();
        let mut triggered = !trigger;
        loop {
            let found = self
                .deployments(environment, false, 20)?
                .into_iter()
                .find(|d| same_commit(d.commit.as_deref(), sha));
            match found {
                Some(d) => match classify(&d.status) {
                    Progress::Done => return Ok(d),
                    Progress::Failed(why) => {
                        return Err(DeployError::Failed(format!(
                            "Railway deployment {} of {} is {}: {why}",
                            d.id,
                            short(sha),
                            d.status
                        )));
                    }
                    Progress::Running => {}
                },
                None if !triggered && start.elapsed() >= self.cfg.trigger_after.0 => {
                    self.graphql(
                        DEPLOY_COMMIT,
                        json!({ "environmentId": environment, "serviceId": self.cfg.service, "commitSha": sha }),
                    )?;
                    triggered = true;
                }
                None => {}
            }
            if start.elapsed() >= timeout {
                return Err(DeployError::Timeout {
                    command: format!("Railway deployment of {}", short(sha)),
                    seconds: timeout.as_secs(),
                    tail: String::new(),
                });
            }
            std::thread::sleep(self.cfg.poll_interval.0);
        }
    }
}

fn short(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}

impl Deployer for RailwayDeployer {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let pr = ctx
            .pr
            .ok_or_else(|| DeployError::Failed("a Railway preview needs the PR number".into()))?;
        let start = Instant::now();
        let env = loop {
            if let Some(e) = self.pr_environment(pr)? {
                break e;
            }
            if start.elapsed() >= self.cfg.preview_timeout.0 {
                return Err(DeployError::Failed(format!(
                    "no Railway PR environment for PR #{pr} after {}: are PR environments enabled for the project (prDeploys)?",
                    self.cfg.preview_timeout
                )));
            }
            std::thread::sleep(self.cfg.poll_interval.0);
        };
        let left = self.cfg.preview_timeout.0.saturating_sub(start.elapsed());
        let d = self.wait_for(&env, &ctx.sha, left, false)?;
        let url = match self.domain_url(&env)? {
            Some(u) => u,
            None => d
                .url
                .as_deref()
                .map(|u| self.with_scheme(u))
                .ok_or_else(|| {
                    DeployError::Failed(format!(
                        "the PR environment of #{pr} has no domain: generate one on Railway"
                    ))
                })?,
        };
        Ok(Deployment {
            id: Some(d.id),
            url: Some(url),
        })
    }

    fn remove_preview(&self, _ctx: &DeployCtx) -> Result<(), DeployError> {
        // Railway removes a PR environment when its PR closes or merges.
        Ok(())
    }

    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let d = self.wait_for(
            &self.cfg.environment,
            &ctx.sha,
            self.cfg.deploy_timeout.0,
            true,
        )?;
        Ok(Deployment {
            id: Some(d.id),
            url: self.health_url(),
        })
    }

    fn rollback(&self, ctx: &DeployCtx, previous: Option<&str>) -> Result<(), DeployError> {
        let env = self.cfg.environment.clone();
        let current = self.deployments(&env, true, 1)?;
        if current
            .first()
            .is_some_and(|d| same_commit(d.commit.as_deref(), &ctx.sha))
        {
            return Ok(()); // already serving the code to go back to
        }
        let target = match previous {
            Some(id) => {
                let d = self.graphql(DEPLOYMENT, json!({ "id": id }))?;
                parse_deployment(&d["deployment"]).ok_or_else(|| {
                    DeployError::Failed(format!("Railway has no deployment {id} to roll back to"))
                })?
            }
            None => self
                .deployments(&env, true, 50)?
                .into_iter()
                .find(|d| same_commit(d.commit.as_deref(), &ctx.sha))
                .ok_or_else(|| {
                    DeployError::Failed(format!(
                        "no successful Railway deployment of {} to roll back to",
                        short(&ctx.sha)
                    ))
                })?,
        };
        if target.can_rollback {
            self.graphql(ROLLBACK, json!({ "id": target.id }))?;
        } else {
            self.graphql(REDEPLOY, json!({ "id": target.id }))?;
        }
        let sha = target.commit.clone().unwrap_or_else(|| ctx.sha.clone());
        // Healthy again = the newest deployment runs that code and succeeded.
        let start = Instant::now();
        loop {
            if let Some(d) = self.deployments(&env, false, 1)?.into_iter().next()
                && same_commit(d.commit.as_deref(), &sha)
            {
                match classify(&d.status) {
                    Progress::Done => return Ok(()),
                    Progress::Failed(why) => {
                        return Err(DeployError::Failed(format!(
                            "the rollback deployment {} is {}: {why}",
                            d.id, d.status
                        )));
                    }
                    Progress::Running => {}
                }
            }
            if start.elapsed() >= self.cfg.deploy_timeout.0 {
                return Err(DeployError::Timeout {
                    command: "Railway rollback".into(),
                    seconds: self.cfg.deploy_timeout.0.as_secs(),
                    tail: String::new(),
                });
            }
            std::thread::sleep(self.cfg.poll_interval.0);
        }
    }

    fn health_url(&self) -> Option<String> {
        self.health
            .get_or_init(|| match &self.cfg.health_url {
                Some(u) => Some(u.clone()),
                None => self
                    .domain_url(&self.cfg.environment)
                    .ok()
                    .flatten()
                    .map(|base| format!("{}{}", base.trim_end_matches('/'), self.cfg.health_path)),
            })
            .clone()
    }

    fn current_production(&self) -> Result<Option<String>, DeployError> {
        Ok(self
            .deployments(&self.cfg.environment, true, 1)?
            .into_iter()
            .next()
            .map(|d| d.id))
    }
}
