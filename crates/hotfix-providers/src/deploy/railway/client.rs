//! Railway's GraphQL API as hotfix speaks it: the operations (validated
//! against the schema), one request at a time (`send`), reads retried
//! through the providers' HTTP layer (`call`), mutations sent at most once
//! per attempt with the "did it take effect?" check (`mutate`), and typed
//! answers (`call_typed`, `schema`).

use std::time::Duration;

use hotfix_core::provider::DeployError;
use serde_json::{Value, json};

use super::{RailwayAuth, RailwayDeployer, RailwayDeployment, detail};
use crate::http::Attempt;

/// A GraphQL operation from `railway_hotfix_operations.graphql` (field
/// selections trimmed to what hotfix reads; validated against the schema).
/// Its name, sent as `operationName`, is the one the document declares.
pub(super) struct Op(pub(super) &'static str);

impl Op {
    /// `PrEnvironments` of `query PrEnvironments(...) {...}`.
    pub(super) fn name(&self) -> &'static str {
        self.0.split([' ', '(']).nth(1).unwrap_or_default()
    }
}

/// A GraphQL mutation: its own type so that it cannot go through
/// [`RailwayDeployer::call`] (which retries) by mistake. A mutation that is
/// sent twice can start two deploys; [`RailwayDeployer::mutate`] sends it
/// once and asks Railway what happened when the answer is lost.
pub(super) struct Mutation(pub(super) Op);

impl Mutation {
    pub(super) fn name(&self) -> &'static str {
        self.0.name()
    }
}

pub(super) const PR_ENVIRONMENTS: Op = Op(
    "query PrEnvironments($projectId: String!, $first: Int, $after: String) { environments(projectId: $projectId, isEphemeral: true, first: $first, after: $after) { edges { node { id name isEphemeral meta { prNumber prRepo branch } } } pageInfo { hasNextPage endCursor } } }",
);
pub(super) const DEPLOYMENTS: Op = Op(
    "query ServiceDeployments($input: DeploymentListInput!, $first: Int) { deployments(input: $input, first: $first) { edges { node { id status createdAt statusUpdatedAt staticUrl url canRollback canRedeploy meta } } pageInfo { hasNextPage endCursor } } }",
);
pub(super) const DEPLOYMENT: Op = Op(
    "query DeploymentById($id: String!) { deployment(id: $id) { id status environmentId serviceId staticUrl url canRollback canRedeploy meta } }",
);
pub(super) const DOMAINS: Op = Op(
    "query ServiceDomains($projectId: String!, $environmentId: String!, $serviceId: String!) { domains(projectId: $projectId, environmentId: $environmentId, serviceId: $serviceId) { serviceDomains { domain } customDomains { domain } } }",
);
/// `deploymentRollback` returns `Boolean!`: no selection set (the docs' example is wrong).
pub(super) const ROLLBACK: Mutation = Mutation(Op(
    "mutation Rollback($id: String!) { deploymentRollback(id: $id) }",
));
pub(super) const REDEPLOY: Mutation = Mutation(Op(
    "mutation Redeploy($id: String!) { deploymentRedeploy(id: $id) { id status } }",
));
pub(super) const DEPLOY_COMMIT: Mutation = Mutation(Op(
    "mutation DeployCommit($environmentId: String!, $serviceId: String!, $commitSha: String) { serviceInstanceDeployV2(environmentId: $environmentId, serviceId: $serviceId, commitSha: $commitSha) }",
));

/// Statuses of a deployment that serves (for `status: { in: [...] }`).
pub(super) const LIVE: &[&str] = &["SUCCESS", "SLEEPING"];
/// Consecutive transport failures a wait loop rides out before giving up.
pub(super) const TRANSIENT_POLLS: u32 = 3;

