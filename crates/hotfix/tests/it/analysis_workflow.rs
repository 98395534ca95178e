//! Analysis during the watch window, end to end with the real binary: a
//! release that keeps `/health` green but makes its metric bad is rolled
//! back by itself with the numbers in the reason; a good one passes and
//! "fix verified" says which evidence it has; no data is a pause (exit 3,
//! not verified) or a failure, as configured.
//!
//! The metric is what production serves: the deploy script copies the
//! release's `app/error_ratio` into production's directory and the
//! `command` analysis reads it back, so a test decides per commit what the
//! new release "measures" while `/health` says `ok`.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use serde_json::Value;

fn analysis(inconclusive: &str) -> String {
    format!(
        r#"
[[analysis]]
name = "5xx ratio"
provider = "command"
command = "sh -c 'cat \"$HOTFIX_TEST_PROD/error_ratio\"'"
max = 0.01
interval = "100ms"
failure_limit = 2
inconclusive = "{inconclusive}"
"#
    )
}

/// A world whose production also serves the release's error ratio (a
/// release without one serves a healthy 0.001).
fn world(inconclusive: &str) -> World {
    let w = World::with_config(&analysis(inconclusive));
    let pd = w.prod.dir.display().to_string();
    let copy = format!(
        "\nif git cat-file -e \"$HOTFIX_SHA:app/error_ratio\" 2>/dev/null; then git show \"$HOTFIX_SHA:app/error_ratio\" > {pd}/error_ratio; else echo 0.001 > {pd}/error_ratio; fi\n"
    );
    for s in ["deploy.sh", "rollback.sh"] {
        let p = w.scripts.join(s);
        let body = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, format!("{body}{copy}")).unwrap();
    }
    std::fs::write(w.prod.dir.join("error_ratio"), "0.001\n").unwrap();
    w
}

fn hf(w: &World, args: &[&str]) -> Run {
    let pd = w.prod.dir.display().to_string();
    w.hf_env(DEV, args, &[("HOTFIX_TEST_PROD", &pd)])
}

/// start + a fix whose release measures `ratio` + push + approval.
fn ready(w: &World, ratio: &str) {
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("app/pdf", "pdf ok\n");
    w.repo.write("app/error_ratio", ratio);
    w.repo.commit_as(DEV, "Fix PDF export crash");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
}

fn events(w: &World, kind: &str) -> Vec<Value> {
    let log = w.log();
    log.as_array().unwrap()[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == kind)
        .cloned()
        .collect()
}

fn fix_verified(w: &World) -> Value {
    let cl: Value =
        serde_json::from_str(&w.hf(&["checklist", "HF-1", "--json"]).ok().stdout).unwrap();
    cl.as_array()
        .unwrap()
        .iter()
        .find(|i| i["key"] == "fix_verified")
        .unwrap()
        .clone()
}

#[test]
fn a_bad_metric_with_health_green_rolls_back_by_itself_with_the_numbers() {
    let w = world("pause");
    let good_main = w.origin_sha("main");
    ready(&w, "0.2\n");
    let r = hf(&w, &["ship"]).fails(1, "rolled back automatically");
    assert!(r.all().contains("0.2 > max 0.01"), "{}", r.all());
    assert!(r.all().contains("5xx ratio"), "{}", r.all());
    // Production is back on the previous release.
    let rollbacks = std::fs::read_to_string(w.prod.dir.join("rollbacks")).unwrap();
    assert_eq!(rollbacks.trim(), format!("rollback {good_main}"));
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back");
    assert!(
        s["rolled_back"]["reason"]
            .as_str()
            .unwrap()
            .contains("0.2 > max 0.01"),
        "{s}"
    );
    let failed = events(&w, "analysis_failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["values"], serde_json::json!([0.2, 0.2]));
    assert_eq!(failed[0]["threshold"], "max 0.01");
    let measured = events(&w, "analysis_measured");
    assert_eq!(measured.len(), 1);
    assert_eq!(measured[0]["verdict"], "fail");
    assert!(!fix_verified(&w)["done"].as_bool().unwrap());
}

#[test]
fn a_good_release_passes_and_fix_verified_names_its_analysis_evidence() {
    let w = world("pause");
    ready(&w, "0.002\n");
    hf(&w, &["ship"]).ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "deployed", "{s}");
    let measured = events(&w, "analysis_measured");
    assert_eq!(measured.len(), 1);
    assert_eq!(measured[0]["verdict"], "pass");
    assert!(
        measured[0]["samples"].as_array().unwrap().len() >= 2,
        "{measured:?}"
    );
    assert_eq!(events(&w, "analysis_failed").len(), 0);
    let item = fix_verified(&w);
    assert_eq!(item["done"], true, "{item}");
    let evidence = item["evidence"].as_str().unwrap();
    assert!(evidence.contains("health watch passed"), "{evidence}");
    assert!(evidence.contains("1 analysis passed"), "{evidence}");
}

