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
    /// `[[analysis]]`: metrics every deploy's watch must pass.
    pub analysis: Vec<crate::analysis::AnalysisConfig>,
    /// Where this config was read from (not a key of the file): `start`
    /// compares the repository's own config with the one on the remote's
    /// main, which the hotfix branch will carry.
    #[serde(skip)]
    pub source: ConfigSource,
}

/// Where the config in effect comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ConfigSource {
    /// No file anywhere: the built-in defaults.
    #[default]
    Defaults,
    /// `<repo>/hotfix.toml` in the work tree.
    WorkTree,
    /// The committed file of a revision (`git show REV:hotfix.toml`),
    /// because the checked-out commit has none: the team's config on the
    /// remote's main (or the local main) applies to a branch cut without it.
    Revision(String),
    /// A file named by `$HOTFIX_CONFIG`: the team keeps it outside the repository.
    Named(String),
}

/// `[server]`. Secrets (API tokens, webhook secrets) come from the environment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// The server the CLI talks to in remote mode (`HOTFIX_SERVER` overrides).
    pub url: Option<String>,
    /// Where `hotfix serve` listens. Default `127.0.0.1:8788`: not 8080,
    /// which the embedded platform's production port (and most apps) take.
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
            listen: "127.0.0.1:8788".into(),
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
    /// Canary steps (`["10%", "50%"]`): the share of requests the new
    /// release gets before it takes them all. Empty: a plain switch.
    pub canary: Vec<String>,
    /// How long each canary step lasts (analysis runs meanwhile).
    pub canary_pause: Option<HumanDuration>,
    /// Build-state paths (`["target", "node_modules"]`, relative to the
    /// repo root) a new release copies from the newest build with the same
    /// lockfiles before `build` (embedded platform).
    pub cache: Vec<String>,
    /// What a production deploy of a previewed tree takes from the tested
    /// build (default: every untracked or ignored file of its worktree).
    pub artifacts: Vec<String>,
    /// Files that key the cache besides the known lockfiles.
    pub cache_key: Vec<String>,
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

