//! Contract tests of the GitHub forge against a recording fake that speaks
//! GitHub's documented REST v3 / GraphQL API: what goes over the wire
//! (method, path, headers, JSON fields) and what comes out.
#![allow(clippy::unwrap_used)] // tests: a panic is the right failure

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hotfix_core::provider::{CheckState, Forge, ForgeError, NewPr, PrState};
use hotfix_providers::forge::github::{GithubConfig, GithubForge, MergeMethod, RevertMode};
use hotfix_providers::signature::{
    SignatureError, sign_hmac_sha256_hex, verify_github, verify_slack,
};
use hotfix_testkit::fake::{FakeServer, Recorded, Reply};
use serde_json::{Value, json};

const TOKEN: &str = "ghp_TESTtoken0123456789SECRET";
const REPO: &str = "/repos/acme/shop";
const HEAD_SHA: &str = "1111111111111111111111111111111111111111";
const MOVED_SHA: &str = "2222222222222222222222222222222222222222";
const MERGE_SHA: &str = "3333333333333333333333333333333333333333";

// ---------------------------------------------------------------- helpers

fn cfg_toml(url: &str, extra: &str) -> String {
    format!(
        r#"repo = "acme/shop"
api_url = "{url}"
timeout = "500ms"
max_retry_wait = "5ms"
{extra}
[logins]
"alice@example.com" = "alice"
"bob@example.com" = "Bob-GH"
"carol@example.com" = "carol"
"#
    )
}

fn config(url: &str, extra: &str) -> GithubConfig {
    let table: toml::Table = toml::from_str(&cfg_toml(url, extra)).unwrap();
    GithubConfig::from_table(&table).unwrap()
}

fn forge(s: &FakeServer) -> GithubForge {
    forge_with(s, "")
}

fn forge_with(s: &FakeServer, extra: &str) -> GithubForge {
    GithubForge::new(config(&s.url(), extra), TOKEN.into(), None, "origin".into())
}

/// The `pull_request` object of GitHub's documented webhook payload (the
/// same shape as the REST answer), adjusted.
fn pr(number: u64, state: &str, head: &str, head_sha: &str, merged: Option<&str>) -> Value {
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../../fixtures/github/pull_request_opened.json"
    ))
    .unwrap();
    let mut p = fixture["pull_request"].clone();
    p["number"] = json!(number);
    p["node_id"] = json!(format!("PR_node{number}"));
    p["html_url"] = json!(format!("https://github.com/acme/shop/pull/{number}"));
    p["state"] = json!(state);
    p["head"]["ref"] = json!(head);
    p["head"]["sha"] = json!(head_sha);
    p["base"]["ref"] = json!("main");
    p["merged"] = json!(merged.is_some());
    p["merged_at"] = if merged.is_some() {
        json!("2024-05-01T10:00:00Z")
    } else {
        Value::Null
    };
    p["merge_commit_sha"] = json!(merged.unwrap_or("9999999999999999999999999999999999999999"));
    p["mergeable"] = json!(true);
    p["mergeable_state"] = json!("clean");
    p
}

fn open_pr(number: u64) -> Value {
    pr(number, "open", "hotfix/pdf", HEAD_SHA, None)
}

/// A review in the documented shape (fixture `review`, REST upper-case state).
fn review(login: &str, state: &str, commit: &str) -> Value {
    let fixture: Value = serde_json::from_str(include_str!(
        "../../../../fixtures/github/pull_request_review_submitted.json"
    ))
    .unwrap();
    let mut r = fixture["review"].clone();
    r["user"]["login"] = json!(login);
    r["state"] = json!(state);
    r["commit_id"] = json!(commit);
    r
}

fn not_found() -> Reply {
    Reply::json(
        404,
        json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}),
    )
}

/// Every request carries the documented headers.
fn assert_headers(r: &Recorded) {
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(r.header("accept"), Some("application/vnd.github+json"));
    assert_eq!(r.header("x-github-api-version"), Some("2022-11-28"));
    let ua = r.header("user-agent").unwrap_or("");
    assert!(ua.starts_with("hotfix/"), "user agent {ua}");
}

fn assert_no_token(e: &ForgeError) {
    let s = format!("{e} {e:?}");
    assert!(!s.contains(TOKEN), "token leaked: {s}");
    assert!(!s.contains("TESTtoken"), "token leaked: {s}");
}

// ---------------------------------------------------------------- config

