//! Benchmark of issue 13 (build once), run by `bench/build/run.sh`.
//!
//! Generates a real Rust HTTP service (tokio, httparse, serde, serde_json
//! from the local cargo registry, pinned by this workspace's lock file,
//! built `--offline`), then times the same one-line hotfix on the embedded
//! platform, in one run, three ways:
//!
//! 1. **baseline**: every release builds in a fresh worktree from nothing
//!    (the behaviour before issue 13: no cache, no promotion);
//! 2. **incremental**: `[deploy] cache = ["target"]`, promotion off;
//! 3. **promotion**: the cache, and production promotes the previewed build.
//!
//! For each: the preview deploy of the fix (the platform's part of `hotfix
//! push`: request → preview serving) and the production deploy of the merge
//! commit with the previewed hint (the platform's part of `hotfix ship`:
//! request → production healthy behind the proxy). Against the floor: the
//! service's own incremental `cargo build --release` of the same change in a
//! warm checkout, and the service's start-up + first healthy answer.
//! 127.0.0.1 only; no network (cargo runs `--offline`).
//!
//! `cargo run --release -p hotfix-platform --example build_bench -- --lock Cargo.lock [--work DIR]`
//! prints a Markdown report on stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hotfix_platform::{
    BuildHow, Client, DeployRequest, PlatformConfig, PreviewedHint, ReleaseInfo,
};

const CARGO_TOML: &str = r#"[package]
name = "svc"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
httparse = "1"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
tokio = { version = "1", features = ["rt-multi-thread", "net", "io-util", "macros", "time", "sync"] }

[profile.release]
debug = false
"#;

/// A small but real service: async accept loop, HTTP/1.1 parsing with
/// httparse, JSON with serde, shared state, a few routes.
const MAIN_RS: &str = r#"use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

const VERSION: &str = "v1";

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Invoice {
    id: u64,
    customer: String,
    lines: Vec<Line>,
}

#[derive(Debug, Serialize, Deserialize, Clone)]
struct Line {
    item: String,
    cents: i64,
    qty: u32,
}

#[derive(Serialize)]
struct Total<'a> {
    id: u64,
    customer: &'a str,
    total_cents: i64,
    version: &'static str,
}

#[derive(Default)]
struct App {
    hits: AtomicU64,
    invoices: Mutex<BTreeMap<u64, Invoice>>,
}

fn total(inv: &Invoice) -> i64 {
    inv.lines.iter().map(|l| l.cents * i64::from(l.qty)).sum()
}

async fn answer(app: &App, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    app.hits.fetch_add(1, Ordering::Relaxed);
    match (method, path) {
        ("GET", "/health") => (200, "ok".into()),
        ("GET", "/version") => (200, VERSION.into()),
        ("GET", "/stats") => (
            200,
            serde_json::json!({"hits": app.hits.load(Ordering::Relaxed), "version": VERSION}).to_string(),
        ),
        ("POST", "/invoices") => match serde_json::from_slice::<Invoice>(body) {
            Ok(inv) => {
                let t = Total { id: inv.id, customer: &inv.customer, total_cents: total(&inv), version: VERSION };
                let out = serde_json::to_string(&t).unwrap_or_default();
                app.invoices.lock().await.insert(inv.id, inv);
                (201, out)
            }
            Err(e) => (400, format!("bad invoice: {e}")),
        },
        ("GET", p) if p.starts_with("/invoices/") => {
            let id: u64 = p["/invoices/".len()..].parse().unwrap_or(0);
            match app.invoices.lock().await.get(&id) {
                Some(inv) => (200, serde_json::to_string(inv).unwrap_or_default()),
                None => (404, "no such invoice".into()),
            }
        }
        _ => (404, "not found".into()),
    }
}

