//! The Railway deployer (`[deploy] provider = "railway"`, settings in
//! `[deploy.railway]`): Railway's public GraphQL API
//! (`POST https://backboard.railway.com/graphql/v2`).
//!
//! Railway builds PR environments and deploys `main` by itself; hotfix does
//! not build anything. It finds and waits for the deployments of the exact
//! shas it cares about (by `meta.commitHash`, never by "the latest one"), and
//! rolls production back to the deployment it recorded before the merge.
//!
//! - **Preview**: the PR environment whose `meta.prNumber` is the PR (names of
//!   PR environments are undocumented, so they are never matched), then the
//!   deployment of the head sha in it; the URL is the environment's service
//!   domain, else the deployment's `staticUrl`/`url`.
//! - **Production**: the deployment of the merge sha in the production
//!   environment. Railway starts it on the push to `main`; if none shows up
//!   within `trigger_after`, hotfix asks for it with `serviceInstanceDeployV2`
//!   (so a service whose auto-deploy is off still ships).
//! - **Rollback**: `deploymentRollback` (no rebuild, seconds) while the image
//!   is retained (`canRollback`), else `deploymentRedeploy` (rebuilds that
//!   deployment's source); then waits until production serves it again.
//!
//! Retries: reads (queries) are retried on 429 (honouring `Retry-After`) and
//! 5xx. Mutations (`serviceInstanceDeployV2`, `deploymentRollback`,
//! `deploymentRedeploy`) are never retried blindly, because a 5xx or a lost
//! answer can come after Railway applied them, and a second send would start
//! a second deploy: a refusal is final, and after an ambiguous failure hotfix
//! first asks Railway whether the change took effect (a deployment of the sha,
//! a new deployment of the rollback target). Only a change verified as not
//! applied is sent once more; when Railway cannot be asked, the error says
//! the change may or may not have been applied and what to look at.
//!
//! Statuses follow the schema's `DeploymentStatus`; a value this build does
//! not know is treated as "not deployed" with its name, never a crash.
//! The token never appears in an error: every text that came from Railway is
//! scrubbed of it before it is shown.

use std::collections::HashSet;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hotfix_core::duration::HumanDuration;
use hotfix_core::provider::{BuildReport, DeployCtx, DeployError, Deployer, Deployment};
use serde::Deserialize;
use serde_json::json;

mod client;
mod schema;

use client::*;

/// How hotfix authenticates (the binary reads the environment).
#[derive(Clone)]
pub enum RailwayAuth {
    /// `RAILWAY_API_TOKEN`: an account or workspace token, sent as
    /// `Authorization: Bearer`. The one to use: it sees every environment.
    Bearer(String),
    /// `RAILWAY_TOKEN`: a project token, sent as `Project-Access-Token`. It
    /// is scoped to ONE environment of one project, so it cannot see PR
    /// environments and production at the same time.
    ProjectAccessToken(String),
}

/// Never shows the token (a `{:?}` in a log line must not leak it).
impl fmt::Debug for RailwayAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RailwayAuth::Bearer(_) => f.write_str("Bearer(***)"),
            RailwayAuth::ProjectAccessToken(_) => f.write_str("ProjectAccessToken(***)"),
        }
    }
}

impl RailwayAuth {
    fn secret(&self) -> &str {
        match self {
            RailwayAuth::Bearer(t) | RailwayAuth::ProjectAccessToken(t) => t,
        }
    }

