//! `GET /api/openapi.json` is true to the server: it is OpenAPI 3.1 whose
//! references all resolve, every operation it documents is routed (a real
//! request to a running server is neither the router's 404 nor a 405) and
//! answers with a status it documents, and every `/api/` route in the
//! source is documented, so a new route without documentation fails here.
//! The document is generated (`hotfix_server::openapi`, utoipa): it is the
//! same every time, and its operations are the ones snapshotted below.

#![allow(clippy::unwrap_used)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use hotfix_core::team::ApiRole;
use serde_json::{Value, json};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

/// Routes outside `/api/` the document must describe as well.
const ALSO_DOCUMENTED: [&str; 3] = ["/healthz", "/metrics", "/status.json"];

fn document(t: &TestServer) -> Value {
    let r = get(&t.url("/api/openapi.json"), None, &[]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.content_type.starts_with("application/json"),
        "{}",
        r.content_type
    );
    r.json()
}

/// `(path, method)` of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut v = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                v.push((path.clone(), m.to_string()));
            }
        }
    }
    v
}

/// Every `"$ref"` in the document, with where it was found.
fn refs<'a>(v: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push((at.to_string(), x.as_str().unwrap()));
                } else {
                    refs(x, &format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                refs(x, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn the_document_is_openapi_3_1_and_its_references_resolve() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let doc = document(&t);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
    assert!(!doc["info"]["title"].as_str().unwrap().is_empty());
    assert!(!doc["info"]["version"].as_str().unwrap().is_empty());
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (&bearer["type"], &bearer["scheme"]),
        (&json!("http"), &json!("bearer"))
    );
    assert_eq!(doc["security"], json!([{"bearer": []}]));

    let mut found = vec![];
    refs(&doc, "#", &mut found);
    assert!(found.len() > 50, "{} refs", found.len());
    for (at, r) in found {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{at}: only local refs: {r}"));
        assert!(doc.pointer(pointer).is_some(), "{at}: {r} does not resolve");
    }

    // Each operation: a unique id, responses, and its path parameters declared.
    let mut ids = BTreeSet::new();
    for (path, m) in operations(&doc) {
        let op = &doc["paths"][&path][&m];
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{m} {path}: no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} twice");
        assert!(
            !op["responses"].as_object().unwrap().is_empty(),
            "{m} {path}"
        );
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .map(|p| p["name"].as_str().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .collect();
        assert_eq!(declared, in_template, "{m} {path}: path parameters");
    }

    // The error body every route returns.
    let e = &doc["components"]["schemas"]["Error"]["properties"]["error"];
    for f in ["code", "message", "hint"] {
        assert!(e["properties"].get(f).is_some(), "Error.error.{f}");
    }
}

/// The event types of `hotfix-core`, read from `EventKind::name` in its source.
fn core_event_types() -> BTreeSet<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../hotfix-core/src/event.rs");
    let text = std::fs::read_to_string(&src).unwrap();
    let body = text
        .split("pub fn name(&self) -> &'static str {")
        .nth(1)
        .expect("EventKind::name in event.rs");
    let body = &body[..body.find("\n    }\n").unwrap()];
    body.lines()
        .filter(|l| l.contains("EventKind::") && l.contains("=> \""))
        .map(|l| l.split('"').nth(1).unwrap().to_string())
        .collect()
}

/// The generated document, parsed.
fn generated() -> Value {
    serde_json::from_str(hotfix_server::openapi::json()).unwrap()
}

#[test]
fn every_event_type_of_the_log_is_documented() {
    let doc = generated();
    let core = core_event_types();
    assert!(core.len() >= 20 && core.contains("approved"), "{core:?}");
    let kind = &doc["components"]["schemas"]["EventKind"];
    // One variant per type, each an object whose `type` is that one name.
    let mut documented = BTreeSet::new();
    for v in kind["oneOf"].as_array().unwrap() {
        assert_eq!(v["type"], "object", "{v}");
        let tag = v["properties"]["type"]["enum"].as_array().unwrap();
        assert_eq!(tag.len(), 1, "{v}");
        assert!(
            v["required"].as_array().unwrap().contains(&json!("type")),
            "{v}"
        );
        assert!(documented.insert(tag[0].as_str().unwrap().to_string()));
    }
    assert_eq!(documented, core, "EventKind's types vs hotfix-core's");
    // The stored event is the stamp and the kind (`#[serde(flatten)]`).
    let event = serde_json::to_string(&doc["components"]["schemas"]["Event"]).unwrap();
    assert!(event.contains("#/components/schemas/EventKind"), "{event}");
}

