//! What the server does to incidents, shared by the JSON API, the Slack
//! command, the dashboard buttons, the alert intake and the webhooks.
//!
//! Every write goes through [`append_checked`] (a person with a token) or
//! [`append_system`] (something that came in), and both through the one log
//! service of `hotfix_core::ledger` that the CLI engine uses: the rulebook
//! (`hotfix_core::admit`) decides who may append what through which door,
//! the server stamps the events with its own clock and the caller's
//! identity, and writes the notifications of its own notifiers in the same
//! transaction (the outbox), so nothing a client sends can skip a guard or
//! forge an approval.
//!
//! Every read that shows an incident to someone goes through [`Seen`]: the
//! incident as that reader may see it, under the one read policy of
//! `hotfix_core::access` (a security incident's details for the people on
//! it, tech leads and admins; the restricted view for everyone else). The
//! API, the dashboard, Slack, the status page and metrics take incidents
//! from [`Snapshot::seen`], [`read`] or [`seen`], and [`summary`] and
//! [`detail`] only take a [`Seen`], so no view can show a full incident by
//! accident. Writes read the full incident ([`load`]) and are decided by
//! the rulebook, as before.
//!
//! These functions are synchronous; handlers call them through
//! [`AppState::blocking`].

use std::sync::Arc;

use hotfix_core::access::{Reader, scrub};
use hotfix_core::admit::{Actor, Door};
use hotfix_core::checklist::{check_tick, checklist};
use hotfix_core::event::EventKind;
use hotfix_core::guards::{ApproveCheck, check_approve};
use hotfix_core::id::IncidentId;
use hotfix_core::ledger::Ledger;
use hotfix_core::next::{Viewer, next_for};
use hotfix_core::notify::Message;
use hotfix_core::provider::StoreError;
use hotfix_core::state::IncidentState;
use hotfix_core::team::ApiRole;
use hotfix_core::timeline::timeline;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use crate::auth::Caller;
use crate::dashboard::cache::Entry;
use crate::{ApiError, AppState};

/// Notifications for the outbox: `(notifier, message)`.
pub use hotfix_core::ledger::Outbox;

/// Given the fresh state: the events to append and extra notifications.
pub type Decide<'a> = hotfix_core::ledger::Decide<'a, ApiError>;

/// The incident as it stands.
pub fn load(st: &AppState, id: IncidentId) -> Result<IncidentState, ApiError> {
    let events = st.store.events(id).map_err(|e| match e {
        StoreError::NotFound(_) => ApiError::not_found(format!("no incident {id}")),
        e => e.into(),
    })?;
    IncidentState::fold(&events).map_err(|e| ApiError::internal(e.to_string()))
}

/// Every incident, oldest first, from this replica's folded-incident cache
/// (re-folded only for incidents whose version moved, as the store's
/// watermark says): cheap enough for every page, API list, metrics scrape
/// and worker round even with 10,000 incidents.
pub fn all(st: &AppState) -> Result<Snapshot, ApiError> {
    Ok(Snapshot(st.dashboard.cache.get(st)?.incidents))
}

/// A consistent view of every incident.
#[derive(Clone)]
pub struct Snapshot(pub Arc<Vec<Arc<Entry>>>);

impl Snapshot {
    /// The full incidents: for writes, workers and decisions, never to
    /// show to someone (that is [`Snapshot::seen`]).
    pub fn iter(&self) -> impl Iterator<Item = &IncidentState> {
        self.0.iter().map(|e| &e.state)
    }

    /// Every incident as `reader` may see it, oldest first.
    pub fn seen<'a>(&'a self, reader: &'a Reader<'a>) -> impl Iterator<Item = Seen> + 'a {
        self.0.iter().map(move |e| Seen::new(e.clone(), reader))
    }

    /// One incident as `reader` may see it.
    pub fn get(&self, id: IncidentId, reader: &Reader<'_>) -> Option<Seen> {
        self.0
            .binary_search_by_key(&id, |e| e.state.id)
            .ok()
            .map(|i| Seen::new(self.0[i].clone(), reader))
    }

    /// Every string hidden from `reader` (of every security incident they
    /// may not read), longest first: texts the server composed around
    /// incidents (inbox outcomes, delivery errors, messages) are
    /// [`scrub`]bed of them before `reader` sees them.
    pub fn secrets_hidden_from(&self, reader: &Reader<'_>) -> Vec<String> {
        let mut v: Vec<String> = self
            .seen(reader)
            .filter(|s| s.restricted())
            .flat_map(|s| s.secrets().to_vec())
            .collect();
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        v
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The reader behind a token: its user and role.
pub fn reader_of(caller: &Caller) -> Reader<'_> {
    Reader::Member {
        user: &caller.user,
        role: caller.role,
    }
}

