//! What an alert in the inbox does to incidents.
//!
//! - firing, matching a rule, not linked to an open incident: declare one
//!   (phase `triage`: no branch yet, a tech lead confirms or declines it)
//!   with the rule's proposed severity, named and titled after the alert of
//!   the group that matched ([`rules::first_match`]), page the on-call
//!   people, link the alert key (and each alert's fingerprint) to it;
//! - firing again while linked: recorded once per change (a repeat
//!   notification is not recorded again); a group whose alerts now match a
//!   more severe rule escalates its incident (never lowers it);
//! - resolved: recorded on its incident, which stays open (a quiet alert is
//!   not a verified fix); resolving and firing again are posted to the
//!   channel;
//! - an incident merged at triage passes its alerts on to the one it was
//!   merged into; one declined at triage ignores its group's repeats until
//!   the group resolves (then a new firing is a new incident, as after a
//!   close);
//! - a group key never seen whose alerts (by Alertmanager's fingerprint)
//!   are on an open incident already is linked to it: a route change in
//!   Alertmanager changes the group key, not the incident;
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
use rand::Rng as _;
use sha2::{Digest, Sha256};

use super::parse::{self, Alert, Parsed, Source, Status};
use super::rules::{self, Match};
use crate::ops::{self, Outbox, Snapshot};
use crate::workers::NotYet;
use crate::{ApiError, AppState};

/// How long to wait for another worker holding the same key before giving
/// the item back for a retry.
const LEASE_WAIT: Duration = Duration::from_secs(5);
/// How many times one alert key may reopen after its incidents were closed.
const MAX_REOPEN: u32 = 1000;
/// How many merges an alert follows (HF-1 merged into HF-2, merged into
/// HF-3, ...): enough for any real triage, and a bound on a loop.
const MAX_MERGE_HOPS: usize = 16;
/// Fingerprints newly linked per notification. Each link is a durable
/// write; a group of 1,500 alerts gets its fingerprints linked over its
/// next notifications, and one linked fingerprint is enough to find the
/// incident again under a new group key.
const MAX_NEW_FINGERPRINTS: usize = 100;

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
    handle(st, *alert).map_err(|e| NotYet::Failed(e.to_string()))
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

/// The alert-link namespace of a source's alert fingerprints (apart from
/// its keys: a sender's key can be any text, a fingerprint's link must
/// never be taken for a key's).
fn fingerprint_source(a: &Alert) -> String {
    format!("{}:fingerprint", a.source.as_str())
}

/// The alert-link namespace that marks a link slot whose declined
/// incident's group resolved afterwards: its next firing is a new incident.
/// (A declined incident is closed: nothing more is appended to its log.)
fn resolved_source(a: &Alert) -> String {
    format!("{}:resolved-after-decline", a.source.as_str())
}

