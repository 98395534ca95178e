//! The workflow on the embedded platform (`[deploy] provider = "local"`):
//! the platform starts by itself, previews get their own port, production
//! sits on the stable port, a rollback switches back to the warm release,
//! and `hotfix platform stop` leaves nothing running.
#![allow(clippy::unwrap_used)]

use crate::common;

use common::*;

const GOOD: &str = "[[route]]\npath = \"/health\"\nbody = \"ok\"\n\n[[route]]\npath = \"/export/pdf\"\nbody = \"%PDF\"\n";
const BROKEN: &str = "[[route]]\npath = \"/health\"\nbody = \"ok\"\n\n[[route]]\npath = \"/export/pdf\"\nstatus = 500\nbody = \"panic\"\n";

struct Platform<'a>(&'a World);

impl Drop for Platform<'_> {
    fn drop(&mut self) {
        let _ = self.0.hf(&["platform", "stop"]);
    }
}

fn get(url: &str) -> (u16, String) {
    hotfix_providers::health::get(url, std::time::Duration::from_secs(3))
        .unwrap_or((0, String::new()))
}

/// The `hotfix.toml` of a repo on the embedded platform: the sample service
/// on `port`, with `deploy` (more `[deploy]` lines) and the health watch short.
fn local_toml(port: u16, deploy: &str) -> String {
    let run = shell_words::join([bin().display().to_string(), "sample-service".to_string()]);
    format!(
        "[team]\ntech_leads = [\"{LEAD}\"]\n\n[deploy]\nprovider = \"local\"\nrun = {run:?}\nport = {port}\nwatch = \"600ms\"\nprobe_interval = \"100ms\"\n{deploy}\n\n[[smoke]]\npath = \"/export/pdf\"\n"
    )
}

/// A repo whose main (pushed) runs the sample service with `routes` on the
/// embedded platform at `port`.
fn local_world(port: u16, deploy: &str, routes: &str) -> World {
    let w = World::new();
    w.repo.write("hotfix.toml", &local_toml(port, deploy));
    w.repo.write("service/routes.toml", routes);
    w.repo.commit_as(DEV, "the embedded platform");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    w
}

/// Changes `hotfix.toml` (and `service/routes.toml`, if given) on main, as a
/// team does: committed and pushed.
fn change_main(w: &World, toml: &str, routes: Option<&str>) -> String {
    w.repo.write("hotfix.toml", toml);
    if let Some(r) = routes {
        w.repo.write("service/routes.toml", r);
    }
    let sha = w.repo.commit_as(DEV, "change the platform settings");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    sha
}

fn platform_status(w: &World) -> serde_json::Value {
    serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap()
}

