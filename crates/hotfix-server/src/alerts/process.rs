//! What an alert in the inbox does to incidents.
//!
//! - firing, matching a rule, not linked to an open incident: declare one
//!   (phase `reported`: no branch yet) with the rule's proposed severity,
//!   page the on-call people, link the alert key to it;
//! - firing again while linked: recorded once per change (a repeat
//!   notification is not recorded again);
//! - resolved: recorded on its incident, which stays open (a quiet alert is
//!   not a verified fix);
//! - PagerDuty acknowledge: recorded as an external update.
//!
//! Safe to run twice and on two replicas at once: a lease per alert key
//! means one worker handles a key at a time, and a run that died between
//! declaring and linking is found again (the incident's name carries a hash
//! of the key) and linked instead of declaring a second incident.

use hotfix_core::admit::{Actor, Door};
use std::time::{Duration, Instant};

use hotfix_core::config::AlertRule;
use hotfix_core::event::EventKind;
use hotfix_core::id::IncidentId;
use hotfix_core::severity::{Severity, SeverityError};
use hotfix_core::state::IncidentState;
use hotfix_core::team::InboxItem;
use jiff::Timestamp;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::parse::{self, Alert, Parsed, Source, Status};
use super::rules;
use crate::ops::{self, Outbox};
use crate::workers::NotYet;
use crate::{ApiError, AppState};

/// How long to wait for another worker holding the same key before giving
/// the item back for a retry.
const LEASE_WAIT: Duration = Duration::from_secs(5);
/// How many times one alert key may reopen after its incidents were closed.
const MAX_REOPEN: u32 = 1000;

/// Processes one inbox item of an alert source; the outcome is shown in
/// `GET /api/v1/inbox`. An `Err` is retried with backoff.
pub fn process(st: &AppState, item: &InboxItem) -> Result<String, NotYet> {
    let Some(src) = Source::parse(&item.source) else {
        return Ok(format!("ignored: `{}` is not an alert source", item.source));
    };
    let fallback = format!("inbox-{}", item.id);
    let alert = match parse::parse(src, item.body.as_bytes(), &fallback) {
        Ok(Parsed::Alert(a)) => a,
        Ok(Parsed::Ignored(why)) => return Ok(format!("ignored: {why}")),
        // Checked at the door; only a body stored by another version gets here.
        Err(e) => return Ok(format!("ignored: unreadable payload: {e}")),
    };
    let _lease = KeyLease::acquire(st, &alert)?;
    handle(st, &alert).map_err(|e| NotYet::Failed(e.to_string()))
}

/// The lease on one alert key, released when dropped.
struct KeyLease<'a> {
    st: &'a AppState,
    name: String,
    holder: String,
}

impl<'a> KeyLease<'a> {
    fn acquire(st: &'a AppState, a: &Alert) -> Result<KeyLease<'a>, NotYet> {
        let name = format!(
            "alert:{}:{}",
            a.source.as_str(),
            hex::encode(Sha256::digest(a.key.as_bytes()))
        );
        // Unique per call, not per replica: two workers of one replica
        // must exclude each other too.
        let holder = format!("{}/{:016x}", st.replica, rand::rng().next_u64());
        let deadline = Instant::now() + LEASE_WAIT;
        loop {
            // The workers' lease (default 30 s, far longer than processing
            // takes): a crashed replica's key is free again as soon as its
            // claimed inbox items are.
            match crate::workers::take_lease(st, &name, &holder) {
                Ok(true) => return Ok(KeyLease { st, name, holder }),
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Ok(false) => {
                    return Err(NotYet::Deferred {
                        why: "deferred: another worker is handling this alert key".into(),
                        until_s: crate::workers::lease_now(st) + 1,
                    });
                }
                Err(e) => return Err(NotYet::Failed(e.to_string())),
            }
        }
    }
}

impl Drop for KeyLease<'_> {
    fn drop(&mut self) {
        // If this fails the lease simply runs out.
        let _ = self.st.store.lease_release(&self.name, &self.holder);
    }
}

/// The key an alert is linked under: its own, then `KEY#reopen-N` once the
/// incidents before were closed (the store keeps the first link of a key,
/// and a closed incident is history: a new firing is a new incident).
pub fn link_key(key: &str, n: u32) -> String {
    if n <= 1 {
        key.to_string()
    } else {
        format!("{key}#reopen-{n}")
    }
}

fn actor(a: &Alert) -> String {
    format!("{} (alert)", a.source.as_str())
}

