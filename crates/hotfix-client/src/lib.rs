//! The CLI's remote mode: a [`Store`] over the team server's JSON API.
//!
//! With `HOTFIX_SERVER` (or `[server] url`) set, every `hotfix` command still
//! does its git work on the developer's machine, but the incident log is the
//! server's: the CLI reads the events from it and sends the events it decided
//! on to it. The server stays the authority: it stamps the events with its
//! clock and the token's identity, re-checks who may append what (an
//! approval needs the approver's own tech lead token), and writes and
//! delivers the notifications itself. So this store ignores the outbox the
//! engine hands it and never claims anything to deliver.
//!
//! The calls are blocking (the CLI is synchronous) with a short timeout, so
//! a server that is down fails the command quickly and clearly instead of
//! hanging; the engine reads before it acts, so nothing local is lost.
//! The token goes only into the `Authorization` header: it is never part of
//! a URL or of an error message.

use std::time::Duration;

use hotfix_core::event::{Event, EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{OutboxItem, Store, StoreError};
use hotfix_core::team::{ApiRole, NAME_IN_USE_CODE};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// The server the CLI talks to (overrides `[server] url`; `off` forces the local log).
pub const SERVER_ENV: &str = hotfix_core::env_vars::HOTFIX_SERVER;
/// The API token the CLI sends in remote mode.
pub const TOKEN_ENV: &str = hotfix_core::env_vars::HOTFIX_TOKEN;

/// How long one request may take, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Why a remote store cannot even be set up (bad usage, exit 2 in the CLI).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error(
        "remote mode (the hotfix server {server}) needs an API token: set {TOKEN_ENV} (an admin creates one with `hotfix serve token create --user YOU --role developer`)"
    )]
    MissingToken { server: String },
    #[error("{TOKEN_ENV} is not a valid token: it contains spaces or control characters")]
    BadToken,
    #[error(
        "`{0}` is not a hotfix server URL: expected http://HOST[:PORT] or https://HOST[:PORT] ({SERVER_ENV} or [server] url)"
    )]
    BadUrl(String),
}

/// Who the token belongs to (`GET /api/v1/me`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Me {
    pub user: String,
    pub role: ApiRole,
}

/// The incident log of a team server, spoken to over HTTP.
pub struct RemoteStore {
    /// `http(s)://host[:port]`, without a trailing slash.
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl std::fmt::Debug for RemoteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteStore")
            .field("base", &self.shown_base())
            .field("token", &"***")
            .finish()
    }
}

/// An answer of the server: status and body text.
struct Reply {
    status: u16,
    body: String,
}

/// The server's error body, `{"error": {"code", "message", "hint"}}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    hint: Option<String>,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn error(&self) -> ErrorBody {
        #[derive(Deserialize)]
        struct Wrap {
            error: ErrorBody,
        }
        match serde_json::from_str::<Wrap>(&self.body) {
            Ok(w) => w.error,
            Err(_) => ErrorBody {
                code: String::new(),
                message: if self.body.trim().is_empty() {
                    format!("HTTP {}", self.status)
                } else {
                    // Not our JSON (a proxy's page): a short, one-line excerpt.
                    let line: String = self.body.split_whitespace().collect::<Vec<_>>().join(" ");
                    format!(
                        "HTTP {}: {}",
                        self.status,
                        line.chars().take(200).collect::<String>()
                    )
                },
                hint: None,
            },
        }
    }
}

/// The `{"version": N}` part of an answer.
#[derive(Deserialize)]
struct Version {
    version: u64,
}

impl RemoteStore {
    /// `GET` a list of incident ids (`ids_only=true`), oldest first.
    fn ids(&self, path: &str) -> Result<Vec<IncidentId>, StoreError> {
        #[derive(Deserialize)]
        struct Ids {
            ids: Vec<IncidentId>,
        }
        let mut ids = self.get_json::<Ids>(path, None)?.ids;
        ids.sort();
        Ok(ids)
    }

