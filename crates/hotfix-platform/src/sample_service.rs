//! A tiny HTTP service for demos and tests, whose behaviour is written in the
//! repository it is deployed from — so a commit changes what the release
//! built from it does, exactly like a real application.
//!
//! It reads `service/routes.toml` under its directory once, at start-up:
//!
//! ```toml
//! # optional top-level keys
//! startup_delay_ms = 0      # wait this long before listening (slow boot)
//! crash_after_ms = 500      # exit by itself this long after listening
//! crash_exit_code = 3       # ... with this exit code (default 3)
//! log_requests = true       # one line per request on stdout (default true)
//!
//! [[route]]
//! path = "/health"          # exact path (query ignored)
//! status = 200              # default 200
//! body = "ok"               # default ""
//! # method = "GET"          # default: any
//! # delay_ms = 0            # answer this much later (slow endpoint)
//! # content_type = "text/plain; charset=utf-8"
//!
//! [[route]]
//! path = "/export/pdf"
//! status = 500
//! body = "panic: font table missing"
//! ```
//!
//! Without the file it answers `GET /health` with `200 ok`. `/__sample/info`
//! always answers JSON with its pid, port, working directory and `DATA_DIR`.
//! Other paths get 404.

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::PlatformError;

/// The route file, relative to the service's directory.
pub const ROUTES_FILE: &str = "service/routes.toml";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    #[serde(default)]
    pub startup_delay_ms: u64,
    #[serde(default)]
    pub crash_after_ms: Option<u64>,
    #[serde(default = "default_exit_code")]
    pub crash_exit_code: i32,
    #[serde(default = "yes")]
    pub log_requests: bool,
    #[serde(default, rename = "route")]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub path: String,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub content_type: Option<String>,
    /// The route applies only while this file exists in `DATA_DIR`: models
    /// code that behaves differently on production's data than on a fresh
    /// preview database (the process's "Database Migration Issues").
    #[serde(default)]
    pub when_data_file: Option<String>,
    /// The route applies only once the service has been up this long: models
    /// a failure that shows after a release went live (a background
    /// migration, a leak), which only the health watch can catch.
    #[serde(default)]
    pub after_ms: Option<u64>,
}

/// When this service started answering.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

fn default_exit_code() -> i32 {
    3
}
fn default_status() -> u16 {
    200
}
fn yes() -> bool {
    true
}

impl Default for RouteFile {
    fn default() -> Self {
        RouteFile {
            startup_delay_ms: 0,
            crash_after_ms: None,
            crash_exit_code: 3,
            log_requests: true,
            routes: vec![Route {
                path: "/health".into(),
                status: 200,
                body: "ok".into(),
                method: None,
                delay_ms: 0,
                content_type: None,
                when_data_file: None,
                after_ms: None,
            }],
        }
    }
}

/// Reads `<dir>/service/routes.toml` (the default routes if it is absent).
pub fn load_routes(dir: &Path) -> Result<RouteFile, PlatformError> {
    let path = dir.join(ROUTES_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text)
            .map_err(|e| PlatformError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(RouteFile::default()),
        Err(e) => Err(PlatformError::io(
            format!("cannot read {}", path.display()),
            e,
        )),
    }
}

/// Serves the routes of `dir` on `127.0.0.1:port` until killed (or until
/// `crash_after_ms`, which exits the process).
pub fn serve(port: u16, dir: &Path) -> Result<(), PlatformError> {
    let routes = Arc::new(load_routes(dir)?);
    let _ = STARTED.set(std::time::Instant::now());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| PlatformError::io("cannot start the async runtime", e))?;
    let dir = dir.to_path_buf();
    rt.block_on(async move {
        if routes.startup_delay_ms > 0 {
            println!(
                "sample-service: starting slowly ({} ms)",
                routes.startup_delay_ms
            );
            tokio::time::sleep(Duration::from_millis(routes.startup_delay_ms)).await;
        }
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
            .map_err(|e| {
                PlatformError::io(
                    format!("sample-service: cannot listen on 127.0.0.1:{port}"),
                    e,
                )
            })?;
        println!(
            "sample-service: pid {} listening on 127.0.0.1:{port} with {} route(s) from {}",
            std::process::id(),
            routes.routes.len(),
            dir.join(ROUTES_FILE).display()
        );
        if let Some(ms) = routes.crash_after_ms {
            let code = routes.crash_exit_code;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                println!(
                    "sample-service: crashing as told (crash_after_ms = {ms}, exit code {code})"
                );
                std::process::exit(code);
            });
        }
        let dir = Arc::new(dir);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let routes = routes.clone();
            let dir = dir.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let routes = routes.clone();
                    let dir = dir.clone();
                    async move { Ok::<_, Infallible>(answer(&routes, &dir, port, req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

async fn answer<B>(
    routes: &RouteFile,
    dir: &Path,
    port: u16,
    req: Request<B>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let method = req.method().as_str().to_string();
    let (status, body, ctype) = if path == "/__sample/info" {
        let info = serde_json::json!({
            "pid": std::process::id(),
            "port": port,
            "cwd": dir,
            "data_dir": std::env::var(hotfix_core::env_vars::DATA_DIR).ok(),
            "release": std::env::var(hotfix_core::env_vars::HOTFIX_RELEASE).ok(),
            "sha": std::env::var(hotfix_core::env_vars::HOTFIX_SHA).ok(),
        });
        (200, info.to_string(), "application/json".to_string())
    } else if let Some(r) = routes.routes.iter().find(|r| {
        r.path == path
            && r.method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(&method))
            && r.after_ms.is_none_or(|ms| {
                STARTED
                    .get()
                    .is_some_and(|t| t.elapsed() >= Duration::from_millis(ms))
            })
            && r.when_data_file.as_deref().is_none_or(|f| {
                std::env::var_os(hotfix_core::env_vars::DATA_DIR)
                    .is_some_and(|d| std::path::Path::new(&d).join(f).exists())
            })
    }) {
        if r.delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(r.delay_ms)).await;
        }
        let ct = r
            .content_type
            .clone()
            .unwrap_or_else(|| "text/plain; charset=utf-8".into());
        (r.status, r.body.clone(), ct)
    } else {
        (
            404,
            format!("no route for {path}\n"),
            "text/plain; charset=utf-8".into(),
        )
    };
    if routes.log_requests {
        println!("sample-service: {method} {path} -> {status}");
    }
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(&ctype) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