#[test]
fn config_defaults_graphql_endpoint_and_unknown_keys() {
    let t: toml::Table = toml::from_str(r#"repo = "acme/shop""#).unwrap();
    let c = GithubConfig::from_table(&t).unwrap();
    assert_eq!(c.api_url, "https://api.github.com");
    assert_eq!(c.graphql_endpoint(), "https://api.github.com/graphql");
    assert_eq!(c.merge_method, MergeMethod::Merge);
    assert_eq!(c.revert, RevertMode::Graphql);
    assert!(c.required_checks.is_empty());
    assert_eq!(c.timeout.0, Duration::from_secs(30));
    assert_eq!(c.max_retries, 3);
    assert_eq!(c.max_retry_wait.0, Duration::from_secs(60));

    let t: toml::Table = toml::from_str(
        r#"repo = "acme/shop"
api_url = "https://ghe.example.com/api/v3"
merge_method = "squash"
revert = "branch""#,
    )
    .unwrap();
    let c = GithubConfig::from_table(&t).unwrap();
    assert_eq!(c.graphql_endpoint(), "https://ghe.example.com/api/graphql");
    assert_eq!(c.merge_method, MergeMethod::Squash);
    assert_eq!(c.revert, RevertMode::Branch);

    let t: toml::Table = toml::from_str("repo = \"a/b\"\ngraphql_url = \"http://x/gql\"").unwrap();
    assert_eq!(
        GithubConfig::from_table(&t).unwrap().graphql_endpoint(),
        "http://x/gql"
    );

    for bad in [
        "repo = \"acme/shop\"\nrepos = \"x\"",
        "repo = \"acmeshop\"",
        "repo = \"a/b/c\"",
        "api_url = \"https://api.github.com\"",
        "repo = \"a/b\"\nmerge_method = \"fast-forward\"",
        "repo = \"a/b\"\napi_url = \"ftp://x\"",
    ] {
        let t: toml::Table = toml::from_str(bad).unwrap();
        assert!(GithubConfig::from_table(&t).is_err(), "accepted: {bad}");
    }
}

#[test]
fn debug_does_not_show_the_token() {
    let s = FakeServer::start(|_| not_found());
    let f = forge(&s);
    assert!(!format!("{f:?}").contains(TOKEN));
}

// ---------------------------------------------------------------- pull requests

#[test]
fn open_pr_posts_the_documented_request() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("POST", "/repos/acme/shop/pulls") => Reply::json(201, open_pr(42)),
        _ => not_found(),
    });
    let p = forge(&s)
        .open_pr(&NewPr {
            title: "Hotfix: PDF crash".into(),
            body: "Fixes INC-7".into(),
            head: "hotfix/pdf".into(),
            base: "main".into(),
        })
        .unwrap();
    assert_eq!(p.number, 42);
    assert_eq!(p.state, PrState::Open);
    assert_eq!(p.head, "hotfix/pdf");
    assert_eq!(p.merge_sha, None);
    assert_eq!(p.url, "https://github.com/acme/shop/pull/42");
    let calls = s.calls("POST", &format!("{REPO}/pulls"));
    assert_eq!(calls.len(), 1);
    assert_headers(&calls[0]);
    let b = calls[0].json();
    assert_eq!(b["title"], "Hotfix: PDF crash");
    assert_eq!(b["body"], "Fixes INC-7");
    assert_eq!(b["head"], "hotfix/pdf");
    assert_eq!(b["base"], "main");
}

#[test]
fn open_pr_that_already_exists_returns_it() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("POST", "/repos/acme/shop/pulls") => Reply::json(
            422,
            json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom",
                "message": "A pull request already exists for acme:hotfix/pdf."}],
                "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request"}),
        ),
        ("GET", "/repos/acme/shop/pulls") => Reply::json(200, json!([open_pr(42)])),
        _ => not_found(),
    });
    let p = forge(&s)
        .open_pr(&NewPr {
            title: "t".into(),
            body: "b".into(),
            head: "hotfix/pdf".into(),
            base: "main".into(),
        })
        .unwrap();
    assert_eq!(p.number, 42);
    let list = s.calls("GET", &format!("{REPO}/pulls"));
    assert_eq!(list.len(), 1);
    assert_headers(&list[0]);
    let q = list[0].path.split_once('?').unwrap().1;
    assert!(q.contains("head=acme%3Ahotfix%2Fpdf"), "{q}");
    assert!(q.contains("state=open"), "{q}");
}

#[test]
fn open_pr_other_validation_error_is_explained() {
    let s = FakeServer::start(|_| {
        Reply::json(
            422,
            json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "field": "base", "code": "invalid"}]}),
        )
    });
    let e = forge(&s)
        .open_pr(&NewPr {
            title: "t".into(),
            body: "b".into(),
            head: "hotfix/pdf".into(),
            base: "nope".into(),
        })
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("Validation Failed") && m.contains("base invalid"),
        "{m}"
    );
    assert_no_token(&e);
}

#[test]
fn find_get_update_close() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/pulls") => Reply::json(200, json!([])),
        ("GET", "/repos/acme/shop/pulls/7") => {
            Reply::json(200, pr(7, "closed", "hotfix/x", HEAD_SHA, Some(MERGE_SHA)))
        }
        ("GET", "/repos/acme/shop/pulls/8") => {
            Reply::json(200, pr(8, "closed", "hotfix/y", HEAD_SHA, None))
        }
        ("PATCH", "/repos/acme/shop/pulls/7") => Reply::json(200, open_pr(7)),
        _ => not_found(),
    });
    let f = forge(&s);
    assert_eq!(f.find_open_pr("hotfix/none").unwrap(), None);
    let p = f.get_pr(7).unwrap();
    assert_eq!(p.state, PrState::Merged);
    assert_eq!(p.merge_sha.as_deref(), Some(MERGE_SHA));
    let p = f.get_pr(8).unwrap();
    assert_eq!(p.state, PrState::Closed);
    assert_eq!(p.merge_sha, None);
    assert!(matches!(f.get_pr(9), Err(ForgeError::NotFound(9))));

    f.update_pr(7, "new title", "new body").unwrap();
    f.close_pr(7).unwrap();
    let patches = s.calls("PATCH", &format!("{REPO}/pulls/7"));
    assert_eq!(patches.len(), 2);
    assert_headers(&patches[0]);
    assert_eq!(patches[0].json()["title"], "new title");
    assert_eq!(patches[0].json()["body"], "new body");
    assert_eq!(patches[1].json(), json!({"state": "closed"}));
    assert!(matches!(f.close_pr(99), Err(ForgeError::NotFound(99))));
}