#[test]
fn the_whole_workflow_on_the_embedded_platform() {
    let port = hotfix_platform::free_port().unwrap();
    let run = shell_words::join([bin().display().to_string(), "sample-service".to_string()]);
    let w = World::new();
    // Switch the repo to the local provider and the sample service.
    let toml = format!(
        "[team]\ntech_leads = [\"{LEAD}\"]\n\n[deploy]\nprovider = \"local\"\nrun = {run:?}\nport = {port}\nready_timeout = \"10s\"\nwatch = \"600ms\"\nprobe_interval = \"100ms\"\n\n[[smoke]]\npath = \"/export/pdf\"\n"
    );
    w.repo.write("hotfix.toml", &toml);
    w.repo.write("service/routes.toml", BROKEN);
    w.repo.commit_as(DEV, "local platform, a broken pdf export");
    w.repo.git(&["push", "--quiet", "origin", "main"]);
    let _guard = Platform(&w);

    // Production runs main (broken) before the incident.
    w.hf(&["platform", "start"]).ok();
    let st: serde_json::Value =
        serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap();
    assert!(st["production"].is_null());

    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("service/routes.toml", GOOD);
    let fix = w.repo.commit_as(DEV, "fix pdf");
    let pushed = w.hf(&["push"]).ok();
    // The preview's build and start-up log is named while it runs, and is it.
    let log = format!(".git/hotfix/platform/logs/preview-HF-1-{}.log", &fix[..12]);
    assert!(pushed.stderr.contains(&log), "{}", pushed.all());
    let text = std::fs::read_to_string(w.repo.work.join(&log)).unwrap();
    assert!(text.contains("healthy on port"), "{text}");
    let s = w.status("HF-1");
    let preview = s["preview_url"].as_str().unwrap().to_string();
    assert_ne!(preview, format!("http://127.0.0.1:{port}"));
    assert_eq!(get(&format!("{preview}/export/pdf")).0, 200);
    assert_eq!(s["platform"]["previews"][0]["release"]["sha"], fix);

    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    let main = w.origin_sha("main");
    let st: serde_json::Value =
        serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap();
    assert_eq!(st["production"]["sha"], main);
    // The preview was removed with the merge.
    assert_eq!(st["previews"].as_array().unwrap().len(), 0);
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/export/pdf")),
        (200, "%PDF".to_string())
    );
    assert_eq!(
        get(&format!("{preview}/export/pdf")).0,
        0,
        "preview still serving"
    );

    // A manual rollback switches production back to the previous release.
    w.hf(&["platform", "stop"]).ok();
    w.hf(&["platform", "start"]).ok();
    // After a restart production comes back on the same port without a deploy.
    let got = get(&format!("http://127.0.0.1:{port}/export/pdf"));
    if got.0 != 200 {
        let st = w.hf(&["platform", "status", "--json"]);
        let log = std::fs::read_to_string(w.repo.work.join(".git/hotfix/platform/platform.log"))
            .unwrap_or_default();
        panic!("{got:?}\n{}\n{log}", st.all());
    }
    w.hf(&["rollback", "--reason", "exports slow"]).ok();
    let st: serde_json::Value =
        serde_json::from_str(&w.hf(&["platform", "status", "--json"]).ok().stdout).unwrap();
    let back = w.status("HF-1");
    assert_eq!(back["state"], "rolled_back");
    // Production serves the code main had before the hotfix.
    let previous_main = w.repo.origin_git(&["rev-parse", &format!("{main}^1")]);
    assert_eq!(st["production"]["sha"], previous_main);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/export/pdf")).0, 500);

    w.hf(&["platform", "stop"]).ok();
    let r = w.hf(&["platform", "status"]);
    assert_eq!(r.code, 3, "{}", r.all());
}

#[test]
fn main_goes_into_production_by_hand_before_the_first_hotfix_and_is_recorded() {
    let port = hotfix_platform::free_port().unwrap();
    let w = local_world(port, "ready_timeout = \"10s\"", GOOD);
    let _guard = Platform(&w);
    w.hf(&["platform", "start"]).ok();

    // Before any deploy the stable port names a command that exists.
    let (code, body) = get(&format!("http://127.0.0.1:{port}/export/pdf"));
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("`hotfix platform deploy`"), "{body}");

    // `platform deploy` puts the remote's main into production.
    let main = w.origin_sha("main");
    let r = w.hf(&["platform", "deploy"]).ok();
    assert!(r.stdout.contains("origin/main"), "{}", r.all());
    assert!(
        r.stdout.contains("manual deploy by dev@example.com"),
        "{}",
        r.all()
    );
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/export/pdf")),
        (200, "%PDF".to_string())
    );
    let st = platform_status(&w);
    assert_eq!(st["production"]["sha"], main.as_str());
    assert_eq!(st["production"]["origin"]["via"], "manual");
    let h = &st["history"][0];
    assert_eq!(h["action"], "deploy");
    assert_eq!(h["via"], "manual");
    assert_eq!(h["by"], DEV);
    assert_eq!(h["reference"], "origin/main");
    assert_eq!(h["sha"], main.as_str());
    assert!(h["at"].as_str().is_some_and(|a| !a.is_empty()), "{h}");
    let text = w.hf(&["platform", "status"]).ok().stdout;
    assert!(
        text.contains("manual of origin/main by dev@example.com"),
        "{text}"
    );
    // Whole seconds, as every time shown to a person.
    assert!(text.contains(" UTC  deploy "), "{text}");

    // It deploys what the remote has, not a local main that is behind.
    let newer = w.repo.push_from_elsewhere(
        "main",
        "service/routes.toml",
        &GOOD.replace("%PDF", "%PDF-2"),
        "pdf 2",
    );
    w.hf_as(LEAD, &["platform", "deploy"]).ok();
    let st = platform_status(&w);
    assert_eq!(st["production"]["sha"], newer.as_str());
    assert_eq!(st["history"][0]["by"], LEAD);
    assert_eq!(st["history"][0]["replaced"], main.as_str());
    assert_eq!(st["history"].as_array().unwrap().len(), 2);
    // Again: nothing to do, nothing recorded.
    let again = w.hf(&["platform", "deploy"]).ok();
    assert!(
        again.stdout.contains("nothing to deploy"),
        "{}",
        again.all()
    );
    assert_eq!(platform_status(&w)["history"].as_array().unwrap().len(), 2);

    // A local ref or sha works too; `--as` says who.
    w.hf(&["platform", "deploy", &main, "--as", "oncall@example.com"])
        .ok();
    let st = platform_status(&w);
    assert_eq!(st["production"]["sha"], main.as_str());
    assert_eq!(st["history"][0]["by"], "oncall@example.com");
    assert_eq!(st["history"][0]["reference"], main.as_str());

    // A ref that does not exist is a usage error that changes nothing.
    w.hf(&["platform", "deploy", "no-such-branch"])
        .fails(2, "`no-such-branch` names no commit");
    assert_eq!(platform_status(&w)["history"].as_array().unwrap().len(), 3);
}

