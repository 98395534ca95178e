//! The event JSON of `POST /api/v1/incidents/{id}/events`: the route's own
//! body type (`hotfix_server::api::AppendBody`), then the rulebook's one
//! log service, `hotfix_core::ledger::Ledger::append` (values checked by
//! `validate`, each event admitted by `admit` on the state the events
//! before it leave, notifications rendered), against a folded incident.
//!
//! Input: byte 0 picks the base state (HF-1 declared, then one more step
//! of its life per value: see `hotfix_fuzz::lifecycle`), byte 1 the caller
//! (who, token role, door: mostly the API's), the rest is the body.
//! HF-2, shipped and healthy, is the other incident a rollback looks at.
//!
//! The store is in memory and stores each event as its JSON text, as the
//! real stores do. Checks: no panic; whatever is admitted is stored, reads
//! back and folds to exactly the state admission looked at.
#![no_main]

use std::sync::Mutex;

use hotfix_core::admit::{Actor, Door};
use hotfix_core::config::Config;
use hotfix_core::event::{Event, EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::ledger::{AppendError, Ledger};
use hotfix_core::notify::Message;
use hotfix_core::provider::{OutboxItem, Store, StoreError};
use hotfix_core::state::IncidentState;
use hotfix_core::team::ApiRole;
use hotfix_fuzz::{DEV, LEAD, LEAD2, REVIEWER, declared, stage, stages};
use jiff::Timestamp;
use libfuzzer_sys::fuzz_target;

/// One stored event: seq, time, actor, the kind's JSON text.
type Row = (u64, Timestamp, String, String);

/// Incidents as their events' JSON text (what SQLite and PostgreSQL hold).
struct Memory {
    logs: Mutex<Vec<Vec<Row>>>,
}

fn encode(seq: u64, e: &NewEvent) -> Row {
    (
        seq,
        e.at,
        e.actor.clone(),
        serde_json::to_string(&e.kind).expect("an event kind always encodes"),
    )
}

impl Store for Memory {
    fn declare(
        &self,
        event: &NewEvent,
        outbox: &dyn Fn(IncidentId) -> Vec<(String, Message)>,
    ) -> Result<IncidentId, StoreError> {
        let mut logs = self.logs.lock().unwrap();
        let id = IncidentId(logs.len() as u64 + 1);
        let _ = outbox(id);
        logs.push(vec![encode(1, event)]);
        Ok(id)
    }

    fn append(
        &self,
        incident: IncidentId,
        expected_version: u64,
        events: &[NewEvent],
        outbox: &[(String, Message)],
    ) -> Result<u64, StoreError> {
        for (_, m) in outbox {
            serde_json::to_string(m).expect("a message always encodes");
        }
        let mut logs = self.logs.lock().unwrap();
        let log = logs
            .get_mut(incident.0 as usize - 1)
            .ok_or(StoreError::NotFound(incident))?;
        if log.len() as u64 != expected_version {
            return Err(StoreError::Conflict {
                incident,
                expected: expected_version,
                actual: log.len() as u64,
            });
        }
        for e in events {
            let seq = log.len() as u64 + 1;
            log.push(encode(seq, e));
        }
        Ok(log.len() as u64)
    }

    fn events(&self, incident: IncidentId) -> Result<Vec<Event>, StoreError> {
        let logs = self.logs.lock().unwrap();
        let log = logs
            .get(incident.0 as usize - 1)
            .ok_or(StoreError::NotFound(incident))?;
        Ok(log
            .iter()
            .map(|(seq, at, actor, body)| Event {
                incident,
                seq: *seq,
                at: *at,
                actor: actor.clone(),
                kind: serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("a stored event does not read back ({e}): {body}")),
            })
            .collect())
    }

    fn incidents(&self) -> Result<Vec<IncidentId>, StoreError> {
        let n = self.logs.lock().unwrap().len() as u64;
        Ok((1..=n).map(IncidentId).collect())
    }

    fn claim_outbox(
        &self,
        _: i64,
        _: i64,
        _: &[String],
        _: usize,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        Ok(vec![])
    }
    fn release_outbox(&self, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    fn undelivered(&self) -> Result<Vec<OutboxItem>, StoreError> {
        Ok(vec![])
    }
    fn mark_delivered(&self, _: i64, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    fn mark_failed(&self, _: i64, _: &str, _: i64) -> Result<(), StoreError> {
        Ok(())
    }
    fn memory_get(&self, _: IncidentId, _: &str) -> Result<Option<String>, StoreError> {
        Ok(None)
    }
    fn memory_set(&self, _: IncidentId, _: &str, _: &str) -> Result<(), StoreError> {
        Ok(())
    }
}

fn config() -> &'static Config {
    static C: std::sync::OnceLock<Config> = std::sync::OnceLock::new();
    C.get_or_init(|| Config::parse(&hotfix_fuzz::team_config()).expect("config"))
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(hotfix_fuzz::NOW_S + s).expect("time")
}

/// HF-1 at `stage_n`, HF-2 through its whole life, an hour earlier.
fn store(stage_n: usize) -> Memory {
    let m = Memory {
        logs: Mutex::new(vec![]),
    };
    for (id, n, t) in [(1, stage_n, 0), (2, stages() - 1, -3600)] {
        let new = |who: &str, kind: EventKind| NewEvent {
            at: at(t),
            actor: who.into(),
            kind,
        };
        let mut d = declared();
        if let EventKind::Declared { name, branch, .. } = &mut d {
            *name = format!("fix-{id}");
            *branch = format!("hotfix/fix-{id}");
        }
        m.declare(&new(DEV, d), &|_| vec![]).unwrap();
        let events: Vec<NewEvent> = stage(n).into_iter().map(|(w, k)| new(w, k)).collect();
        m.append(IncidentId(id), 1, &events, &[]).unwrap();
    }
    m
}

const WHO: [&str; 5] = [DEV, LEAD, LEAD2, REVIEWER, "stranger@example.com"];
const ROLES: [ApiRole; 3] = [ApiRole::Developer, ApiRole::TechLead, ApiRole::Admin];
/// The route is the API door; the others share the ledger.
const DOORS: [Door; 8] = [
    Door::Api,
    Door::Cli,
    Door::Dashboard,
    Door::Slack,
    Door::GitHub,
    Door::Alert,
    Door::Timer,
    Door::Watch,
];

fuzz_target!(|data: &[u8]| {
    let [stage_b, actor_b, body @ ..] = data else {
        return;
    };
    let Ok(b) = serde_json::from_slice::<hotfix_server::api::AppendBody>(body) else {
        return;
    };
    // The route's own limit (api.rs `append`).
    if b.events.len() > 100 {
        return;
    }
    let cfg = config();
    let mem = store(usize::from(*stage_b) % stages());
    let id = IncidentId(1);
    let who = WHO[usize::from(*actor_b) % WHO.len()];
    let role = ROLES[usize::from(*actor_b / 5) % ROLES.len()];
    // Mostly the API door (the route's), sometimes another.
    let door = match actor_b / 15 {
        d @ 0..=7 => DOORS[usize::from(d)],
        _ => Door::Api,
    };
    let actor = Actor::new(who, door).with_role(role);
    let notifiers = vec!["console".to_string()];
    let ledger = Ledger {
        store: &mem,
        cfg,
        notifiers: &notifiers,
    };
    let s = ledger.load(id).expect("the base state folds");
    if let Some(v) = b.expected_version
        && v != s.version
    {
        return;
    }
    let now = at(60);
    match ledger.append(&s, &actor, now, &b.events, vec![]) {
        Ok(version) => {
            assert_eq!(version, s.version + b.events.len() as u64);
            let mut expected: IncidentState = s.clone();
            for k in &b.events {
                expected.push(now, who, k);
            }
            let folded = ledger.load(id).expect("an admitted log folds");
            assert_eq!(folded, expected, "the stored log folds to another state");
        }
        Err(AppendError::Refused(r)) => assert!(!r.is_empty()),
        Err(e) => panic!("an append on a healthy store failed: {e}"),
    }
});
