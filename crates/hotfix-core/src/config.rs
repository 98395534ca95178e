//! `hotfix.toml`: the team's configuration. Secrets never live here; they come
//! from the environment.

use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;
use crate::policy::Policy;

/// The whole `hotfix.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub git: GitConfig,
    pub team: TeamConfig,
    pub policy: Policy,
    pub forge: ForgeConfig,
    pub deploy: DeployConfig,
    /// Smoke checks run against every preview (and production health).
    pub smoke: Vec<HttpCheck>,
    /// The affected-area checks the high-severity policy adds.
    pub area_checks: Vec<HttpCheck>,
    pub notify: NotifyConfig,
    /// `[server]`: the team server, and where the CLI finds it.
    pub server: ServerConfig,
    /// `[[alerts.rules]]`: which incoming alerts declare an incident.
    pub alerts: AlertsConfig,
    /// `[status]`: the public status page.
    pub status: StatusConfig,
}

/// `[server]`. Secrets (API tokens, webhook secrets) come from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The server the CLI talks to in remote mode (`HOTFIX_SERVER` overrides).
    pub url: Option<String>,
    /// Where `hotfix serve` listens.
    pub listen: String,
    /// Slack user id → team identity, for `/hotfix` (`U024BE7LH = "lead@example.com"`).
    pub slack_users: std::collections::BTreeMap<String, String>,
    /// The only channel `/hotfix` answers in (default: `[notify] channel`).
    pub slack_channel: Option<String>,
    /// Seconds a client has to send a request's head (request line and
    /// headers), from connecting or from the first byte of a later request
    /// on a kept-alive connection; then the connection is closed. Without
    /// it, sockets that send nothing or half a request stay open for ever.
    pub header_read_timeout_s: u64,
    /// Seconds a kept-alive connection may wait for its next request.
    /// Never applies while a response is being sent (the dashboard's event
    /// stream stays open).
    pub idle_timeout_s: u64,
    /// Connections served at once; more wait in the listen backlog until
    /// one ends (the timeouts above end idle ones).
    pub max_connections: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            url: None,
            listen: "127.0.0.1:8080".into(),
            slack_users: Default::default(),
            slack_channel: None,
            header_read_timeout_s: 10,
            idle_timeout_s: 60,
            max_connections: 1024,
        }
    }
}

impl ServerConfig {
    /// The ranges of the connection limits: zero would close (or refuse)
    /// everything, and past these they protect nothing.
    pub const HEADER_READ_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=300;
    pub const IDLE_TIMEOUT_S: std::ops::RangeInclusive<u64> = 1..=3600;
    pub const MAX_CONNECTIONS: std::ops::RangeInclusive<u64> = 1..=100_000;

    fn validate(&self) -> Result<(), ConfigError> {
        let check = |key: &str, v: u64, range: std::ops::RangeInclusive<u64>, unit: &str| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(ConfigError::Invalid(format!(
                    "[server] {key} = {v} is out of range: use {} to {}{unit}",
                    range.start(),
                    range.end()
                )))
            }
        };
        check(
            "header_read_timeout_s",
            self.header_read_timeout_s,
            Self::HEADER_READ_TIMEOUT_S,
            " seconds",
        )?;
        check(
            "idle_timeout_s",
            self.idle_timeout_s,
            Self::IDLE_TIMEOUT_S,
            " seconds",
        )?;
        check(
            "max_connections",
            self.max_connections,
            Self::MAX_CONNECTIONS,
            "",
        )
    }
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub rules: Vec<AlertRule>,
}

/// One rule: an alert whose labels match declares an incident of this
/// severity. The first matching rule wins; an alert no rule matches is
/// recorded and ignored (monitoring is noisy; not every alert is a hotfix).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Only alerts from this source (`alertmanager`, `sentry`, `pagerduty`, `generic`).
    #[serde(default)]
    pub source: Option<String>,
    /// Labels that must all be equal (`alertname`, `service`, `severity`...).
    #[serde(default, rename = "match")]
    pub labels: std::collections::BTreeMap<String, String>,
    /// The proposed severity (`critical` or `high`; the on-call confirms it on `start`).
    pub severity: String,
    #[serde(default)]
    pub customer_facing: bool,
    #[serde(default)]
    pub security: bool,
    /// The hotfix name (branch `hotfix/NAME`); default: from the alert's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Status page components it affects.
    #[serde(default)]
    pub components: Vec<String>,
}