async fn serve(app: Arc<App>, mut s: TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut have = 0;
    loop {
        let n = match s.read(&mut buf[have..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        have += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head)) = req.parse(&buf[..have]) else {
            if have == buf.len() {
                return;
            }
            continue;
        };
        let len: usize = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("content-length"))
            .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse().ok())
            .unwrap_or(0);
        if have < head + len {
            continue;
        }
        let (method, path) = (req.method.unwrap_or("GET").to_string(), req.path.unwrap_or("/").to_string());
        let (status, body) = answer(&app, &method, &path, &buf[head..head + len]).await;
        let resp = format!(
            "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
        buf.copy_within(head + len..have, 0);
        have -= head + len;
    }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    let l = TcpListener::bind(("127.0.0.1", port)).await?;
    let app = Arc::new(App::default());
    loop {
        let (s, _) = l.accept().await?;
        tokio::spawn(serve(app.clone(), s));
    }
}
"#;

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn cargo_build(dir: &Path) -> Duration {
    let t = Instant::now();
    let st = Command::new("cargo")
        .args(["build", "--release", "--offline", "--quiet"])
        .current_dir(dir)
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .status()
        .expect("cargo runs");
    assert!(st.success(), "cargo build in {} failed", dir.display());
    t.elapsed()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    )
    .ok()?;
    let mut b = [0u8; 64];
    let n = s.read(&mut b).ok()?;
    std::str::from_utf8(&b[..n])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

fn body(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    );
    let mut b = vec![0u8; 4096];
    let n = s.read(&mut b).unwrap_or(0);
    let text = String::from_utf8_lossy(&b[..n]).into_owned();
    text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()
}