/// How one request to the API went wrong, sorted by what it says about
/// whether Railway acted on it: that decides whether it may be sent again.
/// Each carries the error a read reports (a read can always be asked again).
pub(super) enum SendError {
    /// It never left hotfix (refused connection, unknown host): nothing was applied.
    NotSent(DeployError),
    /// Railway may have acted on it: the connection dropped or timed out
    /// after sending, or a 2xx came back that hotfix cannot read.
    Lost(DeployError),
    /// 429 (Railway did not process it) or 5xx (Railway may have processed
    /// it before failing).
    Busy {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// A definitive answer (4xx, `errors` in the body): Railway did not do it.
    Refused(DeployError),
}

/// What became of a mutation sent by [`RailwayDeployer::mutate`].
pub(super) enum Applied<T> {
    /// Railway answered it: its `data`.
    Answered(Value),
    /// Its answer was lost, but Railway shows that it took effect: what the check found.
    Seen(T),
}

impl RailwayDeployer {
    /// Never lets the token out in a message, and keeps messages short.
    pub(super) fn scrub(&self, s: &str) -> String {
        let mut s = crate::http::scrub(s, &[self.auth.secret()]);
        if s.len() > 400 {
            let mut cut = 400;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
            s.push('…');
        }
        s
    }

    pub(super) fn auth_error(&self, what: &str) -> DeployError {
        let scope = if self.auth.is_project_token() {
            "a project token (sent as Project-Access-Token) sees one environment of one project only; for PR environments and production use a workspace token in RAILWAY_API_TOKEN"
        } else {
            "use an account or workspace token with access to the project (sent as Authorization: Bearer)"
        };
        DeployError::Failed(format!(
            "Railway refused the token in {} ({what}): check that it is set, valid and not revoked; {scope}",
            self.auth.env_name()
        ))
    }

    /// The request body of one operation.
    pub(super) fn body(op: &Op, variables: Value) -> String {
        json!({ "operationName": op.name(), "query": op.0, "variables": variables }).to_string()
    }

