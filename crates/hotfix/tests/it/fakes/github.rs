//! A GitHub that speaks the documented REST/GraphQL API over HTTP on
//! 127.0.0.1 and is backed by the real bare repository: merges and reverts
//! are real commits in `origin.git`, so the rest of the workflow (backport,
//! rollback) sees exactly what it would see after a GitHub merge.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use hotfix_testkit::fake::{FakeServer, Recorded, Reply};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Pr {
    pub number: u64,
    pub title: String,
    pub body: String,
    pub head: String,
    pub base: String,
    pub state: String,
    pub merged: bool,
    pub merge_sha: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub prs: Vec<Pr>,
    /// (pr, login, commit_id, state)
    pub reviews: Vec<(u64, String, String, String)>,
    pub checks_conclusion: String,
}

pub struct FakeGithub {
    pub server: FakeServer,
    pub state: Arc<Mutex<State>>,
    pub origin: PathBuf,
}

pub const OWNER: &str = "acme";
pub const REPO: &str = "pdf-service";

pub fn git(origin: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(origin)
        .env("GIT_AUTHOR_NAME", "GitHub")
        .env("GIT_AUTHOR_EMAIL", "noreply@github.com")
        .env("GIT_COMMITTER_NAME", "GitHub")
        .env("GIT_COMMITTER_EMAIL", "noreply@github.com")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn pr_json(origin: &Path, p: &Pr) -> Value {
    let head_sha =
        git(origin, &["rev-parse", &format!("refs/heads/{}", p.head)]).unwrap_or_default();
    json!({
        "url": format!("https://api.github.com/repos/{OWNER}/{REPO}/pulls/{}", p.number),
        "id": 1000 + p.number,
        "node_id": format!("PR_node{}", p.number),
        "html_url": format!("https://github.com/{OWNER}/{REPO}/pull/{}", p.number),
        "number": p.number,
        "state": p.state,
        "title": p.title,
        "body": p.body,
        "merged": p.merged,
        "merged_at": if p.merged { json!("2026-11-27T00:00:00Z") } else { Value::Null },
        "merge_commit_sha": p.merge_sha,
        "mergeable": true,
        "user": {"login": "oncall-gh"},
        "head": {"label": format!("{OWNER}:{}", p.head), "ref": p.head, "sha": head_sha, "repo": {"full_name": format!("{OWNER}/{REPO}")}},
        "base": {"label": format!("{OWNER}:{}", p.base), "ref": p.base, "sha": git(origin, &["rev-parse", &format!("refs/heads/{}", p.base)]).unwrap_or_default(), "repo": {"full_name": format!("{OWNER}/{REPO}")}},
    })
}

/// A real `--no-ff` merge of `head` into `base` in the bare repo.
fn merge(origin: &Path, base: &str, head_sha: &str, msg: &str) -> Result<String, String> {
    let b = git(origin, &["rev-parse", &format!("refs/heads/{base}")]).ok_or("no base")?;
    let tree = git(origin, &["merge-tree", "--write-tree", &b, head_sha]).ok_or("conflict")?;
    let tree = tree.lines().next().unwrap_or("").to_string();
    let c = git(
        origin,
        &["commit-tree", &tree, "-p", &b, "-p", head_sha, "-m", msg],
    )
    .ok_or("commit-tree")?;
    git(
        origin,
        &["update-ref", &format!("refs/heads/{base}"), &c, &b],
    )
    .ok_or("update-ref")?;
    Ok(c)
}

impl FakeGithub {
    pub fn start(origin: &Path) -> FakeGithub {
        let state = Arc::new(Mutex::new(State {
            checks_conclusion: "success".into(),
            ..State::default()
        }));
        let (st, o) = (state.clone(), origin.to_path_buf());
        let server = FakeServer::start(move |r| handle(&st, &o, r));
        FakeGithub {
            server,
            state,
            origin: origin.to_path_buf(),
        }
    }

    /// A reviewer approves on GitHub, on the PR's current head.
    pub fn approve(&self, pr: u64, login: &str) {
        let head = {
            let st = self.state.lock().unwrap();
            st.prs.iter().find(|p| p.number == pr).unwrap().head.clone()
        };
        let sha = git(&self.origin, &["rev-parse", &format!("refs/heads/{head}")]).unwrap();
        self.state
            .lock()
            .unwrap()
            .reviews
            .push((pr, login.into(), sha, "APPROVED".into()));
    }

    /// A review is dismissed on GitHub: as there, the review itself turns
    /// `DISMISSED` (it stays in `/pulls/{n}/reviews`, as the latest verdict).
    pub fn dismiss(&self, pr: u64, login: &str) {
        let mut st = self.state.lock().unwrap();
        let review = st
            .reviews
            .iter_mut()
            .rev()
            .find(|(p, l, ..)| *p == pr && l == login)
            .expect("a review to dismiss");
        review.3 = "DISMISSED".into();
    }
}

fn handle(st: &Mutex<State>, origin: &Path, r: &Recorded) -> Reply {
    // Every call must carry the token the way GitHub documents it.
    if r.header("authorization") != Some("Bearer ghp_testtoken") {
        return Reply::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        );
    }
    let prefix = format!("/repos/{OWNER}/{REPO}");
    let route = r.route().to_string();
    let mut s = st.lock().unwrap();
    if r.method == "POST" && route == "/graphql" {
        let q = r.json();
        let query = q["query"].as_str().unwrap_or("");
        if query.contains("revertPullRequest") {
            let node = q["variables"]["id"].as_str().unwrap_or("");
            let Some(src) = s
                .prs
                .iter()
                .find(|p| format!("PR_node{}", p.number) == node)
                .cloned()
            else {
                return Reply::json(
                    200,
                    json!({"data": null, "errors": [{"message": "Could not resolve to a node"}]}),
                );
            };
            let m = src.merge_sha.clone().unwrap_or_default();
            let base = git(origin, &["rev-parse", &format!("refs/heads/{}", src.base)]).unwrap();
            let tree = git(
                origin,
                &[
                    "merge-tree",
                    "--write-tree",
                    &format!("--merge-base={m}"),
                    &base,
                    &format!("{m}^1"),
                ],
            )
            .unwrap();
            let tree = tree.lines().next().unwrap().to_string();
            let title = q["variables"]["title"]
                .as_str()
                .unwrap_or("Revert")
                .to_string();
            let body = q["variables"]["body"].as_str().unwrap_or("").to_string();
            let c = git(
                origin,
                &[
                    "commit-tree",
                    &tree,
                    "-p",
                    &base,
                    "-m",
                    &format!("{title}\n\n{body}"),
                ],
            )
            .unwrap();
            let branch = format!("revert-{}-{}", src.number, src.head);
            git(origin, &["update-ref", &format!("refs/heads/{branch}"), &c]).unwrap();
            let number = s.prs.len() as u64 + 1;
            s.prs.push(Pr {
                number,
                title,
                body,
                head: branch,
                base: src.base.clone(),
                state: "open".into(),
                merged: false,
                merge_sha: None,
            });
            return Reply::json(
                200,
                json!({"data": {"revertPullRequest": {"revertPullRequest": {"number": number, "url": format!("https://github.com/{OWNER}/{REPO}/pull/{number}")}}}}),
            );
        }
        return Reply::json(
            200,
            json!({"errors": [{"message": "unsupported query in the fake"}]}),
        );
    }
    let Some(rest) = route.strip_prefix(&prefix) else {
        return Reply::json(404, json!({"message": "Not Found"}));
    };
    let parts: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    match (r.method.as_str(), parts.as_slice()) {
        ("POST", ["pulls"]) => {
            let b = r.json();
            let head = b["head"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches(&format!("{OWNER}:"))
                .to_string();
            if s.prs.iter().any(|p| p.head == head && p.state == "open") {
                return Reply::json(
                    422,
                    json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": format!("A pull request already exists for {OWNER}:{head}.")}]}),
                );
            }
            let number = s.prs.len() as u64 + 1;
            let p = Pr {
                number,
                title: b["title"].as_str().unwrap_or("").into(),
                body: b["body"].as_str().unwrap_or("").into(),
                head,
                base: b["base"].as_str().unwrap_or("main").into(),
                state: "open".into(),
                merged: false,
                merge_sha: None,
            };
            let j = pr_json(origin, &p);
            s.prs.push(p);
            Reply::json(201, j)
        }
        ("GET", ["pulls"]) => {
            let q = r
                .path
                .split_once('?')
                .map(|(_, q)| q.to_string())
                .unwrap_or_default();
            let want_head = q
                .split('&')
                .find_map(|kv| kv.strip_prefix("head="))
                .map(|h| h.replace("%3A", ":").replace("%2F", "/"));
            let open_only = q.contains("state=open");
            let list: Vec<Value> = s
                .prs
                .iter()
                .filter(|p| !open_only || p.state == "open")
                .filter(|p| {
                    want_head
                        .as_ref()
                        .is_none_or(|h| *h == format!("{OWNER}:{}", p.head))
                })
                .map(|p| pr_json(origin, p))
                .collect();
            Reply::json(200, json!(list))
        }
        ("GET", ["pulls", n]) => match s.prs.iter().find(|p| p.number.to_string() == *n) {
            Some(p) => Reply::json(200, pr_json(origin, p)),
            None => Reply::json(404, json!({"message": "Not Found"})),
        },
        ("PATCH", ["pulls", n]) => {
            let b = r.json();
            let Some(p) = s.prs.iter_mut().find(|p| p.number.to_string() == *n) else {
                return Reply::json(404, json!({"message": "Not Found"}));
            };
            if let Some(t) = b["title"].as_str() {
                p.title = t.into();
            }
            if let Some(t) = b["body"].as_str() {
                p.body = t.into();
            }
            if let Some(t) = b["state"].as_str() {
                p.state = t.into();
            }
            let j = pr_json(origin, p);
            Reply::json(200, j)
        }
        ("POST", ["pulls", n, "requested_reviewers"]) => {
            match s.prs.iter().find(|p| p.number.to_string() == *n) {
                Some(p) => Reply::json(201, pr_json(origin, p)),
                None => Reply::json(404, json!({"message": "Not Found"})),
            }
        }
        ("GET", ["pulls", n, "reviews"]) => {
            let list: Vec<Value> = s
                .reviews
                .iter()
                .enumerate()
                .filter(|(_, (pr, ..))| pr.to_string() == *n)
                .map(|(i, (_, login, sha, state))| json!({"id": i + 1, "user": {"login": login, "type": "User"}, "state": state, "commit_id": sha, "submitted_at": "2026-11-27T00:00:00Z", "body": ""}))
                .collect();
            Reply::json(200, json!(list))
        }
        ("GET", ["commits", _sha, "check-runs"]) => {
            // "in_progress" stands for a run that has not finished.
            let c = s.checks_conclusion.clone();
            let run = if c == "in_progress" {
                json!({"id": 1, "name": "ci", "status": "in_progress", "conclusion": null})
            } else {
                json!({"id": 1, "name": "ci", "status": "completed", "conclusion": c})
            };
            Reply::json(200, json!({"total_count": 1, "check_runs": [run]}))
        }
        ("GET", ["commits", _sha, "status"]) => Reply::json(
            200,
            json!({"state": "success", "total_count": 0, "statuses": []}),
        ),
        ("GET", ["commits", sha, "pulls"]) => {
            let list: Vec<Value> = s
                .prs
                .iter()
                .filter(|p| p.merge_sha.as_deref() == Some(*sha))
                .map(|p| pr_json(origin, p))
                .collect();
            Reply::json(200, json!(list))
        }
        ("PUT", ["pulls", n, "merge"]) => {
            let b = r.json();
            let Some(p) = s.prs.iter_mut().find(|p| p.number.to_string() == *n) else {
                return Reply::json(404, json!({"message": "Not Found"}));
            };
            if p.merged {
                return Reply::json(405, json!({"message": "Pull Request is not mergeable"}));
            }
            let head_sha =
                git(origin, &["rev-parse", &format!("refs/heads/{}", p.head)]).unwrap_or_default();
            if let Some(want) = b["sha"].as_str()
                && want != head_sha
            {
                return Reply::json(
                    409,
                    json!({"message": "Head branch was modified. Review and try the merge again."}),
                );
            }
            let msg = format!(
                "{}\n\n{}",
                b["commit_title"].as_str().unwrap_or(&p.title),
                b["commit_message"].as_str().unwrap_or("")
            );
            match merge(origin, &p.base, &head_sha, &msg) {
                Ok(c) => {
                    p.merged = true;
                    p.state = "closed".into();
                    p.merge_sha = Some(c.clone());
                    Reply::json(
                        200,
                        json!({"sha": c, "merged": true, "message": "Pull Request successfully merged"}),
                    )
                }
                Err(e) => Reply::json(
                    405,
                    json!({"message": format!("Pull Request is not mergeable: {e}")}),
                ),
            }
        }
        _ => Reply::json(
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
        ),
    }
}
