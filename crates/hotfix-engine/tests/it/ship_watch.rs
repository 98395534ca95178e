#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::{Arc, Mutex};

use hotfix_core::config::Config;
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::Severity;
use hotfix_core::state::IncidentState;
use hotfix_engine::{Clock, Engine, StartArgs, Ui};
use hotfix_git::Git;
use hotfix_providers::deploy::command::CommandDeployer;
use hotfix_providers::forge::local::LocalForge;
use hotfix_providers::health::{Probe, Watch};
use hotfix_store::SqliteStore;
use hotfix_testkit::{FileServer, TestRepo, script};

const DEV: &str = "dev@example.com";
const LEAD: &str = "lead@example.com";

/// Production as a script: one answer per probe, the last one repeated;
/// every probe is counted.
#[derive(Clone)]
struct Scripted(Arc<Mutex<Script>>);

/// The answers still to give (last first) and the probes made.
type Script = (Vec<Result<u16, String>>, u32);

impl Scripted {
    fn new(answers: &[Result<u16, &str>]) -> Scripted {
        let v = answers
            .iter()
            .rev()
            .map(|r| r.map_err(str::to_string))
            .collect();
        Scripted(Arc::new(Mutex::new((v, 0))))
    }
    fn probes(&self) -> u32 {
        self.0.lock().unwrap().1
    }
}

impl Probe for Scripted {
    fn probe(&self, _w: &Watch) -> Result<u16, String> {
        let mut g = self.0.lock().unwrap();
        g.1 += 1;
        if g.0.len() > 1 {
            g.0.pop().unwrap()
        } else {
            g.0.last().cloned().unwrap()
        }
    }
}

/// Lines the engine says, kept for the assertions.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Ui for Lines {
    fn info(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
    fn warn(&self, line: &str) {
        self.0.lock().unwrap().push(format!("warning: {line}"));
    }
}

struct World {
    repo: TestRepo,
    preview: FileServer,
    prod: FileServer,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap().keep();
        let preview = FileServer::start(&tmp.join("preview"));
        let prod = FileServer::start(&tmp.join("prod"));
        let scripts = tmp.join("scripts");
        let pv = preview.dir.display().to_string();
        let pd = prod.dir.display().to_string();
        script(
            &scripts.join("preview.sh"),
            &format!(
                "git show \"$HOTFIX_SHA:app/health\" > {pv}/health\necho {}",
                preview.url()
            ),
        );
        script(
            &scripts.join("deploy.sh"),
            &format!("echo \"$HOTFIX_SHA\" >> {pd}/deploys"),
        );
        script(
            &scripts.join("rollback.sh"),
            &format!("echo \"$HOTFIX_SHA\" >> {pd}/rollbacks"),
        );
        let toml = format!(
            r#"[team]
tech_leads = ["{LEAD}"]

[deploy]
provider = "command"
preview = "{s}/preview.sh"
production = "{s}/deploy.sh"
rollback = "{s}/rollback.sh"
health_url = "http://production.invalid/health"
watch = "200ms"
probe_interval = "10ms"
unhealthy_after = 3
probe_timeout = "1s"
timeout = "20s"

[[smoke]]
path = "/health"

[[area_checks]]
name = "health"
path = "/health"
status = 200
"#,
            s = scripts.display(),
        );
        let repo = TestRepo::new(&toml);
        // The engine runs git in this process: the identity is the repo's own.
        repo.git(&["config", "user.name", "Dev"]);
        repo.git(&["config", "user.email", DEV]);
        World {
            repo,
            preview,
            prod,
        }
    }

    fn engine(&self, actor: &str, probe: Scripted, ui: Lines) -> Engine {
        let git = Git::open(&self.repo.work).unwrap();
        let cfg =
            Config::parse(&std::fs::read_to_string(self.repo.work.join("hotfix.toml")).unwrap())
                .unwrap();
        let state_dir = git.common_dir().unwrap().join("hotfix");
        std::fs::create_dir_all(&state_dir).unwrap();
        let store = SqliteStore::open(&state_dir.join("hotfix.db")).unwrap();
        let forge =
            LocalForge::open(git.clone(), &cfg.git.remote, &state_dir.join("forge.db")).unwrap();
        let deployer = CommandDeployer::new(
            self.repo.work.clone(),
            state_dir.join("logs"),
            cfg.deploy.clone(),
        );
        Engine {
            git,
            cfg,
            store: Box::new(store),
            forge: Box::new(forge),
            deployer: Box::new(deployer),
            notifiers: vec![],
            clock: Clock::System,
            actor: actor.to_string(),
            state_dir,
            failpoints: vec![],
            ui: Box::new(ui),
            probe: Box::new(probe),
        }
    }

    /// A critical incident with a fix pushed (preview smoke-tested) and
    /// approved by the tech lead: ready to ship.
    fn approved_fix(&self) -> IncidentId {
        let healthy = Scripted::new(&[Ok(200)]);
        let dev = self.engine(DEV, healthy.clone(), Lines::default());
        let s = dev
            .start(&StartArgs {
                name: "pdf-crash".into(),
                severity: Severity::Critical,
                title: None,
                customer_facing: false,
                security: false,
                incident: None,
                reported_by: None,
            })
            .unwrap();
        self.repo.write("app/pdf", "fixed\n");
        self.repo
            .git(&["commit", "--quiet", "-am", "Fix the PDF export crash"]);
        dev.push(s.id, None).unwrap();
        let lead = self.engine(LEAD, healthy, Lines::default());
        lead.approve(s.id, LEAD, "cli").unwrap();
        s.id
    }

    fn file(dir: &Path, name: &str) -> String {
        std::fs::read_to_string(dir.join(name)).unwrap_or_default()
    }
}