/// `[status]`: the public status page (`/status`, `/status.json`) and
/// what the Statuspage notifier may publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    pub title: String,
    pub components: Vec<String>,
    /// Publish incidents still in triage (reported, nobody confirmed them
    /// yet). Off by default: an alert can be a false alarm, and customers
    /// should not read "Major outage" until a tech lead has confirmed it.
    pub publish_unconfirmed: bool,
    /// Let an alert-declared incident's own title (the alert's summary)
    /// be its public text when nobody set one at triage. Off by default:
    /// alert annotations are written for engineers, not customers.
    pub publish_alert_text: bool,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            title: "Service status".into(),
            components: vec![],
            publish_unconfirmed: false,
            publish_alert_text: false,
        }
    }
}

impl StatusConfig {
    /// A blank or repeated component would be a row nobody can tell apart
    /// from another on the public page.
    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen: Vec<&str> = vec![];
        for c in &self.components {
            let name = c.trim();
            if name.is_empty() {
                return Err(ConfigError::Invalid(
                    "[status] components: a component name is empty".into(),
                ));
            }
            if seen.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                return Err(ConfigError::Invalid(format!(
                    "[status] components: `{name}` is listed twice"
                )));
            }
            seen.push(name);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GitConfig {
    pub remote: String,
    pub main: String,
    pub develop: String,
    /// Prefix of hotfix branches.
    pub prefix: String,
    /// `ship` also merges into develop in the same atomic push (local forge).
    pub backport_on_ship: bool,
}

impl Default for GitConfig {
    fn default() -> Self {
        GitConfig {
            remote: "origin".into(),
            main: "main".into(),
            develop: "develop".into(),
            prefix: "hotfix/".into(),
            backport_on_ship: false,
        }
    }
}

/// Who may approve. Identities are what `--as` / `HOTFIX_USER` / `git config
/// user.email` give, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TeamConfig {
    pub tech_leads: Vec<String>,
    pub reviewers: Vec<String>,
    /// Notified on every declaration.
    pub on_call: Vec<String>,
}

/// `[forge]`: `provider` picks the implementation; the other keys belong to
/// it and are validated by it when it is built (so a typo is still an error).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForgeConfig {
    /// `local` (PRs are records in the local store, merges are real git merges) or `github`.
    pub provider: String,
    #[serde(flatten)]
    pub settings: toml::Table,
}

impl Default for ForgeConfig {
    fn default() -> Self {
        ForgeConfig {
            provider: "local".into(),
            settings: toml::Table::new(),
        }
    }
}

/// The deploy provider and its settings. One flat table so that switching
/// providers is a one-line change; each provider validates the keys it needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeployConfig {
    /// `command` (the team's own scripts) or `local` (the embedded platform).
    pub provider: String,
    // --- command provider ---
    /// Deploys a preview; the last line of its stdout is the preview URL.
    pub preview: Option<String>,
    /// Returns when production runs the given sha.
    pub production: Option<String>,
    /// Returns when the previous release serves again.
    pub rollback: Option<String>,
    /// Removes a preview (optional).
    pub remove_preview: Option<String>,
    /// A deploy command that runs longer than this is killed and reported.
    pub timeout: HumanDuration,
    // --- local provider (embedded platform) ---
    pub build: Option<String>,
    pub run: Option<String>,
    pub health_path: Option<String>,
    pub port: Option<u16>,
    pub warm: Option<HumanDuration>,
    pub ready_timeout: Option<HumanDuration>,
    pub host: Option<String>,
    pub drain: Option<HumanDuration>,
    pub build_timeout: Option<HumanDuration>,
    pub stop_timeout: Option<HumanDuration>,
    // --- production health, every provider ---
    pub health_url: Option<String>,
    /// Keep probing production this long after a deploy.
    pub watch: HumanDuration,
    pub probe_interval: HumanDuration,
    /// Consecutive failed probes that make production unhealthy.
    pub unhealthy_after: u32,
    /// Give a single probe this long.
    pub probe_timeout: HumanDuration,
    /// Roll back by itself when production is unhealthy after a deploy.
    pub auto_rollback: bool,
    /// `[deploy.railway]`: the Railway provider's settings (validated by it).
    pub railway: Option<toml::Table>,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            provider: "command".into(),
            preview: None,
            production: None,
            rollback: None,
            remove_preview: None,
            timeout: HumanDuration::mins(10),
            build: None,
            run: None,
            health_path: None,
            port: None,
            warm: None,
            ready_timeout: None,
            host: None,
            drain: None,
            build_timeout: None,
            stop_timeout: None,
            health_url: None,
            watch: HumanDuration::secs(30),
            probe_interval: HumanDuration::secs(1),
            unhealthy_after: 2,
            probe_timeout: HumanDuration::secs(5),
            auto_rollback: true,
            railway: None,
        }
    }
}

