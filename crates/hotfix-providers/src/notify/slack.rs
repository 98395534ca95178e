//! Slack: the `#dev-alerts` post of the Communication Protocol.
//!
//! Two ways in, picked by which secret is given:
//! * **bot token** (`SLACK_BOT_TOKEN`, `xoxb-…`, scope `chat:write`): one living
//!   message per incident. The first step posts it (`chat.postMessage`) and
//!   its channel id and `ts` are remembered in the incident's memory; every
//!   later step edits it to the current state (`chat.update`) and adds the
//!   step as a thread reply (`thread_ts`). Steps people must not miss
//!   (rollback, unhealthy production, a new attempt) are broadcast to the
//!   channel too. This is what incident bots (Dispatch, OnCall) do.
//! * **incoming webhook** (`HOTFIX_SLACK_WEBHOOK_URL`): webhooks can neither
//!   edit nor thread (they return no `ts`), so each step is a new message.
//!
//! The Web API answers HTTP 200 with `{"ok": false, "error": …}` on errors, so
//! `ok` is checked, not the status; errors name what to fix. A 429 is an
//! error carrying the `Retry-After` hint: the outbox retries with backoff, and
//! a notifier must not sleep in someone's command.
//!
//! Security incidents ("Do NOT discuss details publicly"): the message text
//! is already redacted by the workflow; the blocks never carry the title or
//! the PR link either.
//!
//! Neither the token nor the webhook URL (itself a credential) ever appears
//! in an error or a `Debug` output.

use std::collections::BTreeMap;
use std::time::Duration;

use hotfix_core::duration::HumanDuration;
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http;

/// The environment variable the binary reads the bot token from.
pub const BOT_TOKEN_ENV: &str = hotfix_core::env_vars::SLACK_BOT_TOKEN;
/// The environment variable the binary reads the incoming-webhook URL from.
pub const WEBHOOK_URL_ENV: &str = hotfix_core::env_vars::HOTFIX_SLACK_WEBHOOK_URL;
/// Memory key of the incident's root message: `"<channel id> <ts>"`, one
/// value so that it is written in one go.
pub const MEMORY_ROOT: &str = "slack.root";

/// The channel used when neither `[notify.slack] channel` nor the message
/// names one.
pub const DEFAULT_CHANNEL: &str = "#dev-alerts";

/// `[notify.slack]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Channel name or id for the bot (ignored by incoming webhooks, which
    /// are bound to one channel). Default: `[notify] channel`, which itself
    /// defaults to `#dev-alerts`. An id (`C…`) avoids a rename breaking it.
    #[serde(default)]
    pub channel: Option<String>,
    /// The Web API base, default `https://slack.com/api` (tests point it at a
    /// local fake).
    #[serde(default = "default_api_url")]
    pub api_url: String,
    /// Team identity (as in `[team]`) → Slack user id (`U…`), so that the
    /// tech leads are really pinged on declare and rollback. A value that
    /// starts with `<` is used as is (e.g. `<!subteam^S123>`). Unmapped
    /// identities are written as plain text.
    #[serde(default)]
    pub mentions: BTreeMap<String, String>,
    /// Per request (default 5s); a bot step makes at most two requests.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_api_url() -> String {
    "https://slack.com/api".into()
}

fn default_timeout() -> HumanDuration {
    HumanDuration::secs(5)
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            channel: None,
            api_url: default_api_url(),
            mentions: BTreeMap::new(),
            timeout: default_timeout(),
        }
    }
}

impl SlackConfig {
    /// Validates the `[notify.slack]` table; unknown keys are errors.
    pub fn from_table(t: &toml::Table) -> Result<SlackConfig, String> {
        let c: SlackConfig = t
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| format!("[notify.slack]: {}", e.message()))?;
        http::check_url("[notify.slack] api_url", &c.api_url)?;
        if let Some(ch) = &c.channel
            && ch.trim().is_empty()
        {
            return Err("[notify.slack] channel is empty".into());
        }
        Ok(c)
    }
}

enum Mode {
    Webhook(String),
    Bot(String),
}