    /// A store on `server` with `token`. Checks both before any request.
    pub fn new(server: &str, token: Option<&str>) -> Result<RemoteStore, ClientError> {
        let base = server.trim().trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        match rest {
            Some(host) if !host.is_empty() && !host.contains(char::is_whitespace) => {}
            _ => {
                return Err(ClientError::BadUrl(hotfix_core::display::redact_url(
                    server,
                )));
            }
        }
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ClientError::MissingToken {
                server: hotfix_core::display::redact_url(&base),
            })?;
        if token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(ClientError::BadToken);
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // A redirect could carry the token to another host: refused.
            .max_redirects(0)
            .timeout_global(Some(TIMEOUT))
            .user_agent(concat!("hotfix/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(RemoteStore {
            base,
            token: token.to_string(),
            agent,
        })
    }

    /// The server URL as it may be shown (no credentials).
    pub fn shown_base(&self) -> String {
        hotfix_core::display::redact_url(&self.base)
    }

    /// Who the token acts as; also the first contact, so a wrong URL or a
    /// revoked token fails here with a clear message.
    pub fn me(&self) -> Result<Me, StoreError> {
        self.get_json("/api/v1/me", None)
    }

    fn unreachable(&self, e: ureq::Error) -> StoreError {
        let why = match &e {
            ureq::Error::Timeout(_) => format!("no answer within {}s", TIMEOUT.as_secs()),
            ureq::Error::Io(io) => io.to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            other => other.to_string(),
        };
        StoreError::Backend(format!(
            "cannot reach the hotfix server at {}: {why} (is `hotfix serve` running there? check {SERVER_ENV} or [server] url)",
            self.shown_base()
        ))
    }

    fn read(
        &self,
        r: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, StoreError> {
        let mut r = r.map_err(|e| self.unreachable(e))?;
        let status = r.status().as_u16();
        let body = r
            .body_mut()
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        Ok(Reply { status, body })
    }

    /// The headers of every request: the token, and that we want JSON back.
    fn authed<B>(&self, req: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        req.header("Authorization", format!("Bearer {}", self.token))
            .header("Accept", "application/json")
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn get(&self, path: &str) -> Result<Reply, StoreError> {
        self.read(self.authed(self.agent.get(self.url(path))).call())
    }

    fn post(&self, path: &str, body: &Value) -> Result<Reply, StoreError> {
        self.read(self.authed(self.agent.post(self.url(path))).send_json(body))
    }

    /// `GET path` and its JSON (`incident`: whose 404 is [`StoreError::NotFound`]).
    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        incident: Option<IncidentId>,
    ) -> Result<T, StoreError> {
        let r = self.get(path)?;
        self.parse(&r, path, incident)
    }

    /// A successful answer's JSON, or the server's refusal as a store error.
    fn parse<T: DeserializeOwned>(
        &self,
        r: &Reply,
        what: &str,
        incident: Option<IncidentId>,
    ) -> Result<T, StoreError> {
        if !r.ok() {
            return Err(self.refusal(r, incident));
        }
        serde_json::from_str(&r.body).map_err(|e| {
            StoreError::Backend(format!(
                "unexpected answer from the hotfix server at {} to {what}: {e} (are the CLI and the server the same version?)",
                self.shown_base()
            ))
        })
    }

    /// What the server said no with, as the engine understands it.
    fn refusal(&self, r: &Reply, incident: Option<IncidentId>) -> StoreError {
        let e = r.error();
        let hint = e
            .hint
            .as_deref()
            .filter(|h| !h.trim().is_empty())
            .map(|h| format!("\n  hint: {h}"))
            .unwrap_or_default();
        let refused = || StoreError::Backend(format!("server refused: {}{hint}", e.message));
        match r.status {
            409 if e.code == NAME_IN_USE_CODE => name_in_use(&e.message).unwrap_or_else(refused),
            404 if e.code == "not_found" => incident.map_or_else(refused, StoreError::NotFound),
            // Not our error body: something else answers at that address.
            404 | 405 => StoreError::Backend(format!(
                "{} does not serve the hotfix API ({}): check {SERVER_ENV} or [server] url",
                self.shown_base(),
                e.message
            )),
            401 => StoreError::Backend(format!(
                "the hotfix server at {} does not accept {TOKEN_ENV}: {}\n  hint: check {TOKEN_ENV}; an admin creates tokens with `hotfix serve token create`",
                self.shown_base(),
                e.message
            )),
            300..=399 => StoreError::Backend(format!(
                "the hotfix server at {} answered with a redirect ({}); set {SERVER_ENV} to the server's final URL",
                self.shown_base(),
                r.status
            )),
            500..=599 => StoreError::Backend(format!(
                "the hotfix server at {} failed: {}{hint}",
                self.shown_base(),
                e.message
            )),
            _ => refused(),
        }
    }

    fn incident_path(id: IncidentId, tail: &str) -> String {
        format!("/api/v1/incidents/{id}{tail}")
    }

    /// The version the incident is at now (after a 409).
    fn version(&self, id: IncidentId) -> Result<u64, StoreError> {
        let path = Self::incident_path(id, "/events");
        Ok(self.get_json::<Version>(&path, Some(id))?.version)
    }
}

