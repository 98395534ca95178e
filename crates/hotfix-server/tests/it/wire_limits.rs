//! The server under hostile or broken clients, over real sockets on
//! 127.0.0.1: bodies over a route's limit are a JSON 413 on every route
//! (with or without `Content-Length`), and connections that send nothing,
//! half a request or go quiet are closed by the header-read and idle
//! timeouts, within a cap on connections, without cutting a long response
//! (the dashboard's event stream) or holding up a shutdown.
//!
//! Timeouts are set to a second or two so the file stays quick.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::{Value, json};

// ------------------------------------------------------------ raw HTTP

/// What came back on a raw socket.
struct Raw {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                self.head,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn connect(t: &TestServer) -> TcpStream {
    let addr: SocketAddr = t.base.trim_start_matches("http://").parse().unwrap();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one response with a `Content-Length` body.
fn read_response(s: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed before a whole head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(_) => buf.push(byte[0]),
            Err(e) => panic!(
                "reading the head: {e} after {:?}",
                String::from_utf8_lossy(&buf)
            ),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Raw { status, head, body }
}

/// Sends `head` and then, from another thread, `body` (write errors are
/// expected: the server answers and closes before reading all of it), and
/// reads the response.
fn send(t: &TestServer, head: &str, body: Vec<u8>) -> Raw {
    let mut s = connect(t);
    s.write_all(head.as_bytes()).unwrap();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        for chunk in body.chunks(64 * 1024) {
            if w.write_all(chunk).is_err() {
                return;
            }
        }
    });
    let r = read_response(&mut s);
    drop(s);
    writer.join().unwrap();
    r
}

/// `body` as one chunked stream of 64 KB chunks (no `Content-Length`).
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 1000 + 16);
    for c in body.chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

const MB: usize = 1024 * 1024;

fn assert_413(r: &Raw, limit_kb: usize) {
    assert_eq!(
        r.status,
        413,
        "{}{}",
        r.head,
        String::from_utf8_lossy(&r.body)
    );
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        r.head
    );
    let v = r.json();
    assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(
        m.contains(&format!("{limit_kb} KB")),
        "the limit is said: {m}"
    );
}

// ------------------------------------------------- bodies over the limit

