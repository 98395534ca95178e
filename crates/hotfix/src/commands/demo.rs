//! `hotfix demo`: the whole process, start to close, on a sample service, in
//! one command with nothing to set up and no network.
//!
//! It builds a repository with a bare origin, runs the sample service in
//! production on the embedded platform, breaks it the way the process's story
//! does ("PDF export crashes") and then runs the real `hotfix` commands, as
//! child processes, exactly as the on-call developer and the tech lead would.
//! Everything it starts is stopped at the end, whatever happens.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::exit::CliError;

const ONCALL: &str = "oncall@pdf-service.example";
const LEAD: &str = "lead@pdf-service.example";

const ROUTES_GOOD: &str = r#"# The sample service's routes (served by `hotfix sample-service`).
[[route]]
path = "/health"
body = "ok"

[[route]]
path = "/"
body = "pdf-service"

[[route]]
path = "/export/pdf"
content_type = "application/pdf"
body = "%PDF-1.7 invoice-2026-11.pdf"
"#;

struct Demo {
    dir: PathBuf,
    work: PathBuf,
    exe: PathBuf,
    env: Vec<(String, String)>,
    step: u32,
    steps: u32,
    platform: Option<Child>,
    started: Instant,
}

fn fail(m: impl Into<String>) -> CliError {
    CliError::failed(m)
}

impl Demo {
    fn say(&mut self, what: &str) {
        self.step += 1;
        println!("\n▶ [{}/{}] {what}", self.step, self.steps);
        let _ = std::io::stdout().flush();
    }

    fn note(&self, line: &str) {
        println!("    {line}");
    }

