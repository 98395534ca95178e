//! Notifiers: console and a JSONL file (the shape a `#dev-alerts` post has).

mod http;
pub mod slack;
pub mod statuspage;
pub mod webhook;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use hotfix_core::config::Config;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Memory, Notifier, NotifyError};

/// Prints each message on stderr, so stdout stays clean for `--json`.
pub struct ConsoleNotifier;

impl Notifier for ConsoleNotifier {
    fn name(&self) -> &str {
        "console"
    }
    fn send(&self, _id: i64, msg: &Message, _memory: &dyn Memory) -> Result<(), NotifyError> {
        let mentions = if msg.mentions.is_empty() {
            String::new()
        } else {
            format!(
                " cc {}",
                msg.mentions
                    .iter()
                    .map(|m| format!("@{m}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        // One message, one line: its texts came from outside.
        eprintln!("{}", console_line(msg, &mentions));
        Ok(())
    }
}

/// The console notifier's line for `msg`, with every control and bidi
/// character escaped (a title or a name must not recolour the terminal or
/// forge a second log line).
fn console_line(msg: &Message, mentions: &str) -> String {
    use hotfix_core::display::line;
    format!(
        "  [{}] {}{}",
        line(&msg.channel),
        line(&msg.text),
        line(mentions)
    )
}

/// Appends each message as one JSON line. Lines carry the outbox id, and a
/// message already in the file is not written again, so a crash between
/// writing and marking it delivered does not double it.
pub struct FileNotifier {
    pub path: PathBuf,
}

impl Notifier for FileNotifier {
    fn name(&self) -> &str {
        "file"
    }
    fn send(&self, id: i64, msg: &Message, _memory: &dyn Memory) -> Result<(), NotifyError> {
        let err = |m: String| NotifyError {
            notifier: "file".into(),
            message: m,
        };
        if let Ok(f) = std::fs::File::open(&self.path) {
            let needle = format!("\"outbox_id\":{id},");
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                if line.contains(&needle) {
                    return Ok(());
                }
            }
        }
        if let Some(d) = self.path.parent() {
            hotfix_fs::create_private_dir(d).map_err(|e| err(e.to_string()))?;
        }
        let mut v = serde_json::to_value(msg).map_err(|e| err(e.to_string()))?;
        let mut obj = serde_json::Map::new();
        obj.insert("outbox_id".into(), id.into());
        if let Some(m) = v.as_object_mut() {
            obj.append(m);
        }
        let line = serde_json::to_string(&obj).map_err(|e| err(e.to_string()))?;
        let mut f = hotfix_fs::append_private(&self.path)
            .map_err(|e| err(format!("{}: {e}", self.path.display())))?;
        f.write_all(format!("{line}\n").as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|e| err(e.to_string()))
    }
}

/// Slack, the generic webhook and Statuspage, from `[notify.*]` and the
/// secrets in the environment; the first one that cannot be built is the error.
pub fn from_config(
    cfg: &Config,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Box<dyn Notifier>>, String> {
    each_from_config(cfg, secret)
        .into_iter()
        .map(|(_, built)| built)
        .collect()
}

/// A notifier built from its `[notify.*]` table, or why it could not be.
pub type Built = Result<Box<dyn Notifier>, String>;

/// Each notifier `[notify.*]` configures, by name, built on its own: one that
/// cannot be built (a secret missing here) does not keep the others from
/// being built, for a caller that goes on without it.
pub fn each_from_config(
    cfg: &Config,
    secret: &dyn Fn(&str) -> Option<String>,
) -> Vec<(&'static str, Built)> {
    // Every error of the notifiers' constructors names its `[notify.*]`
    // table already: they are passed on as they are.
    let mut out: Vec<(&'static str, Built)> = vec![];
    if let Some(t) = &cfg.notify.slack {
        let built = slack::SlackConfig::from_table(t).and_then(|c| {
            slack::SlackNotifier::from_secrets(
                c,
                secret(slack::BOT_TOKEN_ENV),
                secret(slack::WEBHOOK_URL_ENV),
            )
        });
        out.push(("slack", built.map(|n| Box::new(n) as Box<dyn Notifier>)));
    }
    if let Some(t) = &cfg.notify.webhook {
        let built = webhook::WebhookConfig::from_table(t).and_then(|c| {
            webhook::WebhookNotifier::new(c, secret(webhook::URL_ENV), secret(webhook::SECRET_ENV))
        });
        out.push(("webhook", built.map(|n| Box::new(n) as Box<dyn Notifier>)));
    }
    if let Some(t) = &cfg.notify.statuspage {
        let built = statuspage::StatuspageConfig::from_table(t).and_then(|c| {
            let key = secret(statuspage::API_KEY_ENV).ok_or_else(|| {
                format!(
                    "[notify.statuspage] is configured but {} is not set in the environment",
                    statuspage::API_KEY_ENV
                )
            })?;
            statuspage::StatuspageNotifier::new(c, key).map(|n| n.with_status(&cfg.status))
        });
        out.push((
            "statuspage",
            built.map(|n| Box::new(n) as Box<dyn Notifier>),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_notifier_without_its_secret_says_so_once_and_the_others_still_build() {
        let cfg = Config::parse(
            "[notify.slack]\nchannel = \"#dev-alerts\"\n\n[notify.statuspage]\npage_id = \"p1\"\ncomponent_id = \"c1\"\n\n[notify.webhook]\nurl = \"http://127.0.0.1:9/hook\"\n",
        )
        .expect("config");
        let built = each_from_config(&cfg, &|_| None);
        let names: Vec<&str> = built.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["slack", "webhook", "statuspage"]);
        for (name, b) in &built {
            match (name, b) {
                (&"webhook", Ok(n)) => assert_eq!(n.name(), "webhook"),
                (_, Err(e)) => {
                    let table = format!("[notify.{name}]");
                    assert_eq!(e.matches(&table).count(), 1, "{e}");
                }
                (_, Ok(_)) => panic!("{name} built without its secret"),
            }
        }
        let first = from_config(&cfg, &|_| None).err().expect("an error");
        assert!(first.starts_with("[notify.slack]"), "{first}");
    }
}
