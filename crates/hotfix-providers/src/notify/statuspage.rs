//! Atlassian Statuspage (REST v1): "Update status page if customer-facing".
//!
//! Only `customer_facing` messages are acted on; the rest are delivered as
//! nothing. The public incident follows the workflow, and every call sends
//! the incident status **and** the component status together, so the two
//! never drift apart (the most common status-page complaint):
//!
//! | step                                    | incident     | component                        |
//! |-----------------------------------------|--------------|----------------------------------|
//! | `declared`, `confirmed`                 | investigating | outage (*)                      |
//! | `pr_opened`, `smoke_passed`, `approved`, `attempt_started` | identified | outage        |
//! | `merged` ("fix is being deployed")      | identified   | outage                           |
//! | `health_failed`, `rolled_back`          | identified   | outage                           |
//! | `health_passed`                         | monitoring   | `monitoring_component_status` (default `degraded_performance`) |
//! | `closed`, `declined`, `merged_into`     | resolved     | operational                      |
//!
//! (*) `major_outage` for critical incidents, `partial_outage` for high.
//!
//! Triage (`[status] publish_unconfirmed`, off by default): a message sent
//! while the incident was still unconfirmed (`Message::triage`) posts
//! nothing, so an alert that turns out a false alarm never reaches
//! customers; the first message after a tech lead confirmed it
//! (`confirmed`, or any later step) creates the public incident. A decline
//! or a merge resolves the public incident only if one was posted, and
//! posts nothing otherwise.
//!
//! Monitoring keeps the component at `degraded_performance` by default: the
//! fix is live but the team is still watching, and "operational" is only
//! promised once the incident is resolved. Teams that close incidents long
//! after the fix can set `monitoring_component_status = "operational"`.
//!
//! What customers read is written here, never the internal Slack text (which
//! names branches and PRs). The incident's name is its public text
//! (`Message::public_text`: set at triage, or the title of an incident a
//! person declared); an alert-declared incident without one, and every
//! security incident, is called "Service disruption" (the alert's own title
//! only with `[status] publish_alert_text`). Subscribers are notified on every
//! update, so a step that would not change what the page says (the same
//! phase again, e.g. `smoke_passed` after `pr_opened`, or a retry) sends
//! nothing, and a step older than the last one applied is ignored.
//!
//! Idempotence: the incident id is remembered in the incident's memory
//! right after it is created; with an id in memory, `declared` never
//! creates another.

use std::time::Duration;

use hotfix_core::duration::HumanDuration;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http;

/// The environment variable the binary reads the API key from.
pub const API_KEY_ENV: &str = hotfix_core::env_vars::STATUSPAGE_API_KEY;
/// Memory key: the Statuspage incident id.
pub const MEMORY_INCIDENT: &str = "statuspage.incident";
/// Memory key: `"<phase> <at>"` of the last update applied.
pub const MEMORY_LAST: &str = "statuspage.last";

/// `[notify.statuspage]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatuspageConfig {
    /// The page (`https://manage.statuspage.io/pages/<page_id>`).
    pub page_id: String,
    /// The component the incidents affect.
    pub component_id: String,
    /// Default `https://api.statuspage.io/v1`.
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Component status while the incident is `monitoring`:
    /// `degraded_performance` (default) or `operational`.
    #[serde(default = "default_monitoring")]
    pub monitoring_component_status: String,
    /// Per request (default 5s).
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_api_url() -> String {
    "https://api.statuspage.io/v1".into()
}

fn default_monitoring() -> String {
    "degraded_performance".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

impl StatuspageConfig {
    /// Validates the `[notify.statuspage]` table; unknown keys are errors.
    pub fn from_table(t: &toml::Table) -> Result<StatuspageConfig, String> {
        let c: StatuspageConfig = t
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("[notify.statuspage]: {}", e.message()))?;
        for (key, v) in [("page_id", &c.page_id), ("component_id", &c.component_id)] {
            if !http::is_plain_id(v) {
                return Err(format!(
                    "[notify.statuspage] {key} `{v}` is not an id (letters, digits, `-`, `_`)"
                ));
            }
        }
        if !matches!(
            c.monitoring_component_status.as_str(),
            "degraded_performance" | "operational"
        ) {
            return Err(format!(
                "[notify.statuspage] monitoring_component_status `{}`: expected degraded_performance or operational",
                c.monitoring_component_status
            ));
        }
        http::check_url("[notify.statuspage] api_url", &c.api_url)?;
        Ok(c)
    }
}

/// The name of a public incident that has no public text.
pub const GENERIC_NAME: &str = "Service disruption";

/// Keeps the customer-facing status page in step with the hotfix.
pub struct StatuspageNotifier {
    config: StatuspageConfig,
    api_key: String,
    agent: ureq::Agent,
    /// `[status] publish_unconfirmed`.
    publish_unconfirmed: bool,
    /// `[status] publish_alert_text`.
    publish_alert_text: bool,
}