fn handle(st: &AppState, a: &Alert) -> Result<String, ApiError> {
    let src = a.source.as_str();
    let mut last_closed: Option<IncidentId> = None;
    let mut n = 1;
    let slot = loop {
        let k = link_key(&a.key, n);
        match st.store.alert_link_get(src, &k)? {
            Some(id) => {
                let s = ops::load(st, id)?;
                if !s.is_closed() {
                    return on_linked(st, a, s);
                }
                last_closed = Some(id);
                n += 1;
                if n > MAX_REOPEN {
                    return Ok(format!(
                        "ignored: this alert key already reopened {MAX_REOPEN} times"
                    ));
                }
            }
            None => break k,
        }
    };

    let rule = rules::first_match(&st.cfg.alerts.rules, a);

    if a.status == Status::Firing {
        let Some(rule) = rule else {
            return Ok("ignored: no rule matches".into());
        };
        let severity = match rule.severity.parse::<Severity>() {
            Ok(s) => s,
            Err(SeverityError::UseNormalRelease(s)) => {
                return Ok(format!(
                    "ignored: severity {} (use the normal release)",
                    s.to_lowercase()
                ));
            }
            Err(e) => return Ok(format!("ignored: {e}")),
        };
        if let Some(s) = orphan(st, a, &slot)? {
            return recover(st, a, rule, &slot, s);
        }
        return declare(st, a, rule, severity, &slot);
    }

    if let Some(rule) = rule
        && let Some(s) = orphan(st, a, &slot)?
    {
        return recover(st, a, rule, &slot, s);
    }
    Ok(match (a.status, last_closed) {
        (_, Some(id)) => format!(
            "ignored: {} alert for {id}, which is closed",
            a.status.as_str()
        ),
        (_, None) => format!("ignored: {} alert for no incident", a.status.as_str()),
    })
}

/// The incident title an alert's summary gives: its first line, cut to
/// the longest title (the summary itself, in full, is in `alert_received`).
/// Without this, a multi-line or long description would be refused as a
/// title and the alert lost.
fn alert_title(summary: &str) -> Option<String> {
    let first = summary.lines().map(str::trim).find(|l| !l.is_empty())?;
    let first = hotfix_core::display::line(first);
    let max = hotfix_core::validate::MAX_TITLE;
    Some(match first.char_indices().nth(max - 1) {
        Some((i, _)) => format!("{}…", &first[..i]),
        None => first.into_owned(),
    })
}

/// The newest status this alert reported on `s`.
fn last_status<'s>(s: &'s IncidentState, a: &Alert) -> Option<&'s str> {
    s.events.iter().rev().find_map(|e| match &e.kind {
        EventKind::AlertReceived {
            source,
            key,
            status,
            ..
        } if source == a.source.as_str() && *key == a.key => Some(status.as_str()),
        _ => None,
    })
}

/// The alert as reported with `status`.
fn received(a: &Alert, status: Status) -> EventKind {
    EventKind::AlertReceived {
        source: a.source.as_str().to_string(),
        status: status.as_str().to_string(),
        key: a.key.clone(),
        summary: a.summary.clone(),
    }
}

/// An alert about an open incident it is linked to.
fn on_linked(st: &AppState, a: &Alert, s: IncidentState) -> Result<String, ApiError> {
    let id = s.id;
    let mut recorded = false;
    ops::append_system(st, &Actor::new(&actor(a), Door::Alert), id, &mut |s| {
        recorded = false;
        if s.is_closed() {
            return Ok(vec![]);
        }
        let kind = match a.status {
            Status::Firing | Status::Resolved => {
                if last_status(s, a) == Some(a.status.as_str()) {
                    return Ok(vec![]);
                }
                received(a, a.status)
            }
            Status::Acknowledged => EventKind::ExternalUpdate {
                source: a.source.as_str().to_string(),
                what: "alert acknowledged".into(),
                detail: a.summary.clone(),
            },
        };
        recorded = true;
        Ok(vec![kind])
    })?;
    Ok(match (recorded, a.status) {
        (true, Status::Firing) if last_status(&s, a).is_some() => {
            format!("firing again recorded on {id}")
        }
        (true, status) => format!("{} recorded on {id}", status.as_str()),
        (false, Status::Resolved) => format!("repeat of {id} (already resolved)"),
        (false, _) => format!("repeat of {id}"),
    })
}

