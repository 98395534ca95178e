//! Build once (issue 13), end to end with the `command` provider: the real
//! binary, a real repo with a bare origin, the team's deploy script run as
//! a process. When the merge's tree equals the previewed tree the script is
//! told so (`HOTFIX_PREVIEWED=1`) and promotes; the `deployed` event, status,
//! the timeline and the log then say production runs the tested build.
//! When main moved, the script builds and everything says why.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;
use serde_json::Value;

/// A world whose production script also records the build-once variables
/// and, when the tree was previewed, promotes the preview's artifact.
fn world() -> World {
    let w = World::new();
    let deploy = w.scripts.join("deploy.sh");
    let mut body = std::fs::read_to_string(&deploy).unwrap();
    body.push_str(&format!(
        "echo \"$HOTFIX_SHA TREE=$HOTFIX_TREE PREVIEW_SHA=$HOTFIX_PREVIEW_SHA PREVIEWED=$HOTFIX_PREVIEWED\" >> {calls}\nif [ \"$HOTFIX_PREVIEWED\" = 1 ]; then echo \"HOTFIX_PROMOTED=$HOTFIX_PREVIEW_SHA\"; else echo building; fi\n",
        calls = w.prod.dir.join("build-calls").display()
    ));
    std::fs::write(&deploy, body).unwrap();
    w
}

