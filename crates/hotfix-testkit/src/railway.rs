//! A Railway that speaks its public GraphQL API over HTTP on 127.0.0.1: the
//! operations and field names of the schema, dispatched on `operationName`
//! (which must name the operation in the document), with a small model of PR
//! environments and deployments. Statuses move one step per poll of their
//! environment, and a deployment going live supersedes the previous live one
//! (`REMOVED`), as on Railway.
//!
//! The deployer's contract tests and the end-to-end test of the binary both
//! run against this one fake; each request also checks the project and
//! service ids it carries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fake::{FakeServer, Recorded, Reply};

/// The only token the fake accepts (as `Bearer` or `Project-Access-Token`).
pub const TOKEN: &str = "rw-TEST-token-0123456789-SECRET";
/// Where the API answers.
pub const PATH: &str = "/graphql/v2";
/// The project and service ids every request must carry.
pub const PROJECT: &str = "proj";
pub const SERVICE: &str = "svc";

#[derive(Debug, Clone)]
pub struct Dep {
    pub id: String,
    pub env: String,
    pub commit: String,
    /// Statuses still to go through; the last one sticks.
    pub path: Vec<String>,
    pub can_rollback: bool,
    pub static_url: Option<String>,
}

impl Dep {
    /// A deployment that can be rolled back to, without a static URL.
    pub fn new(id: &str, env: &str, commit: &str, path: &[&str]) -> Dep {
        Dep {
            id: id.into(),
            env: env.into(),
            commit: commit.into(),
            path: statuses(path),
            can_rollback: true,
            static_url: None,
        }
    }

    pub fn status(&self) -> String {
        self.path.first().cloned().unwrap_or_default()
    }
}