fn declare(
    st: &AppState,
    a: &Alert,
    rule: &AlertRule,
    severity: Severity,
    slot: &str,
) -> Result<String, ApiError> {
    let name = rules::incident_name(rule, a, slot);
    let title = alert_title(&a.summary).unwrap_or_else(|| name.clone());
    let declared = EventKind::Declared {
        name: name.clone(),
        title,
        severity,
        customer_facing: rule.customer_facing,
        security: rule.security,
        branch: format!("{}{name}", st.cfg.git.prefix),
        // Empty: the branch is not cut yet (phase `reported`); the on-call
        // person cuts it with `hotfix start … --incident`.
        base_sha: String::new(),
    };
    let page = |s: &IncidentState, now: Timestamp| -> Outbox {
        ops::custom_message(
            st,
            s,
            "paged",
            page_text(st, s, a, &name),
            st.cfg.team.on_call.clone(),
            now,
        )
    };
    let s = ops::declare(
        st,
        &Actor::new(&actor(a), Door::Alert),
        declared,
        then(a, rule),
        &page,
    )?;
    let linked = st.store.alert_link_set(a.source.as_str(), slot, s.id)?;
    if linked != s.id {
        // Cannot happen while the key lease holds; said plainly if it does.
        return Ok(format!(
            "declared {} (but the alert was already linked to {linked})",
            s.id
        ));
    }
    Ok(format!("declared {}", s.id))
}

/// What is appended right after the declaration.
fn then(a: &Alert, rule: &AlertRule) -> Vec<EventKind> {
    let mut v = vec![received(a, Status::Firing)];
    if !rule.components.is_empty() {
        v.push(EventKind::Affects {
            components: rule.components.clone(),
        });
    }
    v
}

fn page_text(st: &AppState, s: &IncidentState, a: &Alert, name: &str) -> String {
    let sev = s.severity.as_str();
    let what = if s.security {
        hotfix_core::state::SECURITY_TITLE.to_string()
    } else {
        let mut w = a.summary.clone();
        if let Some(h) = a.severity_hint.as_deref().filter(|h| !h.is_empty()) {
            w.push_str(&format!(" ({} says {h})", a.source.as_str()));
        }
        if let Some(u) = &a.url {
            w.push_str(&format!(" <{u}>"));
        }
        w
    };
    let on_call = if st.cfg.team.on_call.is_empty() {
        "nobody (set [team] on_call)".to_string()
    } else {
        st.cfg.team.on_call.join(", ")
    };
    format!(
        ":pager: {id} [{SEV}] reported by {src}: {what}. On call: {on_call}. Take it: `hotfix start {name} --incident {id} --severity {sev}`",
        id = s.id,
        SEV = sev.to_uppercase(),
        src = a.source.as_str(),
    )
}

/// An open incident this alert declared in a run that stopped before
/// linking it: declared by this source's actor under the name made from
/// this link key, or already carrying this alert. The newest such one, from
/// the folded-incident cache (no log is read again for the search).
fn orphan(st: &AppState, a: &Alert, slot: &str) -> Result<Option<IncidentState>, ApiError> {
    let who = actor(a);
    let suffix = format!("-{}", rules::key_suffix(a.source.as_str(), slot));
    let ours = |s: &IncidentState| {
        let named = s.events.first().is_some_and(|e| {
            e.actor == who
                && matches!(&e.kind, EventKind::Declared { name, .. } if name.ends_with(&suffix))
        });
        named || last_status(s, a).is_some()
    };
    Ok(ops::all(st)?
        .iter()
        .filter(|s| !s.is_closed() && ours(s))
        .max_by_key(|s| s.id)
        .cloned())
}

/// Finishes what an interrupted run started: the events after the
/// declaration, the link; then this alert as for any linked incident.
fn recover(
    st: &AppState,
    a: &Alert,
    rule: &AlertRule,
    slot: &str,
    s: IncidentState,
) -> Result<String, ApiError> {
    let id = s.id;
    let s = ops::append_system(st, &Actor::new(&actor(a), Door::Alert), id, &mut |s| {
        let mut v = vec![];
        if last_status(s, a).is_none() {
            v.push(received(a, Status::Firing));
        }
        let missing: Vec<String> = rule
            .components
            .iter()
            .filter(|c| !s.components.contains(c))
            .cloned()
            .collect();
        if !missing.is_empty() {
            v.push(EventKind::Affects {
                components: missing,
            });
        }
        Ok(v)
    })?;
    st.store.alert_link_set(a.source.as_str(), slot, id)?;
    let rest = on_linked(st, a, s)?;
    Ok(if a.status == Status::Firing {
        format!("declared {id} (linked after an interrupted run)")
    } else {
        format!("linked {id} after an interrupted run; {rest}")
    })
}
