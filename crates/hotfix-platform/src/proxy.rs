//! The reverse proxy on the stable production port.
//!
//! The routes (production, and a canary with its weight) are an `Arc` behind
//! a `RwLock`, read once per request: switching production, starting,
//! re-weighting or aborting a canary is one pointer swap, so every request
//! goes wholly to one release. Each request keeps its upstream's `Arc` until
//! its response body has been sent, so the reference count of an upstream
//! *is* its number of requests in flight — which is how a release is
//! drained before it is stopped.
//!
//! Every answer given for a release is counted in that release's
//! [`Counters`] (status, latency until the body is sent, path) once the
//! body is done: that is what `GET /v1/stats` and `GET /metrics` report.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::stats::Counters;

pub(crate) type ProxyBody = BoxBody<Bytes, hyper::Error>;
pub(crate) type HttpClient = Client<HttpConnector, ProxyBody>;

/// The cookie that keeps a client on the canary it was given.
pub(crate) const STICKY_COOKIE: &str = "hotfix_release";
/// The request header that asks for a release by id (tests, load generators).
pub(crate) const STICKY_HEADER: &str = "x-hotfix-release";

/// Where production traffic goes right now.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// `None`: nothing to send traffic to; answer 503 with `note`.
    pub port: Option<u16>,
    /// For messages: `r3-abc1234 (abc1234567)`.
    pub release: String,
    pub note: String,
    /// The release id (`r3-abc1234`), which sticky clients name; empty if none.
    pub id: String,
    /// Where its answers are counted (none: nothing to count).
    pub stats: Option<Arc<Counters>>,
}

/// The canary route: a second upstream and the share of requests it gets.
#[derive(Debug)]
pub(crate) struct CanaryRoute {
    pub up: Arc<Upstream>,
    /// Share of requests in basis points (0-10000).
    pub weight_bp: u32,
}

#[derive(Debug)]
struct Routes {
    production: Arc<Upstream>,
    canary: Option<CanaryRoute>,
}

