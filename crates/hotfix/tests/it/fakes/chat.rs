//! Slack's Web API and Statuspage's REST API, as documented, recording
//! every call (for assertions on the wire).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use hotfix_testkit::fake::{FakeServer, Reply};
use serde_json::json;

pub const SLACK_TOKEN: &str = "xoxb-test-token";
pub const STATUSPAGE_KEY: &str = "sp-test-key";

pub fn slack() -> FakeServer {
    FakeServer::start(slack_handler())
}

pub fn slack_handler() -> impl Fn(&hotfix_testkit::fake::Recorded) -> Reply + Send + Sync + 'static
{
    let ts = AtomicU64::new(100);
    move |r| {
        if r.header("authorization") != Some(&format!("Bearer {SLACK_TOKEN}")) {
            return Reply::json(200, json!({"ok": false, "error": "invalid_auth"}));
        }
        let n = ts.fetch_add(1, Ordering::Relaxed);
        match r.route() {
            "/api/chat.postMessage" => Reply::json(
                200,
                json!({"ok": true, "channel": "C0DEVALERTS", "ts": format!("1700000000.000{n}"), "message": {"text": r.json()["text"]}}),
            ),
            "/api/chat.update" => Reply::json(
                200,
                json!({"ok": true, "channel": "C0DEVALERTS", "ts": r.json()["ts"], "text": r.json()["text"]}),
            ),
            _ => Reply::json(404, json!({"ok": false, "error": "unknown_method"})),
        }
    }
}

pub fn statuspage() -> FakeServer {
    FakeServer::start(statuspage_handler())
}

pub fn statuspage_handler()
-> impl Fn(&hotfix_testkit::fake::Recorded) -> Reply + Send + Sync + 'static {
    move |r| {
        if r.header("authorization") != Some(&format!("OAuth {STATUSPAGE_KEY}")) {
            return Reply::json(401, json!({"error": "Could not authenticate"}));
        }
        let body = r.json();
        let inc = &body["incident"];
        match (r.method.as_str(), r.route()) {
            ("POST", "/v1/pages/page1/incidents") => Reply::json(
                201,
                json!({"id": "inc42", "name": inc["name"], "status": inc["status"], "page_id": "page1",
                    "components": [{"id": "comp1", "status": inc["components"]["comp1"]}]}),
            ),
            ("PATCH", "/v1/pages/page1/incidents/inc42") => Reply::json(
                200,
                json!({"id": "inc42", "status": inc["status"], "page_id": "page1",
                    "components": [{"id": "comp1", "status": inc["components"]["comp1"]}]}),
            ),
            _ => Reply::json(404, json!({"error": "Not found"})),
        }
    }
}