/// One HTTP check: `GET <base><path>` must answer `status` (and contain `contains`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    #[serde(default)]
    pub name: Option<String>,
    pub path: String,
    #[serde(default = "default_status")]
    pub status: u16,
    #[serde(default)]
    pub contains: Option<String>,
}

fn default_status() -> u16 {
    200
}

impl HttpCheck {
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("GET {}", self.path))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// The channel the messages are shaped for.
    pub channel: String,
    /// Print each message on the console.
    pub console: bool,
    /// Append each message as a JSON line to `.git/hotfix/notifications.jsonl`.
    pub file: bool,
    /// `[notify.slack]` (validated by the Slack notifier).
    pub slack: Option<toml::Table>,
    /// `[notify.webhook]`: a signed JSON event per step.
    pub webhook: Option<toml::Table>,
    /// `[notify.statuspage]`: customer-facing incidents on Statuspage.
    pub statuspage: Option<toml::Table>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            channel: "#dev-alerts".into(),
            console: true,
            file: true,
            slack: None,
            webhook: None,
            statuspage: None,
        }
    }
}

/// A config that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("hotfix.toml is not valid: {0}")]
    Parse(String),
    #[error("hotfix.toml: {0}")]
    Invalid(String),
}

impl Config {
    /// Parses and validates a `hotfix.toml`.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let inv = |m: String| Err(ConfigError::Invalid(m));
        if !self.git.prefix.ends_with('/') || self.git.prefix.len() < 2 {
            return inv(format!(
                "[git] prefix `{}` must be a path prefix such as `hotfix/`",
                self.git.prefix
            ));
        }
        if self.git.main == self.git.develop {
            return inv("[git] main and develop must be different branches".into());
        }
        match self.deploy.provider.as_str() {
            "command" | "local" | "railway" => {}
            other => {
                return inv(format!(
                    "[deploy] provider `{other}` is not known: use `command`, `local` or `railway`"
                ));
            }
        }
        match self.forge.provider.as_str() {
            "local" => {
                if let Some(k) = self.forge.settings.keys().next() {
                    return inv(format!("[forge] `{k}` is not a setting of the local forge"));
                }
            }
            "github" => {}
            other => {
                return inv(format!(
                    "[forge] provider `{other}` is not known: use `local` or `github`"
                ));
            }
        }
        for c in self.smoke.iter().chain(&self.area_checks) {
            if !c.path.starts_with('/') {
                return inv(format!("check path `{}` must start with `/`", c.path));
            }
        }
        for (i, r) in self.alerts.rules.iter().enumerate() {
            if let Err(crate::severity::SeverityError::Unknown(_)) =
                r.severity.parse::<crate::severity::Severity>()
            {
                return inv(format!(
                    "[[alerts.rules]] #{}: severity `{}` is not critical, high, medium or low",
                    i + 1,
                    r.severity
                ));
            }
            if let Some(src) = &r.source
                && !["alertmanager", "sentry", "pagerduty", "generic"].contains(&src.as_str())
            {
                return inv(format!(
                    "[[alerts.rules]] #{}: source `{src}` is not alertmanager, sentry, pagerduty or generic",
                    i + 1
                ));
            }
        }
        if self.deploy.unhealthy_after == 0 {
            return inv("[deploy] unhealthy_after must be at least 1".into());
        }
        self.server.validate()?;
        self.status.validate()?;
        Ok(())
    }

    /// Is this person a tech lead / reviewer?
    pub fn is_tech_lead(&self, who: &str) -> bool {
        self.team
            .tech_leads
            .iter()
            .any(|t| t.eq_ignore_ascii_case(who))
    }
    pub fn is_reviewer(&self, who: &str) -> bool {
        self.team
            .reviewers
            .iter()
            .any(|t| t.eq_ignore_ascii_case(who))
    }
}