// ---------------------------------------------------------------- reviews

#[test]
fn request_reviews_maps_identities_to_logins() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("POST", "/repos/acme/shop/pulls/42/requested_reviewers") => Reply::json(201, open_pr(42)),
        _ => not_found(),
    });
    let f = forge(&s);
    f.request_reviews(
        42,
        &[
            "alice@example.com".into(),
            "nobody@example.com".into(),
            "bob@example.com".into(),
        ],
    )
    .unwrap();
    let calls = s.calls("POST", &format!("{REPO}/pulls/42/requested_reviewers"));
    assert_eq!(calls.len(), 1);
    assert_headers(&calls[0]);
    assert_eq!(calls[0].json(), json!({"reviewers": ["alice", "Bob-GH"]}));

    // Nobody with a login: no call at all.
    f.request_reviews(42, &["nobody@example.com".into()])
        .unwrap();
    assert_eq!(s.requests().len(), 1);
}

#[test]
fn request_reviews_422_for_the_author_is_not_fatal() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("POST", "/repos/acme/shop/pulls/42/requested_reviewers") => {
            if r.json()["reviewers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == "alice")
            {
                Reply::json(
                    422,
                    json!({"message": "Review cannot be requested from pull request author."}),
                )
            } else {
                Reply::json(201, open_pr(42))
            }
        }
        ("GET", "/repos/acme/shop/pulls/42") => {
            let mut p = open_pr(42);
            p["user"]["login"] = json!("alice");
            Reply::json(200, p)
        }
        _ => not_found(),
    });
    forge(&s)
        .request_reviews(
            42,
            &["alice@example.com".into(), "carol@example.com".into()],
        )
        .unwrap();
    let calls = s.calls("POST", &format!("{REPO}/pulls/42/requested_reviewers"));
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].json(), json!({"reviewers": ["carol"]}));
}

#[test]
fn approvals_keep_the_latest_verdict_per_user_across_pages() {
    let s = FakeServer::start(move |r| {
        if r.route() != "/repos/acme/shop/pulls/42/reviews" {
            return not_found();
        }
        let port = r.header("host").unwrap_or("").to_string();
        if r.path.contains("page=2") {
            Reply::json(
                200,
                json!([
                    // Bob approves after requesting changes: counts.
                    review("Bob-GH", "APPROVED", MOVED_SHA),
                    // Carol's approval was dismissed: does not count.
                    review("carol", "DISMISSED", HEAD_SHA),
                    // A comment after an approval does not undo it.
                    review("alice", "COMMENTED", MOVED_SHA),
                ]),
            )
        } else {
            let next = format!(
                "<http://{port}/repos/acme/shop/pulls/42/reviews?per_page=100&page=2>; rel=\"next\", <http://{port}/repos/acme/shop/pulls/42/reviews?per_page=100&page=2>; rel=\"last\""
            );
            Reply::json(
                200,
                json!([
                    review("alice", "APPROVED", HEAD_SHA),
                    review("Bob-GH", "CHANGES_REQUESTED", HEAD_SHA),
                    review("carol", "APPROVED", HEAD_SHA),
                    // Not in [forge.logins]: not in the policy.
                    review("mallory", "APPROVED", HEAD_SHA),
                ]),
            )
            .header("link", &next)
        }
    });
    let mut a = forge(&s).approvals(42).unwrap();
    a.sort_by(|x, y| x.by.cmp(&y.by));
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(a[0].by, "alice@example.com");
    assert_eq!(a[0].login, "alice");
    assert_eq!(a[0].sha, HEAD_SHA);
    assert_eq!(a[1].by, "bob@example.com");
    assert_eq!(a[1].login, "Bob-GH");
    assert_eq!(a[1].sha, MOVED_SHA);
    let calls = s.calls("GET", &format!("{REPO}/pulls/42/reviews"));
    assert_eq!(calls.len(), 2);
    calls.iter().for_each(assert_headers);
}

#[test]
fn pagination_never_follows_links_off_the_api_host() {
    let s = FakeServer::start(|_| {
        Reply::json(200, json!([review("alice", "APPROVED", HEAD_SHA)]))
            .header("link", "<http://evil.example/steal?page=2>; rel=\"next\"")
    });
    let e = forge(&s).approvals(42).unwrap_err();
    assert!(e.to_string().contains("not following"), "{e}");
    assert_eq!(s.requests().len(), 1);
}

// ---------------------------------------------------------------- checks

