//! The platform process: binds the production proxy and the control API,
//! writes the control files, recovers recorded releases, and waits for a
//! shutdown request or a signal.

use std::convert::Infallible;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::PlatformError;
use crate::config::PlatformConfig;
use crate::paths::Paths;
use crate::platform::{Inner, StateFile, no_production};
use crate::procs::Spawner;
use crate::proxy::{self, Proxy, ProxyBody, full};
use crate::types::{
    ApiError, CanaryRequest, CanaryWeight, ControlInfo, DeployRequest, PlatformStats,
    PromoteRequest, RollbackRequest,
};
use crate::{stats, util};

/// Runs the platform in the calling thread until `POST /v1/shutdown`, SIGINT,
/// SIGTERM or SIGHUP; then stops every release it started. Builds its own
/// tokio runtime (two workers: the platform mostly waits).
pub fn run_foreground(cfg: PlatformConfig) -> Result<(), PlatformError> {
    cfg.validate()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("hotfix-platform")
        .build()
        .map_err(|e| PlatformError::io("cannot start the async runtime", e))?;
    rt.block_on(serve(cfg))
}

fn read_state(paths: &Paths) -> Result<StateFile, PlatformError> {
    match fs::read(paths.state()) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PlatformError::Json {
            context: format!(
                "state file {} is unreadable (move it away to start with no releases)",
                paths.state().display()
            ),
            detail: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StateFile::default()),
        Err(e) => Err(PlatformError::io(
            format!("cannot read {}", paths.state().display()),
            e,
        )),
    }
}

async fn serve(mut cfg: PlatformConfig) -> Result<(), PlatformError> {
    util::private_dir(&cfg.state_dir)?;
    // Absolute paths: releases run in other directories, and the state file
    // must mean the same thing whatever directory the next start runs from.
    for p in [&mut cfg.state_dir, &mut cfg.repo_root] {
        *p = fs::canonicalize(&*p)
            .map_err(|e| PlatformError::io(format!("cannot resolve {}", p.display()), e))?;
    }
    let paths = Paths::new(&cfg.state_dir);
    for d in [paths.releases(), paths.logs(), paths.data()] {
        util::private_dir(&d)?;
    }
    // One platform per state directory. The lock dies with the process, so a
    // kill -9 never leaves a stale lock behind.
    let lock_file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(paths.lock())
        .map_err(|e| PlatformError::io(format!("cannot open {}", paths.lock().display()), e))?;
    if lock_file.try_lock().is_err() {
        let pid = crate::client::read_control(&paths.root)
            .map(|c| c.pid)
            .unwrap_or(0);
        return Err(PlatformError::AlreadyRunning {
            state_dir: paths.root.clone(),
            pid,
        });
    }

    let saved = read_state(&paths)?;
    let want_port = match (cfg.port, saved.proxy_port) {
        (0, Some(p)) if p != 0 => p,
        (p, _) => p,
    };
    let mut bound = TcpListener::bind(SocketAddr::new(cfg.host, want_port)).await;
    if bound.is_err() && cfg.port == 0 {
        // A port picked at random last time may have been taken since.
        bound = TcpListener::bind(SocketAddr::new(cfg.host, 0)).await;
    }
    let proxy_listener = bound
        .map_err(|e| {
            PlatformError::io(
                format!(
                    "cannot listen on the production port {}:{want_port} (another program uses it? change [deploy] port or stop it)",
                    cfg.host
                ),
                e,
            )
        })?;
    let proxy_port = proxy_listener
        .local_addr()
        .map_err(|e| PlatformError::io("cannot read the production port", e))?
        .port();
    let control_listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .map_err(|e| PlatformError::io("cannot listen for the control API on 127.0.0.1", e))?;
    let control_port = control_listener
        .local_addr()
        .map_err(|e| PlatformError::io("cannot read the control port", e))?
        .port();

    let token = util::random_token()?;
    let _ = fs::remove_file(paths.token());
    util::atomic_write(&paths.token(), token.as_bytes(), 0o600)?;

    let client = proxy::http_client();
    let proxy = Arc::new(Proxy::new(client.clone(), no_production()));
    if saved.production.is_some() {
        proxy.switch(crate::proxy::Upstream {
            port: None,
            id: String::new(),
            stats: None,
            release: "-".into(),
            note: "the platform is restarting production; retry in a few seconds".into(),
        });
    }
    let spawner = Spawner::new(tokio::runtime::Handle::current())?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let inner = Inner::new(
        cfg,
        paths.clone(),
        proxy.clone(),
        proxy_port,
        token,
        client,
        spawner,
        &saved,
        shutdown_tx,
    );

    tokio::spawn(proxy::serve(proxy, proxy_listener, shutdown_rx.clone()));
    tokio::spawn(serve_control(
        inner.clone(),
        control_listener,
        shutdown_rx.clone(),
    ));

    let info = ControlInfo {
        port: control_port,
        pid: std::process::id(),
        proxy_port,
        started_at: util::now_string(),
    };
    let json = serde_json::to_vec_pretty(&info).map_err(|e| PlatformError::Json {
        context: "control.json".into(),
        detail: e.to_string(),
    })?;
    util::atomic_write(&paths.control(), &json, 0o600)?;
    util::atomic_write(
        &paths.pid(),
        format!("{}\n", std::process::id()).as_bytes(),
        0o600,
    )?;
    eprintln!(
        "hotfix platform: pid {}, production on {}, control API on 127.0.0.1:{control_port}",
        std::process::id(),
        inner.proxy_url()
    );

    {
        let inner = inner.clone();
        tokio::spawn(async move { inner.recover(saved).await });
    }

    wait_for_stop(shutdown_rx).await;
    eprintln!("hotfix platform: shutting down; stopping releases");
    inner.shutdown().await;
    // Give the control API a moment to finish the answer to /v1/shutdown.
    tokio::time::sleep(Duration::from_millis(50)).await;
    for f in [paths.control(), paths.token(), paths.pid()] {
        let _ = fs::remove_file(f);
    }
    drop(lock_file);
    eprintln!("hotfix platform: stopped");
    Ok(())
}