/// An incident as one reader may see it: in full, or its restricted view
/// (`hotfix_core::access`). The one thing every view of an incident is
/// built from; which view a reader gets is decided here and nowhere else.
#[derive(Clone)]
pub struct Seen {
    entry: Arc<Entry>,
    restricted: bool,
}

impl Seen {
    /// `entry` as `reader` may see it.
    pub fn new(entry: Arc<Entry>, reader: &Reader<'_>) -> Seen {
        let restricted = entry.restricted().is_some() && !reader.may_read(&entry.state);
        Seen { entry, restricted }
    }

    /// The incident to show: the full one or the restricted one.
    pub fn state(&self) -> &IncidentState {
        match (self.restricted, self.entry.restricted()) {
            (true, Some(r)) => &r.state,
            _ => &self.entry.state,
        }
    }

    /// Whether this is the restricted view.
    pub fn restricted(&self) -> bool {
        self.restricted
    }

    /// The lowercased text a search of this reader looks in.
    pub fn search(&self) -> &str {
        match (self.restricted, self.entry.restricted()) {
            (true, Some(r)) => &r.search,
            _ => self.entry.full_search(),
        }
    }

    /// What the view hides (nothing in full view).
    pub fn secrets(&self) -> &[String] {
        match (self.restricted, self.entry.restricted()) {
            (true, Some(r)) => &r.secrets,
            _ => &[],
        }
    }

    /// `text` (composed by the server around this incident) without what
    /// the view hides.
    pub fn scrub(&self, text: &str) -> String {
        scrub(text, self.secrets())
    }
}

/// `s` (just loaded or just written) as `reader` may see it.
pub fn seen(s: IncidentState, reader: &Reader<'_>) -> Result<Seen, ApiError> {
    Ok(Seen::new(Arc::new(Entry::new(s)?), reader))
}

/// Incident `id` as `reader` may see it, from the folded-incident cache.
pub fn read(st: &AppState, reader: &Reader<'_>, id: IncidentId) -> Result<Seen, ApiError> {
    match all(st)?.get(id, reader) {
        Some(v) => Ok(v),
        // Not in the cache (none such: 404 from the store).
        None => seen(load(st, id)?, reader),
    }
}