/// The file `hotfix init` writes: every default spelled out, with the process
/// document's reasons next to them.
pub const INIT_TEMPLATE: &str = include_str!("init_template.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_template_parses_to_the_defaults() {
        let cfg = Config::parse(INIT_TEMPLATE).expect("template parses");
        let d = Config::default();
        assert_eq!(cfg.policy, d.policy);
        assert_eq!(cfg.git, d.git);
        assert_eq!(cfg.deploy.watch, d.deploy.watch);
        assert_eq!(cfg.smoke.len(), 1);
    }

    #[test]
    fn the_server_connection_limits_have_defaults_and_ranges() {
        let d = Config::parse("").expect("defaults");
        assert_eq!(
            (
                d.server.header_read_timeout_s,
                d.server.idle_timeout_s,
                d.server.max_connections
            ),
            (10, 60, 1024)
        );
        let ok = Config::parse(
            "[server]\nheader_read_timeout_s = 1\nidle_timeout_s = 3600\nmax_connections = 2\n",
        )
        .expect("in range");
        assert_eq!(ok.server.max_connections, 2);
        for (bad, says) in [
            (
                "header_read_timeout_s = 0",
                "header_read_timeout_s = 0 is out of range: use 1 to 300 seconds",
            ),
            ("header_read_timeout_s = 301", "use 1 to 300 seconds"),
            (
                "idle_timeout_s = 0",
                "idle_timeout_s = 0 is out of range: use 1 to 3600 seconds",
            ),
            ("idle_timeout_s = 86400", "use 1 to 3600 seconds"),
            (
                "max_connections = 0",
                "max_connections = 0 is out of range: use 1 to 100000",
            ),
            ("max_connections = 10000000", "use 1 to 100000"),
        ] {
            let e = Config::parse(&format!("[server]\n{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let e = Config::parse("[server]\nidle_timeout_s = -1\n")
            .expect_err("negative")
            .to_string();
        assert!(e.contains("idle_timeout_s"), "{e}");
        assert!(Config::parse("[server]\nidle_timeout_s = \"60s\"\n").is_err());
    }

    #[test]
    fn the_status_page_publishes_only_confirmed_incidents_by_default() {
        let d = Config::parse("").expect("defaults");
        assert!(!d.status.publish_unconfirmed);
        assert!(!d.status.publish_alert_text);
        let on = Config::parse("[status]\npublish_unconfirmed = true\npublish_alert_text = true\n")
            .expect("both on");
        assert!(on.status.publish_unconfirmed && on.status.publish_alert_text);
        for (bad, says) in [
            ("publish_unconfirmd = true", "publish_unconfirmd"),
            ("publish_unconfirmed = \"yes\"", "publish_unconfirmed"),
            ("components = [\"API\", \" \"]", "empty"),
            ("components = [\"API\", \"api\"]", "listed twice"),
        ] {
            let e = Config::parse(&format!("[status]\n{bad}\n"))
                .expect_err(bad)
                .to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        assert!(Config::parse("[team]\ntech_lead = []\n").is_err());
        assert!(Config::parse("[deploy]\nwatch = \"soon\"\n").is_err());
        assert!(Config::parse("[deploy]\nprovider = \"heroku\"\n").is_err());
        assert!(Config::parse("not toml at all [").is_err());
        let ok = Config::parse("[team]\ntech_leads = [\"Lead@Example.com\"]\n").expect("ok");
        assert!(ok.is_tech_lead("lead@example.com"));
        assert!(!ok.is_reviewer("lead@example.com"));
    }
}
