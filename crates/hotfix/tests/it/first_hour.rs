//! The first hour of a new team, literally as the README's Quick start says,
//! on a small Python service that no other test uses: `hotfix init`, the
//! config committed (and at first not pushed), the current `main` put into
//! production on the embedded platform, then three incidents (a critical
//! one, a high one with two approvals and a conflicted backport finished
//! from inside the conflict worktree, and a bad fix that production health
//! catches and rolls back).
//!
//! Every step runs the real binary in a real clone with a bare origin; the
//! service is a real process answering real HTTP on 127.0.0.1.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hotfix_testkit::Run;

const DEV: &str = "dev@example.com";
const DEV2: &str = "dev2@example.com";
const LEAD: &str = "lead@example.com";
const REV: &str = "rev@example.com";

/// The service: a few routes, one bug per incident.
const APP: &str = r#"import json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.time()
LIFETIME = None  # seconds a release lives (a leak that kills it); None: forever


def invoice_total(items):
    return sum(items) / len(items)


def search(q):
    return [w for w in ["alpha", "beta", "gamma"] if q in w][0]


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if LIFETIME is not None and time.time() - STARTED > LIFETIME:
            os._exit(3)
        try:
            if self.path == "/health":
                self.answer(200, "ok")
            elif self.path == "/invoice":
                self.answer(200, "total %s" % invoice_total([]))
            elif self.path == "/search":
                self.answer(200, search("zzz"))
            else:
                self.answer(404, "no such route")
        except Exception as e:
            self.answer(500, "error: %s" % e)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
"#;

struct Team {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    work: PathBuf,
    origin: PathBuf,
    gitconfig: PathBuf,
}

/// Stops the background platform even when an assertion fails.
struct PlatformGuard<'a>(&'a Team);

impl Drop for PlatformGuard<'_> {
    fn drop(&mut self) {
        let _ = self.0.hf(DEV, &["platform", "stop"]);
    }
}

impl Team {
    fn new() -> Team {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().to_path_buf();
        let gitconfig = base.join("gitconfig");
        std::fs::write(
            &gitconfig,
            "[user]\n\tname = Dev\n\temail = dev@example.com\n[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n",
        )
        .unwrap();
        let t = Team {
            work: base.join("shop"),
            origin: base.join("shop.git"),
            gitconfig,
            base,
            _tmp: tmp,
        };
        t.git_in(&t.base, &["init", "--quiet", "--bare", "shop.git"]);
        t.git_in(&t.base, &["init", "--quiet", "shop"]);
        t.write("app.py", APP);
        t.write("README.md", "# shop\n");
        t.git(&["add", "-A"]);
        t.git(&["commit", "--quiet", "-m", "shop service"]);
        t.git(&["remote", "add", "origin", t.origin.to_str().unwrap()]);
        t.git(&["push", "--quiet", "origin", "main"]);
        t.git(&["checkout", "--quiet", "-b", "develop"]);
        t.write("NEXT.md", "the next release\n");
        t.git(&["add", "-A"]);
        t.git(&["commit", "--quiet", "-m", "develop: next release notes"]);
        t.git(&["push", "--quiet", "origin", "develop"]);
        t.git(&["checkout", "--quiet", "main"]);
        t
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            (
                "GIT_CONFIG_GLOBAL".into(),
                self.gitconfig.display().to_string(),
            ),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("HOME".into(), self.base.display().to_string()),
        ]
    }

    fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .envs(self.env())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn git(&self, args: &[&str]) -> String {
        self.git_in(&self.work, args)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.work.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.work.join(rel)).unwrap()
    }

    /// Edits app.py as a developer would: one line replaced.
    fn edit(&self, rel: &str, from: &str, to: &str) {
        let text = self.read(rel);
        assert!(text.contains(from), "{from:?} not in {rel}");
        self.write(rel, &text.replacen(from, to, 1));
    }

    fn commit(&self, who: &str, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&[
            "-c",
            &format!("user.email={who}"),
            "commit",
            "--quiet",
            "-m",
            msg,
        ]);
        self.git(&["rev-parse", "HEAD"])
    }

    fn hf_in(&self, dir: &Path, who: &str, args: &[&str]) -> Run {
        let out = hotfix_testkit::hermetic(&mut Command::new(env!("CARGO_BIN_EXE_hotfix")))
            .args(args)
            .current_dir(dir)
            .envs(self.env())
            .env("HOTFIX_USER", who)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }

    fn hf(&self, who: &str, args: &[&str]) -> Run {
        self.hf_in(&self.work, who, args)
    }

    fn status(&self, id: &str) -> serde_json::Value {
        serde_json::from_str(&self.hf(DEV, &["status", id, "--json"]).ok().stdout).unwrap()
    }
}

