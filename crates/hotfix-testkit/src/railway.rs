//! A Railway that speaks its public GraphQL API (the schema's field names and
//! shapes) over HTTP on 127.0.0.1, with an in-memory model of environments
//! and deployments whose statuses progress one step per poll.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fake::{FakeServer, Recorded, Reply};

pub const TOKEN: &str = "rw-test-token";

#[derive(Debug, Clone)]
pub struct Dep {
    pub id: String,
    pub env: String,
    pub commit: String,
    /// Statuses still to go through; the last one sticks.
    pub path: Vec<String>,
    pub can_rollback: bool,
}

impl Dep {
    pub fn status(&self) -> String {
        self.path
            .first()
            .cloned()
            .unwrap_or_else(|| "SUCCESS".into())
    }
}

type Hook = dyn Fn(&str, &str) -> Option<Vec<String>> + Send + Sync;
type LiveHook = dyn Fn(&str, &str) + Send + Sync;

#[derive(Default)]
pub struct Model {
    pub deps: Vec<Dep>,
    /// (environment id, PR number)
    pub pr_envs: Vec<(String, u64)>,
    /// environment id -> domain
    pub domains: Vec<(String, String)>,
    /// Called when a deployment becomes SUCCESS in an environment: (env, commit).
    pub on_live: Option<Arc<LiveHook>>,
    /// For an environment and a commit Railway has not deployed yet: the
    /// statuses its deployment goes through (None: Railway does not deploy it by itself).
    pub auto: Option<Arc<Hook>>,
    pub next: u64,
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
        format!("{}/graphql/v2", self.server.url())
    }

    /// The operations sent so far (root field names found in each query).
    pub fn queries(&self) -> Vec<(String, Value)> {
        self.server
            .requests()
            .into_iter()
            .map(|r| {
                let v = r.json();
                (
                    v["query"].as_str().unwrap_or("").to_string(),
                    v["variables"].clone(),
                )
            })
            .collect()
    }
}

fn node(d: &Dep) -> Value {
    json!({
        "id": d.id, "status": d.status(), "createdAt": "2026-11-27T00:00:00Z",
        "staticUrl": Value::Null, "url": Value::Null,
        "canRollback": d.can_rollback, "canRedeploy": true,
        "meta": {"commitHash": d.commit, "branch": "main"},
    })
}

fn add(m: &mut Model, env: &str, commit: &str, path: Vec<String>) -> String {
    m.next += 1;
    let id = format!("dep-{}", m.next);
    m.deps.push(Dep {
        id: id.clone(),
        env: env.into(),
        commit: commit.into(),
        path,
        can_rollback: true,
    });
    id
}

/// Advances every deployment one status; returns the ones that just went live.
fn tick(m: &mut Model) {
    let mut live = vec![];
    for d in m.deps.iter_mut() {
        if d.path.len() > 1 {
            d.path.remove(0);
            if d.path.len() == 1 && d.path[0] == "SUCCESS" {
                live.push((d.env.clone(), d.commit.clone()));
            }
        }
    }
    if let Some(h) = m.on_live.clone() {
        for (e, c) in live {
            h(&e, &c);
        }
    }
}