    /// A command with the demo's hermetic environment: its own git config,
    /// none of the caller's hotfix settings.
    fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for k in [
            hotfix_core::env_vars::HOTFIX_DATABASE_URL,
            hotfix_core::env_vars::HOTFIX_CONFIG,
            hotfix_core::env_vars::HOTFIX_NOW,
            hotfix_core::env_vars::HOTFIX_FAILPOINTS,
            // The demo's incident log is its own, never a team server's.
            hotfix_core::env_vars::HOTFIX_SERVER,
            hotfix_core::env_vars::HOTFIX_TOKEN,
        ] {
            c.env_remove(k);
        }
        c
    }

    /// Runs git in `dir` with the demo's own hermetic git config.
    fn git(&self, dir: &Path, args: &[&str]) -> Result<String, CliError> {
        self.git_as(dir, args, ONCALL)
    }

    fn git_as(&self, dir: &Path, args: &[&str], email: &str) -> Result<String, CliError> {
        let out = self
            .command(Path::new("git"))
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_COMMITTER_EMAIL", email)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run git: {e}")))?;
        if !out.status.success() {
            return Err(fail(format!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn write(&self, rel: &str, text: &str) -> Result<(), CliError> {
        let p = self.work.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(&p, text).map_err(|e| fail(format!("{}: {e}", p.display())))
    }

    fn commit(&self, msg: &str, email: &str) -> Result<String, CliError> {
        self.git_as(&self.work, &["add", "-A"], email)?;
        self.git_as(&self.work, &["commit", "--quiet", "-m", msg], email)?;
        self.git(&self.work, &["rev-parse", "HEAD"])
    }

    /// Runs `hotfix args` as `who`, showing its output; returns its exit code.
    fn hotfix(&self, who: &str, args: &[&str]) -> Result<i32, CliError> {
        println!(
            "    $ hotfix {}{}",
            args.join(" "),
            if who == ONCALL {
                String::new()
            } else {
                format!("   # as {who}")
            }
        );
        let out = self
            .command(&self.exe)
            .args(args)
            .current_dir(&self.work)
            .env(hotfix_core::env_vars::HOTFIX_USER, who)
            .env("GIT_AUTHOR_EMAIL", who)
            .env("GIT_COMMITTER_EMAIL", who)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run hotfix: {e}")))?;
        for line in String::from_utf8_lossy(&out.stderr)
            .lines()
            .chain(String::from_utf8_lossy(&out.stdout).lines())
        {
            println!("      {line}");
        }
        Ok(out.status.code().unwrap_or(1))
    }

    fn must(&self, who: &str, args: &[&str]) -> Result<(), CliError> {
        match self.hotfix(who, args)? {
            0 => Ok(()),
            c => Err(fail(format!("`hotfix {}` exited {c}", args.join(" ")))),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.work.join(".git").join("hotfix").join("platform")
    }

    /// Starts the platform as our child: Ctrl-C reaches it too (same process
    /// group) and it stops everything it started.
    fn start_platform(&mut self) -> Result<(), CliError> {
        let log = std::fs::File::create(self.dir.join("platform.log"))
            .map_err(|e| fail(e.to_string()))?;
        let log2 = log.try_clone().map_err(|e| fail(e.to_string()))?;
        let child = self
            .command(&self.exe)
            .args(crate::app::platform_args(&self.work))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| fail(format!("cannot start the platform: {e}")))?;
        self.platform = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(c) = hotfix_platform::Client::connect(&self.state_dir())
                && c.status().is_ok()
            {
                return Ok(());
            }
            if let Some(ch) = self.platform.as_mut()
                && let Ok(Some(st)) = ch.try_wait()
            {
                return Err(fail(format!(
                    "the platform exited ({st}); see {}",
                    self.dir.join("platform.log").display()
                )));
            }
            if Instant::now() > deadline {
                return Err(fail("the platform did not start within 20s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn client(&self) -> Result<hotfix_platform::Client, CliError> {
        hotfix_platform::Client::connect(&self.state_dir()).map_err(|e| fail(e.to_string()))
    }

    /// Stops the platform and waits until it and its releases are gone.
    fn stop_platform(&mut self) {
        if let Some(mut child) = self.platform.take() {
            if let Ok(c) = hotfix_platform::Client::connect(&self.state_dir()) {
                let _ = c.shutdown();
            }
            let deadline = Instant::now() + Duration::from_secs(15);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_platform();
    }
}

fn get(url: &str) -> (u16, String) {
    hotfix_providers::health::get(url, Duration::from_secs(3)).unwrap_or((0, "no answer".into()))
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Keep the repo, its origin and the incident log in DIR (default: a temp dir).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    /// Also play a bad fix that production health catches, with the automatic rollback.
    #[arg(long)]
    pub with_rollback: bool,
}

pub fn run(a: Args) -> Result<u8, CliError> {
    let (keep, with_rollback): (Option<PathBuf>, bool) = (a.dir, a.with_rollback);
    let _tmp;
    let dir = match keep {
        Some(d) => {
            if d.exists() && d.read_dir().map(|mut r| r.next().is_some()).unwrap_or(true) {
                return Err(CliError::usage(format!(
                    "{} is not empty: give a new or empty directory",
                    d.display()
                )));
            }
            std::fs::create_dir_all(&d).map_err(|e| fail(e.to_string()))?;
            d.canonicalize().map_err(|e| fail(e.to_string()))?
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("hotfix-demo-")
                .tempdir()
                .map_err(|e| fail(e.to_string()))?;
            let p = t.path().to_path_buf();
            _tmp = t;
            p
        }
    };
    let exe = std::env::current_exe().map_err(|e| fail(format!("where am I? {e}")))?;
    let gitconfig = dir.join("gitconfig");
    std::fs::write(
        &gitconfig,
        "[user]\n\tname = On-call developer\n\temail = oncall@pdf-service.example\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n[commit]\n\tgpgSign = false\n",
    )
    .map_err(|e| fail(e.to_string()))?;
    let env = vec![
        (
            "GIT_CONFIG_GLOBAL".to_string(),
            gitconfig.display().to_string(),
        ),
        ("GIT_CONFIG_NOSYSTEM".to_string(), "1".to_string()),
        ("GIT_TERMINAL_PROMPT".to_string(), "0".to_string()),
    ];
    let mut d = Demo {
        work: dir.join("pdf-service"),
        dir: dir.clone(),
        exe,
        env,
        step: 0,
        steps: if with_rollback { 16 } else { 12 },
        platform: None,
        started: Instant::now(),
    };
    let r = play(&mut d, with_rollback);
    d.stop_platform();
    match &r {
        Ok(()) => {
            println!("\nEverything is in {}", d.dir.display());
            println!("  repository      {}", d.work.display());
            println!("  its origin      {}", d.dir.join("origin.git").display());
            println!(
                "  incident log    {}",
                d.work.join(".git/hotfix/hotfix.db").display()
            );
            println!(
                "  notifications   {}",
                d.work.join(".git/hotfix/notifications.jsonl").display()
            );
            println!(
                "  post-mortem     {}",
                d.work.join("postmortems/HF-1.md").display()
            );
            println!("  platform log    {}", d.dir.join("platform.log").display());
            if is_own_temp_dir(&d.dir) {
                println!("  (a temp dir, removed now; keep it with `hotfix demo --dir DIR`)");
            }
            println!(
                "\nDemo finished in {:.1}s; the platform and every process it started are stopped.",
                d.started.elapsed().as_secs_f64()
            );
        }
        Err(e) => eprintln!("\ndemo failed: {}", e.message),
    }
    r.map(|_| 0)
}

/// The demo made its own temp dir (removed at the end) rather than `--dir`.
fn is_own_temp_dir(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("hotfix-demo-"))
}

fn play(d: &mut Demo, with_rollback: bool) -> Result<(), CliError> {
    println!("hotfix demo: a whole emergency hotfix, start to close, on a sample service");
    println!(
        "(real git remote, real processes, real HTTP on 127.0.0.1, the real `hotfix` commands)"
    );

    // 1. The service and its origin.
    d.say("a sample service `pdf-service` with a bare origin: main in production, develop ahead of it");
    d.git(&d.dir, &["init", "--quiet", "--bare", "origin.git"])?;
    d.git(&d.dir, &["init", "--quiet", "pdf-service"])?;
    let port = hotfix_platform::free_port().map_err(|e| fail(e.to_string()))?;
    let run = shell_words::join([d.exe.display().to_string(), "sample-service".to_string()]);
    let toml = format!(
        r#"# hotfix.toml of the demo service
[team]
tech_leads = ["{LEAD}"]
reviewers = ["reviewer@pdf-service.example"]
on_call = ["{ONCALL}"]

[deploy]
provider = "local"                  # the embedded platform
run = {run:?}
health_path = "/health"
port = {port}
ready_timeout = "10s"
warm = "5m"
watch = "2s"
probe_interval = "200ms"
unhealthy_after = 2

[[smoke]]
path = "/health"

[[smoke]]
name = "PDF export"
path = "/export/pdf"
status = 200
"#
    );
    d.write("hotfix.toml", &toml)?;
    d.write("service/routes.toml", ROUTES_GOOD)?;
    d.write("README.md", "# pdf-service\n\nExports invoices as PDF.\n")?;
    d.write(".gitignore", "/postmortems/*.tmp\n")?;
    d.commit("pdf-service 1.4", ONCALL)?;
    let origin = d.dir.join("origin.git").display().to_string();
    d.git(&d.work, &["remote", "add", "origin", &origin])?;
    d.git(&d.work, &["push", "--quiet", "origin", "main"])?;
    d.git(&d.work, &["checkout", "--quiet", "-b", "develop"])?;
    d.write(
        "service/routes.toml",
        &format!("{ROUTES_GOOD}\n[[route]]\npath = \"/export/csv\"\nbody = \"id,total\"\n"),
    )?;
    d.commit("CSV export (next release)", "dev@pdf-service.example")?;
    d.git(&d.work, &["push", "--quiet", "origin", "develop"])?;
    d.git(&d.work, &["checkout", "--quiet", "main"])?;
    d.note(&format!(
        "{} (main, develop) and its origin {origin}",
        d.work.display()
    ));

    // 2. Production on the embedded platform.
    d.say("production on the embedded platform");
    d.start_platform()?;
    let prod = format!("http://127.0.0.1:{port}");
    let v14 = d.git(&d.work, &["rev-parse", "HEAD"])?;
    let o = d
        .client()?
        .deploy_production(&v14)
        .map_err(|e| fail(e.to_string()))?;
    d.note(&format!(
        "production {} runs {} (release {})",
        prod,
        &v14[..10],
        o.release.id
    ));
    if with_rollback {
        // Production's database is on an older schema than a fresh preview's.
        let data = d.state_dir().join("data").join("production");
        std::fs::create_dir_all(&data).map_err(|e| fail(e.to_string()))?;
        std::fs::write(data.join("legacy-schema"), "schema 41\n")
            .map_err(|e| fail(e.to_string()))?;
    }

    // 3. A release breaks PDF export.
    d.say("release 1.5 goes out and breaks PDF export");
    d.write(
        "service/routes.toml",
        &ROUTES_GOOD.replace(
            "content_type = \"application/pdf\"\nbody = \"%PDF-1.7 invoice-2026-11.pdf\"",
            "status = 500\nbody = \"panic: font table missing for invoice template\"",
        ),
    )?;
    let v15 = d.commit(
        "pdf-service 1.5: new invoice fonts",
        "dev@pdf-service.example",
    )?;
    d.git(&d.work, &["push", "--quiet", "origin", "main"])?;
    d.client()?
        .deploy_production(&v15)
        .map_err(|e| fail(e.to_string()))?;
    let (status, body) = get(&format!("{prod}/export/pdf"));
    d.note(&format!(
        "200 users: errors. Monitoring → on-call: ALERT GET /export/pdf → {status} {body}"
    ));

    // 4. The hotfix.
    d.say("the on-call developer declares a critical incident and cuts the hotfix branch");
    d.must(
        ONCALL,
        &[
            "start",
            "pdf-crash",
            "--severity",
            "critical",
            "--title",
            "PDF export crashes",
            "--customer-facing",
        ],
    )?;

    if with_rollback {
        d.say("a first fix: it includes a schema migration that a fresh preview database accepts");
        let bad = ROUTES_GOOD.replace(
            "[[route]]\npath = \"/health\"\nbody = \"ok\"",
            "[[route]]\npath = \"/health\"\nwhen_data_file = \"legacy-schema\"\nafter_ms = 700\nstatus = 500\nbody = \"migration 0042 failed: column font_table already exists\"\n\n[[route]]\npath = \"/health\"\nbody = \"ok\"",
        );
        d.write("service/routes.toml", &bad)?;
        d.commit("Fix PDF export: add font table (migration 0042)", ONCALL)?;
        d.say("push: PR, preview on its own ephemeral data dir, smoke checks pass");
        d.must(ONCALL, &["push"])?;
        d.must(LEAD, &["approve", "HF-1"])?;
        d.say("ship: production health fails on the real data, hotfix rolls back by itself");
        let code = d.hotfix(ONCALL, &["ship"])?;
        if code == 0 {
            return Err(fail("the bad fix was expected to be rolled back"));
        }
        let (s, b) = get(&format!("{prod}/health"));
        d.note(&format!("production /health after the rollback: {s} {b}"));
        d.say("reassess; a new attempt on the same incident");
        d.must(
            ONCALL,
            &[
                "start",
                "pdf-crash-2",
                "--severity",
                "critical",
                "--incident",
                "HF-1",
            ],
        )?;
    }

    d.say("the fix: a minimal change, focused on the specific problem");
    d.write("service/routes.toml", ROUTES_GOOD)?;
    d.commit(
        "Fix PDF export crash: fall back to the default font table",
        ONCALL,
    )?;
    d.note("1 file changed");

    d.say("push: branch, [HOTFIX] PR with impact assessment, preview deploy, smoke test");
    d.must(ONCALL, &["push"])?;

    d.say("emergency approval by the tech lead (critical: tech lead only)");
    d.must(LEAD, &["approve", "HF-1"])?;

    d.say("ship: merge to main, production deploy, health watch");
    d.must(ONCALL, &["ship"])?;
    let (status, body) = get(&format!("{prod}/export/pdf"));
    d.note(&format!("GET /export/pdf → {status} {body}"));

    d.say("backport to develop (don't forget this step!)");
    d.must(ONCALL, &["backport"])?;

    d.say("post-mortem draft and invite, within 24 hours");
    d.must(ONCALL, &["postmortem"])?;

    d.say("the post-hotfix checklist, then close");
    d.must(
        ONCALL,
        &[
            "checklist",
            "--done",
            "incident_log",
            "status_page",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    )?;
    d.must(ONCALL, &["close"])?;

    d.say("the timeline against the process targets");
    d.must(ONCALL, &["status", "HF-1"])?;
    let main = d
        .git(&d.work, &["rev-parse", "origin/main"])
        .or_else(|_| d.git(&d.dir.join("origin.git"), &["rev-parse", "main"]))?;
    d.note(&format!(
        "origin/main is {} with the good fix; production serves it",
        &main[..10.min(main.len())]
    ));
    Ok(())
}