/// The document is derived, not read from a file: the same bytes every
/// time it is built, OpenAPI 3.1, and served exactly as built.
#[test]
fn the_generated_document_is_openapi_3_1_and_stable() {
    let once = hotfix_server::openapi::openapi().to_pretty_json().unwrap();
    let twice = hotfix_server::openapi::openapi().to_pretty_json().unwrap();
    assert_eq!(once, twice);
    assert_eq!(once, hotfix_server::openapi::json());
    let doc = generated();
    assert_eq!(doc["openapi"], "3.1.0");
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let r = get(&t.url("/api/openapi.json"), None, &[]);
    assert_eq!(r.text, hotfix_server::openapi::json());
}

/// Every operation, by method, path and operationId: a route added,
/// removed or renamed shows up here (update the list with it).
#[test]
fn the_operations_are_the_documented_ones() {
    let doc = generated();
    let got: Vec<String> = operations(&doc)
        .into_iter()
        .map(|(p, m)| {
            format!(
                "{} {p} {}",
                m.to_uppercase(),
                doc["paths"][&p][&m]["operationId"].as_str().unwrap()
            )
        })
        .collect();
    let want = [
        "GET /api/openapi.json openapi",
        "POST /api/v1/alerts/{source} receiveAlert",
        "GET /api/v1/inbox inbox",
        "GET /api/v1/incidents listIncidents",
        "POST /api/v1/incidents declareIncident",
        "GET /api/v1/incidents/{id} getIncident",
        "POST /api/v1/incidents/{id}/approve approve",
        "POST /api/v1/incidents/{id}/checklist tickChecklist",
        "POST /api/v1/incidents/{id}/close closeIncident",
        "GET /api/v1/incidents/{id}/events getEvents",
        "POST /api/v1/incidents/{id}/events appendEvents",
        "POST /api/v1/incidents/{id}/notes addNote",
        "POST /api/v1/incidents/{id}/triage triage",
        "POST /api/v1/incidents/{id}/withdraw withdraw",
        "GET /api/v1/me me",
        "GET /api/v1/outbox outbox",
        "POST /api/v1/slack/commands slackCommand",
        "GET /api/v1/stats stats",
        "GET /api/v1/tokens listTokens",
        "POST /api/v1/tokens createToken",
        "DELETE /api/v1/tokens/{id} revokeToken",
        "POST /api/v1/webhooks/github githubWebhook",
        "GET /healthz healthz",
        "GET /metrics metrics",
        "GET /status.json publicStatus",
    ];
    assert_eq!(got, want, "\n{}", got.join("\n"));
}

/// The public routes say so (no security requirement); the rest need a
/// token or a sender's signature.
#[test]
fn public_routes_need_no_token_and_the_rest_do() {
    let doc = generated();
    let public = ["/api/openapi.json", "/healthz", "/metrics", "/status.json"];
    for (path, m) in operations(&doc) {
        let op = &doc["paths"][&path][&m];
        if public.contains(&path.as_str()) {
            let sec = op["security"].as_array().unwrap();
            assert!(
                sec.iter().all(|r| r.as_object().unwrap().is_empty()),
                "{m} {path}: {sec:?}"
            );
        } else if let Some(sec) = op.get("security") {
            assert!(
                sec.as_array()
                    .unwrap()
                    .iter()
                    .all(|r| !r.as_object().unwrap().is_empty()),
                "{m} {path}: {sec}"
            );
        }
    }
}

/// A request to every documented operation, with placeholders for the path
/// parameters and a minimal body.
fn call(t: &TestServer, token: &str, path: &str, method: &str, op: &Value) -> Resp {
    let url = t.url(
        &path
            .replace(
                "{id}",
                if path.starts_with("/api/v1/tokens") {
                    "999"
                } else {
                    "HF-1"
                },
            )
            .replace("{source}", "generic"),
    );
    let form = op["requestBody"]["content"]
        .get("application/x-www-form-urlencoded")
        .is_some();
    match method {
        "get" => get(&url, Some(token), &[]),
        "delete" => delete(&url, Some(token)),
        "post" if form => post(
            &url,
            Some(token),
            &[("Content-Type", "application/x-www-form-urlencoded")],
            b"",
        ),
        "post" => post_json(&url, Some(token), &json!({})),
        other => panic!("no request for {other}"),
    }
}

