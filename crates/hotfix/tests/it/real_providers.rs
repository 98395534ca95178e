//! A whole hotfix, start to close, with the real providers (GitHub forge, Railway,
//! Slack bot, Statuspage, signed webhook) pointed at local servers that
//! speak their documented APIs, the GitHub one backed by the real bare
//! repository. Includes a production failure that is rolled back and
//! reverted through GitHub's `revertPullRequest`.
#![allow(clippy::unwrap_used)]

use crate::common;
use crate::fakes;

use common::*;
use fakes::chat::{SLACK_TOKEN, STATUSPAGE_KEY};
use fakes::github::{FakeGithub, OWNER, REPO};
use hotfix_testkit::fake::{FakeServer, Reply};
use hotfix_testkit::railway::{self, Dep, FakeRailway, Model};

struct Env {
    w: World,
    gh: FakeGithub,
    rw: FakeRailway,
    slack: FakeServer,
    sp: FakeServer,
    hook: FakeServer,
}

const SECRETS: &[(&str, &str)] = &[
    ("GITHUB_TOKEN", "ghp_testtoken"),
    ("RAILWAY_API_TOKEN", railway::TOKEN),
    ("SLACK_BOT_TOKEN", SLACK_TOKEN),
    ("STATUSPAGE_API_KEY", STATUSPAGE_KEY),
    ("HOTFIX_WEBHOOK_SECRET", "whsec-test"),
];

/// Railway as the process describes it: a PR environment per PR that deploys
/// the PR's head, production that deploys main by itself; a deployment that
/// goes live changes what the preview/production HTTP servers answer, from
/// the files of its commit.
fn fake_railway(w: &World, gh: &FakeGithub) -> FakeRailway {
    let origin = w.repo.origin.clone();
    let (pv, pd) = (w.preview.dir.clone(), w.prod.dir.clone());
    let prs = gh.state.clone();
    let o2 = origin.clone();
    let show = move |commit: &str, file: &str| {
        fakes::github::git(&o2, &["show", &format!("{commit}:{file}")])
    };
    let on_live = move |env: &str, commit: &str| {
        let dir = if env == "prod" { &pd } else { &pv };
        let health = if env == "prod" {
            show(commit, "app/health_prod").or_else(|| show(commit, "app/health"))
        } else {
            show(commit, "app/health")
        };
        std::fs::write(dir.join("health"), health.unwrap_or_default()).unwrap();
        std::fs::write(
            dir.join("export_pdf"),
            show(commit, "app/pdf").unwrap_or_default(),
        )
        .unwrap();
        if env == "prod" {
            std::fs::write(dir.join("sha"), commit).unwrap();
        }
    };
    // Which commits Railway builds by itself now in an environment.
    let builds = move |env: &str| -> Vec<String> {
        let branch = if env == "prod" {
            Some("main".to_string())
        } else {
            env.strip_prefix("pr-")
                .and_then(|n| n.parse::<u64>().ok())
                .and_then(|n| {
                    let st = prs.lock().unwrap();
                    st.prs
                        .iter()
                        .find(|p| p.number == n)
                        .map(|p| p.head.clone())
                })
        };
        branch
            .and_then(|b| fakes::github::git(&origin, &["rev-parse", &format!("refs/heads/{b}")]))
            .into_iter()
            .collect()
    };
    FakeRailway::start(Model {
        pr_envs: (1..=6)
            .map(|n| (format!("pr-{n}"), n, format!("{OWNER}/{REPO}")))
            .collect(),
        domains: (1..=6)
            .map(|n| {
                (
                    format!("pr-{n}"),
                    (vec![format!("127.0.0.1:{}", w.preview.port)], vec![]),
                )
            })
            .chain([(
                "prod".to_string(),
                (vec![format!("127.0.0.1:{}", w.prod.port)], vec![]),
            )])
            .collect(),
        on_live: Some(std::sync::Arc::new(on_live)),
        builds: Some(std::sync::Arc::new(builds)),
        ..Model::default()
    })
}