fn kinds(s: &IncidentState, name: &str) -> usize {
    s.events.iter().filter(|e| e.kind.name() == name).count()
}

#[test]
fn ship_watches_production_through_the_probe_and_passes_a_healthy_one() {
    let w = World::new();
    let id = w.approved_fix();
    let probe = Scripted::new(&[Ok(200)]);
    let e = w.engine(DEV, probe.clone(), Lines::default());
    let s = e.ship(id, None, false).unwrap();
    assert!(probe.probes() >= 2, "the watch probed: {}", probe.probes());
    assert_eq!(kinds(&s, "health_passed"), 1);
    assert_eq!(kinds(&s, "rolled_back"), 0);
    let merge = s.merge_sha.clone().unwrap();
    assert_eq!(World::file(&w.prod.dir, "deploys").trim(), merge);
    assert!(World::file(&w.prod.dir, "rollbacks").is_empty());
    drop(w.preview);
}

#[test]
fn ship_rolls_back_by_itself_when_the_probe_says_production_got_worse() {
    let w = World::new();
    let id = w.approved_fix();
    // Healthy at first, then the release falls over.
    let probe = Scripted::new(&[Ok(200), Err("production answered 500: boom")]);
    let ui = Lines::default();
    let e = w.engine(DEV, probe.clone(), ui.clone());
    let err = e.ship(id, None, false).expect_err("unhealthy");
    assert!(
        err.to_string().contains("production answered 500: boom"),
        "{err}"
    );
    let s = e.load(id).unwrap();
    match s.events.iter().find_map(|ev| match &ev.kind {
        EventKind::HealthFailed { reason, .. } => Some(reason.clone()),
        _ => None,
    }) {
        Some(reason) => assert!(reason.contains("boom"), "{reason}"),
        None => panic!("no health_failed: {:?}", s.events),
    }
    assert_eq!(kinds(&s, "rolled_back"), 1, "the automatic rollback");
    // The rollback script ran with the code that served before the merge.
    let previous = s.previous_main.clone().unwrap();
    assert_eq!(World::file(&w.prod.dir, "rollbacks").trim(), previous);
    // 1 good probe + 3 failing ones (unhealthy_after) before the verdict,
    // then the rollback's own health check (the script keeps failing).
    assert!(probe.probes() >= 4, "{}", probe.probes());
    assert!(
        ui.0.lock().unwrap().iter().any(|l| l.contains("probe")),
        "the failing probes were reported"
    );
}