fn get(url: &str) -> (u16, String) {
    hotfix_providers::health::get(url, Duration::from_secs(3)).unwrap_or((0, String::new()))
}

/// Waits until `url` answers `code` (a release switch is asynchronous to us).
fn eventually(url: &str, code: u16) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = get(url);
        if r.0 == code || std::time::Instant::now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_first_hour_of_a_new_team_as_the_quick_start_says() {
    if Command::new("python3").arg("--version").output().is_err() {
        assert!(
            std::env::var("CI").is_err(),
            "python3 is needed for this test and CI must have it"
        );
        eprintln!("skipped: no python3");
        return;
    }
    let t = Team::new();
    let port = hotfix_platform::free_port().unwrap();
    let prod = format!("http://127.0.0.1:{port}");

    // --- init, edited as the README says: [team] and [deploy]. ---
    t.hf(DEV, &["init"]).ok();
    let init = t.read("hotfix.toml");
    assert!(
        init.contains("[[area_checks]]"),
        "init writes an area-check example:\n{init}"
    );
    let mut cfg = init
        .replacen("tech_leads = []", &format!("tech_leads = [\"{LEAD}\"]"), 1)
        .replacen("reviewers = []", &format!("reviewers = [\"{REV}\"]"), 1);
    // The embedded platform, with the timings a small service needs.
    let deploy_start = cfg.find("[deploy]").unwrap();
    let deploy_end = deploy_start
        + cfg[deploy_start..]
            .find("\n[[")
            .or_else(|| cfg[deploy_start..].find("\n[notify]"))
            .unwrap();
    cfg.replace_range(
        deploy_start..deploy_end,
        &format!(
            "[deploy]\nprovider = \"local\"\nbuild = \"python3 -m py_compile app.py\"\nrun = \"python3 app.py\"\nport = {port}\nready_timeout = \"15s\"\nwatch = \"4s\"\nprobe_interval = \"200ms\"\nunhealthy_after = 2\n"
        ),
    );
    // High severity asks for area checks: the one this service has.
    cfg.push_str("\n[[area_checks]]\nname = \"search\"\npath = \"/search\"\nstatus = 200\n");
    t.write("hotfix.toml", &cfg);
    t.commit(DEV, "hotfix.toml: the team's hotfix policy");

    // Committed but not pushed: start refuses, with the command that fixes it,
    // and creates nothing.
    let r = t.hf(DEV, &["start", "invoice-crash", "--severity", "critical"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("git push origin main"), "{}", r.all());
    assert_eq!(t.git(&["branch", "--list", "hotfix/*"]), "");
    t.git(&["push", "--quiet", "origin", "main"]);

    // --- production runs main before the first hotfix. ---
    let _platform = PlatformGuard(&t);
    let r = t.hf(DEV, &["platform", "deploy"]).ok();
    assert!(
        r.all()
            .contains(&t.git(&["rev-parse", "--short", "origin/main"])),
        "{}",
        r.all()
    );
    assert_eq!(eventually(&format!("{prod}/health"), 200).0, 200);
    assert_eq!(get(&format!("{prod}/invoice")).0, 500, "the bug is live");
    let ps = t.hf(DEV, &["platform", "status", "--json"]).ok();
    assert!(ps.stdout.contains(&t.git(&["rev-parse", "origin/main"])));

    // --- incident 1: critical, one tech lead approves. ---
    t.hf(
        DEV,
        &[
            "start",
            "invoice-crash",
            "--severity",
            "critical",
            "--title",
            "Invoices crash on empty carts",
        ],
    )
    .ok();
    t.edit(
        "app.py",
        "    return sum(items) / len(items)",
        "    return sum(items) / len(items) if items else 0",
    );
    t.commit(DEV, "Guard the empty cart in invoice_total");
    let push = t
        .hf(
            DEV,
            &[
                "push",
                "--impact",
                "Invoices for empty carts; no data change.",
            ],
        )
        .ok();
    assert!(push.all().contains("HF-1"), "{}", push.all());
    let pr = t.hf(DEV, &["pr"]).ok();
    assert!(pr.stdout.contains("[HOTFIX]"), "{}", pr.stdout);
    assert!(
        pr.stdout.contains("Invoices for empty carts"),
        "{}",
        pr.stdout
    );
    let s = t.status("HF-1");
    let preview = s["preview_url"].as_str().unwrap().to_string();
    assert_eq!(get(&format!("{preview}/invoice")).0, 200);
    // The developer cannot approve their own hotfix; the tech lead can.
    t.hf(DEV, &["approve", "HF-1"]).fails(1, "");
    t.hf(LEAD, &["approve", "HF-1"]).ok();
    t.hf(DEV, &["ship"]).ok();
    assert_eq!(eventually(&format!("{prod}/invoice"), 200).0, 200);
    t.hf(DEV, &["backport"]).ok();
    let pm = t.hf(DEV, &["postmortem"]).ok();
    assert!(pm.all().contains("postmortems/HF-1.md"), "{}", pm.all());
    let ics = std::fs::read_to_string(t.work.join("postmortems/HF-1.ics")).unwrap();
    assert!(ics.contains("ORGANIZER"), "{ics}");
    assert!(ics.contains(&format!("mailto:{LEAD}")), "{ics}");
    t.hf(
        DEV,
        &[
            "checklist",
            "--done",
            "incident_log",
            "monitoring_reviewed",
            "docs_updated",
            "team_notified",
        ],
    )
    .ok();
    let st = t.hf(DEV, &["status", "HF-1"]).ok();
    assert!(
        !st.stdout.contains("/ 30:00") && !st.stdout.contains("/ 20:00"),
        "durations read as durations:\n{}",
        st.stdout
    );
    // Whoever may close it closes it; the next step names the real command.
    let close = t.hf(LEAD, &["close", "HF-1"]);
    let close = if close.code == 0 {
        close
    } else {
        t.hf(DEV, &["close", "HF-1"]).ok()
    };
    assert!(close.stdout.contains("HF-1 closed"), "{}", close.all());

    // --- incident 2: high, tech lead + reviewer, a conflicted backport. ---
    // Meanwhile develop changed the same line.
    t.git(&["fetch", "--quiet", "origin"]);
    t.git(&["checkout", "--quiet", "develop"]);
    t.git(&["merge", "--quiet", "--ff-only", "origin/develop"]);
    t.edit(
        "app.py",
        "if q in w][0]",
        "if q in w][0]  # develop: ranking comes next",
    );
    t.commit(DEV2, "develop: mark the search ranking work");
    t.git(&["push", "--quiet", "origin", "develop"]);
    t.git(&["checkout", "--quiet", "main"]);
    t.git(&["merge", "--quiet", "--ff-only", "origin/main"]);

    t.hf(
        DEV,
        &[
            "start",
            "search-500",
            "--severity",
            "high",
            "--title",
            "Search fails for unknown words",
        ],
    )
    .ok();
    t.edit("app.py", "if q in w][0]", "if q in w][:1] or \"no match\"");
    t.commit(DEV, "Search: an unknown word is no match, not an error");
    t.hf(DEV, &["push"]).ok();
    assert_eq!(
        get(&format!(
            "{}/search",
            t.status("HF-2")["preview_url"].as_str().unwrap()
        ))
        .0,
        200
    );
    // One more local commit, not pushed, and nobody approved yet: ship says
    // everything at once, in the order to fix it (push first).
    t.edit("app.py", "\"no match\"", "\"no match\"  # see HF-2");
    t.commit(DEV, "Search: comment");
    let r = t.hf(DEV, &["ship"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let all = r.all();
    let push_at = all.find("hotfix push").expect(&all);
    let approve_at = all.find("approv").expect(&all);
    assert!(push_at < approve_at, "push comes first:\n{all}");
    t.hf(DEV, &["push"]).ok();
    t.hf(LEAD, &["approve", "HF-2"]).ok();
    t.hf(DEV, &["ship"]).fails(1, "");
    t.hf(REV, &["approve", "HF-2"]).ok();
    t.hf(DEV, &["ship"]).ok();
    assert_eq!(eventually(&format!("{prod}/search"), 200).0, 200);
    let r = t.hf(DEV, &["backport"]);
    assert_ne!(r.code, 0, "the backport conflicts: {}", r.all());
    let wt = PathBuf::from(
        t.status("HF-2")["backport_conflict"]["worktree"]
            .as_str()
            .unwrap(),
    );
    // Resolve inside the worktree and finish from there, as the hint says.
    let text = std::fs::read_to_string(wt.join("app.py")).unwrap();
    let resolved: String = {
        let mut out = String::new();
        let mut skip = false;
        for line in text.lines() {
            if line.starts_with("<<<<<<<") {
                skip = true;
                continue;
            }
            if line.starts_with("=======") {
                skip = false;
                continue;
            }
            if line.starts_with(">>>>>>>") {
                continue;
            }
            if !skip {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    };
    std::fs::write(wt.join("app.py"), resolved).unwrap();
    t.git_in(&wt, &["add", "app.py"]);
    let r = t.hf_in(&wt, DEV, &["backport", "--continue"]).ok();
    assert!(r.all().contains("backported"), "{}", r.all());
    assert_eq!(t.status("HF-2")["backported"], true);
    let develop = t.git(&["show", "origin/develop:app.py"]);
    assert!(develop.contains("no match"), "{develop}");

    // --- incident 3: a bad fix that production health catches. ---
    t.git(&["checkout", "--quiet", "main"]);
    t.git(&["pull", "--quiet", "--ff-only", "origin", "main"]);
    t.hf(
        DEV,
        &[
            "start",
            "slow-start",
            "--severity",
            "critical",
            "--title",
            "Cold start too slow",
        ],
    )
    .ok();
    // The "fix" makes each release die after a second: the preview's smoke
    // check passes at once, production's watch sees it die.
    t.edit("app.py", "LIFETIME = None", "LIFETIME = 1.0");
    t.commit(DEV, "Cache warm-up");
    t.hf(DEV, &["push"]).ok();
    t.hf(LEAD, &["approve", "HF-3"]).ok();
    let before = t.git(&["rev-parse", "origin/main"]);
    let r = t.hf(DEV, &["ship"]);
    assert_ne!(r.code, 0, "production health fails: {}", r.all());
    assert!(
        r.all().to_lowercase().contains("rolled back"),
        "{}",
        r.all()
    );
    assert_eq!(eventually(&format!("{prod}/health"), 200).0, 200);
    let s = t.status("HF-3");
    assert!(s["rolled_back"].is_object(), "{s}");
    let text = t.hf(DEV, &["status", "HF-3"]).ok().stdout;
    assert!(
        !text.contains("FAILING"),
        "production is healthy again:\n{text}"
    );
    assert!(
        text.contains(&before[..7]),
        "names what production runs:\n{text}"
    );
}