#[test]
fn no_data_under_pause_stops_with_exit_3_unverified_and_a_rerun_watches_again() {
    let w = world("pause");
    ready(&w, "");
    let r = hf(&w, &["ship"]).fails(3, "not verified");
    assert!(r.all().contains("hotfix ship HF-1"), "{}", r.all());
    assert!(r.all().contains("hotfix rollback HF-1"), "{}", r.all());
    assert!(!std::fs::exists(w.prod.dir.join("rollbacks")).unwrap());
    let s = w.status("HF-1");
    assert_eq!(s["state"], "merged", "{s}");
    assert!(!fix_verified(&w)["done"].as_bool().unwrap());
    assert_eq!(
        events(&w, "analysis_measured")[0]["verdict"],
        "inconclusive"
    );
    assert_eq!(events(&w, "health_passed").len(), 0);
    assert!(
        s["next_action"]
            .as_str()
            .unwrap()
            .contains("an analysis had no data"),
        "{s}"
    );
    // The metric source answers again: a re-run watches and verifies.
    std::fs::write(w.prod.dir.join("error_ratio"), "0.001\n").unwrap();
    hf(&w, &["ship", "HF-1"]).ok();
    assert_eq!(w.status("HF-1")["state"], "deployed");
    assert_eq!(fix_verified(&w)["done"], true);
    assert_eq!(events(&w, "analysis_measured").len(), 2);
}

#[test]
fn no_data_under_fail_rolls_back() {
    let w = world("fail");
    ready(&w, "");
    let r = hf(&w, &["ship"]).fails(1, "rolled back automatically");
    assert!(r.all().contains("no data"), "{}", r.all());
    assert_eq!(w.status("HF-1")["state"], "rolled_back");
}

// --- the canary on the embedded platform, measured by the platform itself ---

const ROUTES_GOOD: &str = "[[route]]\npath = \"/health\"\nbody = \"ok\"\n\n[[route]]\npath = \"/export/pdf\"\nbody = \"%PDF\"\n\n[[route]]\npath = \"/checkout\"\nbody = \"paid\"\n";

struct Platform<'a>(&'a World);

impl Drop for Platform<'_> {
    fn drop(&mut self) {
        let _ = self.0.hf(&["platform", "stop"]);
    }
}

/// Requests to production's `/checkout` from another thread until dropped:
/// the users the canary's share of traffic is measured on.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(u64, u64)>>,
}