/// Runs `f` with the one log service the CLI engine uses too: every write
/// of the server goes through its rulebook ([`hotfix_core::admit`]).
pub fn with_ledger<T>(st: &AppState, f: impl FnOnce(&Ledger<'_>) -> T) -> T {
    let names: Vec<String> = st.notifiers.iter().map(|n| n.name().to_string()).collect();
    f(&Ledger {
        store: &*st.store,
        cfg: &st.cfg,
        notifiers: &names,
    })
}

/// A message to every notifier that is not tied to an event kind (a page
/// to the on-call person, a post-mortem reminder).
pub fn custom_message(
    st: &AppState,
    s: &IncidentState,
    step: &str,
    text: String,
    mentions: Vec<String>,
    now: Timestamp,
) -> Vec<(String, Message)> {
    let m = Message {
        incident: s.id,
        step: step.to_string(),
        severity: s.severity.as_str().to_string(),
        channel: st.cfg.notify.channel.clone(),
        text,
        mentions,
        customer_facing: s.customer_facing,
        security: s.security,
        at: now,
        title: s.shared_title(),
        // As `hotfix_core::notify` does: a security fix's PR address may
        // name its advisory.
        pr_url: if s.security { None } else { s.pr_url.clone() },
        triage: s.in_triage(),
        public_text: s.status_text(false),
    };
    st.notifiers
        .iter()
        .map(|n| (n.name().to_string(), m.clone()))
        .collect()
}

/// Declares an incident as `actor` (the declaration checked by the
/// rulebook), with `then` appended right after it (components, the alert
/// that opened it) and `extra` notifications.
pub fn declare(
    st: &AppState,
    actor: &Actor<'_>,
    declared: EventKind,
    then: Vec<EventKind>,
    extra: &dyn Fn(&IncidentState, Timestamp) -> Outbox,
) -> Result<IncidentState, ApiError> {
    let now = st.clock.now();
    let id = with_ledger(st, |l| l.declare(actor, now, declared, extra))?;
    st.metrics.incidents_declared.inc();
    if !then.is_empty() {
        append_system(st, actor, id, &mut |_| Ok(then.clone()))?;
    }
    load(st, id)
}

/// The approver role `caller` would approve `s` in, with every server-side
/// rule: in `[team]`, not their own hotfix, a tech lead's token for the tech
/// lead's approval (what the dashboard offers; the rulebook decides again
/// when the approval is appended).
pub fn approval_role(
    st: &AppState,
    caller: &Caller,
    s: &IncidentState,
) -> Result<hotfix_core::event::Role, ApiError> {
    let role = match check_approve(s, &st.cfg, &caller.user) {
        Ok(ApproveCheck::Record(r)) => r,
        Ok(ApproveCheck::AlreadyApproved) => {
            if st.cfg.is_tech_lead(&caller.user) {
                hotfix_core::event::Role::TechLead
            } else {
                hotfix_core::event::Role::Reviewer
            }
        }
        Err(r) => return Err(ApiError::from_refusals(vec![r])),
    };
    if role == hotfix_core::event::Role::TechLead {
        caller.require(ApiRole::TechLead, "a tech lead's approval")?;
    }
    Ok(role)
}

/// Appends what `caller` sent through `door`, if the incident is still at
/// `expected` (when given) and the rulebook admits it. Events are stamped
/// by the server with its clock and the caller's identity.
pub fn append_checked(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
    expected: Option<u64>,
    kinds: Vec<EventKind>,
) -> Result<IncidentState, ApiError> {
    let s = load(st, id)?;
    if kinds.is_empty() {
        return Ok(s);
    }
    if let Some(v) = expected
        && v != s.version
    {
        return Err(StoreError::Conflict {
            incident: id,
            expected: v,
            actual: s.version,
        }
        .into());
    }
    let now = st.clock.now();
    with_ledger(st, |l| {
        l.append(&s, &caller.actor(door), now, &kinds, vec![])
    })?;
    load(st, id)
}

/// Appends events as `actor` (a person through a door, an alert source, a
/// webhook, a worker): `decide` sees the fresh state and returns what to
/// append (none: nothing to do). Retries when someone else appended in
/// between; the rulebook admits every append.
pub fn append_system(
    st: &AppState,
    actor: &Actor<'_>,
    id: IncidentId,
    decide: &mut dyn FnMut(&IncidentState) -> Result<Vec<EventKind>, ApiError>,
) -> Result<IncidentState, ApiError> {
    append_with(st, actor, id, &mut |s| Ok((decide(s)?, vec![])))
}

/// Like [`append_system`], with notifications of its own besides the events' ones.
pub fn append_with(
    st: &AppState,
    actor: &Actor<'_>,
    id: IncidentId,
    decide: &mut Decide<'_>,
) -> Result<IncidentState, ApiError> {
    // A missing incident is the store's NotFound, which answers 404.
    let clock = st.clock;
    with_ledger(st, |l| {
        l.append_fresh::<ApiError>(id, actor, &|| clock.now(), decide)
    })
}

/// `caller` approves the current head of `id` through `door`.
pub fn approve(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
) -> Result<(IncidentState, bool), ApiError> {
    let mut recorded = false;
    let s = append_system(st, &caller.actor(door), id, &mut |s| {
        recorded = false;
        let role = approval_role(st, caller, s)?;
        if matches!(
            check_approve(s, &st.cfg, &caller.user),
            Ok(ApproveCheck::AlreadyApproved)
        ) {
            return Ok(vec![]);
        }
        recorded = true;
        Ok(vec![EventKind::Approved {
            by: caller.user.clone(),
            role,
            sha: s.head_sha.clone().unwrap_or_default(),
            source: door.as_str().to_string(),
        }])
    })?;
    Ok((s, recorded))
}

/// `caller` withdraws their approval of the current head (none left: nothing to do).
pub fn withdraw(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
    reason: &str,
) -> Result<(IncidentState, bool), ApiError> {
    let mut recorded = false;
    let s = append_system(st, &caller.actor(door), id, &mut |s| {
        recorded = false;
        let kinds = hotfix_core::guards::withdrawals(s, &caller.user, reason, door.as_str());
        recorded = !kinds.is_empty();
        Ok(kinds)
    })?;
    Ok((s, recorded))
}

/// Ticks checklist items.
pub fn tick(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
    keys: &[String],
) -> Result<IncidentState, ApiError> {
    for k in keys {
        check_tick(k).map_err(|e| ApiError::unprocessable("bad_checklist_key", e.to_string()))?;
    }
    append_system(st, &caller.actor(door), id, &mut |s| {
        if s.is_closed() {
            return Err(ApiError::unprocessable("closed", format!("{id} is closed")));
        }
        let mut v: Vec<EventKind> = vec![];
        for k in keys {
            if !s.checklist_done.contains(k)
                && !v
                    .iter()
                    .any(|e| matches!(e, EventKind::ChecklistDone { key } if key == k))
            {
                v.push(EventKind::ChecklistDone { key: k.clone() });
            }
        }
        Ok(v)
    })
}

/// Closes `id` when its checklist is complete (tech lead).
pub fn close(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
) -> Result<IncidentState, ApiError> {
    caller.require(ApiRole::TechLead, "closing an incident")?;
    append_system(st, &caller.actor(door), id, &mut |s| {
        Ok(if s.is_closed() {
            vec![]
        } else {
            vec![EventKind::Closed]
        })
    })
    .map_err(|e| {
        if e.code == "checklist_open" {
            e.with_hint(format!(
                "tick what was done: POST /api/v1/incidents/{id}/checklist"
            ))
        } else {
            e
        }
    })
}

/// `caller` decides about `id` at triage through `door` (tech leads; the
/// rulebook checks): the same events as `hotfix triage`
/// ([`hotfix_engine::triage::plan`]). A merge appends to `id` first, then
/// `absorbed` to the incident it went into; run again after a failure in
/// between, it appends only what is missing. `recorded`: anything appended.
pub fn triage(
    st: &AppState,
    caller: &Caller,
    door: Door,
    id: IncidentId,
    d: &hotfix_engine::triage::Decision,
) -> Result<(IncidentState, bool), ApiError> {
    use hotfix_engine::triage::{Decision, absorb, plan};
    let actor = caller.actor(door);
    let mut recorded = false;
    let s = append_system(st, &actor, id, &mut |s| {
        let kinds = plan(s, d);
        recorded = !kinds.is_empty();
        Ok(kinds)
    })?;
    if let Decision::Merge { into } = d {
        let mut absorbed = false;
        append_system(st, &actor, *into, &mut |t| {
            let kinds = absorb(&s, t);
            absorbed = !kinds.is_empty();
            Ok(kinds)
        })?;
        recorded |= absorbed;
    }
    Ok((s, recorded))
}

/// A triage decision as a request or a form says it, every field text
/// (the API's body, the dashboard's forms).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = TriageRequest)]
#[serde(deny_unknown_fields)]
pub struct TriageFields {
    /// `confirm`, `decline` or `merge`.
    pub action: String,
    #[serde(default)]
    pub severity: Option<String>,
    #[serde(default)]
    pub public_text: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub duplicate_of: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub into: Option<String>,
}

impl TriageFields {
    /// The decision about `id`; what does not parse is a 422 saying why
    /// (medium or low severity: decline it as not urgent instead).
    pub fn decision(&self, id: IncidentId) -> Result<hotfix_engine::triage::Decision, ApiError> {
        use hotfix_engine::triage::{Decision, parse_severity};
        // An empty form field is a field not given.
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        let other = |field: &str, v: Option<String>| {
            v.map(|v| {
                v.parse::<IncidentId>()
                    .map_err(|e| ApiError::unprocessable("bad_value", format!("{field}: {e}")))
            })
            .transpose()
        };
        match self.action.trim() {
            "confirm" => Ok(Decision::Confirm {
                severity: given(&self.severity)
                    .map(|v| parse_severity(&v, id).map_err(|r| ApiError::from_refusals(vec![r])))
                    .transpose()?,
                public_text: given(&self.public_text),
            }),
            "decline" => {
                let reason = given(&self.reason).ok_or_else(|| {
                    ApiError::unprocessable(
                        "bad_value",
                        "a decline needs a reason: false_alarm, not_urgent or duplicate",
                    )
                })?;
                Ok(Decision::Decline {
                    reason: reason
                        .parse()
                        .map_err(|e: String| ApiError::unprocessable("bad_value", e))?,
                    duplicate_of: other("duplicate_of", given(&self.duplicate_of))?,
                    note: given(&self.note).unwrap_or_default(),
                })
            }
            "merge" => Ok(Decision::Merge {
                into: other("into", given(&self.into))?.ok_or_else(|| {
                    ApiError::unprocessable("bad_value", "a merge names the incident it goes into")
                })?,
            }),
            other => Err(ApiError::unprocessable(
                "bad_value",
                format!("triage action `{other}` is not confirm, decline or merge"),
            )),
        }
    }
}

/// One line of the incident list (API and dashboard).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = IncidentSummary)]
pub struct Summary {
    pub id: String,
    pub title: String,
    pub severity: String,
    pub phase: String,
    pub customer_facing: bool,
    pub security: bool,
    /// The restricted view of a security incident (`hotfix_core::access`):
    /// the title, name, branch and every detail are placeholders.
    pub restricted: bool,
    pub declared_at: Timestamp,
    pub declared_by: String,
    /// Seconds since declared (until resolved, then time to restore).
    pub elapsed_s: i64,
    pub next: String,
    pub branch: String,
    pub attempt: u32,
    pub rollbacks: u32,
    pub closed: bool,
    pub version: u64,
}

/// The list line of `v` as its reader may see it.
pub fn summary(st: &AppState, v: &Seen, now: Timestamp) -> Summary {
    let s = v.state();
    let end = s.closed_at.or(s.resolved_at).unwrap_or(now);
    Summary {
        id: s.id.to_string(),
        title: s.title.clone(),
        severity: s.severity.as_str().into(),
        phase: s.phase(&st.cfg.policy).as_str().into(),
        customer_facing: s.customer_facing,
        security: s.security,
        restricted: v.restricted(),
        declared_at: s.declared_at,
        declared_by: s.declared_by.clone(),
        elapsed_s: end.as_second() - s.declared_at.as_second(),
        next: if s.is_closed() {
            "nothing: closed".into()
        } else {
            // Whoever reads the list: the team by name, the commands
            // without `--as` (the reader's token says who acts).
            next_for(s, &st.cfg, Viewer::new(None, true))
        },
        branch: s.branch.clone(),
        attempt: s.attempt,
        rollbacks: s.rollbacks,
        closed: s.is_closed(),
        version: s.version,
    }
}

/// Everything about one incident (`GET /api/v1/incidents/{id}`), as its
/// reader may see it.
pub fn detail(st: &AppState, v: &Seen, now: Timestamp) -> serde_json::Value {
    let s = v.state();
    let undelivered: Vec<_> = st
        .store
        .undelivered()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.message.incident == s.id)
        .map(|o| json!({"id": o.id, "notifier": o.notifier, "step": o.message.step, "attempts": o.attempts, "last_error": o.last_error.as_deref().map(|e| v.scrub(e))}))
        .collect();
    json!({
        "incident": summary(st, v, now),
        "restricted": v.restricted(),
        "state": {
            "head_sha": s.head_sha,
            "pr": s.pr,
            "pr_url": s.pr_url,
            "preview_url": s.preview_url,
            "merge_sha": s.merge_sha,
            "deployed_sha": s.deployed_sha,
            "healthy_sha": s.healthy_sha,
            "health_failure": s.health_failure,
            "backport_sha": s.backport_sha,
            "resolved_at": s.resolved_at,
            "closed_at": s.closed_at,
            "alert_status": s.alert_status,
            "components": s.components,
            "postmortem": s.postmortem.as_ref().map(|(p, due)| json!({"path": p, "due": due})),
            "anti_patterns": s.anti_patterns.iter().map(|(p, r)| json!({"pattern": p, "reason": r})).collect::<Vec<_>>(),
        },
        "approvals": s.approvals.iter().map(|a| json!({
            "by": a.by, "role": a.role, "sha": a.sha, "at": a.at, "source": a.source,
            "fresh": s.fresh_approvals().iter().any(|f| f.seq == a.seq),
            "withdrawn": a.withdrawn,
        })).collect::<Vec<_>>(),
        "missing_approvals": hotfix_core::guards::missing_approvals(s, &st.cfg.policy),
        "timeline": timeline(s, &st.cfg.policy, now),
        "checklist": checklist(s),
        "undelivered": undelivered,
        "events": s.events,
    })
}
