//! The post-hotfix checklist of the process. The tool ticks what it can verify
//! itself; people tick the rest with `hotfix checklist --done KEY`.

use serde::Serialize;

use crate::state::IncidentState;

/// One checklist item (`checklist --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    pub key: &'static str,
    pub label: &'static str,
    pub done: bool,
    /// Ticked by the tool from what it verified, not by a person.
    pub auto: bool,
    /// What the tool saw that backs the item, when there is more than the
    /// tick (the alert that reported it resolving after the deploy: the
    /// process's "verify fix with original reporter").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// Keys in the process's order.
pub const KEYS: [(&str, &str, bool); 8] = [
    ("fix_verified", "Fix verified working in production", true),
    ("backported", "Hotfix backported to develop branch", true),
    (
        "incident_log",
        "Incident log updated with resolution",
        false,
    ),
    ("status_page", "Status page updated (if applicable)", false),
    (
        "postmortem_scheduled",
        "Post-mortem scheduled (within 24 hours)",
        true,
    ),
    (
        "monitoring_reviewed",
        "Monitoring thresholds reviewed",
        false,
    ),
    ("docs_updated", "Documentation updated if needed", false),
    ("team_notified", "Team notified of resolution", false),
];

/// The checklist of an incident as it stands.
pub fn checklist(s: &IncidentState) -> Vec<Item> {
    KEYS.iter()
        .map(|&(key, label, auto)| {
            let (done, auto) = match key {
                "fix_verified" => (
                    s.healthy_sha.is_some() && s.healthy_sha == s.deployed_sha,
                    true,
                ),
                "backported" => (s.backport_sha.is_some(), true),
                "postmortem_scheduled" => (s.postmortem.is_some(), true),
                // Not customer-facing: there is nothing to update.
                "status_page" if !s.customer_facing => (true, true),
                _ => (s.checklist_done.contains(key), auto),
            };
            let evidence = match key {
                "fix_verified" => s.reporter_verified().map(|(source, at)| {
                    format!(
                        "the {source} alert that reported it resolved at {} UTC, after the deploy",
                        at.strftime("%Y-%m-%d %H:%M:%S")
                    )
                }),
                _ => None,
            };
            Item {
                key,
                label,
                done,
                auto,
                evidence,
            }
        })
        .collect()
}

/// Why a key cannot be ticked by hand.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TickError {
    #[error("unknown checklist item `{0}`; the items are: {1}")]
    Unknown(String, String),
    #[error("`{0}` is ticked by hotfix itself once it has verified it ({1})")]
    Automatic(String, &'static str),
}

/// Checks that a key may be ticked by hand.
pub fn check_tick(key: &str) -> Result<(), TickError> {
    match KEYS.iter().find(|(k, _, _)| *k == key) {
        None => Err(TickError::Unknown(
            key.to_string(),
            KEYS.iter()
                .map(|(k, _, _)| *k)
                .collect::<Vec<_>>()
                .join(", "),
        )),
        Some((k, _, true)) => Err(TickError::Automatic(
            k.to_string(),
            match *k {
                "fix_verified" => "production passed its health watch after the last deploy",
                "backported" => {
                    "the hotfix is reachable from the remote's develop: run `hotfix backport`"
                }
                _ => "run `hotfix postmortem`",
            },
        )),
        Some(_) => Ok(()),
    }
}

/// Open items in the order `close` names them: a forgotten backport first.
pub fn open_items(s: &IncidentState) -> Vec<Item> {
    let mut open: Vec<Item> = checklist(s).into_iter().filter(|i| !i.done).collect();
    open.sort_by_key(|i| if i.key == "backported" { 0 } else { 1 });
    open
}