    /// The environment variable the token came from, for error messages.
    pub fn env_name(&self) -> &'static str {
        match self {
            RailwayAuth::Bearer(_) => hotfix_core::env_vars::RAILWAY_API_TOKEN,
            RailwayAuth::ProjectAccessToken(_) => hotfix_core::env_vars::RAILWAY_TOKEN,
        }
    }

    fn is_project_token(&self) -> bool {
        matches!(self, RailwayAuth::ProjectAccessToken(_))
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
    /// `owner/name` of the GitHub repository: when set, a PR environment
    /// must also have this `meta.prRepo` (projects fed by several repos).
    #[serde(default)]
    pub repo: Option<String>,
    /// Default `https://backboard.railway.com/graphql/v2`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// How long a preview may take, PR environment creation included (15m).
    #[serde(default = "default_deploy_timeout")]
    pub preview_timeout: HumanDuration,
    /// How long a production deploy or a rollback may take (15m).
    #[serde(default = "default_deploy_timeout")]
    pub deploy_timeout: HumanDuration,
    /// Between two looks at a deployment (5s).
    #[serde(default = "default_poll")]
    pub poll_interval: HumanDuration,
    /// If no deployment of the merge commit shows up this long after the
    /// merge, hotfix asks Railway to deploy it (`serviceInstanceDeployV2`) (90s).
    #[serde(default = "default_trigger_after")]
    pub trigger_after: HumanDuration,
    /// Appended to the production service URL for the health URL (`/health`).
    #[serde(default = "default_health_path")]
    pub health_path: String,
    /// Overrides the production health URL (default: `https://<service domain><health_path>`).
    #[serde(default)]
    pub health_url: Option<String>,
    /// Scheme put in front of Railway's domains (`https`; tests use `http`).
    #[serde(default = "default_scheme")]
    pub url_scheme: String,
    /// One HTTP request to the API, connect to last byte (30s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Retries of one request after a 429 or a 5xx (3).
    #[serde(default = "default_retries")]
    pub max_retries: u32,
    /// The longest hotfix sleeps before a retry, whatever `Retry-After` says (60s).
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
    /// Reads and checks `[deploy.railway]`; the error says which key is wrong.
    pub fn from_table(t: &toml::Table) -> Result<RailwayConfig, String> {
        let c: RailwayConfig = toml::Value::Table(t.clone())
            .try_into()
            .map_err(|e: toml::de::Error| e.message().to_string())?;
        for (k, v) in [
            ("project", &c.project),
            ("service", &c.service),
            ("environment", &c.environment),
        ] {
            if v.trim().is_empty() {
                return Err(format!(
                    "`{k}` (the Railway {k} id) must not be empty: copy it from the dashboard (Settings) or `railway status --json`"
                ));
            }
        }
        if !(c.api_url.starts_with("https://") || c.api_url.starts_with("http://")) {
            return Err(format!("api_url `{}` must be an http(s) URL", c.api_url));
        }
        if !c.health_path.starts_with('/') {
            return Err(format!(
                "health_path `{}` must start with `/`",
                c.health_path
            ));
        }
        if c.url_scheme != "https" && c.url_scheme != "http" {
            return Err(format!(
                "url_scheme `{}` must be `https` or `http`",
                c.url_scheme
            ));
        }
        if c.poll_interval.0.is_zero() {
            return Err("poll_interval must be more than 0".into());
        }
        Ok(c)
    }
}

/// One deployment as hotfix needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RailwayDeployment {
    pub id: String,
    /// The raw `DeploymentStatus` (kept as text: new values must not crash us).
    pub status: String,
    /// `meta.commitHash`, when the deployment came from git.
    pub commit: Option<String>,
    /// `staticUrl`, else `url`.
    pub url: Option<String>,
    pub can_rollback: bool,
    /// `environmentId`, when the query selected it.
    pub environment: Option<String>,
    /// `serviceId`, when the query selected it.
    pub service: Option<String>,
}

/// What a `DeploymentStatus` means for a hotfix waiting on it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Running,
    Live,
    Failed(&'static str),
}

fn classify(status: &str) -> Phase {
    match status {
        "SUCCESS" | "SLEEPING" => Phase::Live,
        // WAITING is Railway's "Wait for CI": bounded by the timeout like the rest.
        "INITIALIZING" | "QUEUED" | "WAITING" | "BUILDING" | "DEPLOYING" => Phase::Running,
        "FAILED" => Phase::Failed(
            "the build or the deploy failed (a health check that never answered 200 included); the previous deployment keeps serving. Read the deployment's build and deploy logs on Railway",
        ),
        "CRASHED" => Phase::Failed(
            "the service started, then crashed until Railway's restart policy gave up. Read the deploy logs on Railway",
        ),
        "SKIPPED" => Phase::Failed(
            "Railway did not deploy it: Wait for CI saw a failing GitHub check, or the service's watch paths excluded the change. Fix the check (or deploy it from Railway's dashboard), then run this again",
        ),
        "NEEDS_APPROVAL" => Phase::Failed(
            "the deployment waits for an approval on Railway: a person with access must approve it in the dashboard, then run this again",
        ),
        "REMOVING" | "REMOVED" => Phase::Failed(
            "it was removed or cancelled before it went live (superseded by a newer deployment?). See the service's deployments on Railway",
        ),
        _ => Phase::Failed(
            "this version of hotfix does not know that status, so it does not count it as deployed. Check the deployment on Railway",
        ),
    }
}