pub fn statuses(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

type Builds = dyn Fn(&str) -> Vec<String> + Send + Sync;
type OnLive = dyn Fn(&str, &str) + Send + Sync;

pub struct Model {
    /// PR environments: (id, PR number, repo).
    pub pr_envs: Vec<(String, u64, String)>,
    /// PR environments are visible from this many `PrEnvironments` calls on.
    pub envs_visible_after: usize,
    pub env_calls: usize,
    /// Page size the fake uses for environments, whatever `first` says (2).
    pub env_page: usize,
    /// Oldest first.
    pub deps: Vec<Dep>,
    /// environment id -> (service domains, custom domains)
    pub domains: HashMap<String, (Vec<String>, Vec<String>)>,
    /// Railway starts these by itself on the Nth poll of their environment:
    /// (environment, commit, poll, statuses).
    pub auto: Vec<(String, String, usize, Vec<String>)>,
    /// What Railway builds by itself in an environment right now (`main`'s
    /// head in production, a PR's head in its PR environment): each commit
    /// not deployed there yet gets a deployment (QUEUED, BUILDING, SUCCESS)
    /// when that environment is polled.
    pub builds: Option<Arc<Builds>>,
    /// Called when a deployment goes live: (environment, commit).
    pub on_live: Option<Arc<OnLive>>,
    pub polls: HashMap<String, usize>,
    /// Statuses of a deployment a rollback / redeploy creates.
    pub new_path: Vec<String>,
    pub next: u64,
}

impl Default for Model {
    fn default() -> Model {
        Model {
            pr_envs: vec![],
            envs_visible_after: 0,
            env_calls: 0,
            env_page: 2,
            deps: vec![],
            domains: HashMap::new(),
            auto: vec![],
            builds: None,
            on_live: None,
            polls: HashMap::new(),
            new_path: statuses(&["DEPLOYING", "SUCCESS"]),
            next: 0,
        }
    }
}

impl Model {
    /// A new deployment `dep-new-<n>`.
    pub fn add(&mut self, env: &str, commit: &str, path: Vec<String>) -> String {
        self.next += 1;
        let id = format!("dep-new-{}", self.next);
        let mut d = Dep::new(&id, env, commit, &[]);
        d.path = path;
        self.deps.push(d);
        id
    }

    /// One poll of an environment: Railway's own deploys start, statuses
    /// move one step, a deployment that goes live removes the previous one.
    fn tick(&mut self, env: &str) {
        let n = {
            let c = self.polls.entry(env.to_string()).or_default();
            *c += 1;
            *c
        };
        let due: Vec<_> = self
            .auto
            .iter()
            .filter(|(e, _, at, _)| e == env && *at == n)
            .cloned()
            .collect();
        for (e, c, _, p) in due {
            self.add(&e, &c, p);
        }
        if let Some(builds) = self.builds.clone() {
            for c in builds(env) {
                if !self.deps.iter().any(|d| d.env == env && d.commit == c) {
                    self.add(env, &c, statuses(&["QUEUED", "BUILDING", "SUCCESS"]));
                }
            }
        }
        let mut live = vec![];
        for (i, d) in self.deps.iter_mut().enumerate() {
            if d.env == env && d.path.len() > 1 {
                d.path.remove(0);
                if d.path.len() == 1 && d.path[0] == "SUCCESS" {
                    live.push(i);
                }
            }
        }
        for &i in &live {
            for (j, d) in self.deps.iter_mut().enumerate() {
                if j != i && d.env == env && d.status() == "SUCCESS" {
                    d.path = statuses(&["REMOVED"]);
                }
            }
        }
        if let Some(h) = self.on_live.clone() {
            for i in live {
                h(env, &self.deps[i].commit);
            }
        }
    }
}

fn node(d: &Dep) -> Value {
    json!({
        "id": d.id, "status": d.status(), "createdAt": "2026-11-27T00:00:00Z",
        "statusUpdatedAt": "2026-11-27T00:00:01Z", "environmentId": d.env, "serviceId": SERVICE,
        "staticUrl": d.static_url, "url": Value::Null,
        "canRollback": d.can_rollback, "canRedeploy": true,
        "meta": {"commitHash": d.commit, "branch": "main", "repo": "acme/shop", "reason": "deploy"},
    })
}

fn gql_error(msg: &str) -> Reply {
    Reply::json(
        200,
        json!({"data": null, "errors": [{"message": msg, "locations": [], "path": []}]}),
    )
}

fn data(v: Value) -> Reply {
    Reply::json(200, json!({ "data": v }))
}

/// Answers one request from the model (public so that a test can put a
/// flaky server in front of it).
pub fn handle(m: &Mutex<Model>, r: &Recorded) -> Reply {
    let authed = r.header("authorization") == Some(&format!("Bearer {TOKEN}"))
        || r.header("project-access-token") == Some(TOKEN);
    if !authed {
        return gql_error("Not Authorized");
    }
    if r.method != "POST" || r.route() != PATH {
        return Reply::json(404, json!({"errors": [{"message": "not found"}]}));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        return Reply::json(400, json!({"errors": [{"message": "bad json"}]}));
    };
    let op = body["operationName"].as_str().unwrap_or("");
    let q = body["query"].as_str().unwrap_or("");
    let v = &body["variables"];
    // The operation named is the one in the document.
    if !(q.starts_with(&format!("query {op}(")) || q.starts_with(&format!("mutation {op}("))) {
        return gql_error(&format!("Unknown operation named \"{op}\"."));
    }
    let mut m = m.lock().unwrap();
    match op {
        "PrEnvironments" => {
            assert!(q.contains("isEphemeral: true"), "{q}");
            assert_eq!(v["projectId"], PROJECT);
            m.env_calls += 1;
            if m.env_calls <= m.envs_visible_after {
                return data(
                    json!({"environments": {"edges": [], "pageInfo": {"hasNextPage": false, "endCursor": null}}}),
                );
            }
            let from: usize = v["after"]
                .as_str()
                .and_then(|c| c.strip_prefix("cur-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let to = (from + m.env_page).min(m.pr_envs.len());
            let edges: Vec<Value> = m.pr_envs[from..to]
                .iter()
                .map(|(id, n, repo)| {
                    json!({"node": {"id": id, "name": format!("shop-pr-{n}"), "isEphemeral": true,
                        "meta": {"prNumber": n, "prRepo": repo, "branch": "hotfix/x"}}})
                })
                .collect();
            let more = to < m.pr_envs.len();
            data(
                json!({"environments": {"edges": edges, "pageInfo": {"hasNextPage": more, "endCursor": format!("cur-{to}")}}}),
            )
        }
        "ServiceDeployments" => {
            let input = &v["input"];
            assert_eq!(input["projectId"], PROJECT);
            assert_eq!(input["serviceId"], SERVICE);
            let env = input["environmentId"].as_str().unwrap().to_string();
            m.tick(&env);
            let only: Vec<String> = input["status"]["in"]
                .as_array()
                .map(|a| a.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let first = v["first"].as_u64().unwrap_or(100) as usize;
            let edges: Vec<Value> = m
                .deps
                .iter()
                .rev()
                .filter(|d| d.env == env)
                .filter(|d| only.is_empty() || only.contains(&d.status()))
                .take(first)
                .map(|d| json!({"cursor": d.id, "node": node(d)}))
                .collect();
            data(
                json!({"deployments": {"edges": edges, "pageInfo": {"hasNextPage": false, "endCursor": null}}}),
            )
        }
        "DeploymentById" => match m.deps.iter().find(|d| d.id == v["id"]) {
            Some(d) => data(json!({"deployment": node(d)})),
            None => gql_error("Deployment not found"),
        },
        "ServiceDomains" => {
            assert_eq!(v["projectId"], PROJECT);
            assert_eq!(v["serviceId"], SERVICE);
            let env = v["environmentId"].as_str().unwrap();
            let (s, c) = m.domains.get(env).cloned().unwrap_or_default();
            let s: Vec<Value> = s.iter().map(|d| json!({"domain": d})).collect();
            let c: Vec<Value> = c.iter().map(|d| json!({"domain": d})).collect();
            data(json!({"domains": {"serviceDomains": s, "customDomains": c}}))
        }
        "Rollback" | "Redeploy" => {
            let Some(src) = m.deps.iter().find(|d| d.id == v["id"]).cloned() else {
                return gql_error("Deployment not found");
            };
            let np = m.new_path.clone();
            if op == "Rollback" {
                // Boolean!: a selection set would be a validation error.
                if !q.contains("deploymentRollback(id: $id) }") {
                    return gql_error("Field \"deploymentRollback\" must not have a selection");
                }
                if !src.can_rollback {
                    return gql_error("Deployment cannot be rolled back");
                }
                m.add(&src.env, &src.commit, np);
                data(json!({"deploymentRollback": true}))
            } else {
                let id = m.add(&src.env, &src.commit, np);
                data(json!({"deploymentRedeploy": {"id": id, "status": "INITIALIZING"}}))
            }
        }
        "DeployCommit" => {
            let env = v["environmentId"].as_str().unwrap().to_string();
            let sha = v["commitSha"].as_str().unwrap().to_string();
            assert_eq!(v["serviceId"], SERVICE);
            let np = statuses(&["BUILDING", "DEPLOYING", "SUCCESS"]);
            let id = m.add(&env, &sha, np);
            data(json!({"serviceInstanceDeployV2": id}))
        }
        other => gql_error(&format!("Cannot query operation {other}")),
    }
}

pub struct FakeRailway {
    pub server: FakeServer,
    pub model: Arc<Mutex<Model>>,
}

impl FakeRailway {
    pub fn start(model: Model) -> FakeRailway {
        let model = Arc::new(Mutex::new(model));
        let m = model.clone();
        let server = FakeServer::start(move |r| handle(&m, r));
        FakeRailway { server, model }
    }

    pub fn url(&self) -> String {
        format!("{}{PATH}", self.server.url())
    }

    /// (operationName, variables) of every request so far.
    pub fn ops(&self) -> Vec<(String, Value)> {
        self.server
            .requests()
            .iter()
            .map(|r| {
                let v = r.json();
                (
                    v["operationName"].as_str().unwrap_or("").to_string(),
                    v["variables"].clone(),
                )
            })
            .collect()
    }

    pub fn op_names(&self) -> Vec<String> {
        self.ops().into_iter().map(|(n, _)| n).collect()
    }

    pub fn status_of(&self, id: &str) -> String {
        let m = self.model.lock().unwrap();
        m.deps.iter().find(|d| d.id == id).unwrap().status()
    }
}