/// [`StoreError::NameInUse`] back from the message of the server's
/// `name_in_use` refusal, which is that error's own text
/// ("an open incident already uses the name `x`: HF-3"); `None` if the
/// message is not of that shape (a server of another version).
fn name_in_use(message: &str) -> Option<StoreError> {
    let (head, holder) = message.rsplit_once("`: ")?;
    let (_, name) = head.split_once('`')?;
    Some(StoreError::NameInUse {
        name: name.to_string(),
        incident: holder.trim().parse().ok()?,
    })
}

impl Store for RemoteStore {
    fn is_remote(&self) -> bool {
        true
    }

    /// `POST /api/v1/incidents` with the `declared` event's fields. The
    /// outbox is the server's business: it notifies with its own notifiers.
    fn declare(
        &self,
        event: &NewEvent,
        _outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError> {
        let EventKind::Declared {
            name,
            title,
            severity,
            customer_facing,
            security,
            branch,
            base_sha,
        } = &event.kind
        else {
            return Err(StoreError::Backend(format!(
                "an incident is declared with a `declared` event, not `{}`",
                event.kind.name()
            )));
        };
        let body = json!({
            "name": name,
            "title": title,
            "severity": severity.as_str(),
            "customer_facing": customer_facing,
            "security": security,
            "branch": branch,
            "base_sha": base_sha,
        });
        #[derive(Deserialize)]
        struct Declared {
            incident: Summary,
        }
        #[derive(Deserialize)]
        struct Summary {
            id: IncidentId,
        }
        let r = self.post("/api/v1/incidents", &body)?;
        Ok(self
            .parse::<Declared>(&r, "POST /api/v1/incidents", None)?
            .incident
            .id)
    }

    /// `POST /api/v1/incidents/{id}/events` with compare-and-set on
    /// `expected_version` (409: someone else appended first).
    fn append(
        &self,
        incident: IncidentId,
        expected_version: u64,
        events: &[NewEvent],
        _outbox: &[(String, Message)],
    ) -> Result<u64, StoreError> {
        let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
        let path = Self::incident_path(incident, "/events");
        let r = self.post(
            &path,
            &json!({ "expected_version": expected_version, "events": kinds }),
        )?;
        // A 409 `name_in_use` (an `attempt_started` whose name another open
        // incident holds) is refused as it came: the version did not move,
        // and re-reading would not help.
        if r.status == 409 && r.error().code != NAME_IN_USE_CODE {
            // The same answer covers "the version moved" (re-read and decide
            // again) and "your decision is stale" with an unchanged version
            // (an approval of a head that is no longer the head): only the
            // first is a conflict the engine may retry.
            let actual = self.version(incident)?;
            if actual != expected_version {
                return Err(StoreError::Conflict {
                    incident,
                    expected: expected_version,
                    actual,
                });
            }
            return Err(self.refusal(&r, Some(incident)));
        }
        Ok(self.parse::<Version>(&r, &path, Some(incident))?.version)
    }

    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError> {
        #[derive(Deserialize)]
        struct Log {
            events: Vec<Event>,
        }
        let path = Self::incident_path(incident, "/events");
        Ok(self.get_json::<Log>(&path, Some(incident))?.events)
    }

    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        self.ids("/api/v1/incidents?state=all&ids_only=true")
    }