/// Posts the workflow's steps to Slack.
pub struct SlackNotifier {
    mode: Mode,
    config: SlackConfig,
    agent: ureq::Agent,
}

impl std::fmt::Debug for SlackNotifier {
    /// Never shows the token or the webhook URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Webhook(_) => "webhook",
            Mode::Bot(_) => "bot",
        };
        f.debug_struct("SlackNotifier")
            .field("mode", &mode)
            .field("channel", &self.config.channel)
            .finish_non_exhaustive()
    }
}

/// A Web API call that did not succeed.
enum ApiError {
    /// `{"ok": false, "error": code}`.
    Slack {
        code: String,
        needed: Option<String>,
    },
    /// Anything else, already described.
    Other(String),
}

impl SlackNotifier {
    /// Incoming-webhook mode; `url` is `HOTFIX_SLACK_WEBHOOK_URL`.
    pub fn webhook(config: SlackConfig, url: String) -> Result<SlackNotifier, String> {
        http::check_url(WEBHOOK_URL_ENV, &url)?;
        Ok(SlackNotifier::build(
            Mode::Webhook(url.trim().to_string()),
            config,
        ))
    }

    /// Bot mode; `token` is `SLACK_BOT_TOKEN` (`xoxb-…`).
    pub fn bot(config: SlackConfig, token: String) -> Result<SlackNotifier, String> {
        let t = token.trim();
        if !t.starts_with("xox") || t.chars().any(char::is_whitespace) {
            return Err(format!(
                "{BOT_TOKEN_ENV} does not look like a Slack token (expected xoxb-…; value not shown)"
            ));
        }
        Ok(SlackNotifier::build(Mode::Bot(t.to_string()), config))
    }

    /// What the binary calls with the environment's values: the bot token
    /// wins (it can edit and thread), else the webhook; neither is an error
    /// since `[notify.slack]` asked for Slack.
    pub fn from_secrets(
        config: SlackConfig,
        bot_token: Option<String>,
        webhook_url: Option<String>,
    ) -> Result<SlackNotifier, String> {
        match (
            bot_token.filter(|t| !t.trim().is_empty()),
            webhook_url.filter(|u| !u.trim().is_empty()),
        ) {
            (Some(t), _) => SlackNotifier::bot(config, t),
            (None, Some(u)) => SlackNotifier::webhook(config, u),
            (None, None) => Err(format!(
                "[notify.slack] is configured but neither {BOT_TOKEN_ENV} nor {WEBHOOK_URL_ENV} is set"
            )),
        }
    }

    fn build(mode: Mode, config: SlackConfig) -> SlackNotifier {
        let agent = http::agent(Duration::max(config.timeout.0, Duration::from_millis(1)));
        SlackNotifier {
            mode,
            config,
            agent,
        }
    }

    fn err(&self, message: String) -> NotifyError {
        let secret = match &self.mode {
            Mode::Webhook(u) => u.as_str(),
            Mode::Bot(t) => t.as_str(),
        };
        NotifyError {
            notifier: "slack".into(),
            message: http::scrub(&message, &[secret]),
        }
    }

    fn channel<'a>(&'a self, msg: &'a Message) -> &'a str {
        match &self.config.channel {
            Some(c) => c.trim(),
            None if !msg.channel.trim().is_empty() => msg.channel.trim(),
            None => DEFAULT_CHANNEL,
        }
    }

    // ------------------------------------------------------------ rendering