#[test]
fn a_manual_deploy_does_not_take_a_shipped_hotfix_out_of_production_unless_forced() {
    let port = hotfix_platform::free_port().unwrap();
    let w = local_world(port, "ready_timeout = \"10s\"", BROKEN);
    let _guard = Platform(&w);
    w.hf(&["platform", "deploy"]).ok();
    let before = w.origin_sha("main");
    w.hf(&["start", "pdf-crash", "--severity", "critical"]).ok();
    w.repo.write("service/routes.toml", GOOD);
    w.repo.commit_as(DEV, "fix pdf");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    w.hf(&["ship"]).ok();
    let merge = w.origin_sha("main");
    let st = platform_status(&w);
    assert_eq!(st["production"]["sha"], merge.as_str());
    assert_eq!(st["history"][0]["via"], "incident");
    assert_eq!(st["history"][0]["incident"], "HF-1");

    // The local main was not pulled: deploying it would drop the hotfix.
    w.repo.git(&["checkout", "--quiet", "main"]);
    assert_eq!(w.repo.git(&["rev-parse", "main"]), before);
    let r = w
        .hf(&["platform", "deploy", "main"])
        .fails(1, "would take that hotfix out of production");
    assert!(r.stderr.contains("`hotfix rollback HF-1`"), "{}", r.all());
    assert!(r.stderr.contains("--force"), "{}", r.all());
    assert_eq!(platform_status(&w)["production"]["sha"], merge.as_str());
    // The remote's main has it: nothing to do.
    let same = w.hf(&["platform", "deploy"]).ok();
    assert!(same.stdout.contains("nothing to deploy"), "{}", same.all());
    // On purpose, it goes.
    w.hf(&["platform", "deploy", "main", "--force"]).ok();
    assert_eq!(platform_status(&w)["production"]["sha"], before.as_str());
    assert_eq!(get(&format!("http://127.0.0.1:{port}/export/pdf")).0, 500);
}