    /// Only the open ones: finding the incident of a branch does not need
    /// the team's whole history.
    fn open_incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        self.ids("/api/v1/incidents?state=open&ids_only=true")
    }

    /// The server delivers its outbox; the CLI has nothing to claim.
    fn claim_outbox(
        &self,
        _now_s: i64,
        _lease_s: i64,
        _notifiers: &[String],
        _limit: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        Ok(vec![])
    }

    fn release_outbox(&self, _id: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// What the server has not delivered yet (shown by `hotfix status`).
    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError> {
        #[derive(Deserialize)]
        struct Outbox {
            undelivered: Vec<OutboxItem>,
        }
        Ok(self.get_json::<Outbox>("/api/v1/outbox", None)?.undelivered)
    }

    fn mark_delivered(&self, _id: i64, _at_s: i64) -> Result<(), StoreError> {
        Ok(())
    }

    fn mark_failed(&self, _id: i64, _error: &str, _retry_at_s: i64) -> Result<(), StoreError> {
        Ok(())
    }

    /// Notifier memory belongs to the notifiers, which run on the server.
    fn memory_get(&self, _incident: IncidentId, _key: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    fn memory_set(
        &self,
        _incident: IncidentId,
        _key: &str,
        _value: &str,
    ) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_tokens_are_checked_before_any_request() {
        assert!(matches!(
            RemoteStore::new("localhost:8080", Some("hf_x")),
            Err(ClientError::BadUrl(_))
        ));
        assert!(matches!(
            RemoteStore::new("http://", Some("hf_x")),
            Err(ClientError::BadUrl(_))
        ));
        assert!(matches!(
            RemoteStore::new("http://127.0.0.1:8080/", None),
            Err(ClientError::MissingToken { .. })
        ));
        assert!(matches!(
            RemoteStore::new("http://127.0.0.1:8080/", Some("  ")),
            Err(ClientError::MissingToken { .. })
        ));
        assert_eq!(
            RemoteStore::new("http://h", Some("hf_a\r\nX-Evil: 1")).err(),
            Some(ClientError::BadToken)
        );
        let s = RemoteStore::new(" https://u:pw@hotfix.example.com/ ", Some(" hf_secret "))
            .expect("valid");
        assert_eq!(s.base, "https://u:pw@hotfix.example.com");
        assert_eq!(s.token, "hf_secret");
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("hf_secret") && !shown.contains("pw@"),
            "{shown}"
        );
    }

    #[test]
    fn a_name_in_use_refusal_is_the_same_store_error_as_in_local_mode() {
        let s = RemoteStore::new("http://127.0.0.1:1", Some("hf_x")).expect("valid");
        let local = StoreError::NameInUse {
            name: "pdf-crash".into(),
            incident: IncidentId(3),
        };
        // The body the server answers (`hotfix_server::ApiError::from`,
        // tested there to match): the store error's own text.
        let r = Reply {
            status: 409,
            body: serde_json::json!({"error": {
                "code": NAME_IN_USE_CODE,
                "message": local.to_string(),
                "hint": "continue HF-3",
            }})
            .to_string(),
        };
        match s.refusal(&r, None) {
            StoreError::NameInUse { name, incident } => {
                assert_eq!((name.as_str(), incident), ("pdf-crash", IncidentId(3)));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            name_in_use(&local.to_string()).map(|e| e.to_string()),
            Some(local.to_string())
        );
        // A message of another shape is still a refusal, said as it came.
        let odd = Reply {
            status: 409,
            body: r#"{"error":{"code":"name_in_use","message":"taken","hint":null}}"#.into(),
        };
        match s.refusal(&odd, None) {
            StoreError::Backend(m) => assert_eq!(m, "server refused: taken"),
            other => panic!("{other:?}"),
        }
        // Other 409s are not mistaken for it.
        let cas = Reply {
            status: 409,
            body: r#"{"error":{"code":"conflict","message":"an open incident already uses the name `x`: HF-1","hint":null}}"#.into(),
        };
        assert!(matches!(s.refusal(&cas, None), StoreError::Backend(_)));
    }

    #[test]
    fn an_error_body_that_is_not_ours_becomes_a_short_line() {
        let r = Reply {
            status: 502,
            body: format!(
                "<html>\n<body>Bad gateway {}</body></html>",
                "x".repeat(500)
            ),
        };
        let e = r.error();
        assert!(e.message.starts_with("HTTP 502: <html> <body>Bad gateway"));
        assert!(e.message.len() < 230);
        let r = Reply {
            status: 403,
            body: r#"{"error":{"code":"forbidden","message":"no","hint":null}}"#.into(),
        };
        assert_eq!(r.error().message, "no");
    }
}