fn checks_server() -> FakeServer {
    FakeServer::start(|r| match r.route() {
        "/repos/acme/shop/commits/1111111111111111111111111111111111111111/check-runs" => {
            Reply::json(
                200,
                json!({"total_count": 4, "check_runs": [
                    {"id": 1, "name": "build", "status": "completed", "conclusion": "success", "details_url": "https://ci/1"},
                    {"id": 2, "name": "lint", "status": "completed", "conclusion": "neutral"},
                    {"id": 3, "name": "e2e", "status": "in_progress", "conclusion": null},
                    {"id": 4, "name": "security", "status": "completed", "conclusion": "timed_out"},
                ]}),
            )
        }
        "/repos/acme/shop/commits/1111111111111111111111111111111111111111/status" => Reply::json(
            200,
            json!({"state": "failure", "sha": HEAD_SHA, "total_count": 3, "statuses": [
                {"context": "railway/preview", "state": "success", "description": "Deployed", "target_url": "https://preview"},
                {"context": "ci/legacy", "state": "error", "description": "boom"},
                {"context": "coverage", "state": "pending", "description": ""},
            ]}),
        ),
        _ => not_found(),
    })
}

#[test]
fn required_checks_all_reported_by_name() {
    let s = checks_server();
    let checks = forge(&s).required_checks(HEAD_SHA).unwrap();
    let state = |n: &str| {
        checks
            .iter()
            .find(|c| c.name == n)
            .map(|c| c.state.clone())
            .unwrap()
    };
    assert_eq!(checks.len(), 7);
    assert_eq!(state("build"), CheckState::Success);
    assert_eq!(state("lint"), CheckState::Success);
    assert_eq!(state("e2e"), CheckState::Pending);
    assert_eq!(state("security"), CheckState::Failure);
    assert_eq!(state("railway/preview"), CheckState::Success);
    assert_eq!(state("ci/legacy"), CheckState::Failure);
    assert_eq!(state("coverage"), CheckState::Pending);
    let sec = checks.iter().find(|c| c.name == "security").unwrap();
    assert!(sec.detail.contains("timed_out"), "{}", sec.detail);
    for r in s.requests() {
        assert_eq!(r.method, "GET");
        assert_headers(&r);
    }
}

#[test]
fn required_checks_listed_names_only() {
    let s = checks_server();
    let f = forge_with(
        &s,
        r#"required_checks = ["build", "railway/preview", "deploy-approval"]"#,
    );
    let checks = f.required_checks(HEAD_SHA).unwrap();
    let got: Vec<(&str, CheckState)> = checks
        .iter()
        .map(|c| (c.name.as_str(), c.state.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("build", CheckState::Success),
            ("railway/preview", CheckState::Success),
            // Never reported: not green yet.
            ("deploy-approval", CheckState::Pending),
        ]
    );
}

#[test]
fn no_checks_reported_means_none_required() {
    let s = FakeServer::start(|r| {
        if r.route().ends_with("/check-runs") {
            Reply::json(200, json!({"total_count": 0, "check_runs": []}))
        } else {
            Reply::json(
                200,
                json!({"state": "pending", "total_count": 0, "statuses": []}),
            )
        }
    });
    assert!(forge(&s).required_checks(HEAD_SHA).unwrap().is_empty());
}

// ---------------------------------------------------------------- merge

fn merge_server(put: Reply, after: Value) -> FakeServer {
    let gets = Arc::new(AtomicUsize::new(0));
    FakeServer::start(move |r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/pulls/42") => {
            if gets.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply::json(200, open_pr(42))
            } else {
                Reply::json(200, after.clone())
            }
        }
        ("PUT", "/repos/acme/shop/pulls/42/merge") => put.clone(),
        _ => not_found(),
    })
}

#[test]
fn merge_sends_the_sha_guard_and_returns_the_merge_commit() {
    let s = merge_server(
        Reply::json(
            200,
            json!({"sha": MERGE_SHA, "merged": true, "message": "Pull Request successfully merged"}),
        ),
        open_pr(42),
    );
    let sha = forge(&s)
        .merge_pr(
            42,
            HEAD_SHA,
            "Hotfix INC-7: PDF crash\n\nApproved-by: alice",
        )
        .unwrap();
    assert_eq!(sha, MERGE_SHA);
    let puts = s.calls("PUT", &format!("{REPO}/pulls/42/merge"));
    assert_eq!(puts.len(), 1);
    assert_headers(&puts[0]);
    let b = puts[0].json();
    assert_eq!(b["sha"], HEAD_SHA);
    assert_eq!(b["merge_method"], "merge");
    assert_eq!(b["commit_title"], "Hotfix INC-7: PDF crash");
    assert_eq!(b["commit_message"], "Approved-by: alice");
}

#[test]
fn merge_of_a_merged_pr_returns_its_merge_commit() {
    let s = FakeServer::start(|r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/pulls/42") => Reply::json(
            200,
            pr(42, "closed", "hotfix/pdf", HEAD_SHA, Some(MERGE_SHA)),
        ),
        _ => Reply::json(500, json!({"message": "should not be called"})),
    });
    assert_eq!(forge(&s).merge_pr(42, HEAD_SHA, "m").unwrap(), MERGE_SHA);
    assert!(s.calls("PUT", &format!("{REPO}/pulls/42/merge")).is_empty());
}