impl Env {
    fn new() -> Env {
        let w = World::new();
        let gh = FakeGithub::start(&w.repo.origin);
        let rw = fake_railway(&w, &gh);
        let slack = fakes::chat::slack();
        let sp = fakes::chat::statuspage();
        let hook = FakeServer::start(|_| Reply::text(204, ""));
        let extra = format!(
            r##"
[forge]
provider = "github"
repo = "{OWNER}/{REPO}"
api_url = "{gh}"
graphql_url = "{gh}/graphql"
max_retry_wait = "100ms"
[forge.logins]
"{LEAD}" = "lead-gh"
"{REV}" = "rev-gh"

[deploy]
provider = "railway"
watch = "600ms"
probe_interval = "100ms"
[deploy.railway]
project = "{project}"
service = "{service}"
environment = "prod"
api_url = "{rw}"
poll_interval = "20ms"
deploy_timeout = "10s"
preview_timeout = "10s"
url_scheme = "http"

[notify.slack]
api_url = "{slack}/api"
channel = "#dev-alerts"
[notify.slack.mentions]
"{LEAD}" = "U0LEAD"

[notify.statuspage]
api_url = "{sp}/v1"
page_id = "page1"
component_id = "comp1"

[notify.webhook]
url = "{hook}/hotfix"
"##,
            gh = gh.server.url(),
            slack = slack.url(),
            sp = sp.url(),
            hook = hook.url(),
            rw = rw.url(),
            project = railway::PROJECT,
            service = railway::SERVICE,
        );
        // The command deployer's [deploy] gives way to Railway's.
        let base = w.repo.read("hotfix.toml");
        let base = base[..base.find("[deploy]").unwrap()].to_string()
            + &base[base.find("[[smoke]]").unwrap()..];
        w.repo.write("hotfix.toml", &(base + &extra));
        w.repo.commit_as(DEV, "providers");
        w.repo.git(&["push", "--quiet", "origin", "main"]);
        // Production runs main on "Railway".
        let main = w.origin_sha("main");
        rw.model
            .lock()
            .unwrap()
            .deps
            .push(Dep::new("dep-initial", "prod", &main, &["SUCCESS"]));
        Env {
            w,
            gh,
            rw,
            slack,
            sp,
            hook,
        }
    }

    fn hf(&self, who: &str, args: &[&str]) -> Run {
        self.w.hf_env(who, args, SECRETS)
    }
}