impl std::fmt::Debug for StatuspageNotifier {
    /// Never shows the API key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatuspageNotifier")
            .field("page_id", &self.config.page_id)
            .field("component_id", &self.config.component_id)
            .finish_non_exhaustive()
    }
}

/// Where a step puts the public incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    /// Names this state for "nothing changed, send nothing".
    phase: &'static str,
    status: &'static str,
    /// `None`: the outage status of the incident's severity.
    component: Option<&'static str>,
    body: &'static str,
}

/// The lifecycle mapping (see the module docs); `None`: not for customers.
fn target(step: &str) -> Option<Target> {
    let t = |phase, status, component, body| {
        Some(Target {
            phase,
            status,
            component,
            body,
        })
    };
    match step {
        "declared" | "confirmed" => t(
            "investigating",
            "investigating",
            None,
            "We are investigating an issue affecting our service and will post an update as soon as we know more.",
        ),
        "pr_opened" | "smoke_passed" | "approved" | "attempt_started" => t(
            "fixing",
            "identified",
            None,
            "The issue has been identified and a fix is being prepared.",
        ),
        "merged" => t(
            "deploying",
            "identified",
            None,
            "The issue has been identified and a fix is being deployed.",
        ),
        "health_failed" | "rolled_back" => t(
            "rolled_back",
            "identified",
            None,
            "The fix did not resolve the issue and has been rolled back. We are continuing to work on a fix.",
        ),
        "health_passed" => t(
            "monitoring",
            "monitoring",
            Some("monitoring"),
            "A fix has been deployed and we are monitoring the results.",
        ),
        "closed" | "declined" | "merged_into" => t(
            "resolved",
            "resolved",
            Some("operational"),
            "This incident has been resolved.",
        ),
        _ => None,
    }
}

impl StatuspageNotifier {
    /// `api_key` is `STATUSPAGE_API_KEY` (sent as `Authorization: OAuth <key>`).
    pub fn new(config: StatuspageConfig, api_key: String) -> Result<StatuspageNotifier, String> {
        let key = api_key.trim().to_string();
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(format!(
                "[notify.statuspage] is configured but {API_KEY_ENV} is empty or malformed (value not shown)"
            ));
        }
        let agent = http::agent(Duration::max(config.timeout.0, Duration::from_millis(1)));
        Ok(StatuspageNotifier {
            config,
            api_key: key,
            agent,
            publish_unconfirmed: false,
            publish_alert_text: false,
        })
    }

    /// What `[status]` lets the page say: incidents still in triage
    /// (`publish_unconfirmed`) and an alert's own title
    /// (`publish_alert_text`). Both off unless this is called.
    pub fn with_status(mut self, status: &hotfix_core::config::StatusConfig) -> Self {
        self.publish_unconfirmed = status.publish_unconfirmed;
        self.publish_alert_text = status.publish_alert_text;
        self
    }

    /// The public incident's name: the public text, else (only when
    /// allowed) the alert's title, else [`GENERIC_NAME`]; never anything
    /// of a security incident.
    fn public_name(&self, msg: &Message) -> String {
        let text = if msg.security {
            None
        } else {
            msg.public_text
                .as_deref()
                .or(self.publish_alert_text.then_some(msg.title.as_str()))
        };
        match text.map(|t| http::snippet(&hotfix_core::display::line(t), 255)) {
            Some(t) if !t.trim().is_empty() => t,
            _ => GENERIC_NAME.to_string(),
        }
    }

    fn err(&self, message: String) -> NotifyError {
        NotifyError {
            notifier: "statuspage".into(),
            message: http::scrub(&message, &[&self.api_key]),
        }
    }

    fn component_status(&self, t: &Target, msg: &Message) -> String {
        match t.component {
            Some("monitoring") => self.config.monitoring_component_status.clone(),
            Some(s) => s.to_string(),
            None if msg.severity.eq_ignore_ascii_case("critical") => "major_outage".into(),
            None => "partial_outage".into(),
        }
    }

    fn incident_body(&self, t: &Target, msg: &Message) -> Value {
        let component = &self.config.component_id;
        json!({
            "status": t.status,
            "body": t.body,
            "component_ids": [component],
            "components": { component.as_str(): self.component_status(t, msg) },
        })
    }

    fn call(&self, method: http::Method, path: &str, body: &Value) -> Result<Value, String> {
        let auth = format!("OAuth {}", self.api_key);
        let url = http::join(&self.config.api_url, path);
        let reply = http::send(
            &self.agent,
            method,
            &url,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.to_string().as_bytes(),
        )?;
        if reply.is_success() {
            return serde_json::from_str(&reply.body).map_err(|_| {
                format!(
                    "Statuspage's answer is not JSON (HTTP {}): {}",
                    reply.status,
                    http::snippet(&reply.body, 120)
                )
            });
        }
        let detail = error_detail(&reply.body);
        Err(match reply.status {
            401 => format!("Statuspage refused the API key (401): check {API_KEY_ENV}"),
            403 => format!(
                "Statuspage forbids this (403){detail}: the API key's user needs access to page {}",
                self.config.page_id
            ),
            404 => format!(
                "not found (404){detail}: check [notify.statuspage] page_id `{}` (or the incident was deleted on Statuspage)",
                self.config.page_id
            ),
            422 => format!(
                "Statuspage rejected the update (422){detail}: check [notify.statuspage] component_id `{}`",
                self.config.component_id
            ),
            420 | 429 => http::retry_hint(reply.retry_after.as_deref()),
            s if s >= 500 => format!("Statuspage answered {s}{detail}; will retry"),
            s => format!("Statuspage answered {s}{detail}"),
        })
    }
}