    /// `cc <@U1> <@U2>` for the people the message mentions.
    fn mention_line(&self, msg: &Message) -> Option<String> {
        if msg.mentions.is_empty() {
            return None;
        }
        let people: Vec<String> = msg
            .mentions
            .iter()
            .map(|who| {
                let id = self
                    .config
                    .mentions
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(who.trim()))
                    .map(|(_, v)| v.trim());
                match id {
                    Some(v) if v.starts_with('<') => v.to_string(),
                    Some(v) if http::is_plain_id(v) => format!("<@{v}>"),
                    _ => escape(who),
                }
            })
            .collect();
        Some(format!("cc {}", people.join(" ")))
    }

    /// The notification / fallback text: the step's text plus the mentions.
    fn text(&self, msg: &Message) -> String {
        let mut t = escape(&msg.text);
        if let Some(m) = self.mention_line(msg) {
            t.push(' ');
            t.push_str(&m);
        }
        t
    }

    /// Block Kit: header (incident, severity, title), the step, fields
    /// (severity, status), context (incident, time, PR link). For security
    /// incidents no title and no PR link.
    fn blocks(&self, msg: &Message) -> Value {
        let sev = msg.severity.to_uppercase();
        let header = if msg.security || msg.title.trim().is_empty() {
            if msg.security {
                format!("{} · {sev} · security incident", msg.incident)
            } else {
                format!("{} · {sev}", msg.incident)
            }
        } else {
            format!(
                "{} · {sev} · {}",
                msg.incident,
                hotfix_core::display::line(msg.title.trim())
            )
        };
        let mut context = vec![json!({
            "type": "mrkdwn",
            "text": format!("hotfix · {} · {}", msg.incident, msg.at.strftime("%Y-%m-%d %H:%M UTC")),
        })];
        if !msg.security
            && let Some(url) = msg.pr_url.as_deref().filter(|u| is_linkable(u))
        {
            context.push(json!({"type": "mrkdwn", "text": format!("<{url}|Pull request>")}));
        }
        let mut fields = vec![
            json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", escape(&sev))}),
            json!({"type": "mrkdwn", "text": format!("*Status*\n{}", state_label(&msg.step))}),
        ];
        if msg.customer_facing {
            fields.push(json!({"type": "mrkdwn", "text": "*Customer-facing*\nyes (status page)"}));
        }
        json!([
            {"type": "header", "text": {"type": "plain_text", "text": truncate(&header, 150), "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(&self.text(msg), 2900)}},
            {"type": "section", "fields": fields},
            {"type": "context", "elements": context},
        ])
    }

    // ------------------------------------------------------------ webhook

    fn send_webhook(&self, url: &str, msg: &Message) -> Result<(), NotifyError> {
        let body = json!({
            "text": self.text(msg),
            "blocks": self.blocks(msg),
            "unfurl_links": false,
        });
        let reply = http::send(
            &self.agent,
            http::Method::Post,
            url,
            &[("Content-Type", "application/json; charset=utf-8")],
            body.to_string().as_bytes(),
        )
        .map_err(|e| self.err(format!("incoming webhook: {e}")))?;
        if reply.is_success() {
            return Ok(());
        }
        // Incoming webhooks answer errors as a plain-text code.
        let code = http::snippet(&reply.body, 80);
        let why = match (reply.status, code.as_str()) {
            (429, _) => http::retry_hint(reply.retry_after.as_deref()),
            (
                404 | 410 | 403,
                "no_service" | "no_active_hooks" | "channel_not_found" | "channel_is_archived",
            ) => format!(
                "the incoming webhook no longer works ({}, {code}): create a new one for the channel and set {WEBHOOK_URL_ENV}",
                reply.status
            ),
            (403, _) => format!(
                "Slack refused the post (403 {code}): posting may be restricted in that channel"
            ),
            (400, _) => format!("Slack rejected the message (400 {code})"),
            (s, _) if s >= 500 => format!("Slack answered {s} ({code}); will retry"),
            (s, _) => format!("Slack answered {s} ({code})"),
        };
        Err(self.err(format!("incoming webhook: {why}")))
    }

    // ------------------------------------------------------------ bot

    /// One Web API call; `Ok` only with `"ok": true`.
    fn api(&self, token: &str, method: &str, args: &Value) -> Result<Value, ApiError> {
        let auth = format!("Bearer {token}");
        let url = http::join(&self.config.api_url, method);
        let reply = http::send(
            &self.agent,
            http::Method::Post,
            &url,
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json; charset=utf-8"),
            ],
            args.to_string().as_bytes(),
        )
        .map_err(|e| ApiError::Other(format!("{method}: {e}")))?;
        if reply.status == 429 {
            return Err(ApiError::Other(format!(
                "{method}: {}",
                http::retry_hint(reply.retry_after.as_deref())
            )));
        }
        if reply.status != 200 {
            let more = if reply.status >= 500 {
                "; will retry"
            } else {
                ""
            };
            return Err(ApiError::Other(format!(
                "{method}: Slack answered HTTP {}{more}: {}",
                reply.status,
                http::snippet(&reply.body, 120)
            )));
        }
        let v: Value = serde_json::from_str(&reply.body).map_err(|_| {
            ApiError::Other(format!(
                "{method}: Slack's answer is not JSON: {}",
                http::snippet(&reply.body, 120)
            ))
        })?;
        match v.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(v),
            Some(false) => {
                let code = v
                    .get("error")
                    .and_then(Value::as_str)
                    .map(|c| http::snippet(c, 60))
                    .unwrap_or_else(|| "unknown_error".into());
                let needed = v
                    .get("needed")
                    .and_then(Value::as_str)
                    .map(|c| http::snippet(c, 60));
                Err(ApiError::Slack { code, needed })
            }
            None => Err(ApiError::Other(format!(
                "{method}: Slack's answer has no `ok` field: {}",
                http::snippet(&reply.body, 120)
            ))),
        }
    }

    /// Says what to fix for a Web API error code.
    fn describe(&self, method: &str, channel: &str, e: ApiError) -> String {
        let (code, needed) = match e {
            ApiError::Other(m) => return m,
            ApiError::Slack { code, needed } => (code, needed),
        };
        let ch = escape(channel);
        let fix = match code.as_str() {
            "invalid_auth" | "not_authed" | "token_revoked" | "token_expired"
            | "account_inactive" => {
                format!("Slack refused the bot token: set a valid {BOT_TOKEN_ENV} (xoxb-…)")
            }
            "channel_not_found" => format!(
                "channel `{ch}` not found: set [notify.slack] channel to a channel the bot can see (a `C…` id is safest)"
            ),
            "not_in_channel" => format!(
                "the bot is not in `{ch}`: invite it (`/invite @your-bot`) or give it the chat:write.public scope"
            ),
            "is_archived" => {
                format!("channel `{ch}` is archived: unarchive it or pick another channel")
            }
            "missing_scope" => format!(
                "the bot token lacks a scope{}: add it in the Slack app settings and reinstall",
                needed.map(|n| format!(" ({n})")).unwrap_or_default()
            ),
            "ratelimited" | "rate_limited" => "rate limited; will retry later".into(),
            "restricted_action" => format!("posting to `{ch}` is restricted for the bot"),
            _ => "Slack refused the call".into(),
        };
        format!("{method}: {fix} ({code})")
    }

    /// Posts the incident's root message and remembers where it is.
    fn post_root(
        &self,
        token: &str,
        msg: &Message,
        channel: &str,
        memory: &dyn Memory,
    ) -> Result<(), NotifyError> {
        let args = json!({
            "channel": channel,
            "text": self.text(msg),
            "blocks": self.blocks(msg),
            "unfurl_links": false,
        });
        let v = self
            .api(token, "chat.postMessage", &args)
            .map_err(|e| self.err(self.describe("chat.postMessage", channel, e)))?;
        let ts = v
            .get("ts")
            .and_then(Value::as_str)
            .filter(|t| http::is_plain_id(t));
        let ch = v
            .get("channel")
            .and_then(Value::as_str)
            .filter(|c| http::is_plain_id(c));
        let (Some(ts), Some(ch)) = (ts, ch) else {
            // Posted, but without a ts there is nothing to edit later; the
            // next step posts a fresh root rather than failing forever.
            return Err(self.err(
                "chat.postMessage: Slack's answer has no usable `ts`/`channel`; the message may have been posted".into(),
            ));
        };
        memory.set(msg.incident, MEMORY_ROOT, &format!("{ch} {ts}")).map_err(|e| {
            self.err(format!(
                "posted the incident's message but could not remember it ({e}); later steps will start a new message"
            ))
        })
    }

    fn send_bot(&self, token: &str, msg: &Message, memory: &dyn Memory) -> Result<(), NotifyError> {
        let channel = self.channel(msg);
        let Some((root_ch, root_ts)) = root(memory, msg.incident) else {
            // The incident's first message (or the first since memory was
            // lost, or since Slack was configured): it shows the current
            // state and becomes the root.
            return self.post_root(token, msg, channel, memory);
        };
        let update = json!({
            "channel": root_ch,
            "ts": root_ts,
            "text": self.text(msg),
            "blocks": self.blocks(msg),
        });
        match self.api(token, "chat.update", &update) {
            Ok(_) => {}
            Err(ApiError::Slack { code, .. })
                if matches!(
                    code.as_str(),
                    "message_not_found" | "cant_update_message" | "edit_window_closed"
                ) =>
            {
                // Someone deleted the root, or it can no longer be edited:
                // this step starts a new root with the current state.
                return self.post_root(token, msg, channel, memory);
            }
            Err(e) => return Err(self.err(self.describe("chat.update", &root_ch, e))),
        }
        if msg.step == "declared" {
            // A retry of the first message whose root is already posted:
            // the update above was all that was missing.
            return Ok(());
        }
        let reply = json!({
            "channel": root_ch,
            "thread_ts": root_ts,
            "text": self.text(msg),
            "reply_broadcast": broadcast(&msg.step),
            "unfurl_links": false,
        });
        self.api(token, "chat.postMessage", &reply)
            .map(|_| ())
            .map_err(|e| self.err(self.describe("chat.postMessage (thread reply)", &root_ch, e)))
    }
}

impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        "slack"
    }

    fn send(&self, _outbox_id: i64, msg: &Message, memory: &dyn Memory) -> Result<(), NotifyError> {
        match &self.mode {
            Mode::Webhook(url) => self.send_webhook(url, msg),
            Mode::Bot(token) => self.send_bot(token, msg, memory),
        }
    }
}

/// The remembered root message, if it parses.
fn root(memory: &dyn Memory, incident: IncidentId) -> Option<(String, String)> {
    let v = memory.get(incident, MEMORY_ROOT)?;
    let (ch, ts) = v.split_once(' ')?;
    (http::is_plain_id(ch) && http::is_plain_id(ts)).then(|| (ch.to_string(), ts.to_string()))
}

/// Steps that also go to the channel, not only into the thread: the ones
/// everyone must see.
fn broadcast(step: &str) -> bool {
    matches!(
        step,
        "rolled_back" | "health_failed" | "attempt_started" | "smoke_failed"
    )
}

/// The incident's current state, shown in the root message.
fn state_label(step: &str) -> &'static str {
    match step {
        "declared" => "Investigating: hotfix started",
        "attempt_started" => "New attempt after rollback",
        "pr_opened" => "PR open, preview deploying",
        "smoke_passed" => "Preview passed smoke checks; waiting for approval",
        "smoke_failed" => "Preview failed smoke checks",
        "approved" => "Approved",
        "merged" => "Merged; deploying to production",
        "health_passed" => "Fix deployed; production healthy",
        "health_failed" => "Production unhealthy after deploy",
        "backported" => "Fixed; backported to develop",
        "rolled_back" => "Rolled back",
        "postmortem_scheduled" => "Fixed; post-mortem scheduled",
        "closed" => "Closed",
        _ => "In progress",
    }
}

/// Slack's mrkdwn control characters, so a title cannot ping `<!channel>`
/// or forge a link.
/// Slack's three mrkdwn escapes, after every control and bidi character
/// is made visible (text from outside must not forge lines in a post).
fn escape(s: &str) -> String {
    hotfix_core::display::line(s)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Whether a URL can go inside `<url|text>` as is.
fn is_linkable(u: &str) -> bool {
    (u.starts_with("https://") || u.starts_with("http://"))
        && !u
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '<' | '>' | '|'))
}

/// At most `max` characters, cut with an ellipsis (Slack rejects longer
/// header and section texts as `invalid_blocks`).
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}