/// Same commit, allowing an abbreviated sha on either side (at least 7 hex
/// digits, so that a stray short value never matches by accident).
fn same_commit(a: Option<&str>, sha: &str) -> bool {
    a.is_some_and(|c| c.len() >= 7 && sha.len() >= 7 && (sha.starts_with(c) || c.starts_with(sha)))
}

/// The newest deployment of `sha` in a list of deployments (newest first).
fn of_commit<'a>(list: &'a [RailwayDeployment], sha: &str) -> Option<&'a RailwayDeployment> {
    list.iter().find(|d| same_commit(d.commit.as_deref(), sha))
}

/// What production serves in a list of its deployments (newest first).
fn newest_live(list: &[RailwayDeployment]) -> Option<&RailwayDeployment> {
    list.iter().find(|d| classify(&d.status) == Phase::Live)
}

/// Whether `d` may have been started by a rollback (or redeploy) to
/// `target`: it was not there before (`before`) and is of the target's
/// commit (any new one if the target has none).
fn started_by_rollback(
    d: &RailwayDeployment,
    target: &RailwayDeployment,
    before: &HashSet<String>,
) -> bool {
    !before.contains(&d.id)
        && target
            .commit
            .as_deref()
            .is_none_or(|c| same_commit(d.commit.as_deref(), c))
}

fn short(s: &str) -> &str {
    s.get(..10).unwrap_or(s)
}

fn is_transient(e: &DeployError) -> bool {
    matches!(e, DeployError::Unreachable(_))
}

/// The text of a `DeployError` without its "deploy failed:" prefix, to be
/// put inside a longer message.
fn detail(e: DeployError) -> String {
    match e {
        DeployError::Failed(s) | DeployError::Unreachable(s) => s,
        other => other.to_string(),
    }
}

pub struct RailwayDeployer {
    cfg: RailwayConfig,
    auth: RailwayAuth,
    agent: ureq::Agent,
    /// The production service URL once known (a failed lookup is retried next time).
    service_url: Mutex<Option<String>>,
}

impl RailwayDeployer {
    pub fn new(cfg: RailwayConfig, auth: RailwayAuth) -> RailwayDeployer {
        // A GraphQL endpoint does not redirect; following one would
        // carry the token somewhere else.
        let agent = crate::http::agent(cfg.timeout.0, crate::http::Redirects::Never);
        RailwayDeployer {
            cfg,
            auth,
            agent,
            service_url: Mutex::new(None),
        }
    }

    /// Deployments of the service in an environment, newest first;
    /// `statuses` filters with `status: { in: [...] }`.
    pub fn deployments(
        &self,
        environment: &str,
        statuses: Option<&[&str]>,
        first: u32,
    ) -> Result<Vec<RailwayDeployment>, DeployError> {
        let mut input = json!({
            "projectId": self.cfg.project,
            "environmentId": environment,
            "serviceId": self.cfg.service,
        });
        if let Some(s) = statuses {
            input["status"] = json!({ "in": s });
        }
        let d: schema::DeploymentsData =
            self.call_typed(&DEPLOYMENTS, json!({ "input": input, "first": first }))?;
        Ok(d.deployments
            .edges
            .into_iter()
            .map(|e| RailwayDeployment::from(e.node))
            .collect())
    }

    /// What production serves: its newest live deployment.
    fn serving(&self) -> Result<Option<RailwayDeployment>, DeployError> {
        Ok(self
            .deployments(&self.cfg.environment, Some(LIVE), 1)?
            .into_iter()
            .next())
    }

    fn deployment(&self, id: &str) -> Result<RailwayDeployment, DeployError> {
        let d: schema::DeploymentData = self.call_typed(&DEPLOYMENT, json!({ "id": id }))?;
        Ok(RailwayDeployment::from(d.deployment))
    }

