//! The reverse proxy on the stable production port.
//!
//! The target is an `Arc<Upstream>` behind a `RwLock`, read once per request:
//! switching production is one pointer swap, so every request goes wholly to
//! the old or wholly to the new release. Each request keeps its `Arc` until
//! its response body has been sent, so the reference count of an upstream *is*
//! its number of requests in flight — which is how a release is drained before
//! it is stopped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;
pub(crate) type HttpClient = Client<HttpConnector, ProxyBody>;

/// Where production traffic goes right now.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `None`: nothing to send traffic to; answer 503 with `note`.
    pub port: Option<u16>,
    pub release: String,
    pub note: String,
}

pub(crate) struct Proxy {
    current: RwLock<Arc<Upstream>>,
    client: HttpClient,
}

pub(crate) fn http_client() -> HttpClient {
    let mut conn = HttpConnector::new();
    conn.set_nodelay(true);
    conn.set_connect_timeout(Some(Duration::from_secs(2)));
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(conn)
}

pub(crate) fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|n: Infallible| match n {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

impl Proxy {
    pub fn new(client: HttpClient, initial: Upstream) -> Proxy {
        Proxy {
            current: RwLock::new(Arc::new(initial)),
            client,
        }
    }

    pub fn current(&self) -> Arc<Upstream> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Atomically points production at `next`; returns the upstream it replaced.
    pub fn switch(&self, next: Upstream) -> Arc<Upstream> {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut g) => std::mem::replace(&mut *g, next),
            Err(p) => std::mem::replace(&mut *p.into_inner(), next),
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let (parts, body) = req.into_parts();
        // Only bodiless requests can be replayed if the upstream refuses the
        // connection (it may be crashing; a retry sees the newest upstream).
        let replayable = body.is_end_stream();
        let mut body = Some(body.boxed());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let up = self.current();
            let Some(port) = up.port else {
                return full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("hotfix platform: {}\n", up.note),
                );
            };
            let b = match body.take() {
                Some(b) => b,
                None => Full::new(Bytes::new())
                    .map_err(|n: Infallible| match n {})
                    .boxed(),
            };
            let out = build_upstream_request(&parts, b, port, peer);
            match self.client.request(out).await {
                Ok(resp) => {
                    let (mut rparts, rbody) = resp.into_parts();
                    strip_hop_headers(&mut rparts.headers);
                    // The closure owns `up` until the body is done or dropped.
                    let guard = up;
                    let rbody = rbody.map_frame(move |f| {
                        let _in_flight = &guard;
                        f
                    });
                    return Response::from_parts(rparts, rbody.boxed());
                }
                Err(e) if e.is_connect() && replayable && attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => {
                    return full(
                        StatusCode::BAD_GATEWAY,
                        format!(
                            "hotfix platform: production release {} on port {port} did not answer: {e}; see `hotfix platform status`\n",
                            up.release
                        ),
                    );
                }
            }
        }
    }
}

fn build_upstream_request(
    parts: &hyper::http::request::Parts,
    body: ProxyBody,
    port: u16,
    peer: SocketAddr,
) -> Request<ProxyBody> {
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut req = Request::new(body);
    *req.method_mut() = parts.method.clone();
    *req.uri_mut() = match format!("http://127.0.0.1:{port}{pq}").parse() {
        Ok(u) => u,
        Err(_) => hyper::Uri::from_static("/"),
    };
    *req.headers_mut() = parts.headers.clone();
    strip_hop_headers(req.headers_mut());
    if let Ok(v) = HeaderValue::from_str(&peer.ip().to_string()) {
        req.headers_mut()
            .append(HeaderName::from_static("x-forwarded-for"), v);
    }
    req
}

fn strip_hop_headers(h: &mut hyper::HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        h.remove(name);
    }
}

/// Accepts connections until `shutdown` flips to true, then lets open
/// connections finish their current request.
pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    listener: TcpListener,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let mut sd = shutdown.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let p = proxy.clone();
                async move { Ok::<_, Infallible>(p.handle(req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = sd.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}