#[test]
fn merge_405_says_why() {
    let mut blocked = open_pr(42);
    blocked["mergeable_state"] = json!("blocked");
    let s = merge_server(
        Reply::json(
            405,
            json!({"message": "At least 1 approving review is required by reviewers with write access."}),
        ),
        blocked,
    );
    let e = forge(&s).merge_pr(42, HEAD_SHA, "m").unwrap_err();
    match &e {
        ForgeError::NotMergeable(m) => {
            assert!(m.contains("At least 1 approving review"), "{m}");
            assert!(m.contains("blocked"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_token(&e);
}

#[test]
fn merge_409_is_head_moved_with_the_actual_head() {
    let s = merge_server(
        Reply::json(
            409,
            json!({"message": "Head branch was modified. Review and try the merge again."}),
        ),
        pr(42, "open", "hotfix/pdf", MOVED_SHA, None),
    );
    match forge(&s).merge_pr(42, HEAD_SHA, "m").unwrap_err() {
        ForgeError::HeadMoved {
            branch,
            expected,
            actual,
        } => {
            assert_eq!(branch, "hotfix/pdf");
            assert_eq!(expected, HEAD_SHA);
            assert_eq!(actual, MOVED_SHA);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn merge_422_is_explained() {
    let s = merge_server(
        Reply::json(
            422,
            json!({"message": "Validation Failed", "errors": [{"field": "merge_method", "code": "invalid"}]}),
        ),
        open_pr(42),
    );
    let e = forge_with(&s, "merge_method = \"rebase\"")
        .merge_pr(42, HEAD_SHA, "m")
        .unwrap_err();
    let m = e.to_string();
    assert!(m.contains("422") && m.contains("merge_method"), "{m}");
    assert!(m.contains("rebase"), "{m}");
    let puts = s.calls("PUT", &format!("{REPO}/pulls/42/merge"));
    assert_eq!(puts[0].json()["merge_method"], "rebase");
}

#[test]
fn merge_of_a_closed_pr_is_refused_without_trying() {
    let s = FakeServer::start(|r| match r.route() {
        "/repos/acme/shop/pulls/42" => {
            Reply::json(200, pr(42, "closed", "hotfix/pdf", HEAD_SHA, None))
        }
        _ => not_found(),
    });
    assert!(matches!(
        forge(&s).merge_pr(42, HEAD_SHA, "m"),
        Err(ForgeError::NotMergeable(_))
    ));
    assert_eq!(s.requests().len(), 1);
}

// ---------------------------------------------------------------- revert

const REVERT_MERGE: &str = "4444444444444444444444444444444444444444";

fn revert_server(existing: Vec<Value>, graphql: Reply) -> FakeServer {
    FakeServer::start(move |r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/commits/3333333333333333333333333333333333333333/pulls") => {
            Reply::json(
                200,
                json!([pr(42, "closed", "hotfix/pdf", HEAD_SHA, Some(MERGE_SHA))]),
            )
        }
        ("GET", "/repos/acme/shop/pulls") => Reply::json(200, json!(existing.clone())),
        ("POST", "/graphql") => graphql.clone(),
        ("GET", "/repos/acme/shop/pulls/43") => {
            Reply::json(200, pr(43, "open", "revert-42-hotfix/pdf", MOVED_SHA, None))
        }
        ("PUT", "/repos/acme/shop/pulls/43/merge") => Reply::json(
            200,
            json!({"sha": REVERT_MERGE, "merged": true, "message": "ok"}),
        ),
        _ => not_found(),
    })
}

#[test]
fn revert_runs_the_graphql_mutation_then_merges_the_revert_pr() {
    let s = revert_server(
        vec![],
        Reply::json(
            200,
            json!({"data": {"revertPullRequest": {"revertPullRequest": {"number": 43, "url": "https://github.com/acme/shop/pull/43"}}}}),
        ),
    );
    let sha = forge(&s)
        .revert_merge(
            "main",
            MERGE_SHA,
            "Revert hotfix INC-7\n\nProduction got worse.",
        )
        .unwrap();
    assert_eq!(sha, REVERT_MERGE);
    let gql = s.calls("POST", "/graphql");
    assert_eq!(gql.len(), 1);
    assert_headers(&gql[0]);
    let b = gql[0].json();
    let q = b["query"].as_str().unwrap();
    assert!(
        q.contains("revertPullRequest(input: {pullRequestId: $id"),
        "{q}"
    );
    assert_eq!(b["variables"]["id"], "PR_node42");
    assert_eq!(b["variables"]["title"], "Revert hotfix INC-7");
    let body = b["variables"]["body"].as_str().unwrap();
    assert!(body.contains("Production got worse."), "{body}");
    assert!(
        body.contains(&format!("Reverts-Merge: {MERGE_SHA}")),
        "{body}"
    );
    let list = s.calls("GET", &format!("{REPO}/pulls"));
    assert!(list[0].path.contains("state=all") && list[0].path.contains("base=main"));
    // The revert PR is merged with its own head as the guard.
    let puts = s.calls("PUT", &format!("{REPO}/pulls/43/merge"));
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].json()["sha"], MOVED_SHA);
}

#[test]
fn revert_is_idempotent_through_the_existing_revert_pr() {
    let mut done = pr(
        43,
        "closed",
        "revert-42-hotfix/pdf",
        MOVED_SHA,
        Some(REVERT_MERGE),
    );
    done["body"] = json!(format!(
        "Reverts acme/shop#42\n\nReverts-Merge: {MERGE_SHA}"
    ));
    let s = revert_server(
        vec![open_pr(41), done],
        Reply::json(500, json!({"message": "must not be called"})),
    );
    assert_eq!(
        forge(&s).revert_merge("main", MERGE_SHA, "Revert").unwrap(),
        REVERT_MERGE
    );
    assert!(s.calls("POST", "/graphql").is_empty());

    // An open one from an earlier run (GitHub's revert branch name) is merged.
    let s = revert_server(
        vec![pr(43, "open", "revert-42-hotfix/pdf", MOVED_SHA, None)],
        Reply::json(500, json!({"message": "must not be called"})),
    );
    assert_eq!(
        forge(&s).revert_merge("main", MERGE_SHA, "Revert").unwrap(),
        REVERT_MERGE
    );
    assert!(s.calls("POST", "/graphql").is_empty());
    assert_eq!(s.calls("PUT", &format!("{REPO}/pulls/43/merge")).len(), 1);
}

#[test]
fn graphql_errors_on_200_are_errors() {
    let s = revert_server(
        vec![],
        Reply::json(
            200,
            json!({"data": {"revertPullRequest": null}, "errors": [{"type": "FORBIDDEN",
                "path": ["revertPullRequest"], "message": "Resource not accessible by integration"}]}),
        ),
    );
    let e = forge(&s)
        .revert_merge("main", MERGE_SHA, "Revert")
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("Resource not accessible by integration") && m.contains("FORBIDDEN"),
        "{m}"
    );
    assert_no_token(&e);
    assert!(s.calls("PUT", &format!("{REPO}/pulls/43/merge")).is_empty());
}

#[test]
fn revert_of_an_unknown_merge_is_refused() {
    let s = FakeServer::start(|r| {
        if r.route().ends_with("/pulls") && r.route().contains("/commits/") {
            Reply::json(200, json!([]))
        } else {
            not_found()
        }
    });
    assert!(matches!(
        forge(&s).revert_merge("main", MERGE_SHA, "Revert"),
        Err(ForgeError::NotMergeable(_))
    ));
}

// ---------------------------------------------------------------- failures

#[test]
fn unauthorized_names_the_env_vars_and_hides_the_token() {
    let s = FakeServer::start(|_| {
        Reply::json(
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        )
    });
    let e = forge(&s).get_pr(1).unwrap_err();
    match &e {
        ForgeError::Unauthorized(m) => {
            assert!(
                m.contains("GITHUB_TOKEN") && m.contains("HOTFIX_GITHUB_TOKEN"),
                "{m}"
            );
            assert!(m.contains("Bad credentials"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_no_token(&e);
    assert_eq!(s.requests().len(), 1, "401 is not retried");
}

#[test]
fn not_found_repo_is_explained() {
    let s = FakeServer::start(|_| not_found());
    let e = forge(&s).find_open_pr("hotfix/x").unwrap_err();
    let m = e.to_string();
    assert!(m.contains("404") && m.contains("acme/shop"), "{m}");
    assert_no_token(&e);
}

#[test]
fn plain_403_is_a_permission_problem_not_retried() {
    let s = FakeServer::start(|_| {
        Reply::json(
            403,
            json!({"message": "Resource not accessible by personal access token"}),
        )
        .header("x-ratelimit-remaining", "4999")
    });
    let e = forge(&s).get_pr(1).unwrap_err();
    assert!(matches!(e, ForgeError::Unauthorized(_)), "{e:?}");
    assert_eq!(s.requests().len(), 1);
}

/// Fails `n` times with `fail`, then answers the PR.
fn flaky(n: usize, fail: Reply) -> FakeServer {
    let count = Arc::new(AtomicUsize::new(0));
    FakeServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) < n {
            fail.clone()
        } else {
            Reply::json(200, open_pr(42))
        }
    })
}

#[test]
fn rate_limited_429_with_retry_after_then_success() {
    let s = flaky(
        2,
        Reply::json(429, json!({"message": "API rate limit exceeded"})).header("retry-after", "30"),
    );
    let t = Instant::now();
    assert_eq!(forge(&s).get_pr(42).unwrap().number, 42);
    assert_eq!(s.requests().len(), 3);
    // The 30 s asked for are capped by max_retry_wait (5 ms in tests).
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn secondary_rate_limit_403_with_retry_after_then_success() {
    let s = flaky(
        1,
        Reply::json(
            403,
            json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
        )
        .header("retry-after", "60"),
    );
    assert_eq!(forge(&s).get_pr(42).unwrap().number, 42);
    assert_eq!(s.requests().len(), 2);
}

#[test]
fn primary_rate_limit_far_from_reset_fails_fast_and_clearly() {
    let reset = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let s = FakeServer::start(move |_| {
        Reply::json(
            403,
            json!({"message": "API rate limit exceeded for user ID 1."}),
        )
        .header("x-ratelimit-remaining", "0")
        .header("x-ratelimit-reset", &reset.to_string())
    });
    let e = forge(&s).get_pr(42).unwrap_err();
    assert!(e.to_string().contains("rate limit"), "{e}");
    assert_eq!(s.requests().len(), 1);
    assert_no_token(&e);
}

#[test]
fn rate_limit_retries_are_bounded() {
    let s = FakeServer::start(|_| {
        Reply::json(429, json!({"message": "API rate limit exceeded"})).header("retry-after", "1")
    });
    let e = forge(&s).get_pr(42).unwrap_err();
    assert!(e.to_string().contains("rate-limiting"), "{e}");
    assert_eq!(s.requests().len(), 4, "1 try + max_retries (3)");
}

#[test]
fn server_errors_are_retried_then_succeed() {
    let s = flaky(2, Reply::text(502, "Bad Gateway"));
    assert_eq!(forge(&s).get_pr(42).unwrap().number, 42);
    assert_eq!(s.requests().len(), 3);
}

#[test]
fn server_errors_give_up_after_the_bound() {
    let s = FakeServer::start(|_| Reply::json(503, json!({"message": "Service Unavailable"})));
    let e = forge(&s).get_pr(42).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("503") && m.contains("Service Unavailable"),
        "{m}"
    );
    assert_eq!(s.requests().len(), 4);
}

#[test]
fn a_server_that_never_answers_is_unreachable() {
    let s = FakeServer::start(|_| Reply::json(200, open_pr(42)).delayed(Duration::from_secs(3)));
    let t = Instant::now();
    let e = forge(&s).get_pr(42).unwrap_err();
    assert!(matches!(e, ForgeError::Unreachable(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_no_token(&e);
}

#[test]
fn connection_refused_is_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let f = GithubForge::new(
        config(&format!("http://127.0.0.1:{port}"), ""),
        TOKEN.into(),
        None,
        "origin".into(),
    );
    let e = f.get_pr(1).unwrap_err();
    assert!(matches!(e, ForgeError::Unreachable(_)), "{e:?}");
    assert_no_token(&e);
}

#[test]
fn malformed_json_is_a_clear_error() {
    let s =
        FakeServer::start(|_| Reply::raw(200, "application/json", "{\"number\": 42, \"state\": "));
    let e = forge(&s).get_pr(42).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("malformed"), "{m}");
    assert_no_token(&e);

    // Valid JSON of the wrong shape is malformed too (no panic on missing fields).
    let s = FakeServer::start(|_| Reply::json(200, json!({"number": "forty-two"})));
    assert!(
        forge(&s)
            .get_pr(42)
            .unwrap_err()
            .to_string()
            .contains("malformed")
    );
}

#[test]
fn a_token_echoed_by_the_server_is_redacted() {
    let s = FakeServer::start(|r| {
        let auth = r.header("authorization").unwrap_or("").to_string();
        Reply::json(
            500,
            json!({"message": format!("internal error for {auth}")}),
        )
    });
    let e = forge(&s).get_pr(42).unwrap_err();
    assert_no_token(&e);
    assert!(e.to_string().contains("***"), "{e}");
}

// ---------------------------------------------------------------- signatures

#[test]
fn github_signature_documented_vector() {
    let secret = b"It's a Secret to Everybody";
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        format!("sha256={}", sign_hmac_sha256_hex(secret, b"Hello, World!")),
        sig
    );
    assert!(verify_github(secret, b"Hello, World!", sig));
    assert!(!verify_github(secret, b"Hello, World?", sig));
    assert!(!verify_github(b"another secret", b"Hello, World!", sig));
    assert!(!verify_github(secret, b"Hello, World!", "sha256=zz"));
    assert!(!verify_github(secret, b"Hello, World!", &sig[7..]));
    assert!(!verify_github(secret, b"Hello, World!", "sha1=757107"));
}

/// Slack's documented example. The body's token is
/// `xyzz0WbapA4vBCDEFasx0q6G` (as in Slack's docs and the reference notes);
/// with any other token the documented signature does not match.
const SLACK_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
const SLACK_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const SLACK_SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

#[test]
fn slack_signature_documented_vector_and_replay_window() {
    let ts = "1531420618";
    let now = 1_531_420_618 + 10;
    assert_eq!(
        verify_slack(SLACK_SECRET, ts, SLACK_BODY.as_bytes(), SLACK_SIG, now, 300),
        Ok(())
    );
    let basestring = format!("v0:{ts}:{SLACK_BODY}");
    assert_eq!(
        format!(
            "v0={}",
            sign_hmac_sha256_hex(SLACK_SECRET, basestring.as_bytes())
        ),
        SLACK_SIG
    );
    // Replayed an hour later.
    assert!(matches!(
        verify_slack(
            SLACK_SECRET,
            ts,
            SLACK_BODY.as_bytes(),
            SLACK_SIG,
            now + 3600,
            300
        ),
        Err(SignatureError::Expired { .. })
    ));
    // Tampered body, wrong secret, bad header, bad timestamp.
    let tampered = SLACK_BODY.replace("roadrunner", "coyote");
    assert_eq!(
        verify_slack(SLACK_SECRET, ts, tampered.as_bytes(), SLACK_SIG, now, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_slack(b"other", ts, SLACK_BODY.as_bytes(), SLACK_SIG, now, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_slack(
            SLACK_SECRET,
            ts,
            SLACK_BODY.as_bytes(),
            &SLACK_SIG[3..],
            now,
            300
        ),
        Err(SignatureError::Malformed)
    );
    assert!(matches!(
        verify_slack(
            SLACK_SECRET,
            "soon",
            SLACK_BODY.as_bytes(),
            SLACK_SIG,
            now,
            300
        ),
        Err(SignatureError::BadTimestamp(_))
    ));
}

// ---------------------------------------------------------------- revert = "branch"

#[test]
fn revert_branch_pushes_a_revert_commit_opens_and_merges_a_pr() {
    use hotfix_testkit::TestRepo;
    let repo = TestRepo::new("");
    // Local identity so that the forge's own git calls can commit.
    repo.git(&["config", "user.name", "Dev"]);
    repo.git(&["config", "user.email", "dev@example.com"]);
    repo.git(&["checkout", "--quiet", "-b", "hotfix/pdf"]);
    repo.write("app/pdf", "fixed\n");
    repo.git(&["commit", "--quiet", "-am", "fix pdf"]);
    repo.git(&["checkout", "--quiet", "main"]);
    repo.git(&[
        "merge",
        "--quiet",
        "--no-ff",
        "-m",
        "Merge hotfix/pdf",
        "hotfix/pdf",
    ]);
    repo.git(&["push", "--quiet", "origin", "main"]);
    let merge_sha = repo.git(&["rev-parse", "HEAD"]).trim().to_string();
    let branch = format!("hotfix-revert-{}", &merge_sha[..12]);

    let b = branch.clone();
    let s = FakeServer::start(move |r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/pulls") => Reply::json(200, json!([])),
        ("POST", "/repos/acme/shop/pulls") => Reply::json(201, pr(50, "open", &b, MOVED_SHA, None)),
        ("GET", "/repos/acme/shop/pulls/50") => {
            Reply::json(200, pr(50, "open", &b, MOVED_SHA, None))
        }
        ("PUT", "/repos/acme/shop/pulls/50/merge") => Reply::json(
            200,
            json!({"sha": REVERT_MERGE, "merged": true, "message": "ok"}),
        ),
        _ => not_found(),
    });
    let git = hotfix_git::Git::open(&repo.work).unwrap();
    let f = GithubForge::new(
        config(&s.url(), "revert = \"branch\""),
        TOKEN.into(),
        Some(git),
        "origin".into(),
    );
    let sha = f
        .revert_merge(
            "main",
            &merge_sha,
            "Revert hotfix INC-7\n\nWorse in production.",
        )
        .unwrap();
    assert_eq!(sha, REVERT_MERGE);

    // The branch on the remote: one revert commit on top of main.
    let pushed = repo
        .origin_git(&["rev-parse", &format!("refs/heads/{branch}")])
        .trim()
        .to_string();
    let parent = repo
        .origin_git(&["rev-parse", &format!("{pushed}^")])
        .trim()
        .to_string();
    assert_eq!(parent, merge_sha);
    let pdf = repo.origin_git(&["show", &format!("{pushed}:app/pdf")]);
    assert_eq!(pdf, "crash");
    let msg = repo.origin_git(&["log", "-1", "--format=%B", &pushed]);
    assert!(
        msg.contains(&format!("Reverts-Merge: {merge_sha}")),
        "{msg}"
    );

    let posts = s.calls("POST", &format!("{REPO}/pulls"));
    assert_eq!(posts.len(), 1);
    assert_headers(&posts[0]);
    let body = posts[0].json();
    assert_eq!(body["head"], branch.as_str());
    assert_eq!(body["base"], "main");
    assert_eq!(body["title"], "Revert hotfix INC-7");
    // Merged with the head we pushed as the guard, not whatever the PR says.
    let puts = s.calls("PUT", &format!("{REPO}/pulls/50/merge"));
    assert_eq!(puts[0].json()["sha"], pushed.as_str());

    // A re-run finds the merged revert PR by its trailer: no new push, no PR.
    let mut done = pr(50, "closed", &branch, &pushed, Some(REVERT_MERGE));
    done["body"] = json!(format!(
        "Worse in production.\n\nReverts-Merge: {merge_sha}"
    ));
    s.set_handler(move |r| match (r.method.as_str(), r.route()) {
        ("GET", "/repos/acme/shop/pulls") => Reply::json(200, json!([done.clone()])),
        ("GET", "/repos/acme/shop/pulls/50") => Reply::json(200, done.clone()),
        _ => Reply::json(500, json!({"message": "must not be called"})),
    });
    assert_eq!(
        f.revert_merge("main", &merge_sha, "Revert hotfix INC-7")
            .unwrap(),
        REVERT_MERGE
    );
    assert_eq!(s.calls("POST", &format!("{REPO}/pulls")).len(), 1);
}