/// The router's own 404 has no body; a handler's 404 is an `Error`.
fn routed(r: &Resp) -> bool {
    r.status != 405
        && !(r.status == 404
            && serde_json::from_str::<Value>(&r.text)
                .map(|v| v.get("error").is_none())
                .unwrap_or(true))
}

#[test]
fn every_documented_operation_is_routed_and_answers_a_documented_status() {
    let t = TestServer::with(Options {
        workers: false,
        ..Options::default()
    });
    let admin = t.token("admin@example.com", ApiRole::Admin);
    let r = post_json(
        &t.url("/api/v1/incidents"),
        Some(&admin),
        &json!({"name": "pdf-crash", "severity": "critical", "base_sha": "a".repeat(40)}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let doc = document(&t);
    let ops = operations(&doc);
    assert!(ops.len() >= 20, "{ops:?}");
    let mut failures = vec![];
    for (path, m) in &ops {
        let op = &doc["paths"][path][m];
        let r = call(&t, &admin, path, m, op);
        if !routed(&r) {
            failures.push(format!(
                "{} {path}: not routed ({})",
                m.to_uppercase(),
                r.status
            ));
            continue;
        }
        if op["responses"].get(r.status.to_string()).is_none() {
            failures.push(format!(
                "{} {path}: answered {} which is not documented ({})",
                m.to_uppercase(),
                r.status,
                r.text.chars().take(200).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));

    // The check can tell: an undocumented method and an unknown path are not routed.
    assert!(!routed(&delete(&t.url("/api/v1/me"), Some(&admin))));
    assert!(!routed(&get(
        &t.url("/api/v1/nothing-here"),
        Some(&admin),
        &[]
    )));
}

/// `(path, methods)` of every `.route("...", ...)` in the server's source.
fn source_routes() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = vec![];
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(
            !text.contains(".nest(\"/api"),
            "{}: nested /api routers are invisible to this test; use .route(\"/api/...\")",
            f.display()
        );
        for (i, _) in text.match_indices(".route(") {
            let rest = text[i + ".route(".len()..].trim_start();
            let Some(lit) = rest.strip_prefix('"') else {
                panic!(
                    "{}: a .route( without a literal path; write the path literally so that this test sees it",
                    f.display()
                );
            };
            let path = &lit[..lit.find('"').unwrap()];
            // The handlers: up to the `)` that closes `.route(`.
            let after = &lit[path.len() + 1..];
            let mut depth = 1;
            let mut end = after.len();
            for (j, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let call = &after[..end];
            let methods = routes.entry(path.to_string()).or_default();
            for m in METHODS {
                for (k, _) in call.match_indices(&format!("{m}(")) {
                    let before = call[..k].chars().next_back();
                    if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                        methods.insert(m.to_string());
                    }
                }
            }
        }
    }
    routes
}

#[test]
fn every_api_route_in_the_source_is_documented() {
    let doc = generated();
    let routes = source_routes();
    // The scanner sees what it must (one-line and multi-line routes).
    assert_eq!(
        routes.get("/api/v1/incidents"),
        Some(&BTreeSet::from(["get".to_string(), "post".to_string()]))
    );
    assert!(routes.contains_key("/api/openapi.json"));
    let mut missing = vec![];
    for (path, methods) in &routes {
        let wanted = path.starts_with("/api/") || ALSO_DOCUMENTED.contains(&path.as_str());
        if !wanted {
            continue;
        }
        if methods.is_empty() {
            missing.push(format!("{path}: no method found in its .route(...)"));
        }
        for m in methods {
            if doc["paths"][path].get(m).is_none() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    for p in ALSO_DOCUMENTED {
        if doc["paths"].get(p).is_none() {
            missing.push(format!("{p} (not in the document)"));
        }
        if !routes.contains_key(p) {
            missing.push(format!("{p} (no route in the source)"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes without a #[utoipa::path] in src/openapi.rs's list:\n{}",
        missing.join("\n")
    );
}