impl Load {
    fn start(port: u16) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let url = format!("http://127.0.0.1:{port}/checkout");
            let (mut ok, mut failed) = (0u64, 0u64);
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match hotfix_providers::health::get(&url, std::time::Duration::from_secs(2)) {
                    Ok((200, _)) => ok += 1,
                    _ => failed += 1,
                }
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
            (ok, failed)
        });
        Load {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it: (answered 200, failed).
    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A repo on the embedded platform with a 20% canary measured by the
/// platform's own counters: the canary's 5xx ratio on `/checkout` ≤ 1%.
fn canary_world(port: u16) -> World {
    let run = format!("{:?}", format!("{} sample-service", bin().display()));
    let toml = format!(
        r#"[team]
tech_leads = ["{LEAD}"]

[deploy]
provider = "local"
run = {run}
port = {port}
ready_timeout = "10s"
watch = "600ms"
probe_interval = "100ms"
canary = ["20%"]
canary_pause = "1500ms"

[[smoke]]
path = "/export/pdf"

[[analysis]]
name = "checkout 5xx"
provider = "platform"
metric = "error_ratio"
route = "/checkout"
max = 0.01
interval = "250ms"
failure_limit = 2
inconclusive = "pause"
"#
    );
    let w = World::new();
    w.repo.write("hotfix.toml", &toml);
    w.repo.write("service/routes.toml", ROUTES_GOOD);
    w.repo.commit_as(DEV, "the embedded platform with a canary");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w
}

/// Production runs main on the platform; HF-1's fix (a good one) is
/// pushed, previewed and approved: ready to ship.
fn approved_fix_on_the_platform(w: &World) {
    w.hf(&["platform", "start"]).ok();
    w.hf(&["platform", "deploy"]).ok();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write(
        "service/routes.toml",
        &ROUTES_GOOD.replace("%PDF", "%PDF-fixed"),
    );
    w.repo.commit_as(DEV, "fix pdf");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
}

fn platform_sha(w: &World) -> Value {
    let st: Value =
        serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap();
    st["production"]["sha"].clone()
}

#[test]
fn a_canary_the_platform_analysis_fails_is_aborted_and_production_never_switches() {
    let port = hotfix_platform::free_port().unwrap();
    let w = canary_world(port);
    let _guard = Platform(&w);
    w.hf(&["platform", "start"]).ok();
    w.hf(&["platform", "deploy"]).ok();
    let main = w.origin_sha("main");
    assert_eq!(platform_sha(&w), main.as_str());

    // The fix keeps /health and the smoke-checked /export/pdf green but
    // breaks checkout.
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write(
        "service/routes.toml",
        &ROUTES_GOOD.replace("body = \"paid\"", "status = 500\nbody = \"panic\""),
    );
    w.repo.commit_as(DEV, "fix pdf, break checkout");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();

    let load = Load::start(port);
    let r = w.hf(&["ship"]).fails(1, "rolled back automatically");
    let (ok, failed) = load.finish();
    assert!(r.all().contains("canary"), "{}", r.all());
    assert!(r.all().contains("> max 0.01"), "{}", r.all());
    // Production never ran the fix in full: no `deployed`, the old release serves.
    assert_eq!(w.count("HF-1", "deployed"), 0);
    assert_eq!(w.count("HF-1", "canary_step"), 1);
    assert_eq!(w.count("HF-1", "canary_aborted"), 1);
    assert_eq!(w.count("HF-1", "analysis_failed"), 1);
    assert_eq!(platform_sha(&w), main.as_str());
    let (code, body) = hotfix_providers::health::get(
        &format!("http://127.0.0.1:{port}/checkout"),
        std::time::Duration::from_secs(2),
    )
    .unwrap();
    assert_eq!((code, body.as_str()), (200, "paid"));
    // Only the canary's share of users saw the failure.
    assert!(ok > 0 && failed > 0, "ok {ok} failed {failed}");
    assert!(
        (failed as f64) < 0.5 * ((ok + failed) as f64),
        "ok {ok} failed {failed}: more than the canary's share failed"
    );
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back", "{s}");
    assert!(s["canary"]["aborted"].as_str().is_some(), "{s}");
}

#[test]
fn a_healthy_canary_is_promoted_and_verified_by_the_platform_analysis() {
    let port = hotfix_platform::free_port().unwrap();
    let w = canary_world(port);
    let _guard = Platform(&w);
    approved_fix_on_the_platform(&w);

    let load = Load::start(port);
    let r = w.hf(&["ship"]);
    let (ok, failed) = load.finish();
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(failed, 0, "ok {ok} failed {failed}");
    let merge = w.origin_sha("main");
    assert_eq!(platform_sha(&w), merge.as_str());
    let log = w.log();
    let weights: Vec<f64> = log.as_array().unwrap()[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "canary_step")
        .map(|e| e["weight"].as_f64().unwrap())
        .collect();
    assert_eq!(weights, vec![20.0, 100.0]);
    // Measured during the canary step and again over the full watch.
    assert_eq!(w.count("HF-1", "analysis_measured"), 2);
    let s = w.status("HF-1");
    assert_eq!(s["state"], "deployed", "{s}");
    let evidence = s["fix_verified_evidence"].as_str().unwrap();
    assert!(evidence.contains("1 analysis passed"), "{evidence}");
}

#[test]
fn a_canary_without_traffic_pauses_at_its_step_and_a_rollback_aborts_it() {
    let port = hotfix_platform::free_port().unwrap();
    let w = canary_world(port);
    let _guard = Platform(&w);
    approved_fix_on_the_platform(&w);
    // main does not move before the ship.
    let main = w.origin_sha("main");

    // Nobody calls /checkout: the canary's analysis has no data.
    let r = w.hf(&["ship"]).fails(3, "not verified");
    assert!(r.all().contains("the canary"), "{}", r.all());
    assert!(r.all().contains("hotfix rollback HF-1"), "{}", r.all());
    let s = w.status("HF-1");
    assert_eq!(s["canary"]["weight"], 20.0, "{s}");
    assert!(s["canary"]["aborted"].is_null(), "{s}");
    assert_eq!(w.count("HF-1", "deployed"), 0);
    assert_eq!(platform_sha(&w), main.as_str());

    // The person decides: roll back. The canary goes to 0% and the merge is reverted.
    w.hf(&[
        "rollback",
        "HF-1",
        "--reason",
        "no traffic to judge the canary",
    ])
    .ok();
    let s = w.status("HF-1");
    assert_eq!(s["state"], "rolled_back", "{s}");
    assert_eq!(s["canary"]["aborted"], "no traffic to judge the canary");
    assert_eq!(platform_sha(&w), main.as_str());
    let st: Value =
        serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap();
    assert!(
        st["canary"].is_null() || st["canary"]["weight"] == 0.0,
        "the platform still sends requests to the canary: {st}"
    );
}

#[test]
fn a_ship_killed_during_the_canary_resumes_at_its_step_when_rerun() {
    let port = hotfix_platform::free_port().unwrap();
    let w = canary_world(port);
    let _guard = Platform(&w);
    approved_fix_on_the_platform(&w);

    let load = Load::start(port);
    let r = w.hf_env(DEV, &["ship"], &[("HOTFIX_FAILPOINTS", "ship.canary_step")]);
    assert_eq!(r.code, 137, "{}", r.all());
    // Killed with the canary at its first step: recorded, not promoted.
    assert_eq!(w.count("HF-1", "canary_step"), 1);
    assert_eq!(w.count("HF-1", "deployed"), 0);
    let merge = w.origin_sha("main");
    // The re-run watches that step (no second start) and promotes.
    let r = w.hf(&["ship", "HF-1"]);
    let (_, failed) = load.finish();
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(!r.all().contains("canary: 20% of requests"), "{}", r.all());
    assert_eq!(failed, 0);
    assert_eq!(platform_sha(&w), merge.as_str());
    assert_eq!(w.count("HF-1", "canary_step"), 2);
    assert_eq!(w.status("HF-1")["state"], "deployed");
}