fn handle(model: &Mutex<Model>, r: &Recorded) -> Reply {
    let authed = r.header("authorization") == Some(&format!("Bearer {TOKEN}"))
        || r.header("project-access-token") == Some(TOKEN);
    if !authed {
        return Reply::json(
            200,
            json!({"data": null, "errors": [{"message": "Not Authorized"}]}),
        );
    }
    if r.method != "POST" || r.route() != "/graphql/v2" {
        return Reply::json(404, json!({"errors": [{"message": "not found"}]}));
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        return Reply::json(400, json!({"errors": [{"message": "bad json"}]}));
    };
    let q = body["query"].as_str().unwrap_or("");
    let v = &body["variables"];
    let Ok(mut m) = model.lock() else {
        return Reply::json(500, json!({}));
    };
    if q.contains("deployments(") {
        tick(&mut m);
        let input = &v["input"];
        let env = input["environmentId"].as_str().unwrap_or("").to_string();
        // Railway deploys what it is told to (e.g. main after a merge) by itself.
        if let Some(auto) = m.auto.clone() {
            for commit in auto_commits(&m, &env) {
                if let Some(path) = auto(&env, &commit) {
                    add(&mut m, &env, &commit, path);
                }
            }
        }
        let only: Vec<String> = input["status"]["in"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let first = v["first"].as_u64().unwrap_or(100) as usize;
        let edges: Vec<Value> = m
            .deps
            .iter()
            .rev()
            .filter(|d| d.env == env)
            .filter(|d| only.is_empty() || only.contains(&d.status()))
            .take(first)
            .map(|d| json!({"node": node(d)}))
            .collect();
        return Reply::json(
            200,
            json!({"data": {"deployments": {"edges": edges, "pageInfo": {"hasNextPage": false, "endCursor": null}}}}),
        );
    }
    if q.contains("environments(") {
        // Two pages, to exercise pagination.
        let after = v["after"].as_str();
        let all: Vec<Value> = m.pr_envs.iter().map(|(id, n)| json!({"node": {"id": id, "name": format!("pr-{n}"), "isEphemeral": true, "meta": {"prNumber": n, "branch": "hotfix"}}})).collect();
        let (page, next) = match after {
            None if all.len() > 1 => (all[..1].to_vec(), true),
            None => (all.clone(), false),
            Some(_) => (all.get(1..).map(|s| s.to_vec()).unwrap_or_default(), false),
        };
        return Reply::json(
            200,
            json!({"data": {"environments": {"edges": page, "pageInfo": {"hasNextPage": next, "endCursor": if next { json!("c1") } else { Value::Null }}}}}),
        );
    }
    if q.contains("domains(") {
        let env = v["environmentId"].as_str().unwrap_or("");
        let doms: Vec<Value> = m
            .domains
            .iter()
            .filter(|(e, _)| e == env)
            .map(|(_, d)| json!({"domain": d}))
            .collect();
        return Reply::json(
            200,
            json!({"data": {"domains": {"serviceDomains": doms, "customDomains": []}}}),
        );
    }
    if q.contains("deploymentRollback(") || q.contains("deploymentRedeploy(") {
        let id = v["id"].as_str().unwrap_or("");
        let Some(src) = m.deps.iter().find(|d| d.id == id).cloned() else {
            return Reply::json(
                200,
                json!({"data": null, "errors": [{"message": "Deployment not found"}]}),
            );
        };
        let new = add(
            &mut m,
            &src.env,
            &src.commit,
            vec!["DEPLOYING".into(), "SUCCESS".into()],
        );
        if q.contains("deploymentRollback(") {
            return Reply::json(200, json!({"data": {"deploymentRollback": true}}));
        }
        return Reply::json(
            200,
            json!({"data": {"deploymentRedeploy": {"id": new, "status": "DEPLOYING"}}}),
        );
    }
    if q.contains("serviceInstanceDeployV2(") {
        let env = v["environmentId"].as_str().unwrap_or("").to_string();
        let sha = v["commitSha"].as_str().unwrap_or("").to_string();
        let id = add(
            &mut m,
            &env,
            &sha,
            vec!["BUILDING".into(), "SUCCESS".into()],
        );
        return Reply::json(200, json!({"data": {"serviceInstanceDeployV2": id}}));
    }
    if q.contains("deployment(") {
        let id = v["id"].as_str().unwrap_or("");
        return match m.deps.iter().find(|d| d.id == id) {
            Some(d) => Reply::json(200, json!({"data": {"deployment": node(d)}})),
            None => Reply::json(
                200,
                json!({"data": null, "errors": [{"message": "Deployment not found"}]}),
            ),
        };
    }
    Reply::json(
        200,
        json!({"data": null, "errors": [{"message": "unsupported operation in the fake"}]}),
    )
}

/// Commits the `auto` hook may want deployed: asked through the hook itself
/// with an empty commit, which returns them as a list in its first element.
fn auto_commits(m: &Model, env: &str) -> Vec<String> {
    let Some(auto) = &m.auto else { return vec![] };
    let wanted = auto(env, "").unwrap_or_default();
    wanted
        .into_iter()
        .filter(|c| !m.deps.iter().any(|d| d.env == env && d.commit == *c))
        .collect()
}
