//! The workflow on the embedded platform (`[deploy] provider = "local"`):
//! the platform starts by itself, previews get their own port, production
//! sits on the stable port, a rollback switches back to the warm release,
//! and `hotfix platform stop` leaves nothing running.
#![allow(clippy::unwrap_used)]

mod common;

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
    w.hf(&["push"]).ok();
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