#[test]
fn an_api_body_over_the_limit_is_a_json_413_with_or_without_content_length() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let dev = t.token(DEV, ApiRole::Developer);
    let big = serde_json::to_vec(&json!({
        "name": "big", "severity": "critical", "title": "x".repeat(3 * MB)
    }))
    .unwrap();

    let r = send(
        &t,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            big.len()
        ),
        big.clone(),
    );
    assert_413(&r, 2048);

    let r = send(
        &t,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        chunked(&big),
    );
    assert_413(&r, 2048);

    // A route that reads no body refuses a declared one over the limit too.
    let r = send(
        &t,
        &format!(
            "POST /api/v1/incidents/HF-1/approve HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\nContent-Length: {}\r\n\r\n",
            3 * MB
        ),
        vec![],
    );
    assert_413(&r, 2048);

    // Nothing was declared; a body under the limit still works, chunked too.
    let small = serde_json::to_vec(&json!({"name": "small", "severity": "high"})).unwrap();
    let r = send(
        &t,
        &format!(
            "POST /api/v1/incidents HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ),
        chunked(&small),
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
    let list = get(&t.url("/api/v1/incidents?state=all"), Some(&dev), &[]).json();
    assert_eq!(list["total"], 1, "only the small one: {list}");
}

#[test]
fn every_route_answers_a_declared_body_over_its_limit_with_the_json_413() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let dev = t.token(DEV, ApiRole::Developer);
    let doc: Value = serde_json::from_str(hotfix_server::openapi::json()).unwrap();
    let mut routes: Vec<(String, String)> = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "delete", "patch"] {
            if item.get(m).is_some() {
                routes.push((m.to_uppercase(), path.clone()));
            }
        }
    }
    assert!(routes.len() >= 20, "{routes:?}");
    // The dashboard's pages and forms are not in the API document.
    for (m, p) in [
        ("GET", "/"),
        ("GET", "/incidents/{id}"),
        ("POST", "/incidents/{id}/actions/{action}"),
        ("POST", "/login"),
        ("POST", "/logout"),
        ("GET", "/status"),
    ] {
        routes.push((m.into(), p.into()));
    }
    let mut wrong = vec![];
    for (m, p) in &routes {
        let path = p
            .replace(
                "{id}",
                if p.starts_with("/api/v1/tokens") {
                    "1"
                } else {
                    "HF-1"
                },
            )
            .replace("{source}", "generic")
            .replace("{action}", "note");
        // Past every route's limit; only the alert route reads any of it
        // (it checks the sender first and answers its own 413).
        let declared = 25 * MB + 1;
        let body = if p.starts_with("/api/v1/alerts/") {
            vec![b' '; 600 * 1024]
        } else {
            vec![]
        };
        let r = send(
            &t,
            &format!(
                "{m} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            ),
            body,
        );
        let code = serde_json::from_slice::<Value>(&r.body)
            .map(|v| v["error"]["code"].clone())
            .unwrap_or(Value::Null);
        if r.status != 413 || code != "payload_too_large" {
            wrong.push(format!("{m} {path}: {} {code}", r.status));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn the_dashboard_forms_answer_an_oversized_body_with_the_same_413() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let form = format!("token={}", "a".repeat(3 * MB)).into_bytes();
    let r = send(
        &t,
        "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked(&form),
    );
    assert_413(&r, 2048);
    let r = send(
        &t,
        &format!(
            "POST /login HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            form.len()
        ),
        form,
    );
    assert_413(&r, 2048);

    // An action form, signed in with the session cookie.
    let dev = t.token(DEV, ApiRole::Developer);
    let id = declare(
        &t,
        &dev,
        json!({"name": "pdf-crash", "severity": "critical"}),
    );
    let note = format!("text={}", "n".repeat(3 * MB)).into_bytes();
    let r = send(
        &t,
        &format!(
            "POST /incidents/{id}/actions/note HTTP/1.1\r\nHost: t\r\nCookie: hotfix_session={dev}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        chunked(&note),
    );
    assert_413(&r, 2048);
    let events = events_of(&t, &dev, &id);
    assert!(
        events.iter().all(|e| e["type"] != "note"),
        "nothing recorded: {events:?}"
    );
}

#[test]
fn github_slack_and_alert_intake_answer_the_same_json_413() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    // Declared sizes: answered before any of the body is sent.
    let r = send(
        &t,
        &format!(
            "POST /api/v1/webhooks/github HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: {}\r\n\r\n",
            25 * MB + 1
        ),
        vec![],
    );
    assert_413(&r, 25 * 1024);
    let r = send(
        &t,
        &format!(
            "POST /api/v1/slack/commands HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
            2 * MB + 1
        ),
        vec![],
    );
    assert_413(&r, 2048);
    let r = send(
        &t,
        "POST /api/v1/slack/commands HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n",
        chunked(&vec![b'a'; 3 * MB]),
    );
    assert_413(&r, 2048);

    // The alert route answers its own 413 (after checking the sender) and
    // counts it, chunked as well.
    let tok = t.token(DEV, ApiRole::Developer);
    let big = serde_json::to_vec(&json!({
        "key": "k", "status": "firing", "title": "big",
        "labels": {"pad": "x".repeat(4 * 1024 * 1024 + 1)}
    }))
    .unwrap();
    let r = send(
        &t,
        &format!(
            "POST /api/v1/alerts/generic HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {tok}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        ),
        chunked(&big),
    );
    assert_413(&r, 4096);
    let m = get(&t.url("/metrics"), None, &[]).text;
    assert!(
        m.contains("hotfix_rejected_total{source=\"generic\",reason=\"too_large\"} 1"),
        "{m}"
    );
}

// ------------------------------------------------- connection limits

/// A server whose `[server]` connection limits are `limits` (TOML lines).
fn limited(limits: &str) -> TestServer {
    TestServer::with(Options {
        config: format!("[server]\n{limits}\n{}", base_config()),
        workers: false,
        ..Options::default()
    })
}

/// Reads until the server closes the socket; returns what it had sent and
/// how long that took from `since`. Panics if it stays open past `within`.
fn until_closed(s: &mut TcpStream, since: Instant, within: Duration) -> (Vec<u8>, Duration) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, since.elapsed()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, since.elapsed()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => panic!(
                "still open after {:?} (sent {:?})",
                since.elapsed(),
                String::from_utf8_lossy(&got)
            ),
            Err(e) => panic!("{e}"),
        }
    }
}

const HEALTH: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