fn build_calls(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.prod.dir.join("build-calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The `deployed` events of HF-1.
fn deployed(w: &World) -> Vec<Value> {
    let log = w.log();
    log.as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "HF-1")
        .unwrap()["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "deployed")
        .cloned()
        .collect()
}

#[test]
fn production_of_the_previewed_tree_runs_the_tested_build_and_says_so() {
    let w = world();
    let id = w.started_and_pushed("pdf-crash", "critical");
    let head = w.origin_sha("hotfix/pdf-crash");
    w.hf_as(LEAD, &["approve", &id]).ok();
    let r = w.hf(&["ship"]).ok();
    let merge = w.origin_sha("main");
    let tree = w.repo.git(&["rev-parse", &format!("{merge}^{{tree}}")]);
    assert_eq!(
        tree,
        w.repo.git(&["rev-parse", &format!("{head}^{{tree}}")]),
        "main did not move: the merge has the head's tree"
    );
    // The script was told the tree, the previewed sha and that it was previewed.
    assert_eq!(
        build_calls(&w),
        vec![format!(
            "{merge} TREE={tree} PREVIEW_SHA={head} PREVIEWED=1"
        )]
    );
    // Said before the call, and how it went after.
    let out = r.all();
    assert!(
        out.contains(&format!(
            "deploying {} to production (same tree as the preview {}: the tested build may be promoted)",
            &merge[..10],
            &head[..10]
        )),
        "before the deploy:\n{out}"
    );
    assert!(
        out.contains(&format!(
            "production runs {}: the tested build of {} promoted (no build",
            &merge[..10],
            &head[..10]
        )),
        "after the deploy:\n{out}"
    );
    // The event log records it as evidence.
    let d = deployed(&w);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["build"]["tested"], true, "{}", d[0]);
    assert_eq!(d[0]["build"]["built"], false);
    assert_eq!(d[0]["build"]["from_sha"], head.as_str());
    // Status (JSON and text), timeline and checklist evidence say so.
    let s = w.status(&id);
    assert_eq!(s["deployed_build"]["tested"], true, "{s}");
    let deploy_row = s["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "deploy")
        .unwrap()
        .clone();
    assert!(
        deploy_row["detail"]
            .as_str()
            .unwrap()
            .starts_with("the tested build of"),
        "{deploy_row}"
    );
    assert!(
        s["fix_verified_evidence"]
            .as_str()
            .unwrap()
            .contains("production ran the build the preview smoke-tested"),
        "{s}"
    );
    let text = w.hf(&["status", &id]).ok().stdout;
    // Under the timeline's deploy row.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("Production deploy"))
        .unwrap();
    assert!(
        lines[at + 1].starts_with(&format!(
            "      the tested build of {} promoted (no build",
            &head[..10]
        )),
        "{text}"
    );
    let log = w.hf(&["log"]).ok().stdout;
    assert!(log.contains("to production — the tested build of"), "{log}");
}

#[test]
fn when_main_moved_production_builds_and_says_why() {
    let w = world();
    let id = w.started_and_pushed("pdf-crash", "critical");
    let head = w.origin_sha("hotfix/pdf-crash");
    w.hf_as(LEAD, &["approve", &id]).ok();
    // Someone else's hotfix lands on main after the preview was tested.
    let other = w.repo.push_from_elsewhere(
        "main",
        "app/other.txt",
        "another fix\n",
        "Fix the invoice rounding",
    );
    let r = w.hf(&["ship"]).ok();
    let merge = w.origin_sha("main");
    let tree = w.repo.git(&["rev-parse", &format!("{merge}^{{tree}}")]);
    assert_ne!(
        tree,
        w.repo.git(&["rev-parse", &format!("{head}^{{tree}}")])
    );
    // The script was told the tree was not the previewed one: it built.
    assert_eq!(
        build_calls(&w),
        vec![format!(
            "{merge} TREE={tree} PREVIEW_SHA={head} PREVIEWED=0"
        )]
    );
    let out = r.all();
    let why = format!(
        "main moved since the preview of {}: main gained {} (Fix the invoice rounding)",
        &head[..10],
        &other[..10]
    );
    assert!(
        out.contains(&format!("building and deploying {}", &merge[..10])),
        "{out}"
    );
    assert!(out.contains(&why), "the ship output says why:\n{out}");
    // The deploy still happened, and its event says why it was built.
    let d = deployed(&w);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["sha"], merge.as_str());
    assert_eq!(d[0]["build"]["tested"], false, "{}", d[0]);
    assert!(
        d[0]["build"]["note"].as_str().unwrap().contains(&why),
        "{}",
        d[0]
    );
    let s = w.status(&id);
    assert_eq!(s["state"], "deployed");
    assert!(
        !s["fix_verified_evidence"]
            .as_str()
            .unwrap_or_default()
            .contains("smoke-tested"),
        "{s}"
    );
    let text = w.hf(&["status", &id]).ok().stdout;
    assert!(text.contains(&format!("      {why}")), "{text}");
}

/// The embedded platform (`[deploy] provider = "local"`) promotes the
/// preview's build itself: the whole path from `hotfix push` to the
/// `deployed` event, through the real platform process.
#[test]
fn on_the_embedded_platform_production_promotes_the_previews_build() {
    on_the_platform("");
}

/// A canary starts from the preview's build too, and its promotion records it.
#[test]
fn on_the_embedded_platform_a_canary_runs_the_previews_build() {
    on_the_platform("canary = [\"50%\"]\ncanary_pause = \"300ms\"\n");
}

fn on_the_platform(deploy: &str) {
    struct Stop<'a>(&'a World);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.hf(&["platform", "stop"]);
        }
    }
    let port = hotfix_platform::free_port().unwrap();
    let run = shell_words::join([bin().display().to_string(), "sample-service".to_string()]);
    let w = World::new();
    w.repo.write(
        "hotfix.toml",
        &format!(
            "[team]\ntech_leads = [\"{LEAD}\"]\n\n[deploy]\nprovider = \"local\"\nbuild = \"sh -c 'echo built > artifact.txt'\"\nrun = {run:?}\nport = {port}\nready_timeout = \"10s\"\nwatch = \"600ms\"\nprobe_interval = \"100ms\"\n{deploy}\n[[smoke]]\npath = \"/export/pdf\"\n"
        ),
    );
    w.repo.write(
        "service/routes.toml",
        "[[route]]\npath = \"/health\"\nbody = \"ok\"\n\n[[route]]\npath = \"/export/pdf\"\nstatus = 500\nbody = \"panic\"\n",
    );
    w.repo
        .commit_as(DEV, "the embedded platform, a broken pdf export");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    let _stop = Stop(&w);
    // Production serves main before the incident (a canary runs beside it).
    w.hf(&["platform", "deploy", "main"]).ok();
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write(
        "service/routes.toml",
        "[[route]]\npath = \"/health\"\nbody = \"ok\"\n\n[[route]]\npath = \"/export/pdf\"\nbody = \"%PDF\"\n",
    );
    w.repo.commit_as(DEV, "fix pdf");
    w.hf(&["push"]).ok();
    let head = w.origin_sha("hotfix/pdf-crash");
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let r = w.hf(&["ship"]).ok();
    let d = deployed(&w);
    assert_eq!(d.len(), 1, "{}", r.all());
    assert_eq!(d[0]["build"]["tested"], true, "{}\n{}", d[0], r.all());
    assert_eq!(d[0]["build"]["built"], false);
    assert_eq!(d[0]["build"]["from_sha"], head.as_str());
    let out = r.all();
    assert!(
        out.contains(&format!(
            "the tested build of {} promoted (no build",
            &head[..10]
        )),
        "{out}"
    );
}