/// `: <message>` from Statuspage's `{"error": "…" | ["…"]}`, or nothing.
fn error_detail(body: &str) -> String {
    let v: Value = match serde_json::from_str(body) {
        Ok(v) => v,
        Err(_) => {
            let s = http::snippet(body, 160);
            return if s.is_empty() { s } else { format!(": {s}") };
        }
    };
    let text = match v.get("error").or_else(|| v.get("message")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    };
    let s = http::snippet(&text, 160);
    if s.is_empty() { s } else { format!(": {s}") }
}

/// `(phase, at)` of the last update applied.
fn last_applied(memory: &dyn Memory, msg: &Message) -> Option<(String, Option<Timestamp>)> {
    let v = memory.get(msg.incident, MEMORY_LAST)?;
    let (phase, at) = v.split_once(' ').unwrap_or((v.as_str(), ""));
    Some((phase.to_string(), at.parse().ok()))
}

impl Notifier for StatuspageNotifier {
    fn name(&self) -> &str {
        "statuspage"
    }

    fn send(&self, _outbox_id: i64, msg: &Message, memory: &dyn Memory) -> Result<(), NotifyError> {
        if !msg.customer_facing {
            return Ok(());
        }
        let Some(t) = target(&msg.step) else {
            return Ok(());
        };
        if let Some((phase, at)) = last_applied(memory, msg) {
            // Same state again (a retry, or a step customers cannot tell
            // apart), a step older than what the page shows, or anything
            // after resolution: nothing to say.
            if phase == t.phase || phase == "resolved" || at.is_some_and(|a| msg.at < a) {
                return Ok(());
            }
        }
        let page = &self.config.page_id;
        let existing = memory
            .get(msg.incident, MEMORY_INCIDENT)
            .filter(|id| http::is_plain_id(id));
        if existing.is_none() && msg.triage && !self.publish_unconfirmed {
            // Not confirmed by a person yet: customers hear of it once a
            // tech lead has (the `confirmed` message, or any later one).
            return Ok(());
        }
        match existing {
            Some(id) => {
                let body = json!({ "incident": self.incident_body(&t, msg) });
                self.call(
                    http::Method::Patch,
                    &format!("pages/{page}/incidents/{id}"),
                    &body,
                )
                .map_err(|e| self.err(format!("updating incident {id}: {e}")))?;
            }
            None if t.status == "resolved" => {
                // Nothing was ever posted for this incident (declined or
                // merged at triage, or never customer-visible): nothing to
                // resolve, and nothing to announce.
                return Ok(());
            }
            None => {
                let name = self.public_name(msg);
                let mut incident = self.incident_body(&t, msg);
                if let Some(o) = incident.as_object_mut() {
                    o.insert("name".into(), name.into());
                    // For people and tools reconciling by hand; not shown publicly.
                    o.insert(
                        "metadata".into(),
                        json!({"hotfix": {"incident": msg.incident.to_string()}}),
                    );
                }
                let v = self
                    .call(
                        http::Method::Post,
                        &format!("pages/{page}/incidents"),
                        &json!({ "incident": incident }),
                    )
                    .map_err(|e| self.err(format!("creating the incident: {e}")))?;
                let id = v
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| http::is_plain_id(id));
                let Some(id) = id else {
                    return Err(self.err(
                        "Statuspage created an incident but its answer has no usable `id`; check the page and resolve duplicates by hand".into(),
                    ));
                };
                memory.set(msg.incident, MEMORY_INCIDENT, id).map_err(|e| {
                    self.err(format!(
                        "created Statuspage incident {id} but could not remember it ({e}); a retry may create a duplicate"
                    ))
                })?;
            }
        }
        // Failing to record the phase only risks one repeated update.
        let _ = memory.set(
            msg.incident,
            MEMORY_LAST,
            &format!("{} {}", t.phase, msg.at),
        );
        Ok(())
    }
}