#[test]
fn a_socket_that_sends_nothing_or_half_a_head_is_closed_after_the_header_timeout() {
    let t = limited("header_read_timeout_s = 1\nidle_timeout_s = 30");
    let start = Instant::now();
    let mut silent = connect(&t);
    let mut half = connect(&t);
    half.write_all(b"GET /healthz HTT").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Trickling more of the head does not buy more time.
    half.write_all(b"P/1.1\r\nHost: t\r\n").unwrap();

    let (got, took) = until_closed(&mut silent, start, Duration::from_secs(5));
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
    let (got, took) = until_closed(&mut half, start, Duration::from_secs(5));
    assert!(got.is_empty(), "no answer to half a head: {got:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // The server itself is fine.
    assert_eq!(get(&t.url("/healthz"), None, &[]).status, 200);
}

#[test]
fn a_kept_alive_connection_may_idle_longer_than_the_header_timeout_until_the_idle_timeout() {
    let t = limited("header_read_timeout_s = 1\nidle_timeout_s = 3");
    let mut s = connect(&t);
    s.write_all(HEALTH).unwrap();
    assert_eq!(read_response(&mut s).status, 200);
    // Longer than the header timeout, shorter than the idle one: kept.
    std::thread::sleep(Duration::from_millis(1500));
    s.write_all(HEALTH).unwrap();
    assert_eq!(read_response(&mut s).status, 200, "kept alive");
    let answered = Instant::now();
    let (got, took) = until_closed(&mut s, answered, Duration::from_secs(8));
    assert!(got.is_empty(), "{got:?}");
    assert!(
        took >= Duration::from_millis(2500) && took < Duration::from_secs(6),
        "closed after the idle timeout (3 s): {took:?}"
    );
}

#[test]
fn idle_sockets_at_the_connection_cap_delay_a_real_request_only_until_they_time_out() {
    let t = limited("header_read_timeout_s = 1\nidle_timeout_s = 30\nmax_connections = 2");
    let start = Instant::now();
    let mut idle: Vec<TcpStream> = (0..2).map(|_| connect(&t)).collect();
    std::thread::sleep(Duration::from_millis(200));
    // The third connection waits in the backlog (the connect succeeds, the
    // server does not read it) until a slot frees up.
    let mut real = connect(&t);
    real.write_all(HEALTH).unwrap();
    let r = read_response(&mut real);
    assert_eq!(r.status, 200);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "answered after {waited:?}: the two idle sockets held both slots until their header timeout"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    for s in &mut idle {
        let (got, _) = until_closed(s, start, Duration::from_secs(5));
        assert!(got.is_empty());
    }
}

/// Reads from the event stream until `n` `event: change` lines came.
fn read_events(s: &mut TcpStream, got: &mut String, n: usize, within: Duration) {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while got.matches("event: change").count() < n {
        assert!(Instant::now() < deadline, "only: {got}");
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => panic!("the stream was closed: {got}"),
            Ok(k) => got.push_str(&String::from_utf8_lossy(&buf[..k])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}: {got}"),
        }
    }
}

#[test]
fn the_dashboard_event_stream_outlives_the_idle_and_header_timeouts() {
    let t = limited("header_read_timeout_s = 1\nidle_timeout_s = 1");
    let dev = t.token(DEV, ApiRole::Developer);
    let mut s = connect(&t);
    s.write_all(
        format!("GET /events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {dev}\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut got = String::new();
    read_events(&mut s, &mut got, 1, Duration::from_secs(5));
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // Quiet for longer than both timeouts: a response is in flight, so it stays.
    std::thread::sleep(Duration::from_millis(2500));
    declare(
        &t,
        &dev,
        json!({"name": "pdf-crash", "severity": "critical"}),
    );
    read_events(&mut s, &mut got, 2, Duration::from_secs(5));
}

#[test]
fn the_connection_limits_are_validated_when_the_config_is_read() {
    for (bad, says) in [
        ("header_read_timeout_s = 0", "header_read_timeout_s"),
        ("idle_timeout_s = 0", "idle_timeout_s"),
        ("max_connections = 0", "max_connections"),
    ] {
        let e = hotfix_core::config::Config::parse(&format!("[server]\n{bad}\n"))
            .expect_err(bad)
            .to_string();
        assert!(e.contains(says) && e.contains("out of range"), "{e}");
    }
}

/// A server of its own (not [`TestServer`]), to stop it by hand.
fn own_server(
    config: &str,
) -> (
    tokio::runtime::Runtime,
    hotfix_server::Running,
    tempfile::TempDir,
) {
    use hotfix_server::{AppState, Secrets, ServerParts, WorkerSettings};
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&Backend::Sqlite, dir.path());
    let st = AppState::new(ServerParts {
        store,
        cfg: hotfix_core::config::Config::parse(config).unwrap(),
        secrets: Secrets::default(),
        notifiers: vec![],
        clock: hotfix_engine::Clock::System,
        data_dir: dir.path().to_path_buf(),
        replica: "wire-test".into(),
        workers: WorkerSettings {
            enabled: false,
            ..WorkerSettings::default()
        },
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let running = rt
        .block_on(hotfix_server::start(st, "127.0.0.1:0"))
        .unwrap();
    (rt, running, dir)
}

#[test]
fn a_shutdown_closes_idle_and_half_sent_connections_at_once_and_finishes() {
    // Timeouts far longer than the test: only the shutdown may close them.
    let (rt, running, _dir) = own_server(&format!(
        "[server]\nheader_read_timeout_s = 60\nidle_timeout_s = 60\n{}",
        base_config()
    ));
    let addr = running.addr;
    let open = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    let mut silent = open();
    let mut half = open();
    half.write_all(b"POST /api/v1/incidents HTTP/1.1\r\nHost:")
        .unwrap();
    let mut kept = open();
    kept.write_all(HEALTH).unwrap();
    assert_eq!(read_response(&mut kept).status, 200);
    std::thread::sleep(Duration::from_millis(200));

    let start = Instant::now();
    running.shutdown.send(true).unwrap();
    let done =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), running.done).await });
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "stopped cleanly: {done:?} after {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    for s in [&mut silent, &mut half, &mut kept] {
        let (got, _) = until_closed(s, start, Duration::from_secs(2));
        assert!(got.is_empty(), "{got:?}");
    }
    assert!(
        TcpStream::connect(addr).is_err(),
        "nobody is accepted after the stop"
    );
}