#[test]
fn settings_edited_in_hotfix_toml_apply_to_the_next_deploy_of_a_running_platform() {
    let port = hotfix_platform::free_port().unwrap();
    let builds = tempfile::tempdir().unwrap();
    let log = builds.path().join("builds.txt");
    let build = |name: &str| {
        format!(
            "ready_timeout = \"{}\"\nbuild = {:?}",
            if name == "first" { "30s" } else { "1s" },
            shell_words::join(["sh", "-c", &format!("echo {name} >> '{}'", log.display())])
        )
    };
    let w = local_world(port, &build("first"), GOOD);
    let _guard = Platform(&w);
    w.hf(&["platform", "start"]).ok();
    w.hf(&["platform", "deploy"]).ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\n");

    // The team shortens ready_timeout and changes the build, on main, and
    // main now has a release that never answers its health check.
    let never = "[[route]]\npath = \"/health\"\nstatus = 503\nbody = \"db unreachable\"\n";
    change_main(&w, &local_toml(port, &build("second")), Some(never));
    let t0 = std::time::Instant::now();
    let r = w
        .hf(&["platform", "deploy"])
        .fails(1, "did not become healthy");
    let took = t0.elapsed();
    assert!(
        took < std::time::Duration::from_secs(15),
        "the old 30s ready_timeout still applied: {took:?}\n{}",
        r.all()
    );
    assert!(r.stderr.contains("within 1s"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "first\nsecond\n");
    // The message says "deploy failed" once, in the platform's own words.
    assert!(
        r.stderr.contains("production deploy failed: release r"),
        "{}",
        r.all()
    );
    assert_eq!(r.stderr.matches("deploy failed").count(), 1, "{}", r.all());
    assert!(!r.stderr.contains("platform API error"), "{}", r.all());
    assert!(r.stderr.contains("production still runs"), "{}", r.all());
    // Production stayed where it was.
    assert_eq!(
        get(&format!("http://127.0.0.1:{port}/export/pdf")),
        (200, "%PDF".to_string())
    );
    let st = platform_status(&w);
    assert_eq!(st["settings"]["ready_timeout_ms"], 30_000);
}

#[test]
fn a_moved_production_port_restarts_an_idle_platform_and_a_busy_one_gets_the_command() {
    let [a, b, c] = [(); 3].map(|_| hotfix_platform::free_port().unwrap());
    let w = local_world(a, "ready_timeout = \"10s\"", GOOD);
    let _guard = Platform(&w);
    w.hf(&["platform", "start"]).ok();
    assert_eq!(platform_status(&w)["port"], a);

    // Nothing runs yet: the next deploy restarts it on the new port.
    change_main(&w, &local_toml(b, "ready_timeout = \"10s\""), None);
    w.hf(&["platform", "deploy"]).ok();
    assert_eq!(platform_status(&w)["port"], b);
    assert_eq!(get(&format!("http://127.0.0.1:{b}/export/pdf")).0, 200);
    assert_eq!(get(&format!("http://127.0.0.1:{a}/export/pdf")).0, 0);

    // Production runs: moving it is the person's call, with the command.
    let main = change_main(&w, &local_toml(c, "ready_timeout = \"10s\""), None);
    w.hf(&["platform", "deploy"])
        .fails(1, "`hotfix platform stop && hotfix platform start`");
    assert_eq!(get(&format!("http://127.0.0.1:{b}/export/pdf")).0, 200);
    let again = w.hf(&["platform", "start"]).ok();
    assert!(
        again
            .stderr
            .contains(&format!("on port {b}; hotfix.toml says {c}")),
        "{}",
        again.all()
    );
    w.hf(&["platform", "stop"]).ok();
    w.hf(&["platform", "start"]).ok();
    assert_eq!(get(&format!("http://127.0.0.1:{c}/export/pdf")).0, 200);
    w.hf(&["platform", "deploy"]).ok();
    assert_eq!(platform_status(&w)["production"]["sha"], main.as_str());
}

#[test]
fn a_production_deploy_that_fails_in_a_ship_says_deploy_failed_once() {
    let port = hotfix_platform::free_port().unwrap();
    let w = local_world(port, "ready_timeout = \"2s\"", GOOD);
    let _guard = Platform(&w);
    w.hf(&["platform", "deploy"]).ok();
    // The fix works on a fresh preview database, not on production's.
    let data = w.repo.work.join(".git/hotfix/platform/data/production");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("legacy-schema"), "schema 41\n").unwrap();
    w.hf(&["start", "pdf-fix", "--severity", "critical"]).ok();
    w.repo.write(
        "service/routes.toml",
        &format!(
            "[[route]]\npath = \"/health\"\nwhen_data_file = \"legacy-schema\"\nstatus = 500\nbody = \"migration failed\"\n\n{GOOD}"
        ),
    );
    w.repo.commit_as(DEV, "fix pdf (with a migration)");
    w.hf(&["push"]).ok();
    w.hf_as(LEAD, &["approve", "HF-1"]).ok();
    let r = w.hf(&["ship"]);
    let all = r.all();
    assert!(all.contains("production deploy failed: release r"), "{all}");
    assert!(!all.contains("deploy failed: deploy failed"), "{all}");
    assert!(!all.contains("platform API error"), "{all}");
    let log = w.log();
    let reasons: Vec<String> = log[0]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "health_failed")
        .map(|e| e.to_string())
        .collect();
    assert!(!reasons.is_empty(), "{log}");
    for r in &reasons {
        assert_eq!(r.matches("deploy failed").count(), 1, "{r}");
    }
}

#[test]
fn the_team_server_and_the_platform_do_not_share_a_default_port() {
    let platform = hotfix_platform::PlatformConfig::new("/r", "/s", vec!["app".into()]).port;
    let serve = hotfix_core::config::Config::default().server.listen;
    let serve_port: u16 = serve.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(platform, 8080, "the platform keeps a typical app port");
    assert_ne!(serve_port, platform, "`hotfix serve` defaults to {serve}");
    let help = w_help();
    assert!(help.contains(&serve), "{help}");
}

fn w_help() -> String {
    let out = std::process::Command::new(bin())
        .args(["serve", "--help"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}