fn handle(st: &AppState, a: Alert) -> Result<String, ApiError> {
    let m = rules::first_match(&st.cfg.alerts.rules, &a);
    // Named, titled and rated after the alert of the group that matched.
    let a = a.focus(m.and_then(|m| m.member));
    let a = &a;
    let src = a.source.as_str();
    let mut last_closed: Option<IncidentId> = None;
    let mut last_declined: Option<IncidentState> = None;
    let mut n = 1;
    let slot = loop {
        let k = link_key(&a.key, n);
        match st.store.alert_link_get(src, &k)? {
            Some(id) => {
                let chain = merge_chain(st, id)?;
                let Some(t) = chain.last() else {
                    return Ok(format!("ignored: {id} cannot be read"));
                };
                if !t.is_closed() {
                    return on_linked(st, a, m, &chain);
                }
                if let Some(d) = t.declined.as_ref().filter(|d| d.merged_into.is_none()) {
                    match a.status {
                        Status::Firing if !resolved_since(st, a, &k, &chain)? => {
                            return Ok(format!(
                                "ignored: {} was declined at triage ({}) and this alert has not resolved since: a repeat, not a new incident",
                                t.id,
                                d.reason.label()
                            ));
                        }
                        Status::Resolved => {
                            st.store.alert_link_set(&resolved_source(a), &k, t.id)?;
                        }
                        _ => {}
                    }
                    last_declined = Some(t.clone());
                } else {
                    last_declined = None;
                }
                last_closed = Some(t.id);
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

    if let Some(m) = m
        && let Some(s) = orphan(st, a, &slot)?
    {
        return recover(st, a, m, &slot, s);
    }

    // A group key never seen, for alerts already on an open incident: the
    // route in Alertmanager changed (and with it the group key).
    if let Some(chain) = by_fingerprint(st, a)?
        && let Some(t) = chain.last()
    {
        let id = t.id;
        let linked = st.store.alert_link_set(src, &slot, id)?;
        if linked != id {
            // Cannot happen while the key lease holds; said plainly if it does.
            return Ok(format!(
                "ignored: its alerts are on {id}, but the key was just linked to {linked}"
            ));
        }
        let rest = on_linked(st, a, m, &chain)?;
        return Ok(format!(
            "{rest} (a new group key for alerts already on {id}: linked to it)"
        ));
    }

    if a.status == Status::Firing {
        let Some(m) = m else {
            return Ok("ignored: no rule matches".into());
        };
        let severity = match m.rule.severity.parse::<Severity>() {
            Ok(s) => s,
            Err(SeverityError::UseNormalRelease(s)) => {
                return Ok(format!(
                    "ignored: severity {} (use the normal release)",
                    s.to_lowercase()
                ));
            }
            Err(e) => return Ok(format!("ignored: {e}")),
        };
        return declare(st, a, m.rule, severity, &slot);
    }

    Ok(match (last_declined, last_closed) {
        (Some(d), _) => format!(
            "ignored: {} alert for {}, which was declined at triage ({}){}",
            a.status.as_str(),
            d.id,
            d.declined.as_ref().map_or("declined", |x| x.reason.label()),
            if a.status == Status::Resolved {
                "; its next firing is a new incident"
            } else {
                ""
            }
        ),
        (None, Some(id)) => format!(
            "ignored: {} alert for {id}, which is closed",
            a.status.as_str()
        ),
        (None, None) => format!("ignored: {} alert for no incident", a.status.as_str()),
    })
}

/// The incident `id` and, when it was merged at triage, the one it was
/// merged into, and so on: the last is where the alert lands.
fn merge_chain(st: &AppState, id: IncidentId) -> Result<Vec<IncidentState>, ApiError> {
    let mut chain = vec![ops::load(st, id)?];
    for _ in 0..MAX_MERGE_HOPS {
        let Some(next) = chain
            .last()
            .and_then(|s| s.declined.as_ref())
            .and_then(|d| d.merged_into)
        else {
            break;
        };
        if chain.iter().any(|s| s.id == next) {
            break;
        }
        chain.push(ops::load(st, next)?);
    }
    Ok(chain)
}

/// Whether the group of a declined incident resolved after the decline (a
/// mark in the alert links), or had resolved before it (its last status on
/// the incidents it went through).
fn resolved_since(
    st: &AppState,
    a: &Alert,
    slot: &str,
    chain: &[IncidentState],
) -> Result<bool, ApiError> {
    if st
        .store
        .alert_link_get(&resolved_source(a), slot)?
        .is_some()
    {
        return Ok(true);
    }
    Ok(chain.iter().rev().find_map(|s| last_status(s, a)) == Some("resolved"))
}

/// The open incident (after its merges) one of these alerts already went
/// to, by fingerprint: resolved alerts of the group count too (a resolve
/// under a new group key lands where its firing did).
fn by_fingerprint(st: &AppState, a: &Alert) -> Result<Option<Vec<IncidentState>>, ApiError> {
    if a.members.iter().all(|m| m.fingerprint.is_none()) {
        return Ok(None);
    }
    let ns = fingerprint_source(a);
    let snap = ops::all(st)?;
    for fp in a.members.iter().filter_map(|m| m.fingerprint.as_deref()) {
        for n in 1..=MAX_REOPEN {
            let Some(id) = st.store.alert_link_get(&ns, &link_key(fp, n))? else {
                break;
            };
            if open_target(&snap, id).is_some() {
                let chain = merge_chain(st, id)?;
                if chain.last().is_some_and(|t| !t.is_closed()) {
                    return Ok(Some(chain));
                }
            }
        }
    }
    Ok(None)
}

/// Where an alert linked to `id` lands, if that is an open incident, from
/// the cache of folded incidents.
fn open_target(snap: &Snapshot, id: IncidentId) -> Option<IncidentId> {
    // The snapshot is sorted by id.
    let by_id = |id: IncidentId| {
        snap.0
            .binary_search_by_key(&id, |e| e.state.id)
            .ok()
            .map(|i| &snap.0[i].state)
    };
    let mut s = by_id(id)?;
    for _ in 0..MAX_MERGE_HOPS {
        match s.declined.as_ref().and_then(|d| d.merged_into) {
            Some(next) => s = by_id(next)?,
            None => break,
        }
    }
    (!s.is_closed()).then_some(s.id)
}

/// Links the firing alerts' fingerprints to `id` (at most
/// [`MAX_NEW_FINGERPRINTS`] new links per call). A fingerprint is linked
/// like a key: its first free slot after the closed incidents it went to;
/// one already on another open incident stays there.
fn link_fingerprints(st: &AppState, a: &Alert, id: IncidentId) -> Result<(), ApiError> {
    if !a
        .members
        .iter()
        .any(|m| m.firing && m.fingerprint.is_some())
    {
        return Ok(());
    }
    let ns = fingerprint_source(a);
    let snap = ops::all(st)?;
    let mut new = 0;
    for fp in a
        .members
        .iter()
        .filter(|m| m.firing)
        .filter_map(|m| m.fingerprint.as_deref())
    {
        if new >= MAX_NEW_FINGERPRINTS {
            break;
        }
        for n in 1..=MAX_REOPEN {
            let k = link_key(fp, n);
            match st.store.alert_link_get(&ns, &k)? {
                None => {
                    st.store.alert_link_set(&ns, &k, id)?;
                    new += 1;
                    break;
                }
                Some(x) if x == id => break,
                // Unknown to the cache (just declared elsewhere): left alone.
                Some(x) if snap.0.binary_search_by_key(&x, |e| e.state.id).is_err() => break,
                Some(x) if open_target(&snap, x).is_some() => break,
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The incident title an alert's summary gives: its first line, cut to
/// the longest title (the summary itself, in full, is in `alert_received`).
/// Without this, a multi-line or long description would be refused as a
/// title and the alert lost.
fn alert_title(summary: &str) -> Option<String> {
    let first = summary.lines().map(str::trim).find(|l| !l.is_empty())?;
    // `clip` adds the ellipsis past its limit: 199 characters + "…" at most.
    Some(parse::clip(
        &hotfix_core::display::line(first),
        hotfix_core::validate::MAX_TITLE - 1,
    ))
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

/// The highest severity alerts proposed for `s`: its declaration by an
/// alert, and its escalations. A tech lead who lowered the severity at
/// triage is not overruled by the same alerts repeating.
fn alert_proposed(s: &IncidentState) -> Option<Severity> {
    s.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Declared { severity, .. } if e.actor.ends_with("(alert)") => Some(*severity),
            EventKind::Escalated { to, .. } => Some(*to),
            _ => None,
        })
        .max_by_key(|s| s.rank())
}

/// What [`on_linked`] appended.
#[derive(Default)]
struct Did {
    recorded: bool,
    escalated: Option<(Severity, Severity)>,
}

/// An alert about the open incident at the end of `chain` (the incident it
/// is linked to, and those it was merged into).
fn on_linked(
    st: &AppState,
    a: &Alert,
    m: Option<Match<'_>>,
    chain: &[IncidentState],
) -> Result<String, ApiError> {
    let Some((target, before)) = chain.split_last() else {
        return Ok("ignored: no incident".into());
    };
    let id = target.id;
    let prev = last_status(target, a).map(String::from);
    // What the group's alerts propose now, if that is a hotfix severity.
    let proposed = match (a.status, m) {
        (Status::Firing, Some(m)) => m.rule.severity.parse::<Severity>().ok(),
        _ => None,
    };
    let earlier = before
        .iter()
        .filter_map(alert_proposed)
        .max_by_key(|s| s.rank());
    let mut did = Did::default();
    ops::append_with(st, &Actor::new(&actor(a), Door::Alert), id, &mut |s| {
        did = Did::default();
        if s.is_closed() {
            return Ok((vec![], vec![]));
        }
        let mut kinds = vec![];
        let mut out: Outbox = vec![];
        match a.status {
            Status::Firing | Status::Resolved => {
                let last = last_status(s, a);
                if last != Some(a.status.as_str()) {
                    kinds.push(received(a, a.status));
                    did.recorded = true;
                    if a.status == Status::Resolved || last == Some("resolved") {
                        out.extend(status_post(st, s, a));
                    }
                }
            }
            Status::Acknowledged => {
                kinds.push(EventKind::ExternalUpdate {
                    source: a.source.as_str().to_string(),
                    what: "alert acknowledged".into(),
                    detail: a.summary.clone(),
                });
                did.recorded = true;
            }
        }
        if let Some(to) = proposed {
            let base = [earlier, alert_proposed(s)]
                .into_iter()
                .flatten()
                .max_by_key(|s| s.rank())
                .unwrap_or(s.severity);
            if to.rank() > s.severity.rank() && to.rank() > base.rank() {
                kinds.push(EventKind::Escalated {
                    from: s.severity,
                    to,
                    reason: escalation_reason(a, to),
                });
                did.escalated = Some((s.severity, to));
            }
        }
        Ok((kinds, out))
    })?;
    link_fingerprints(st, a, id)?;
    let base = match (did.recorded, a.status) {
        (true, Status::Firing) if prev.is_some() => format!("firing again recorded on {id}"),
        (true, status) => format!("{} recorded on {id}", status.as_str()),
        (false, _) if did.escalated.is_some() => String::new(),
        (false, Status::Resolved) => format!("repeat of {id} (already resolved)"),
        (false, _) => format!("repeat of {id}"),
    };
    Ok(match did.escalated {
        Some((from, to)) if base.is_empty() => format!("escalated {id} from {from} to {to}"),
        Some((from, to)) => format!("{base}; escalated from {from} to {to}"),
        None => base,
    })
}

/// Why an escalation happened, for the log and the channel: the alert that
/// now matches a more severe rule.
fn escalation_reason(a: &Alert, to: Severity) -> String {
    let name = alert_title(&a.name).unwrap_or_else(|| "an alert".into());
    let what = alert_title(&a.summary).unwrap_or_default();
    let r = format!(
        "{name} ({}) is firing in the group and matches a {to} rule: {what}",
        a.source.as_str()
    );
    alert_title(&r).unwrap_or(r)
}

/// The channel post of an alert resolving, or firing again after it
/// resolved: the log has it, and the people in the thread should too.
fn status_post(st: &AppState, s: &IncidentState, a: &Alert) -> Outbox {
    let id = s.id;
    let src = a.source.as_str();
    let what = if s.security {
        hotfix_core::state::SECURITY_TITLE.to_string()
    } else {
        alert_title(&a.summary).unwrap_or_else(|| s.public_title())
    };
    let (step, text, mentions) = if a.status == Status::Resolved {
        let tail = if s.deployed_sha.is_some() {
            "after the production deploy: recorded as the reporter's verification of the fix"
        } else {
            "the incident stays open: a quiet alert is not a verified fix"
        };
        (
            "alert_resolved",
            format!(":white_check_mark: {id} {src} reports its alert resolved: {what}; {tail}."),
            vec![],
        )
    } else {
        (
            "alert_firing",
            format!(
                ":rotating_light: {id} [{}] {src} reports its alert firing again: {what}.",
                s.severity.as_str().to_uppercase()
            ),
            st.cfg.team.on_call.clone(),
        )
    };
    ops::custom_message(st, s, step, text, mentions, st.clock.now())
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
        // Empty: the branch is not cut yet (phase `triage`); the on-call
        // person cuts it with `hotfix start … --incident` once confirmed.
        base_sha: String::new(),
    };
    let page = |s: &IncidentState, now: Timestamp| -> Outbox {
        ops::custom_message(
            st,
            s,
            "paged",
            page_text(st, s, a),
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
    link_fingerprints(st, a, s.id)?;
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

/// The page to the on-call people. Its command is the one that takes the
/// incident as printed ([`hotfix_core::notify::take_command`]: name and
/// severity filled in), and it says that a tech lead confirms first
/// (`start --incident` is refused while the incident is in triage).
fn page_text(st: &AppState, s: &IncidentState, a: &Alert) -> String {
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
    let take = hotfix_core::notify::take_command(s);
    let next = if s.in_triage() {
        format!(
            "In triage: a tech lead confirms it (`hotfix triage {id} confirm --severity {sev}`) or declines it; once confirmed, take it: `{take}`",
            id = s.id
        )
    } else {
        format!("Take it: `{take}`")
    };
    format!(
        ":pager: {id} [{SEV}] reported by {src}: {what}. On call: {on_call}. {next}",
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
    m: Match<'_>,
    slot: &str,
    s: IncidentState,
) -> Result<String, ApiError> {
    let rule = m.rule;
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
    let rest = on_linked(st, a, Some(m), &[s])?;
    Ok(if a.status == Status::Firing {
        format!("declared {id} (linked after an interrupted run)")
    } else {
        format!("linked {id} after an interrupted run; {rest}")
    })
}