/// The service's own start-up + first healthy answer (median of 5).
fn startup(dir: &Path) -> Duration {
    let mut runs = Vec::new();
    for _ in 0..5 {
        let port = hotfix_platform::free_port().expect("port");
        let t = Instant::now();
        let mut child = Command::new(dir.join("target/release/svc"))
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()
            .expect("start svc");
        while http_status(port, "/health") != Some(200) {
            assert!(t.elapsed() < Duration::from_secs(10), "svc did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        runs.push(t.elapsed());
        let _ = child.kill();
        let _ = child.wait();
    }
    runs.sort();
    runs[runs.len() / 2]
}

struct Mode {
    name: &'static str,
    cache: bool,
    promote: bool,
}

/// The floor again, next to a measurement: the same one-line change (a
/// new value each time) built incrementally in the warm checkout. The
/// machine may be shared, so each mode is compared with a floor measured
/// moments before it, not with one from minutes earlier.
fn floor_now(src: &Path, n: usize) -> Duration {
    let main_rs = src.join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).expect("read");
    let changed = text.replacen(
        "const VERSION: &str = \"",
        &format!("const VERSION: &str = \"floor{n}-"),
        1,
    );
    std::fs::write(&main_rs, changed).expect("write");
    let d = cargo_build(src);
    std::fs::write(&main_rs, text).expect("restore");
    d
}

struct Row {
    name: &'static str,
    floor: Duration,
    preview_build: Duration,
    preview: Duration,
    preview_how: String,
    production: Duration,
    production_how: String,
}

fn how(r: &ReleaseInfo) -> String {
    r.build.as_ref().map_or("?".into(), |b| {
        let mut s = b.describe();
        if let Some(ms) = b.build_ms {
            s.push_str(&format!(", build {:.2}s", ms as f64 / 1000.0));
        }
        s
    })
}

fn main() {
    let mut lock: Option<PathBuf> = None;
    let mut work: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--lock" => lock = args.next().map(PathBuf::from),
            "--work" => work = args.next().map(PathBuf::from),
            other => panic!("unknown argument {other}; usage: --lock Cargo.lock [--work DIR]"),
        }
    }
    let lock = lock.expect("--lock <a Cargo.lock pinning tokio, serde, serde_json, httparse>");
    let tmp = tempfile::tempdir().expect("tmp");
    let root = work.unwrap_or_else(|| tmp.path().to_path_buf());
    let src = root.join("svc");
    std::fs::create_dir_all(src.join("src")).expect("mkdir");
    std::fs::write(src.join("Cargo.toml"), CARGO_TOML).expect("write");
    std::fs::write(src.join("src/main.rs"), MAIN_RS).expect("write");
    std::fs::write(src.join(".gitignore"), "target/\n").expect("write");
    std::fs::copy(&lock, src.join("Cargo.lock")).expect("copy the lock file");
    git(&src, &["init", "-q", "-b", "main"]);
    // Let cargo trim the lock to what the service uses, offline, once.
    eprintln!("build_bench: warm checkout, cold build (the floor's setup)…");
    let cold = cargo_build(&src);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "service v1"]);
    let base = git(&src, &["rev-parse", "HEAD"]);
    // The hotfix: one line, on its branch.
    git(&src, &["checkout", "-q", "-b", "hotfix/x"]);
    let main_rs = src.join("src/main.rs");
    let text = std::fs::read_to_string(&main_rs).expect("read");
    std::fs::write(
        &main_rs,
        text.replace(
            "const VERSION: &str = \"v1\";",
            "const VERSION: &str = \"v2\";",
        ),
    )
    .expect("write");
    // The floor: the service's own incremental build of that change.
    let floor = cargo_build(&src);
    git(&src, &["commit", "-q", "-am", "fix: v2"]);
    let fix = git(&src, &["rev-parse", "HEAD"]);
    git(&src, &["checkout", "-q", "main"]);
    git(
        &src,
        &["merge", "-q", "--no-ff", "-m", "Merge hotfix/x", "hotfix/x"],
    );
    let merge = git(&src, &["rev-parse", "HEAD"]);
    let tree = git(&src, &["rev-parse", &format!("{fix}^{{tree}}")]);
    assert_eq!(
        git(&src, &["rev-parse", &format!("{merge}^{{tree}}")]),
        tree
    );
    // Start-up + health of the fixed binary (the floor checkout's build).
    git(&src, &["checkout", "-q", "hotfix/x"]);
    cargo_build(&src);
    let up = startup(&src);
    git(&src, &["checkout", "-q", "main"]);

    let modes = [
        Mode {
            name: "baseline (cold worktree builds)",
            cache: false,
            promote: false,
        },
        Mode {
            name: "incremental (`cache = [\"target\"]`)",
            cache: true,
            promote: false,
        },
        Mode {
            name: "promotion (cache + tested build promoted)",
            cache: true,
            promote: true,
        },
    ];
    let mut rows = Vec::new();
    for (i, m) in modes.iter().enumerate() {
        eprintln!("build_bench: mode {}: {}…", i + 1, m.name);
        let mut cfg = PlatformConfig::new(
            &src,
            root.join(format!("state-{i}")),
            vec!["./target/release/svc".into()],
        );
        cfg.build = Some(vec![
            "cargo".into(),
            "build".into(),
            "--release".into(),
            "--offline".into(),
        ]);
        cfg.port = hotfix_platform::free_port().expect("port");
        cfg.ready_timeout = Duration::from_secs(30);
        cfg.build_timeout = Duration::from_secs(900);
        cfg.stop_timeout = Duration::from_secs(1);
        cfg.warm = Duration::from_secs(600);
        if m.cache {
            cfg.cache = vec!["target".into()];
        }
        cfg.promote = m.promote;
        let state = cfg.state_dir.clone();
        let proxy = cfg.port;
        let platform = {
            let cfg = cfg.clone();
            std::thread::spawn(move || hotfix_platform::run_foreground(cfg))
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let c = loop {
            if let Ok(c) = Client::connect(&state)
                && c.status().is_ok_and(|s| !s.recovering)
            {
                break c;
            }
            assert!(Instant::now() < deadline, "platform did not come up");
            std::thread::sleep(Duration::from_millis(20));
        };
        // What production ran before the incident (untimed; cold).
        c.deploy_production(&base).expect("deploy v1");
        assert_eq!(body(proxy, "/version"), "v1");
        let floor = floor_now(&src, i);
        // push → preview serving
        let t = Instant::now();
        let pv = c.deploy_preview("HF-1", &fix).expect("preview");
        let preview = t.elapsed();
        let port: u16 = pv
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        assert_eq!(body(port, "/version"), "v2");
        // ship: the merge removes the preview, then production deploys.
        c.remove_preview("HF-1").expect("remove preview");
        let t = Instant::now();
        let o = c
            .deploy_production_with(&DeployRequest {
                sha: merge.clone(),
                previewed: Some(PreviewedHint {
                    sha: fix.clone(),
                    tree: tree.clone(),
                }),
                ..DeployRequest::default()
            })
            .expect("production");
        let production = t.elapsed();
        assert_eq!(body(proxy, "/version"), "v2");
        let promoted = o
            .release
            .build
            .as_ref()
            .is_some_and(|b| b.how == BuildHow::Promoted);
        assert_eq!(promoted, m.promote, "{:?}", o.release.build);
        let preview_build = Duration::from_millis(
            pv.release
                .build
                .as_ref()
                .and_then(|b| b.build_ms)
                .unwrap_or_default(),
        );
        rows.push(Row {
            name: m.name,
            floor,
            preview_build,
            preview,
            preview_how: how(&pv.release),
            production,
            production_how: how(&o.release),
        });
        c.shutdown().expect("shutdown");
        let _ = platform.join();
    }

    println!(
        "Service: Rust HTTP service (tokio, httparse, serde, serde_json; `cargo build --release --offline`), \
         one-line hotfix (`const VERSION`).\n"
    );
    println!("| | ms |\n|---|---|");
    println!(
        "| cold `cargo build --release` (warm checkout's first build) | {:.0} |",
        ms(cold)
    );
    println!(
        "| **floor**: incremental `cargo build --release` of the fix in a warm checkout | **{:.0}** |",
        ms(floor)
    );
    println!(
        "| service start-up + first healthy answer (median of 5) | {:.1} |\n",
        ms(up)
    );
    println!(
        "| mode | floor now (ms) | push → preview serving (ms) | × floor | platform's own part (ms) | how | ship → production healthy (ms) | × floor | how |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}× | {:.0} | {} | {:.0} | {:.2}× | {} |",
            r.name,
            ms(r.floor),
            ms(r.preview),
            ms(r.preview) / ms(r.floor),
            ms(r.preview) - ms(r.preview_build),
            r.preview_how,
            ms(r.production),
            ms(r.production) / ms(r.floor),
            r.production_how
        );
    }
    println!(
        "\n\"floor now\": the floor measured again just before that mode's preview (the machine may be shared); \
         \"platform's own part\": the preview time minus its `cargo build` (checkout, cache copy, start-up, health)."
    );
    let (best_preview, best_floor) = rows
        .iter()
        .skip(1)
        .map(|r| (r.preview, r.floor))
        .min_by(|a, b| (ms(a.0) / ms(a.1)).total_cmp(&(ms(b.0) / ms(b.1))))
        .unwrap_or_default();
    let promo = rows.last().map(|r| r.production).unwrap_or_default();
    println!();
    println!(
        "- target preview ≤ 1.5× floor: {:.2}× ({})",
        ms(best_preview) / ms(best_floor),
        if ms(best_preview) <= 1.5 * ms(best_floor) {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "- target production of a previewed tree ≤ start-up + health + 100 ms = {:.0} ms: {:.0} ms ({}; platform overhead {:.0} ms)",
        ms(up) + 100.0,
        ms(promo),
        if ms(promo) <= ms(up) + 100.0 {
            "met"
        } else {
            "NOT met"
        },
        ms(promo) - ms(up)
    );
}
