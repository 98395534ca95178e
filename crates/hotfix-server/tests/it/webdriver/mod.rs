//! A small W3C WebDriver client over HTTP (ureq) for the browser test:
//! starts `chromedriver` as a child process, opens a headless Chromium
//! session and drives it with the few commands the test needs. Both are
//! ended on drop, also when a test panics.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long [`Session::find`] and [`Session::wait_for_text`] wait.
const WAIT: Duration = Duration::from_secs(5);

/// The flags the headless browser runs with.
pub const CHROME_ARGS: [&str; 6] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

/// Where chromedriver is: `$CHROMEDRIVER`, else Debian's `/usr/bin/chromedriver`.
pub fn chromedriver_path() -> Option<PathBuf> {
    let p = std::env::var_os("CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"));
    p.exists().then_some(p)
}

/// A running chromedriver, killed on drop.
pub struct Driver {
    child: Child,
    pub base: String,
}

impl Driver {
    /// Starts chromedriver on a free port of 127.0.0.1 and waits until it is ready.
    pub fn start(path: &Path) -> Driver {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let d = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(v) = call(&d.base, "GET", "/status", None)
                && v["value"]["ready"] == true
            {
                return d;
            }
            assert!(Instant::now() < deadline, "chromedriver did not get ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(90)))
        .build()
        .into()
}

/// One WebDriver command; `Err` carries the driver's error answer.
fn call(base: &str, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
    let url = format!("{base}{path}");
    let a = agent();
    let r = match (method, body) {
        ("GET", _) => a.get(&url).call(),
        ("DELETE", _) => a.delete(&url).call(),
        (_, b) => a
            .post(&url)
            .header("Content-Type", "application/json")
            .send(b.unwrap_or(json!({})).to_string().as_bytes()),
    };
    let mut r = r.map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
    if status >= 400 {
        return Err(format!("{method} {path}: {status} {}", v["value"]));
    }
    Ok(v)
}

/// A browser session, deleted (browser closed) on drop.
pub struct Session<'d> {
    driver: &'d Driver,
    id: String,
}

impl<'d> Session<'d> {
    pub fn new(driver: &'d Driver) -> Session<'d> {
        let mut opts = json!({ "args": CHROME_ARGS });
        if Path::new("/usr/bin/chromium").exists() {
            opts["binary"] = json!("/usr/bin/chromium");
        }
        let v = call(
            &driver.base,
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": opts,
            }}})),
        )
        .expect("a browser session");
        Session {
            driver,
            id: v["value"]["sessionId"].as_str().unwrap().to_string(),
        }
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.id);
        call(&self.driver.base, method, &p, body).unwrap_or_else(|e| panic!("{e}"))["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn url(&self) -> String {
        self.cmd("GET", "/url", None).as_str().unwrap().to_string()
    }

    /// The first element matching `css`, if any.
    pub fn try_find(&self, css: &str) -> Option<String> {
        let p = format!("/session/{}/element", self.id);
        call(
            &self.driver.base,
            "POST",
            &p,
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .map(|v| v["value"][ELEMENT].as_str().unwrap().to_string())
    }

    /// The first element matching `css`, waiting up to [`WAIT`] for it.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.try_find(css) {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "no element {css} on {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn click(&self, el: &str) {
        self.cmd("POST", &format!("/element/{el}/click"), Some(json!({})));
    }

    pub fn send_keys(&self, el: &str, text: &str) {
        self.cmd(
            "POST",
            &format!("/element/{el}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The rendered text of the first element matching `css` (empty if none).
    pub fn text(&self, css: &str) -> String {
        match self.try_find(css) {
            Some(el) => {
                let p = format!("/session/{}/element/{el}/text", self.id);
                // The element may be replaced by a live update between
                // the two calls: treat that as "no text yet".
                call(&self.driver.base, "GET", &p, None)
                    .map(|v| v["value"].as_str().unwrap_or("").to_string())
                    .unwrap_or_default()
            }
            None => String::new(),
        }
    }

    /// Polls until the text of `css` contains `want` (up to [`WAIT`]).
    pub fn wait_for_text(&self, css: &str, want: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text(css);
            if t.contains(want) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {want:?} on {}; it shows {t:?}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs a script in the page and returns its value.
    pub fn script(&self, js: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": js, "args": [] })),
        )
    }

    /// Saves a PNG of the viewport to `<target>/screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = call(
            &self.driver.base,
            "DELETE",
            &format!("/session/{}", self.id),
            None,
        );
    }
}

/// `$CARGO_TARGET_DIR/screenshots`, else the workspace's `target/screenshots`.
pub fn screenshots_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("screenshots")
}

/// Standard base64 (WebDriver's screenshot encoding; line breaks, which
/// some drivers add, skipped).
pub fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    let s: String = s.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("WebDriver sent a screenshot that is not base64")
}