impl DeployConfig {
    /// The canary steps as percentages (`"10%"` → 10.0), each above the one
    /// before and below 100 (the last step, promotion, is implied).
    pub fn canary_steps(&self) -> Result<Vec<f64>, String> {
        let mut out: Vec<f64> = Vec::new();
        for step in &self.canary {
            let n = step
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|n| n.is_finite() && *n > 0.0 && *n < 100.0)
                .ok_or_else(|| {
                    format!(
                        "[deploy] canary step `{step}` must be a percentage between 0% and 100%, e.g. \"10%\""
                    )
                })?;
            if out.last().is_some_and(|last| n <= *last) {
                return Err(format!(
                    "[deploy] canary steps must grow: `{step}` comes after {}%",
                    out.last().copied().unwrap_or_default()
                ));
            }
            out.push(n);
        }
        Ok(out)
    }

    /// `cache`, `artifacts` and `cache_key` name paths inside the
    /// repository: relative, without `..`, not `.git`.
    pub fn check_build_paths(&self) -> Result<(), String> {
        for (key, list) in [
            ("cache", &self.cache),
            ("artifacts", &self.artifacts),
            ("cache_key", &self.cache_key),
        ] {
            for p in list {
                let path = std::path::Path::new(p);
                let t = p.trim_end_matches('/');
                let bad = t.is_empty()
                    || t == "."
                    || path.is_absolute()
                    || path.components().any(|c| {
                        !matches!(
                            c,
                            std::path::Component::Normal(_) | std::path::Component::CurDir
                        )
                    })
                    || path
                        .components()
                        .next()
                        .is_some_and(|c| c.as_os_str() == ".git");
                if bad {
                    return Err(format!(
                        "[deploy] {key}: `{p}` must be a path inside the repository, relative to its root (e.g. \"target\"), without `..` and not `.git`"
                    ));
                }
            }
        }
        Ok(())
    }
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
            canary: Vec::new(),
            canary_pause: None,
            cache: Vec::new(),
            artifacts: Vec::new(),
            cache_key: Vec::new(),
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
        // The same text parsed as a table: which keys the file states.
        let table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate_stated(&table)?;
        Ok(cfg)
    }

    /// Refuses a policy the file states that its checks cannot meet.
    ///
    /// Why only what the file states: a file that writes
    /// `area_checks = true` promises that high hotfixes are tested on the
    /// affected areas, and a push that ran the smoke checks alone would
    /// look like that promise kept. The built-in policy asks for them too,
    /// but a config that never wrote a `[policy.high]` made no promise;
    /// `push` then says that no area check ran.
    fn validate_stated(&self, table: &toml::Table) -> Result<(), ConfigError> {
        let stated = |sev: &str, key: &str| {
            table
                .get("policy")
                .and_then(|p| p.get(sev))
                .and_then(|t| t.get(key))
                .and_then(toml::Value::as_bool)
                == Some(true)
        };
        for sev in ["critical", "high"] {
            if stated(sev, "area_checks") && self.area_checks.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "policy.{sev}.area_checks = true but no [[area_checks]] is configured: \
                     list the affected areas ([[area_checks]] with name, path and status), \
                     or set area_checks = false under [policy.{sev}]"
                )));
            }
            if stated(sev, "smoke") && self.smoke.is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "policy.{sev}.smoke = true but no [[smoke]] is configured: \
                     add one ([[smoke]] with path = \"/health\"), or set smoke = false under [policy.{sev}]"
                )));
            }
        }
        Ok(())
    }

    /// What this config can be used with but probably should not: printed
    /// as warnings by the commands that act, not errors, because the team
    /// may fill them in later and reading the log must work meanwhile.
    ///
    /// A policy asking for more approvals than `[team]` has people for:
    /// nobody could approve such a hotfix, and the team would find out at
    /// 3 a.m. when `ship` is refused.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = vec![];
        let leads = self.team.tech_leads.len();
        let approvers = {
            let mut all: Vec<String> = self
                .team
                .tech_leads
                .iter()
                .chain(&self.team.reviewers)
                .map(|p| p.trim().to_ascii_lowercase())
                .collect();
            all.sort();
            all.dedup();
            all.len()
        };
        let people = |n: usize| match n {
            0 => "nobody".to_string(),
            1 => "1 person".to_string(),
            n => format!("{n} people"),
        };
        for (sev, p) in [
            ("critical", &self.policy.critical),
            ("high", &self.policy.high),
        ] {
            let wanted = (p.tech_leads + p.reviewers) as usize;
            if (p.tech_leads as usize) > leads {
                out.push(format!(
                    "policy.{sev}.tech_leads = {} but [team] tech_leads names {}: a {sev} hotfix could not be approved; add them to [team] tech_leads",
                    p.tech_leads,
                    people(leads)
                ));
            } else if wanted > approvers {
                out.push(format!(
                    "[policy.{sev}] asks for {wanted} approvals ({} from tech leads, {} from reviewers) but [team] names {} who may approve: a {sev} hotfix could not be approved; add reviewers to [team]",
                    p.tech_leads,
                    p.reviewers,
                    people(approvers)
                ));
            }
        }
        out
    }

    /// The top-level sections in which two configs differ (`[team]`,
    /// `[[area_checks]]`…), whatever their comments and layout; empty when
    /// they mean the same.
    pub fn differing_sections(&self, other: &Config) -> Vec<&'static str> {
        let mut out = vec![];
        let mut differ = |same: bool, name: &'static str| {
            if !same {
                out.push(name);
            }
        };
        differ(self.git == other.git, "[git]");
        differ(self.team == other.team, "[team]");
        differ(self.policy == other.policy, "[policy]");
        differ(self.forge == other.forge, "[forge]");
        differ(self.deploy == other.deploy, "[deploy]");
        differ(self.smoke == other.smoke, "[[smoke]]");
        differ(self.area_checks == other.area_checks, "[[area_checks]]");
        differ(self.notify == other.notify, "[notify]");
        differ(self.server == other.server, "[server]");
        differ(self.alerts == other.alerts, "[alerts]");
        differ(self.status == other.status, "[status]");
        differ(self.analysis == other.analysis, "[[analysis]]");
        out
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
        for (sev, p) in [
            ("critical", &self.policy.critical),
            ("high", &self.policy.high),
        ] {
            // The checks run against the preview: without one they never
            // pass, and every hotfix of this severity would be refused at ship.
            if !p.preview && (p.smoke || p.area_checks) {
                let key = if p.smoke { "smoke" } else { "area_checks" };
                return inv(format!(
                    "policy.{sev}.{key} = true but policy.{sev}.preview = false: the checks run against the preview, so none could ever pass; set preview = true, or {key} = false"
                ));
            }
        }
        if self.deploy.unhealthy_after == 0 {
            return inv("[deploy] unhealthy_after must be at least 1".into());
        }
        self.deploy.canary_steps().map_err(ConfigError::Invalid)?;
        self.deploy
            .check_build_paths()
            .map_err(ConfigError::Invalid)?;
        self.server.validate()?;
        self.status.validate()?;
        crate::analysis::validate_names(&self.analysis).map_err(ConfigError::Invalid)?;
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

    /// The template with its commented `[[area_checks]]` example taken in,
    /// as a team does once it names its affected areas.
    fn template_with_area_checks() -> String {
        uncomment(INIT_TEMPLATE, "# [[area_checks]]")
    }

    /// `text` with the commented example that starts at `marker` taken in
    /// (the `# ` taken off its lines, up to the first blank line).
    fn uncomment(text: &str, marker: &str) -> String {
        let start = text
            .find(marker)
            .expect("the template has the commented example");
        let rest = &text[start..];
        // The example ends at the first blank line.
        let end = rest.find("\n\n").map_or(rest.len(), |i| i + 1);
        let mut out = text[..start].to_string();
        for l in rest[..end].lines() {
            out.push_str(l.strip_prefix("# ").unwrap_or(l));
            out.push('\n');
        }
        out.push_str(&rest[end..]);
        out
    }

    #[test]
    fn deploy_cache_artifacts_and_cache_key_are_paths_inside_the_repo() {
        let ok: Config = toml::from_str(
            "[deploy]\nprovider = \"local\"\nrun = \"./app\"\ncache = [\"target\", \"web/node_modules\"]\nartifacts = [\"target/release/app\"]\ncache_key = [\"rust-toolchain.toml\"]\n",
        )
        .expect("parses");
        ok.validate().expect("valid");
        assert_eq!(ok.deploy.cache, vec!["target", "web/node_modules"]);
        assert_eq!(ok.deploy.artifacts, vec!["target/release/app"]);
        assert_eq!(ok.deploy.cache_key, vec!["rust-toolchain.toml"]);
        for bad in ["/abs", "../up", ".git/x", "", "a/../../b"] {
            let cfg: Config = toml::from_str(&format!(
                "[deploy]\nprovider = \"local\"\nrun = \"./app\"\ncache = [\"{bad}\"]\n"
            ))
            .expect("parses");
            let e = cfg.validate().expect_err(bad).to_string();
            assert!(
                e.contains("[deploy] cache") && e.contains(bad),
                "{bad}: {e}"
            );
        }
        let e = toml::from_str::<Config>("[deploy]\ncache = \"target\"\n");
        assert!(e.is_err(), "a string is not a list");
    }

    #[test]
    fn the_init_templates_analysis_and_canary_examples_parse_as_written() {
        let with = uncomment(&template_with_area_checks(), "# [[analysis]]");
        let with = with
            .replace("# canary = ", "canary = ")
            .replace("# canary_pause = ", "canary_pause = ")
            .replace("# cache = ", "cache = ")
            .replace("# artifacts = ", "artifacts = ");
        let cfg = Config::parse(&with).expect("the examples parse");
        assert_eq!(cfg.deploy.cache, vec!["target".to_string()]);
        assert_eq!(cfg.deploy.artifacts, vec!["target/release/app".to_string()]);
        assert_eq!(cfg.analysis.len(), 1);
        assert_eq!(cfg.analysis[0].name, "5xx ratio");
        assert_eq!(cfg.deploy.canary_steps().map_or(0, |s| s.len()), 2);
    }

    #[test]
    fn the_init_template_parses_to_the_defaults_once_its_area_checks_are_named() {
        let cfg = Config::parse(&template_with_area_checks()).expect("template parses");
        let d = Config::default();
        assert_eq!(cfg.policy, d.policy);
        assert_eq!(cfg.git, d.git);
        assert_eq!(cfg.deploy.watch, d.deploy.watch);
        assert_eq!(cfg.smoke.len(), 1);
        assert_eq!(cfg.area_checks.len(), 1);
        // As written, it says what is missing instead of passing silently.
        let e = Config::parse(INIT_TEMPLATE).expect_err("no area checks yet");
        assert!(
            e.to_string()
                .contains("policy.high.area_checks = true but no [[area_checks]] is configured"),
            "{e}"
        );
    }

    #[test]
    fn a_stated_policy_that_its_checks_cannot_meet_is_an_error_naming_the_key() {
        let high = |area: bool, smoke: bool, preview: bool| {
            format!(
                "[policy.high]\nresponse = \"1h\"\ntech_leads = 1\nreviewers = 1\npreview = {preview}\nsmoke = {smoke}\narea_checks = {area}\n"
            )
        };
        let area = "[[area_checks]]\nname = \"billing\"\npath = \"/billing\"\n";
        let smoke = "[[smoke]]\npath = \"/health\"\n";
        for (text, says) in [
            (
                format!("{}{smoke}", high(true, true, true)),
                "policy.high.area_checks = true but no [[area_checks]] is configured",
            ),
            (
                format!("{}{area}", high(true, true, true)),
                "policy.high.smoke = true but no [[smoke]] is configured",
            ),
            (
                format!("{}{area}{smoke}", high(true, true, false)),
                "policy.high.smoke = true but policy.high.preview = false",
            ),
            (
                format!("{}{area}", high(true, false, false)),
                "policy.high.area_checks = true but policy.high.preview = false",
            ),
        ] {
            let e = Config::parse(&text).expect_err(&text).to_string();
            assert!(e.contains(says), "{text}\n=> {e}");
        }
        assert!(Config::parse(&format!("{}{area}{smoke}", high(true, true, true))).is_ok());
        assert!(Config::parse(&format!("{}{smoke}", high(false, true, true))).is_ok());
        assert!(Config::parse(&high(false, false, false)).is_ok());
        // The built-in policy (no [policy.high] written) promises nothing the
        // file could break: a minimal config stays usable.
        assert!(Config::parse("[team]\ntech_leads = [\"lead\"]\n").is_ok());
    }

    #[test]
    fn approvals_the_team_cannot_give_are_warnings() {
        let cfg = Config::parse("").expect("defaults");
        let w = cfg.warnings();
        assert!(
            w.iter()
                .any(|w| w
                    .contains("policy.critical.tech_leads = 1 but [team] tech_leads names nobody")),
            "{w:?}"
        );
        let cfg = Config::parse("[team]\ntech_leads = [\"lead\"]\n").expect("one lead");
        let w = cfg.warnings();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("[policy.high] asks for 2 approvals (1 from tech leads, 1 from reviewers) but [team] names 1 person who may approve"), "{w:?}");
        let cfg = Config::parse("[team]\ntech_leads = [\"lead\"]\nreviewers = [\"LEAD\"]\n")
            .expect("the same person twice");
        assert_eq!(cfg.warnings().len(), 1, "one person is one approver");
        let cfg = Config::parse("[team]\ntech_leads = [\"lead\", \"lead2\"]\n").expect("two leads");
        assert!(
            cfg.warnings().is_empty(),
            "a tech lead may fill the reviewer slot"
        );
    }

    #[test]
    fn differing_sections_ignore_comments_and_layout() {
        let a = Config::parse("[team]\ntech_leads = [\"lead\"]\n").expect("a");
        let b = Config::parse("# the team\n[team]\ntech_leads = [ \"lead\" ]\n").expect("b");
        assert!(a.differing_sections(&b).is_empty());
        let c = Config::parse("[team]\ntech_leads = [\"other\"]\n[[area_checks]]\npath = \"/x\"\n")
            .expect("c");
        assert_eq!(a.differing_sections(&c), vec!["[team]", "[[area_checks]]"]);
        let mut d = a.clone();
        d.source = ConfigSource::Revision("origin/main".into());
        assert!(
            a.differing_sections(&d).is_empty(),
            "where it was read is not a setting"
        );
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

    #[test]
    fn analysis_tables_parse_with_defaults() {
        use crate::analysis::{Baseline, Inconclusive, PlatformMetric, Source};
        let cfg = Config::parse(
            r#"
[[analysis]]
name = "5xx ratio"
provider = "prometheus"
address = "http://127.0.0.1:9090/"
query = 'sum(rate(http_requests_total{code=~"5.."}[1m]))'
max = 0.01
baseline = "before"
max_increase = "50%"
interval = "2s"
failure_limit = 3
inconclusive = "fail"

[[analysis]]
name = "checkout errors"
provider = "platform"
metric = "error_ratio"
route = "/checkout"
baseline = "previous"
max_increase = "1.5x"

[[analysis]]
name = "queue depth"
provider = "command"
command = "./scripts/measure.sh 'queue depth'"
min = 0

[[analysis]]
name = "orders"
provider = "http-json"
url = "http://127.0.0.1:1/stats"
pointer = "/data/orders"
min = 1
"#,
        )
        .expect("valid analyses");
        assert_eq!(cfg.analysis.len(), 4);
        let a = &cfg.analysis[0];
        assert_eq!(
            a.source,
            Source::Prometheus {
                address: "http://127.0.0.1:9090".into(),
                query: r#"sum(rate(http_requests_total{code=~"5.."}[1m]))"#.into()
            }
        );
        assert_eq!(
            (
                a.max,
                a.baseline,
                a.max_increase,
                a.failure_limit,
                a.inconclusive
            ),
            (
                Some(0.01),
                Some(Baseline::Before),
                Some(0.5),
                3,
                Inconclusive::Fail
            )
        );
        assert_eq!(a.interval, std::time::Duration::from_secs(2));
        let p = &cfg.analysis[1];
        assert_eq!(
            p.source,
            Source::Platform {
                metric: PlatformMetric::ErrorRatio,
                route: Some("/checkout".into())
            }
        );
        // The defaults: every 5s, 2 consecutive failures, pause on no data.
        assert_eq!(
            (p.interval, p.failure_limit, p.inconclusive, p.max_increase),
            (
                std::time::Duration::from_secs(5),
                2,
                Inconclusive::Pause,
                Some(0.5)
            )
        );
        assert_eq!(p.threshold(), "<= previous + 50%");
        assert_eq!(
            cfg.analysis[3].query(),
            "http://127.0.0.1:1/stats /data/orders"
        );
        // Written back and read again, it means the same.
        let again: Config =
            toml::from_str(&toml::to_string(&cfg).expect("serialises")).expect("reads back");
        assert_eq!(again.analysis, cfg.analysis);
        assert_eq!(Config::default().analysis, vec![]);
        assert!(
            cfg.differing_sections(&Config::default())
                .contains(&"[[analysis]]")
        );
    }

    #[test]
    fn a_bad_analysis_is_an_error_naming_the_key() {
        let prom = "name = \"a\"\nprovider = \"prometheus\"\naddress = \"http://127.0.0.1:9090\"\nquery = \"up\"\n";
        for (body, says) in [
            (
                "name = \"a\"\nprovider = \"datadog\"\nmax = 1\n",
                "provider `datadog` is not known",
            ),
            (
                "name = \"a\"\nprovider = \"prometheus\"\nquery = \"up\"\nmax = 1\n",
                "provider prometheus needs `address`",
            ),
            (
                "name = \"a\"\nprovider = \"prometheus\"\naddress = \"http://x\"\nmax = 1\n",
                "provider prometheus needs `query`",
            ),
            (
                "name = \"a\"\nprovider = \"prometheus\"\naddress = \"127.0.0.1:9090\"\nquery = \"up\"\nmax = 1\n",
                "address `127.0.0.1:9090` must be an http:// or https:// URL",
            ),
            (
                "name = \"a\"\nprovider = \"http-json\"\npointer = \"/v\"\nmax = 1\n",
                "provider http-json needs `url`",
            ),
            (
                "name = \"a\"\nprovider = \"http-json\"\nurl = \"http://x\"\nmax = 1\n",
                "provider http-json needs `pointer`",
            ),
            (
                "name = \"a\"\nprovider = \"http-json\"\nurl = \"http://x\"\npointer = \"v\"\nmax = 1\n",
                "pointer `v` must start with `/`",
            ),
            (
                "name = \"a\"\nprovider = \"command\"\nmax = 1\n",
                "provider command needs `command`",
            ),
            (
                "name = \"a\"\nprovider = \"command\"\ncommand = \"./m 'x\"\nmax = 1\n",
                "unclosed quote",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmetric = \"errors\"\nmax = 1\n",
                "metric `errors` is not known: use error_ratio",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmax = 1\n",
                "provider platform needs `metric`",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmetric = \"error_ratio\"\nquery = \"up\"\nmax = 1\n",
                "`query` is not a setting of the platform provider",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmetric = \"error_ratio\"\nroute = \"x\"\nmax = 1\n",
                "route `x` must be a path",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmetric = \"latency_p99\"\nroute = \"/x\"\nmax = 1\n",
                "the platform keeps no latency per route",
            ),
            (
                prom,
                "no threshold: set max and/or min, or baseline with max_increase",
            ),
            (
                &format!("{prom}max = 1\nfailure_limit = 0\n"),
                "failure_limit must be at least 1",
            ),
            (
                &format!("{prom}max = 1\nfailure_limit = 1001\n"),
                "failure_limit = 1001 is out of range: use 1 to 1000",
            ),
            (
                &format!("{prom}baseline = \"previous\"\nmax_increase = \"50%\"\n"),
                "baseline = \"previous\" needs provider platform",
            ),
            (
                "name = \"a\"\nprovider = \"platform\"\nmetric = \"error_ratio\"\nbaseline = \"before\"\nmax_increase = \"50%\"\n",
                "baseline = \"before\" needs provider prometheus",
            ),
            (
                &format!("{prom}baseline = \"before\"\n"),
                "baseline needs max_increase",
            ),
            (
                &format!("{prom}max_increase = \"50%\"\n"),
                "max_increase needs baseline",
            ),
            (
                &format!("{prom}baseline = \"before\"\nmax_increase = \"lots\"\n"),
                "max_increase `lots` is not an increase",
            ),
            (
                &format!("{prom}baseline = \"yesterday\"\nmax_increase = \"50%\"\n"),
                "baseline `yesterday` is not known",
            ),
            (
                &format!("{prom}max = 1\ninconclusive = \"ignore\"\n"),
                "inconclusive `ignore` is not known",
            ),
            (&format!("{prom}max = 1\nmin = 2\n"), "min 2 is above max 1"),
            (
                &format!("{prom}max = 1\ninterval = \"10ms\"\n"),
                "interval 10ms is too short",
            ),
            (
                &format!("{prom}max = 1\ninterval = \"often\"\n"),
                "`often` is not a duration",
            ),
            (
                &format!("{prom}max = 1\nthreshold = 2\n"),
                "unknown field `threshold`",
            ),
            (
                "name = \" \"\nprovider = \"prometheus\"\n",
                "[[analysis]] name is empty",
            ),
        ] {
            let text = format!("[[analysis]]\n{body}");
            let e = Config::parse(&text).expect_err(&text).to_string();
            assert!(e.contains(says), "{text}\n=> {e}");
            if !says.contains("name is empty")
                && !says.contains("unknown field")
                && !says.contains("duration")
            {
                assert!(e.contains("[[analysis]] `a`"), "names the analysis: {e}");
            }
        }
        let twice = format!(
            "[[analysis]]\n{prom}max = 1\n[[analysis]]\n{}max = 1\n",
            prom.replace("\"a\"", "\"A\"")
        );
        let e = Config::parse(&twice).expect_err("same name").to_string();
        assert!(e.contains("[[analysis]] name `A` is used twice"), "{e}");
    }
}