async fn wait_for_stop(mut shutdown: watch::Receiver<bool>) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigs = Vec::new();
    for k in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        if let Ok(s) = signal(k) {
            sigs.push(s);
        }
    }
    let any_signal = async {
        if sigs.is_empty() {
            return std::future::pending::<()>().await;
        }
        let futs = sigs
            .iter_mut()
            .map(|s| Box::pin(async move { s.recv().await }));
        let _ = futures_select_all(futs.collect()).await;
    };
    tokio::select! {
        _ = any_signal => {}
        _ = shutdown.wait_for(|v| *v) => {}
    }
}

/// Resolves when the first of `futs` resolves (a tiny `select_all`).
async fn futures_select_all<F: std::future::Future + Unpin>(mut futs: Vec<F>) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            if std::pin::Pin::new(f).poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

async fn serve_control(
    inner: Arc<Inner>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = shutdown.changed() => break,
        };
        tokio::spawn(serve_connection(inner.clone(), stream));
    }
}

/// Answers the requests of one control connection: a TCP stream here, an
/// in-memory pipe in the fuzz target (`fuzz/`, through [`crate::fuzzing`]).
pub(crate) async fn serve_connection<I>(inner: Arc<Inner>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let inner = inner.clone();
        async move { Ok::<_, Infallible>(handle(inner, req).await) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

fn json<T: Serialize>(status: StatusCode, v: &T) -> Response<ProxyBody> {
    match serde_json::to_vec(v) {
        Ok(b) => {
            let mut r = full(status, b);
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => full(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(e: &PlatformError) -> Response<ProxyBody> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(
        status,
        &ApiError {
            error: e.to_string(),
            kind: e.kind().into(),
        },
    )
}

fn authorized(inner: &Inner, req: &Request<Incoming>) -> bool {
    let Some(v) = req.headers().get(hyper::header::AUTHORIZATION) else {
        return false;
    };
    let Some(given) = v.as_bytes().strip_prefix(b"Bearer ") else {
        return false;
    };
    util::constant_time_eq(given, inner.token.as_bytes())
}

async fn body_json<T: serde::de::DeserializeOwned + Default>(
    req: Request<Incoming>,
    required: bool,
) -> Result<T, PlatformError> {
    let bytes = Limited::new(req.into_body(), 64 * 1024)
        .collect()
        .await
        .map_err(|e| PlatformError::Invalid(format!("cannot read the request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) && !required {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| PlatformError::Invalid(format!("bad JSON body: {e}")))
}

/// Runs `fut` in its own task: a client that hangs up mid-deploy must not
/// cancel the deploy half-way (that would leave a process nobody tracks).
async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, PlatformError>> + Send + 'static,
) -> Result<T, PlatformError> {
    tokio::spawn(fut).await.unwrap_or_else(|e| {
        Err(PlatformError::Api {
            status: 500,
            message: format!("the operation failed: {e}"),
        })
    })
}

async fn handle(inner: Arc<Inner>, req: Request<Incoming>) -> Response<ProxyBody> {
    // Read-only counters for a Prometheus scraper, which carries no token;
    // the control API listens on 127.0.0.1 only.
    if req.method() == Method::GET && req.uri().path() == "/metrics" {
        let mut r = full(StatusCode::OK, stats::exposition(&inner.stats()));
        r.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        return r;
    }
    if !authorized(&inner, &req) {
        return error(&PlatformError::Unauthorized(
            "missing or wrong `Authorization: Bearer <token>`".into(),
        ));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, segs.as_slice()) {
        (Method::GET, ["v1", "status"]) => json(StatusCode::OK, &inner.status()),
        (Method::GET, ["v1", "stats"]) => json(
            StatusCode::OK,
            &PlatformStats {
                at: util::now_string(),
                releases: inner.stats().into_iter().map(|(r, _)| r).collect(),
            },
        ),
        (Method::POST, ["v1", "production", "deploy"]) => {
            let body: DeployRequest = match body_json(req, true).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let i = inner.clone();
            let deploy = async move {
                i.deploy_production(&body.sha, body.settings.as_ref(), body.meta, body.previewed)
                    .await
            };
            match detached(deploy).await {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::POST, ["v1", "production", "rollback"]) => {
            let body: RollbackRequest = match body_json(req, false).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let i = inner.clone();
            let rollback = async move {
                i.rollback(body.to_sha.as_deref(), body.settings.as_ref(), body.meta)
                    .await
            };
            match detached(rollback).await {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::PUT, ["v1", "previews", key]) => {
            let key = key.to_string();
            let body: DeployRequest = match body_json(req, true).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let i = inner.clone();
            let deploy = async move {
                i.deploy_preview(&key, &body.sha, body.settings.as_ref(), body.meta)
                    .await
            };
            match detached(deploy).await {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::GET, ["v1", "previews", key]) => {
            let st = inner.status();
            match st.previews.into_iter().find(|p| p.key == *key) {
                Some(p) => json(StatusCode::OK, &p),
                None => error(&PlatformError::NotFound(format!(
                    "there is no preview `{key}`"
                ))),
            }
        }
        (Method::DELETE, ["v1", "previews", key]) => {
            let key = key.to_string();
            let i = inner.clone();
            match detached(async move { i.remove_preview(&key).await }).await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({"removed": true})),
                Err(e) => error(&e),
            }
        }
        (Method::POST, ["v1", "canary"]) => {
            let body: CanaryRequest = match body_json(req, true).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let i = inner.clone();
            let start = async move {
                i.canary_start(
                    &body.sha,
                    body.weight,
                    body.settings.as_ref(),
                    body.meta,
                    body.previewed,
                )
                .await
            };
            match detached(start).await {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::POST, ["v1", "canary", "weight"]) => {
            let body: CanaryWeight = match body_json(req, true).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            match inner.canary_weight(body.weight) {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::POST, ["v1", "canary", "promote"]) => {
            let body: PromoteRequest = match body_json(req, false).await {
                Ok(b) => b,
                Err(e) => return error(&e),
            };
            let i = inner.clone();
            match detached(async move { i.canary_promote(body.meta).await }).await {
                Ok(o) => json(StatusCode::OK, &o),
                Err(e) => error(&e),
            }
        }
        (Method::POST, ["v1", "canary", "abort"]) => json(StatusCode::OK, &inner.canary_abort()),
        (Method::POST, ["v1", "shutdown"]) => {
            inner.shutting_down.store(true, Ordering::SeqCst);
            let _ = inner.shutdown_tx.send(true);
            json(StatusCode::ACCEPTED, &serde_json::json!({"stopping": true}))
        }
        (m, _) => error(&PlatformError::NotFound(format!(
            "no such endpoint: {m} {path}"
        ))),
    }
}