#[test]
fn a_whole_hotfix_on_github_railway_slack_statuspage_with_a_rollback_and_a_revert() {
    let e = Env::new();
    let w = &e.w;
    let good_main = w.origin_sha("main");

    // Attempt 1: a fix that passes its preview but breaks production.
    e.hf(
        DEV,
        &[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--customer-facing",
            "--title",
            "PDF export crashes",
        ],
    )
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write("app/health_prod", "db pool exhausted\n");
    w.repo.commit_as(DEV, "fix that breaks production");
    e.hf(DEV, &["push"]).ok();

    // The PR on "GitHub", with the impact assessment, and the tech lead asked to review.
    let pulls =
        e.gh.server
            .calls("POST", &format!("/repos/{OWNER}/{REPO}/pulls"));
    assert_eq!(pulls.len(), 1);
    let body = pulls[0].json();
    assert_eq!(body["title"], "[HOTFIX] PDF export crashes");
    assert_eq!(body["head"], "hotfix/pdf-crash");
    assert_eq!(body["base"], "main");
    assert!(body["body"].as_str().unwrap().contains("Impact assessment"));
    assert_eq!(
        pulls[0].header("authorization"),
        Some("Bearer ghp_testtoken")
    );
    assert!(
        pulls[0]
            .header("user-agent")
            .unwrap()
            .starts_with("hotfix/")
    );
    let rr = e.gh.server.calls(
        "POST",
        &format!("/repos/{OWNER}/{REPO}/pulls/1/requested_reviewers"),
    );
    assert_eq!(rr[0].json()["reviewers"][0], "lead-gh");

    // The approval comes from a GitHub review by the tech lead's login.
    e.gh.approve(1, "lead-gh");
    let r = e.hf(DEV, &["ship"]);
    assert_eq!(r.code, 1, "{}", r.all());
    assert!(r.all().contains("rolled back automatically"), "{}", r.all());
    let s = w.status("HF-1");
    assert_eq!(s["approvals"][0]["source"], "github");
    assert_eq!(s["state"], "rolled_back");
    // Merged on GitHub with the sha guard, then reverted through revertPullRequest.
    let merge =
        e.gh.server
            .calls("PUT", &format!("/repos/{OWNER}/{REPO}/pulls/1/merge"));
    assert_eq!(merge[0].json()["sha"], s["head_sha"]);
    let gql = e.gh.server.calls("POST", "/graphql");
    assert!(gql.iter().any(|g| {
        g.json()["query"]
            .as_str()
            .unwrap()
            .contains("revertPullRequest")
    }));
    let main = w.origin_sha("main");
    assert_eq!(
        w.repo
            .origin_git(&["rev-parse", &format!("{main}^{{tree}}")]),
        w.repo
            .origin_git(&["rev-parse", &format!("{good_main}^{{tree}}")])
    );
    // Railway rolled production back to the deployment recorded before the merge.
    let rb =
        e.rw.ops()
            .into_iter()
            .find(|(op, _)| op == "Rollback")
            .expect("deploymentRollback sent");
    assert_eq!(rb.1["id"], "dep-initial");
    assert_eq!(
        std::fs::read_to_string(w.prod.dir.join("health"))
            .unwrap()
            .trim(),
        "ok"
    );
    assert!(
        e.rw.server
            .requests()
            .iter()
            .all(|r| r.header("authorization") == Some(&format!("Bearer {}", railway::TOKEN)))
    );

    // Attempt 2 ships; backport; close.
    e.hf(
        DEV,
        &[
            "start",
            "pdf-crash-2",
            "--severity",
            "critical",
            "--incident",
            "HF-1",
        ],
    )
    .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "better fix");
    e.hf(DEV, &["push"]).ok();
    let pr = w.status("HF-1")["pr"].as_u64().unwrap();
    e.gh.approve(pr, "lead-gh");
    e.hf(DEV, &["ship"]).ok();
    e.hf(DEV, &["backport"]).ok();
    e.hf(DEV, &["postmortem"]).ok();
    e.hf(
        DEV,
        &[
            "checklist",
            "--done",
            "incident_log",
            "status_page",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    )
    .ok();
    e.hf(DEV, &["close"]).ok();
    assert_eq!(w.status("HF-1")["state"], "closed");

    // Slack: one root message, updated in place, every step in its thread; the lead mentioned.
    let posts = e.slack.calls("POST", "/api/chat.postMessage");
    let roots: Vec<_> = posts
        .iter()
        .filter(|p| p.json()["thread_ts"].is_null())
        .collect();
    assert_eq!(roots.len(), 1, "one root message per incident");
    assert!(roots[0].json().to_string().contains("U0LEAD"));
    assert!(posts.len() > 5, "thread replies per step");
    assert!(!e.slack.calls("POST", "/api/chat.update").is_empty());

    // Statuspage: created investigating, then identified, monitoring, resolved, with the component in lockstep.
    let created = e.sp.calls("POST", "/v1/pages/page1/incidents");
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].json()["incident"]["status"], "investigating");
    assert_eq!(
        created[0].json()["incident"]["components"]["comp1"],
        "major_outage"
    );
    let patches: Vec<serde_json::Value> =
        e.sp.calls("PATCH", "/v1/pages/page1/incidents/inc42")
            .iter()
            .map(|p| p.json())
            .collect();
    let last = patches.last().unwrap();
    assert_eq!(last["incident"]["status"], "resolved");
    assert_eq!(last["incident"]["components"]["comp1"], "operational");
    assert!(
        patches
            .iter()
            .any(|p| p["incident"]["status"] == "monitoring")
    );

    // The webhook: every event signed with HMAC-SHA256 over the raw body.
    let hooks = e.hook.calls("POST", "/hotfix");
    assert!(hooks.len() > 5);
    for h in &hooks {
        let sig = h.header("x-hotfix-signature-256").unwrap();
        assert_eq!(
            sig,
            hotfix_providers::notify::webhook::signature(b"whsec-test", &h.body)
        );
    }
    // Nothing undelivered, and no secret printed anywhere.
    assert_eq!(
        w.status("HF-1")["undelivered_notifications"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let log = e.hf(DEV, &["log"]).ok().all();
    for (_, secret) in SECRETS {
        assert!(!log.contains(secret));
    }
}

#[test]
fn slack_and_statuspage_down_never_block_a_step_and_are_delivered_later() {
    let e = Env::new();
    let w = &e.w;
    e.slack.set_handler(|_| Reply::text(503, "down"));
    e.sp.set_handler(|_| Reply::hang_up());
    let t = std::time::Instant::now();
    e.hf(
        DEV,
        &[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--customer-facing",
        ],
    )
    .ok();
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
    let s = w.status("HF-1");
    let undelivered = s["undelivered_notifications"].as_array().unwrap();
    assert!(undelivered.iter().any(|u| u["notifier"] == "slack"));
    assert!(undelivered.iter().any(|u| u["notifier"] == "statuspage"));
    let text = e.hf(DEV, &["status"]).ok().stdout;
    assert!(text.contains("undelivered notifications"), "{text}");
    // They come back; the next command (past the backoff) delivers what waited, once.
    let roots_before = e
        .slack
        .calls("POST", "/api/chat.postMessage")
        .iter()
        .filter(|p| p.json()["thread_ts"].is_null())
        .count();
    e.slack.set_handler(fakes::chat::slack_handler());
    e.sp.set_handler(fakes::chat::statuspage_handler());
    let later = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1)).to_string();
    let mut env = SECRETS.to_vec();
    env.push(("HOTFIX_NOW", &later));
    w.hf_env(DEV, &["checklist", "--done", "incident_log"], &env)
        .ok();
    assert_eq!(
        w.status("HF-1")["undelivered_notifications"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let roots = e.slack.calls("POST", "/api/chat.postMessage");
    let roots_after = roots
        .iter()
        .filter(|p| p.json()["thread_ts"].is_null())
        .count();
    assert_eq!(
        roots_after - roots_before,
        1,
        "the declare message delivered once"
    );
    assert_eq!(
        e.sp.calls("POST", "/v1/pages/page1/incidents").len(),
        2,
        "one refused while down, one delivered"
    );
}

#[test]
fn a_missing_token_is_a_usage_error_that_names_the_variable() {
    let e = Env::new();
    let r = e.w.hf_env(
        DEV,
        &["start", "pdf-crash", "--severity", "critical"],
        &[
            ("SLACK_BOT_TOKEN", SLACK_TOKEN),
            ("STATUSPAGE_API_KEY", STATUSPAGE_KEY),
        ],
    );
    let r = r.fails(2, "GITHUB_TOKEN");
    assert!(!r.all().contains(SLACK_TOKEN));
}

#[test]
fn required_checks_on_the_head_gate_ship_by_name() {
    let e = Env::new();
    e.hf(DEV, &["start", "pdf-crash", "--severity", "critical"])
        .ok();
    e.w.repo.write("app/pdf", "pdf ok\n");
    e.w.repo.commit_as(DEV, "fix");
    e.hf(DEV, &["push"]).ok();
    e.gh.approve(1, "lead-gh");
    e.gh.state.lock().unwrap().checks_conclusion = "failure".into();
    e.hf(DEV, &["ship"]).fails(1, "required checks failed");
    e.gh.state.lock().unwrap().checks_conclusion = "in_progress".into();
    let r = e.hf(DEV, &["ship"]).fails(3, "still running");
    assert!(r.all().contains("ci"), "{}", r.all());
    assert!(
        e.gh.server
            .calls("PUT", &format!("/repos/{OWNER}/{REPO}/pulls/1/merge"))
            .is_empty()
    );
    e.gh.state.lock().unwrap().checks_conclusion = "success".into();
    e.hf(DEV, &["ship"]).ok();
    // A review by someone outside the policy, or on an older head, counts for nothing.
    assert_eq!(e.w.status("HF-1")["approvals"].as_array().unwrap().len(), 1);
}

#[test]
fn a_dismissed_review_on_github_withdraws_the_approval_and_ship_refuses() {
    let e = Env::new();
    let w = &e.w;
    e.hf(DEV, &["start", "pdf-crash", "--severity", "critical"])
        .ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.commit_as(DEV, "fix");
    e.hf(DEV, &["push"]).ok();
    // The tech lead approves on GitHub; `ship` records it, then waits for CI.
    e.gh.approve(1, "lead-gh");
    e.gh.state.lock().unwrap().checks_conclusion = "in_progress".into();
    e.hf(DEV, &["ship"]).fails(3, "still running");
    let s = w.status("HF-1");
    assert_eq!(s["approvals"][0]["by"], LEAD);
    assert_eq!(s["approvals"][0]["source"], "github");
    assert_eq!(s["approvals"][0]["fresh"], true);
    assert!(s["approvals"][0]["withdrawn"].is_null());
    assert_eq!(s["state"], "ready_to_ship");

    // Then the review is dismissed on GitHub, and CI goes green.
    e.gh.dismiss(1, "lead-gh");
    let review_reads = || {
        e.gh.server
            .calls("GET", &format!("/repos/{OWNER}/{REPO}/pulls/1/reviews"))
            .len()
    };
    let read_before = review_reads();
    assert!(read_before > 0, "the first ship read the reviews");
    e.gh.state.lock().unwrap().checks_conclusion = "success".into();
    let r = e
        .hf(DEV, &["ship"])
        .fails(1, "missing 1 tech lead approval");
    assert!(r.all().contains("no longer approves"), "{}", r.all());
    assert!(
        review_reads() > read_before,
        "ship read the reviews again and saw the dismissal"
    );
    // Recorded as withdrawn by the forge, and nothing merged.
    assert_eq!(w.count("HF-1", "approval_withdrawn"), 1);
    let s = w.status("HF-1");
    assert_eq!(s["approvals"].as_array().unwrap().len(), 1);
    assert!(s["approvals"][0]["withdrawn"].is_string(), "{s:#}");
    assert_eq!(s["approvals"][0]["fresh"], false);
    assert_eq!(s["state"], "awaiting_approval");
    assert!(s["merge_sha"].is_null());
    assert!(
        e.gh.server
            .calls("PUT", &format!("/repos/{OWNER}/{REPO}/pulls/1/merge"))
            .is_empty()
    );
    assert_eq!(
        w.repo
            .origin_git(&["rev-list", "--merges", "--count", "main"]),
        "0"
    );
    // Shipping again changes nothing: the withdrawal is recorded once.
    e.hf(DEV, &["ship"])
        .fails(1, "missing 1 tech lead approval");
    assert_eq!(w.count("HF-1", "approval_withdrawn"), 1);

    // A new approving review counts again, and the hotfix ships.
    e.gh.approve(1, "lead-gh");
    e.hf(DEV, &["ship"]).ok();
    assert_eq!(w.status("HF-1")["state"], "deployed");
    assert_eq!(
        e.gh.server
            .calls("PUT", &format!("/repos/{OWNER}/{REPO}/pulls/1/merge"))
            .len(),
        1
    );
}
