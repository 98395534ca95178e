//! The one log service: load → decide → admit → compare-and-set append with
//! the outbox. The CLI engine and the team server both write through it, so
//! every rule of [`crate::admit`] is written once and every door obeys it.
//!
//! It does no I/O of its own: it talks to whatever [`Store`] it is given
//! (SQLite, PostgreSQL, the team server's API in remote mode).

use jiff::Timestamp;

use crate::admit::{Actor, Rules, admit, admit_actor, admit_declared, needs_others};
use crate::config::Config;
use crate::event::{Event, EventKind, NewEvent};
use crate::guards::Refusal;
use crate::id::IncidentId;
use crate::notify::{Message, message_for};
use crate::provider::{Store, StoreError};
use crate::state::{FoldError, IncidentState};

/// Notifications for the outbox: `(notifier, message)`.
pub type Outbox = Vec<(String, Message)>;

/// Given the fresh state: the events to append and extra notifications.
pub type Decide<'a, E> = dyn FnMut(&IncidentState) -> Result<(Vec<EventKind>, Outbox), E> + 'a;

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The rulebook said no; every reason is listed.
    #[error("{}", .0.iter().map(|r| r.message.as_str()).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    /// Others kept appending between every read and write.
    #[error("{0} kept changing; try again")]
    KeptChanging(IncidentId),
}

/// How many times a decision is re-made on a fresh log before giving up.
const ATTEMPTS: usize = 20;

/// The log of every incident, behind the rulebook.
pub struct Ledger<'a> {
    pub store: &'a dyn Store,
    pub cfg: &'a Config,
    /// The names of the notifiers that get a message for each notable event.
    pub notifiers: &'a [String],
}

impl Ledger<'_> {
    /// The incident as it stands.
    pub fn load(&self, id: IncidentId) -> Result<IncidentState, AppendError> {
        Ok(IncidentState::fold(&self.store.events(id)?)?)
    }

    /// The notifications `kind` causes on `s`, one per notifier.
    fn messages(&self, s: &IncidentState, kind: &EventKind, now: Timestamp) -> Outbox {
        match message_for(
            s,
            kind,
            now,
            &self.cfg.notify.channel,
            &self.cfg.team.tech_leads,
        ) {
            Some(m) => self
                .notifiers
                .iter()
                .map(|n| (n.clone(), m.clone()))
                .collect(),
            None => vec![],
        }
    }

    /// Declares an incident after checking the declaration; `extra` adds
    /// notifications of the caller's own once the id is known.
    pub fn declare(
        &self,
        actor: &Actor<'_>,
        now: Timestamp,
        kind: EventKind,
        extra: &dyn Fn(&IncidentState, Timestamp) -> Outbox,
    ) -> Result<IncidentId, AppendError> {
        admit_actor(actor).map_err(AppendError::Refused)?;
        admit_declared(self.cfg, &kind).map_err(AppendError::Refused)?;
        let event = NewEvent {
            at: now,
            actor: actor.who.to_string(),
            kind: kind.clone(),
        };
        let outbox = |id: IncidentId| {
            let probe = IncidentState::fold(&[Event {
                incident: id,
                seq: 1,
                at: now,
                actor: actor.who.to_string(),
                kind: kind.clone(),
            }]);
            match probe {
                Ok(p) => {
                    let mut v = self.messages(&p, &kind, now);
                    v.extend(extra(&p, now));
                    v
                }
                Err(_) => vec![],
            }
        };
        Ok(self.store.declare(&event, &outbox)?)
    }

    /// Admits `kinds` on `s` and appends them if the incident is still at
    /// `s.version` (a [`StoreError::Conflict`] otherwise), with their
    /// notifications and `extra` in the same transaction.
    pub fn append(
        &self,
        s: &IncidentState,
        actor: &Actor<'_>,
        now: Timestamp,
        kinds: &[EventKind],
        extra: Outbox,
    ) -> Result<u64, AppendError> {
        let others = if needs_others(s, kinds) {
            Some(self.others(s)?)
        } else {
            None
        };
        let rules = Rules {
            cfg: self.cfg,
            others: others.as_deref(),
        };
        // One pass: each event is admitted on the state the events before
        // it leave, and notified from the state it leaves (as a declaration
        // is): a confirmation or an escalation is told at its new severity.
        let mut cur = s.clone();
        let mut outbox = vec![];
        for k in kinds {
            admit(&cur, &rules, actor, k).map_err(AppendError::Refused)?;
            cur.push(now, actor.who, k);
            outbox.extend(self.messages(&cur, k, now));
        }
        outbox.extend(extra);
        let events: Vec<NewEvent> = kinds
            .iter()
            .map(|kind| NewEvent {
                at: now,
                actor: actor.who.to_string(),
                kind: kind.clone(),
            })
            .collect();
        Ok(self.store.append(s.id, s.version, &events, &outbox)?)
    }

    /// Decides on the fresh log and appends, re-deciding when someone else
    /// appended in between. `decide` returns the events (none: nothing to
    /// do) and extra notifications.
    pub fn append_fresh<E: From<AppendError>>(
        &self,
        id: IncidentId,
        actor: &Actor<'_>,
        now: &dyn Fn() -> Timestamp,
        decide: &mut Decide<'_, E>,
    ) -> Result<IncidentState, E> {
        for _ in 0..ATTEMPTS {
            let s = self.load(id)?;
            let (kinds, extra) = decide(&s)?;
            if kinds.is_empty() {
                return Ok(s);
            }
            match self.append(&s, actor, now(), &kinds, extra) {
                Ok(_) => return Ok(self.load(id)?),
                Err(AppendError::Store(StoreError::Conflict { .. })) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppendError::KeptChanging(id).into())
    }

    /// Every incident but `s`.
    pub fn others(&self, s: &IncidentState) -> Result<Vec<IncidentState>, AppendError> {
        let mut all = vec![];
        for id in self.store.incidents()? {
            if id != s.id {
                all.push(self.load(id)?);
            }
        }
        Ok(all)
    }
}
