//! A world for one integration test: a repo with a bare origin, a preview and
//! a production HTTP server on 127.0.0.1 driven by the team's deploy scripts,
//! and the real `hotfix` binary.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::PathBuf;

pub use hotfix_testkit::{FileServer, Run, TestRepo, script};
use serde_json::Value;

pub const DEV: &str = "dev@example.com";
pub const LEAD: &str = "lead@example.com";
pub const LEAD2: &str = "lead2@example.com";
pub const REV: &str = "rev@example.com";

pub struct World {
    pub repo: TestRepo,
    pub preview: FileServer,
    pub prod: FileServer,
    pub scripts: PathBuf,
    pub now: Option<String>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_hotfix"))
}

impl World {
    pub fn new() -> World {
        World::with_config("")
    }

    /// `extra` is appended to the generated hotfix.toml.
    pub fn with_config(extra: &str) -> World {
        let tmp = tempfile::tempdir().unwrap().keep();
        let preview = FileServer::start(&tmp.join("preview"));
        let prod = FileServer::start(&tmp.join("prod"));
        let scripts = tmp.join("scripts");
        let pv = preview.dir.display().to_string();
        let pd = prod.dir.display().to_string();
        // The preview serves what the pushed sha contains.
        script(
            &scripts.join("preview.sh"),
            &format!(
                "git show \"$HOTFIX_SHA:app/health\" > {pv}/health\ngit show \"$HOTFIX_SHA:app/pdf\" > {pv}/export_pdf\necho \"$HOTFIX_ENV $HOTFIX_INCIDENT $HOTFIX_BRANCH $HOTFIX_PR $HOTFIX_SHA\" >> {pv}/calls\necho deploying preview\necho {}",
                preview.url()
            ),
        );
        // Production: app/health_prod (if the sha has it) models a failure only production shows.
        let deploy_body = format!(
            "if git cat-file -e \"$HOTFIX_SHA:app/health_prod\" 2>/dev/null; then git show \"$HOTFIX_SHA:app/health_prod\" > {pd}/health; else git show \"$HOTFIX_SHA:app/health\" > {pd}/health; fi\ngit show \"$HOTFIX_SHA:app/pdf\" > {pd}/export_pdf\necho \"$HOTFIX_SHA\" > {pd}/sha\necho \"$HOTFIX_ENV $HOTFIX_INCIDENT $HOTFIX_SHA\" >> {pd}/calls"
        );
        script(&scripts.join("deploy.sh"), &deploy_body);
        script(
            &scripts.join("rollback.sh"),
            &format!("{deploy_body}\necho \"rollback $HOTFIX_SHA\" >> {pd}/rollbacks"),
        );
        let toml = format!(
            r#"[team]
tech_leads = ["{LEAD}", "{LEAD2}"]
reviewers = ["{REV}"]

[deploy]
provider = "command"
preview = "{s}/preview.sh"
production = "{s}/deploy.sh"
rollback = "{s}/rollback.sh"
health_url = "{prod}/health"
watch = "600ms"
probe_interval = "100ms"
unhealthy_after = 2
probe_timeout = "2s"
timeout = "20s"

[[smoke]]
path = "/health"

[[area_checks]]
name = "PDF export"
path = "/export/pdf"
status = 200
{extra}
"#,
            s = scripts.display(),
            prod = prod.url(),
        );
        let repo = TestRepo::new(&toml);
        // Production runs main.
        let main = repo.git(&["rev-parse", "main"]);
        std::fs::write(prod.dir.join("health"), "ok").unwrap();
        std::fs::write(prod.dir.join("sha"), format!("{main}\n")).unwrap();
        World {
            repo,
            preview,
            prod,
            scripts,
            now: None,
        }
    }

    /// Runs `hotfix` as `who` in the work tree.
    pub fn hf_as(&self, who: &str, args: &[&str]) -> Run {
        self.hf_env(who, args, &[])
    }

    pub fn hf(&self, args: &[&str]) -> Run {
        self.hf_as(DEV, args)
    }

    pub fn hf_env(&self, who: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut e: Vec<(&str, &str)> = vec![("HOTFIX_USER", who)];
        if let Some(n) = &self.now {
            e.push(("HOTFIX_NOW", n));
        }
        e.extend_from_slice(env);
        hotfix_testkit::run_bin(&bin(), &self.repo, &self.repo.work, args, &e)
    }

    pub fn status(&self, id: &str) -> Value {
        let r = self.hf(&["status", id, "--json"]).ok();
        serde_json::from_str(&r.stdout).unwrap()
    }

    pub fn log(&self) -> Value {
        let r = self.hf(&["log", "--json"]).ok();
        serde_json::from_str(&r.stdout).unwrap()
    }

    /// How many events of `kind` the incident has.
    pub fn count(&self, id: &str, kind: &str) -> usize {
        let log = self.log();
        log.as_array()
            .unwrap()
            .iter()
            .find(|i| i["id"] == id)
            .map(|i| {
                i["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["type"] == kind)
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn origin_sha(&self, branch: &str) -> String {
        self.repo.origin_git(&["rev-parse", branch])
    }

    pub fn prod_sha(&self) -> String {
        std::fs::read_to_string(self.prod.dir.join("sha"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// start + fix commit + push: a hotfix in review.
    pub fn started_and_pushed(&self, name: &str, severity: &str) -> String {
        self.hf(&[
            "start",
            name,
            "--severity",
            severity,
            "--title",
            "PDF export crashes",
        ])
        .ok();
        self.repo.write("app/pdf", "pdf ok\n");
        self.repo
            .commit_as(DEV, "Fix PDF export crash: guard missing font table");
        self.hf(&["push"]).ok();
        "HF-1".to_string()
    }

    /// ... + approval + ship.
    pub fn shipped(&self) -> String {
        let id = self.started_and_pushed("pdf-crash", "critical");
        self.hf_as(LEAD, &["approve", &id]).ok();
        self.hf(&["ship"]).ok();
        id
    }
}