    /// The PR environment of PR `number`, if Railway made one (all pages).
    fn pr_environment(&self, number: u64) -> Result<Option<String>, DeployError> {
        let mut after: Option<String> = None;
        // Bounded: 100 pages of 50 is far more PR environments than Railway keeps.
        for _ in 0..100 {
            let d: schema::EnvironmentsData = self.call_typed(
                &PR_ENVIRONMENTS,
                json!({ "projectId": self.cfg.project, "first": 50, "after": after }),
            )?;
            let env = d.environments;
            let found = env.edges.into_iter().map(|e| e.node).find(|n| {
                let meta = n.meta.as_ref();
                meta.and_then(|m| m.pr_number) == Some(number)
                    && match (&self.cfg.repo, meta.and_then(|m| m.pr_repo.as_deref())) {
                        (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                        _ => true,
                    }
            });
            if let Some(n) = found {
                return Ok(Some(n.id));
            }
            let (more, next) = env
                .page_info
                .map_or((false, None), |p| (p.has_next_page, p.end_cursor));
            if !more || next.is_none() || next == after {
                return Ok(None);
            }
            after = next;
        }
        Ok(None)
    }

    /// `https://<domain>` of the service in an environment: the first
    /// Railway-provided domain, else the first custom domain.
    fn domain_url(&self, environment: &str) -> Result<Option<String>, DeployError> {
        let d: schema::DomainsData = self.call_typed(
            &DOMAINS,
            json!({ "projectId": self.cfg.project, "environmentId": environment, "serviceId": self.cfg.service }),
        )?;
        let first =
            |list: Vec<schema::Domain>| list.into_iter().map(|x| x.domain).find(|s| !s.is_empty());
        Ok(first(d.domains.service_domains)
            .or_else(|| first(d.domains.custom_domains))
            .map(|dom| self.with_scheme(&dom)))
    }

    fn with_scheme(&self, u: &str) -> String {
        if u.contains("://") {
            u.to_string()
        } else {
            format!("{}://{u}", self.cfg.url_scheme)
        }
    }

    /// Where production serves: its domain, else the live deployment's static URL.
    fn production_url(&self) -> Result<Option<String>, DeployError> {
        if let Ok(g) = self.service_url.lock()
            && let Some(u) = g.as_ref()
        {
            return Ok(Some(u.clone()));
        }
        let url = match self.domain_url(&self.cfg.environment)? {
            Some(u) => Some(u),
            None => self
                .serving()?
                .and_then(|d| d.url)
                .map(|u| self.with_scheme(&u)),
        };
        if let (Ok(mut g), Some(u)) = (self.service_url.lock(), url.as_ref()) {
            *g = Some(u.clone());
        }
        Ok(url)
    }

    /// Lists deployments for a wait loop: a few consecutive transport
    /// failures (a network blip during a 15-minute wait) are ridden out.
    fn poll_deployments(
        &self,
        environment: &str,
        failures: &mut u32,
    ) -> Result<Option<Vec<RailwayDeployment>>, DeployError> {
        match self.deployments(environment, None, 20) {
            Ok(l) => {
                *failures = 0;
                Ok(Some(l))
            }
            Err(e) if is_transient(&e) && *failures + 1 < TRANSIENT_POLLS => {
                *failures += 1;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Waits until the newest deployment of `sha` in `environment` is
    /// terminal. With `trigger`, asks Railway to deploy `sha` if no
    /// deployment of it exists `trigger_after` into the wait.
    fn wait_for(
        &self,
        environment: &str,
        label: &str,
        sha: &str,
        deadline: Instant,
        trigger: bool,
    ) -> Result<RailwayDeployment, DeployError> {
        let start = Instant::now();
        let mut triggered = !trigger;
        let mut failures = 0;
        let mut last: Option<RailwayDeployment> = None;
        loop {
            if let Some(list) = self.poll_deployments(environment, &mut failures)? {
                match of_commit(&list, sha).cloned() {
                    Some(d) => match classify(&d.status) {
                        Phase::Live => return Ok(d),
                        Phase::Failed(why) => {
                            return Err(DeployError::Failed(format!(
                                "Railway deployment {} of {} in {label} is {}: {why}",
                                d.id,
                                short(sha),
                                d.status
                            )));
                        }
                        Phase::Running => last = Some(d),
                    },
                    None if !triggered && start.elapsed() >= self.cfg.trigger_after.0 => {
                        // Railway did not start it by itself (auto-deploy off,
                        // or the push event got lost): ask for exactly this
                        // commit. There is no deployment of it yet (just
                        // looked), so if the answer is lost, one showing up
                        // tells that Railway started it.
                        let what = format!(
                            "whether the service's deployments in {label} include one of commit {}",
                            short(sha)
                        );
                        let sent = self.mutate(
                            &DEPLOY_COMMIT,
                            json!({ "environmentId": environment, "serviceId": self.cfg.service, "commitSha": sha }),
                            environment,
                            &what,
                            |l| of_commit(l, sha).cloned(),
                        )?;
                        if let Applied::Seen(d) = sent {
                            // The next poll follows it like any deployment of the sha.
                            last = Some(d);
                        }
                        triggered = true;
                    }
                    None => {}
                }
            }
            if Instant::now() >= deadline {
                let seen = match &last {
                    Some(d) => format!("its deployment {} was still {}", d.id, d.status),
                    None => "no deployment of it showed up".to_string(),
                };
                return Err(DeployError::Failed(format!(
                    "Railway did not finish deploying {} in {label} within {}s ({seen}); it may still be running: check the service on Railway, then run this again",
                    short(sha),
                    start.elapsed().as_secs()
                )));
            }
            self.sleep_until(deadline);
        }
    }

    fn sleep_until(&self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        std::thread::sleep(
            self.cfg
                .poll_interval
                .0
                .min(left.max(Duration::from_millis(1))),
        );
    }

    /// The deployment to go back to: `previous` (recorded before the
    /// merge), else the newest one of `sha` that served at some point
    /// (superseded deployments are `REMOVED`), preferring one Railway can
    /// still roll back to.
    fn rollback_target(
        &self,
        sha: &str,
        previous: Option<&str>,
    ) -> Result<RailwayDeployment, DeployError> {
        if let Some(id) = previous {
            let d = self.deployment(id)?;
            if let Some(env) = &d.environment
                && env != &self.cfg.environment
            {
                return Err(DeployError::Failed(format!(
                    "Railway deployment {id} is in environment {env}, not in production ({}): refusing to roll production back to it",
                    self.cfg.environment
                )));
            }
            if let Some(svc) = &d.service
                && svc != &self.cfg.service
            {
                return Err(DeployError::Failed(format!(
                    "Railway deployment {id} belongs to service {svc}, not to {}: refusing to roll production back to it",
                    self.cfg.service
                )));
            }
            return Ok(d);
        }
        let candidates: Vec<RailwayDeployment> = self
            .deployments(
                &self.cfg.environment,
                Some(&["SUCCESS", "SLEEPING", "REMOVED"]),
                50,
            )?
            .into_iter()
            .filter(|d| same_commit(d.commit.as_deref(), sha))
            .collect();
        let pick = candidates
            .iter()
            .find(|d| d.can_rollback)
            .or_else(|| candidates.first())
            .cloned();
        pick.ok_or_else(|| {
            DeployError::Failed(format!(
                "Railway has no earlier production deployment of {} to roll back to: roll back from Railway's dashboard, or deploy that commit",
                if sha.is_empty() { "(unknown commit)" } else { short(sha) }
            ))
        })
    }
}

/// How a Railway production deploy got its build: Railway builds every
/// deploy of main itself and cannot promote the PR environment's image, so
/// the report says it built; when the merge's tree equals the previewed
/// tree it says that too (the same files were tested, not the same build).
fn production_build(ctx: &DeployCtx) -> BuildReport {
    let same_tree = ctx
        .previewed
        .as_ref()
        .filter(|p| ctx.tree.as_deref() == Some(p.tree.as_str()));
    BuildReport {
        promoted_from: None,
        built: true,
        build_ms: None,
        note: same_tree.map(|p| {
            format!(
                "the tree equals the PR environment's deployed tree ({}): Railway still builds main itself",
                short(&p.sha)
            )
        }),
    }
}

impl Deployer for RailwayDeployer {
    fn deploy_preview(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let pr = ctx.pr.ok_or_else(|| {
            DeployError::Failed(
                "a Railway preview is the PR environment of a pull request: open the PR first (`hotfix push`)".into(),
            )
        })?;
        let start = Instant::now();
        let deadline = start + self.cfg.preview_timeout.0;
        // Railway creates PR environments asynchronously, off GitHub's webhook.
        let env = loop {
            if let Some(e) = self.pr_environment(pr)? {
                break e;
            }
            if Instant::now() >= deadline {
                let token_hint = if self.auth.is_project_token() {
                    " Note: hotfix uses a project token (RAILWAY_TOKEN), which sees one environment only and never PR environments: use a workspace token in RAILWAY_API_TOKEN."
                } else {
                    ""
                };
                return Err(DeployError::Failed(format!(
                    "no Railway PR environment for PR #{pr} after {}: are PR environments enabled for the project (Settings → Environments → Enable PR Environments, `prDeploys`)? Railway only deploys PRs of workspace members (or bots with `botPrEnvironments`).{token_hint}",
                    self.cfg.preview_timeout
                )));
            }
            self.sleep_until(deadline);
        };
        let label = format!("the PR environment of #{pr}");
        let d = self.wait_for(&env, &label, &ctx.sha, deadline, false)?;
        let url = match self.domain_url(&env)? {
            Some(u) => u,
            None => d.url.as_deref().map(|u| self.with_scheme(u)).ok_or_else(|| {
                DeployError::Failed(format!(
                    "{label} runs {} but has no URL: give the service a Railway domain in the base environment (PR environments copy it)",
                    short(&ctx.sha)
                ))
            })?,
        };
        Ok(Deployment {
            id: Some(d.id),
            url: Some(url),
            build: None,
        })
    }

    fn remove_preview(&self, _ctx: &DeployCtx) -> Result<(), DeployError> {
        // Railway deletes a PR environment itself when its PR is merged or closed.
        Ok(())
    }

    fn deploy_production(&self, ctx: &DeployCtx) -> Result<Deployment, DeployError> {
        let deadline = Instant::now() + self.cfg.deploy_timeout.0;
        let d = self.wait_for(
            &self.cfg.environment,
            "production",
            &ctx.sha,
            deadline,
            true,
        )?;
        let url = match self.production_url() {
            Ok(Some(u)) => Some(u),
            _ => d.url.as_deref().map(|u| self.with_scheme(u)),
        };
        Ok(Deployment {
            id: Some(d.id),
            url,
            build: Some(production_build(ctx)),
        })
    }

    fn rollback(&self, ctx: &DeployCtx, previous: Option<&str>) -> Result<(), DeployError> {
        let env = &self.cfg.environment;
        let serving = self.serving()?;
        // Idempotent: production already runs the code (or the deployment) to go back to.
        if let Some(s) = &serving
            && (same_commit(s.commit.as_deref(), &ctx.sha) || previous == Some(s.id.as_str()))
        {
            return Ok(());
        }
        let target = self.rollback_target(&ctx.sha, previous)?;
        let before: HashSet<String> = self
            .deployments(env, None, 50)?
            .into_iter()
            .map(|d| d.id)
            .collect();
        // Sent once; if the answer is lost, a new deployment of the target
        // (or the target serving again) tells whether Railway did it.
        let what = format!(
            "whether production has a new deployment of {} (the rollback to deployment {}) or serves {} again",
            target
                .commit
                .as_deref()
                .map_or("that deployment's commit", short),
            target.id,
            target.id
        );
        let seen = |list: &[RailwayDeployment]| {
            list.iter()
                .find(|d| started_by_rollback(d, &target, &before))
                .or_else(|| newest_live(list).filter(|d| d.id == target.id))
                .map(|d| d.id.clone())
        };
        // While the image is retained, roll back to it; outside the
        // retention window, rebuild that deployment's source.
        let m = if target.can_rollback {
            &ROLLBACK
        } else {
            &REDEPLOY
        };
        let started = match self.mutate(m, json!({ "id": target.id }), env, &what, seen)? {
            Applied::Seen(id) => Some(id),
            Applied::Answered(d) if target.can_rollback => {
                let r: Option<schema::RollbackData> = serde_json::from_value(d).ok();
                if r.and_then(|r| r.deployment_rollback) != Some(true) {
                    return Err(DeployError::Failed(format!(
                        "Railway declined to roll back to deployment {}: roll back from Railway's dashboard",
                        target.id
                    )));
                }
                None
            }
            Applied::Answered(d) => serde_json::from_value::<schema::RedeployData>(d)
                .ok()
                .and_then(|r| r.deployment_redeploy)
                .and_then(|n| n.id),
        };
        // A deployment started by this rollback: the redeploy's id (or the
        // one the check saw), else a new one of the target's commit.
        let ours = |d: &RailwayDeployment| match &started {
            Some(id) => &d.id == id,
            None => started_by_rollback(d, &target, &before),
        };
        let start = Instant::now();
        let deadline = start + self.cfg.deploy_timeout.0;
        let mut failures = 0;
        let mut last = String::from("nothing yet");
        loop {
            if let Some(list) = self.poll_deployments(env, &mut failures)? {
                // Serving again = the newest live deployment is ours (or the
                // target itself, if Railway reactivated it in place).
                if let Some(live) = newest_live(&list)
                    && (live.id == target.id || ours(live))
                {
                    return Ok(());
                }
                if let Some(d) = list.iter().find(|d| ours(d)) {
                    if let Phase::Failed(why) = classify(&d.status) {
                        return Err(DeployError::Failed(format!(
                            "the rollback deployment {} (to {}) is {}: {why}",
                            d.id, target.id, d.status
                        )));
                    }
                    last = format!("deployment {} was {}", d.id, d.status);
                }
            }
            if Instant::now() >= deadline {
                return Err(DeployError::Failed(format!(
                    "production was not serving deployment {} again within {}s ({last}): check the service on Railway",
                    target.id,
                    start.elapsed().as_secs()
                )));
            }
            self.sleep_until(deadline);
        }
    }

    fn health_url(&self) -> Option<String> {
        if let Some(u) = &self.cfg.health_url {
            return Some(u.clone());
        }
        // None (the caller asks for a health_url) only when Railway has no
        // URL for production or cannot be asked right now.
        self.production_url()
            .ok()
            .flatten()
            .map(|base| format!("{}{}", base.trim_end_matches('/'), self.cfg.health_path))
    }

    fn current_production(&self) -> Result<Option<String>, DeployError> {
        Ok(self.serving()?.map(|d| d.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(classify("SUCCESS"), Phase::Live);
        assert_eq!(classify("WAITING"), Phase::Running);
        assert!(matches!(classify("TELEPORTED"), Phase::Failed(_)));
    }

    #[test]
    fn operation_names_are_the_ones_the_documents_declare() {
        let names: Vec<&str> = [
            &PR_ENVIRONMENTS,
            &DEPLOYMENTS,
            &DEPLOYMENT,
            &DOMAINS,
            &ROLLBACK.0,
            &REDEPLOY.0,
            &DEPLOY_COMMIT.0,
        ]
        .iter()
        .map(|op| op.name())
        .collect();
        assert_eq!(
            names,
            [
                "PrEnvironments",
                "ServiceDeployments",
                "DeploymentById",
                "ServiceDomains",
                "Rollback",
                "Redeploy",
                "DeployCommit"
            ]
        );
    }

    #[test]
    fn mutations_and_reads_have_their_own_types() {
        // `call` retries, so it must only ever carry reads.
        for q in [&PR_ENVIRONMENTS, &DEPLOYMENTS, &DEPLOYMENT, &DOMAINS] {
            assert!(q.0.starts_with("query "), "{}", q.0);
        }
        for m in [&ROLLBACK, &REDEPLOY, &DEPLOY_COMMIT] {
            assert!(m.0.0.starts_with("mutation "), "{}", m.0.0);
        }
    }

    #[test]
    fn commits_match_by_prefix_of_seven_or_more() {
        let sha = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678";
        assert!(same_commit(Some(sha), sha));
        assert!(same_commit(Some("a1b2c3d"), sha));
        assert!(!same_commit(Some("a1b"), sha));
        assert!(!same_commit(None, sha));
        assert!(!same_commit(Some(sha), ""));
    }

    #[test]
    fn the_token_never_shows_in_debug() {
        let a = RailwayAuth::Bearer("rw-secret".into());
        assert!(!format!("{a:?}").contains("rw-secret"));
    }
}