pub(crate) struct Proxy {
    routes: RwLock<Arc<Routes>>,
    /// Requests that were routed by weight: the deterministic spread
    /// `floor((n+1)·w) > floor(n·w)` sends exactly `w` of every 10000 of
    /// them to the canary, so a 10% step means 10%, not 10% on average.
    spread: AtomicU64,
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
            routes: RwLock::new(Arc::new(Routes {
                production: Arc::new(initial),
                canary: None,
            })),
            spread: AtomicU64::new(0),
            client,
        }
    }

    fn routes(&self) -> Arc<Routes> {
        match self.routes.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn update<T>(&self, f: impl FnOnce(&Routes) -> (Routes, T)) -> T {
        let mut g = match self.routes.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let (next, out) = f(&g);
        *g = Arc::new(next);
        out
    }

    /// Atomically points production at `next`; returns the upstream it
    /// replaced. A canary route stays as it is.
    pub fn switch(&self, next: Upstream) -> Arc<Upstream> {
        let next = Arc::new(next);
        self.update(|r| {
            (
                Routes {
                    production: next,
                    canary: r.canary.as_ref().map(|c| CanaryRoute {
                        up: c.up.clone(),
                        weight_bp: c.weight_bp,
                    }),
                },
                r.production.clone(),
            )
        })
    }

    /// Routes `weight_bp` of the requests to `up` (a new canary upstream, or
    /// `None`: the one routed now with a new weight). Returns the canary
    /// upstream it replaced, if it is another one.
    pub fn set_canary(&self, up: Option<Upstream>, weight_bp: u32) -> Option<Arc<Upstream>> {
        let weight_bp = weight_bp.min(10_000);
        self.update(|r| {
            let (up, old) = match (up, &r.canary) {
                (Some(u), old) => (Some(Arc::new(u)), old.as_ref().map(|c| c.up.clone())),
                (None, Some(c)) => (Some(c.up.clone()), None),
                (None, None) => (None, None),
            };
            (
                Routes {
                    production: r.production.clone(),
                    canary: up.map(|up| CanaryRoute { up, weight_bp }),
                },
                old,
            )
        })
    }

    /// Stops routing to the canary at once; returns its upstream (to drain).
    pub fn clear_canary(&self) -> Option<Arc<Upstream>> {
        self.update(|r| {
            (
                Routes {
                    production: r.production.clone(),
                    canary: None,
                },
                r.canary.as_ref().map(|c| c.up.clone()),
            )
        })
    }

    /// The canary becomes production (same upstream: its requests in flight
    /// and sticky clients carry on); returns the production it replaced.
    pub fn promote_canary(&self) -> Option<Arc<Upstream>> {
        self.update(|r| match &r.canary {
            Some(c) => (
                Routes {
                    production: c.up.clone(),
                    canary: None,
                },
                Some(r.production.clone()),
            ),
            None => (
                Routes {
                    production: r.production.clone(),
                    canary: None,
                },
                None,
            ),
        })
    }

    /// The upstream of one request, and whether it is the canary.
    fn pick(&self, headers: &hyper::HeaderMap) -> (Arc<Upstream>, bool) {
        let r = self.routes();
        let Some(c) = &r.canary else {
            return (r.production.clone(), false);
        };
        if let Some(want) = sticky(headers) {
            if want == c.up.id {
                return (c.up.clone(), true);
            }
            if want == r.production.id {
                return (r.production.clone(), false);
            }
        }
        let n = self.spread.fetch_add(1, Ordering::Relaxed);
        if to_canary(n, c.weight_bp.into()) {
            (c.up.clone(), true)
        } else {
            (r.production.clone(), false)
        }
    }

    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let t0 = Instant::now();
        let (parts, body) = req.into_parts();
        // Only bodiless requests can be replayed if the upstream refuses the
        // connection (it may be crashing; a retry sees the newest upstream).
        let replayable = body.is_end_stream();
        let mut body = Some(body.boxed());
        let mut attempt = 0;
        let (first, mut is_canary) = self.pick(&parts.headers);
        let mut up = first;
        loop {
            attempt += 1;
            let Some(port) = up.port else {
                let r = full(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("hotfix platform: {}\n", up.note),
                );
                count(&up, parts.uri.path(), 503, t0);
                return r;
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
                    if is_canary
                        && let Ok(v) = HeaderValue::from_str(&format!(
                            "{STICKY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
                            up.id
                        ))
                    {
                        rparts.headers.append(hyper::header::SET_COOKIE, v);
                    }
                    // The closure owns the guard (and with it `up`) until the
                    // body is done or dropped: then the answer is counted.
                    let guard = Answered {
                        up,
                        path: parts.uri.path().to_string(),
                        status: rparts.status.as_u16(),
                        t0,
                    };
                    let rbody = rbody.map_frame(move |f| {
                        let _in_flight = &guard;
                        f
                    });
                    return Response::from_parts(rparts, rbody.boxed());
                }
                Err(e) if e.is_connect() && replayable && attempt < 3 => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    // The newest routes: a crashed canary is unrouted at once.
                    (up, is_canary) = self.pick(&parts.headers);
                    continue;
                }
                Err(e) => {
                    count(&up, parts.uri.path(), 502, t0);
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

fn count(up: &Upstream, path: &str, status: u16, t0: Instant) {
    if let Some(s) = &up.stats {
        s.record(path, status, t0.elapsed());
    }
}

/// Counts an answer when its body has been sent (or the client went away).
struct Answered {
    up: Arc<Upstream>,
    path: String,
    status: u16,
    t0: Instant,
}

impl Drop for Answered {
    fn drop(&mut self) {
        count(&self.up, &self.path, self.status, self.t0);
    }
}

/// The release id a request asks for: header `X-Hotfix-Release`, else the
/// `hotfix_release` cookie.
fn sticky(headers: &hyper::HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(STICKY_HEADER).and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    // As browsers send them (RFC 6265, the `cookie` crate, as the team
    // server's dashboard reads its own): several headers, spaces around
    // `=`, a quoted value, another app's broken cookie beside ours.
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == STICKY_COOKIE)
        .map(|c| c.value_trimmed().to_string())
}

#[cfg(test)]
mod sticky_tests {
    use super::*;

    fn with(cookies: &[&str]) -> hyper::HeaderMap {
        let mut h = hyper::HeaderMap::new();
        for c in cookies {
            h.append(
                hyper::header::COOKIE,
                hyper::header::HeaderValue::from_str(c).expect("header"),
            );
        }
        h
    }

    #[test]
    fn the_sticky_cookie_is_read_as_browsers_send_it() {
        let name = STICKY_COOKIE;
        assert_eq!(
            sticky(&with(&[&format!("{name}=r3-abc")])).as_deref(),
            Some("r3-abc")
        );
        assert_eq!(
            sticky(&with(&[&format!("a=1; {name}=\"r3-abc\"")])).as_deref(),
            Some("r3-abc"),
            "quoted"
        );
        assert_eq!(
            sticky(&with(&["broken", &format!("x=y; {name} = r4-def")])).as_deref(),
            Some("r4-def"),
            "another header, spaces around ="
        );
        assert_eq!(sticky(&with(&["other=1"])), None);
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

/// Whether request number `n` goes to a canary that takes `weight_bp`
/// basis points (1/100 %) of the traffic.
///
/// Exactly `weight_bp` of every 10,000 requests go to it, but not evenly
/// spaced: the request number is scrambled by a multiplication that
/// permutes each block of 10,000 (7919 is prime to 10,000). An evenly
/// spaced split (every 10th request at 10 %) lines up with periodic
/// clients (a monitor or batch job walking 10 routes round-robin would send
/// the canary one route only, and a route it breaks would go unseen).
fn to_canary(n: u64, weight_bp: u64) -> bool {
    (n % 10_000) * 7_919 % 10_000 < weight_bp
}

#[cfg(test)]
mod canary_split_tests {
    use super::to_canary;

    #[test]
    fn the_share_is_exact_and_periodic_clients_reach_the_canary_on_every_route() {
        for w in [0u64, 1, 1_000, 2_500, 5_000, 10_000] {
            let got = (0..10_000u64).filter(|&n| to_canary(n, w)).count() as u64;
            assert_eq!(got, w, "weight {w}");
        }
        // A client walking 10 routes in turn: each route sends its share.
        let mut per_route = [0u32; 10];
        for n in 0..10_000u64 {
            if to_canary(n, 1_000) {
                per_route[(n % 10) as usize] += 1;
            }
        }
        assert!(per_route.iter().all(|&c| c == 100), "{per_route:?}");
        // And short windows stay close to the share.
        let first_500 = (0..500u64).filter(|&n| to_canary(n, 1_000)).count();
        assert!((45..=55).contains(&first_500), "{first_500}");
    }
}