    /// One request, never repeated here: returns `data`, or what went wrong
    /// sorted by whether Railway may have acted on it (the caller decides
    /// whether it may be sent again).
    pub(super) fn send(&self, op: &Op, body: &str) -> Result<Value, SendError> {
        let mut req = self
            .agent
            .post(&self.cfg.api_url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        // An empty token (read-only commands without one) sends no header.
        match &self.auth {
            RailwayAuth::Bearer(t) if !t.is_empty() => {
                req = req.header("Authorization", &format!("Bearer {t}"));
            }
            RailwayAuth::ProjectAccessToken(t) if !t.is_empty() => {
                req = req.header("Project-Access-Token", t);
            }
            _ => {}
        }
        let mut resp = req.send(body.as_bytes()).map_err(|e| {
            let m = DeployError::Unreachable(format!(
                "Railway API ({}) {}: {}",
                self.cfg.api_url,
                op.name(),
                self.scrub(&e.to_string())
            ));
            if crate::http::never_sent(&e) {
                SendError::NotSent(m)
            } else {
                SendError::Lost(m)
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::http::parse_retry_after);
        let text = resp
            .body_mut()
            .with_config()
            .limit(8 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| {
                SendError::Lost(DeployError::Unreachable(format!(
                    "Railway API {}: reading the answer (HTTP {status}): {}",
                    op.name(),
                    self.scrub(&e.to_string())
                )))
            })?;
        if status == 429 || status >= 500 {
            return Err(SendError::Busy {
                status,
                retry_after,
            });
        }
        if status == 401 || status == 403 {
            return Err(SendError::Refused(
                self.auth_error(&format!("HTTP {status}")),
            ));
        }
        let v: Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) if (200..300).contains(&status) => {
                return Err(SendError::Lost(DeployError::Failed(format!(
                    "Railway API sent a malformed answer to {} (HTTP {status}, not JSON: {e}); is api_url `{}` Railway's GraphQL endpoint?",
                    op.name(),
                    self.cfg.api_url
                ))));
            }
            Err(_) => {
                return Err(SendError::Refused(DeployError::Failed(format!(
                    "Railway API answered HTTP {status} to {}: {}",
                    op.name(),
                    self.scrub(text.trim())
                ))));
            }
        };
        if let Some(errs) = v["errors"].as_array().filter(|e| !e.is_empty()) {
            let msg = errs
                .iter()
                .map(|e| e["message"].as_str().unwrap_or("(no message)"))
                .collect::<Vec<_>>()
                .join("; ");
            let lower = msg.to_ascii_lowercase();
            if lower.contains("not authorized") || lower.contains("unauthorized") {
                return Err(SendError::Refused(
                    self.auth_error(&format!("\"{}\"", self.scrub(&msg))),
                ));
            }
            if lower.contains("project token not found") {
                return Err(SendError::Refused(DeployError::Failed(
                    "Railway does not know the project token in RAILWAY_TOKEN: create a new one (or use a workspace token in RAILWAY_API_TOKEN)".into(),
                )));
            }
            return Err(SendError::Refused(DeployError::Failed(format!(
                "Railway API refused {}: {}",
                op.name(),
                self.scrub(&msg)
            ))));
        }
        if !(200..300).contains(&status) {
            return Err(SendError::Refused(DeployError::Failed(format!(
                "Railway API answered HTTP {status} to {}",
                op.name()
            ))));
        }
        match v.get("data") {
            Some(d) if d.is_object() => Ok(d.clone()),
            _ => Err(SendError::Lost(DeployError::Failed(format!(
                "Railway API sent a malformed answer to {} (no `data` and no `errors`)",
                op.name()
            )))),
        }
    }

    /// One GraphQL read, with bounded retries on 429 (honouring
    /// `Retry-After`, capped by `max_retry_wait`) and on 5xx (exponential
    /// backoff from 250ms, same cap). Returns `data`. Reads only: asking
    /// again changes nothing on Railway, which is what makes retrying safe
    /// (mutations go through [`RailwayDeployer::mutate`]).
    pub(super) fn call(&self, op: &Op, variables: Value) -> Result<Value, DeployError> {
        debug_assert!(op.0.starts_with("query "), "{} is not a read", op.name());
        let body = Self::body(op, variables);
        let policy = crate::http::Retry {
            max_retries: self.cfg.max_retries,
            max_wait: self.cfg.max_retry_wait.0,
        };
        let mut attempt = |attempt: u32| {
            let (status, retry_after) = match self.send(op, &body) {
                Ok(d) => return Attempt::Done(Ok(d)),
                Err(SendError::Busy {
                    status,
                    retry_after,
                }) => (status, retry_after),
                Err(SendError::NotSent(e) | SendError::Lost(e) | SendError::Refused(e)) => {
                    return Attempt::Done(Err(e));
                }
            };
            let what = if status == 429 {
                "rate-limited hotfix (429)".to_string()
            } else {
                format!("answered {status}")
            };
            let backoff = crate::http::Retry::backoff(Duration::from_millis(250), attempt);
            Attempt::Busy {
                // Railway's `Retry-After` on a 429; our backoff otherwise.
                wait: if status == 429 {
                    retry_after.unwrap_or(backoff)
                } else {
                    backoff
                },
                last: DeployError::Unreachable(format!(
                    "Railway API {what} {} times in a row for {}; try again later (status: https://status.railway.com)",
                    attempt + 1,
                    op.name()
                )),
            }
        };
        policy.run(&mut attempt).map_err(|g| g.last)
    }

    /// Sends a mutation at most once per attempt, never on a timer: a 5xx
    /// or a lost answer can come after Railway applied it, and a blind
    /// resend would then start a second deploy or rollback. So:
    ///
    /// - an answer (`data`) is returned as is;
    /// - a refusal (4xx, 429, `errors`) is final: Railway did not apply it;
    /// - an ambiguous failure (5xx, connection dropped or timed out after
    ///   sending, unreadable 2xx) makes hotfix look at the deployments of
    ///   `environment` with `seen` to tell whether the change took effect.
    ///   If it did, that is the outcome ([`Applied::Seen`]); if it
    ///   verifiably did not, the mutation is sent once more (safe: nothing
    ///   was applied), and not a third time; if Railway cannot be asked,
    ///   the error says that the change may or may not have been applied
    ///   and that `what` is the thing to look at before trying again.
    ///
    /// Every error says whether the change was applied, because that
    /// decides what a person may safely do next: `Unreachable` when nothing
    /// was (running this again is safe), `Failed` otherwise.
    pub(super) fn mutate<T>(
        &self,
        m: &Mutation,
        variables: Value,
        environment: &str,
        what: &str,
        seen: impl Fn(&[RailwayDeployment]) -> Option<T>,
    ) -> Result<Applied<T>, DeployError> {
        let op = m.name();
        let body = Self::body(&m.0, variables);
        let mut first: Option<String> = None;
        loop {
            let cause = match self.send(&m.0, &body) {
                Ok(d) => return Ok(Applied::Answered(d)),
                Err(SendError::NotSent(e)) => {
                    return Err(DeployError::Unreachable(format!(
                        "Railway API {op} was not sent ({}): nothing was applied; run this again once Railway is reachable",
                        detail(e)
                    )));
                }
                Err(SendError::Busy { status: 429, .. }) => {
                    return Err(DeployError::Unreachable(format!(
                        "Railway API rate-limited {op} (HTTP 429): Railway did not apply it, and hotfix does not resend a change by itself; run this again in a minute"
                    )));
                }
                Err(SendError::Refused(e)) => {
                    return Err(DeployError::Failed(format!(
                        "{} (Railway refused {op}, so it was not applied; hotfix does not send a refused change again)",
                        detail(e)
                    )));
                }
                Err(SendError::Busy { status, .. }) => {
                    format!("Railway API answered HTTP {status}")
                }
                Err(SendError::Lost(e)) => detail(e),
            };
            match self.confirm(environment, &seen) {
                Ok(Some(t)) => return Ok(Applied::Seen(t)),
                // Verified not applied: one more send is safe, a second one
                // after that would be a retry loop in disguise.
                Ok(None) => match first.take() {
                    None => first = Some(cause),
                    Some(first) => {
                        return Err(DeployError::Unreachable(format!(
                            "Railway API {op} failed twice ({first}; then {cause}) and both times Railway showed it had not taken effect: nothing was applied. Try again later (status: https://status.railway.com)"
                        )));
                    }
                },
                Err(e) => {
                    return Err(DeployError::Failed(format!(
                        "Railway API {op} may or may not have been applied: its answer was lost ({cause}) and hotfix could not find out from Railway whether it took effect ({}). Before running this again, check on Railway {what}: if so, it went through, and sending it again would do it twice",
                        detail(e)
                    )));
                }
            }
        }
    }

    /// Looks at the deployments of `environment` for [`RailwayDeployer::mutate`]:
    /// after one poll interval (Railway records a change it applied by
    /// then), riding out a few transport failures like the wait loops do,
    /// since the outage that lost the answer may not be over.
    pub(super) fn confirm<T>(
        &self,
        environment: &str,
        seen: &impl Fn(&[RailwayDeployment]) -> Option<T>,
    ) -> Result<Option<T>, DeployError> {
        let mut failures = 0;
        loop {
            std::thread::sleep(self.cfg.poll_interval.0);
            if let Some(list) = self.poll_deployments(environment, &mut failures)? {
                return Ok(seen(&list));
            }
        }
    }

    /// A read whose `data` is deserialised into `T`: a missing or
    /// mistyped field is a malformed answer naming the field's path.
    pub(super) fn call_typed<T: serde::de::DeserializeOwned>(
        &self,
        op: &Op,
        variables: Value,
    ) -> Result<T, DeployError> {
        let data = self.call(op, variables)?;
        serde_path_to_error::deserialize(data).map_err(|e| {
            DeployError::Failed(format!(
                "Railway API sent a malformed answer to {}: {} ({})",
                op.name(),
                e.path(),
                e.inner()
            ))
        })
    }
}
