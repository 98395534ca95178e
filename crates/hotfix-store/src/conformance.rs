//! The conformance suite every [`Store`] must pass. Each backend's tests call
//! [`run_all`] with a fresh, empty store.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Store, StoreError};
use hotfix_core::severity::Severity;
use jiff::Timestamp;

fn at(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).expect("valid")
}

fn declared(name: &str) -> NewEvent {
    NewEvent {
        at: at(0),
        actor: "dev@example.com".into(),
        kind: EventKind::Declared {
            name: name.into(),
            title: "t".into(),
            severity: Severity::Critical,
            customer_facing: false,
            security: false,
            branch: format!("hotfix/{name}"),
            base_sha: "abc".into(),
        },
    }
}

fn note(t: &str, s: i64) -> NewEvent {
    NewEvent {
        at: at(s),
        actor: "x".into(),
        kind: EventKind::Note { text: t.into() },
    }
}

fn msg(id: IncidentId, step: &str) -> Message {
    Message {
        incident: id,
        step: step.into(),
        severity: "critical".into(),
        channel: "#dev-alerts".into(),
        text: format!("{id} {step}"),
        mentions: vec![],
        customer_facing: false,
        security: false,
        at: at(0),
        title: "t".into(),
        pr_url: None,
    }
}

/// Runs every check against `fresh()`, which must return an empty store each call.
pub fn run_all(fresh: &dyn Fn() -> Box<dyn Store>) {
    ids_are_allocated_in_order(fresh().as_ref());
    append_is_compare_and_set(fresh().as_ref());
    events_round_trip_in_order(fresh().as_ref());
    outbox_is_written_with_the_events_and_delivered_once(fresh().as_ref());
    unknown_incidents_are_not_found(fresh().as_ref());
    memory_is_per_incident_and_overwritable(fresh().as_ref());
    released_items_can_be_claimed_again(fresh().as_ref());
}

pub fn released_items_can_be_claimed_again(s: &dyn Store) {
    let id = s
        .declare(&declared("a"), &|id| {
            vec![("file".into(), msg(id, "declared"))]
        })
        .unwrap();
    let file = vec!["file".to_string()];
    let got = s.claim_outbox(at(10).as_second(), 60, &file, 10).unwrap();
    assert_eq!(got.len(), 1);
    s.release_outbox(got[0].id).unwrap();
    let again = s.claim_outbox(at(11).as_second(), 60, &file, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 0);
    assert_eq!(again[0].message.incident, id);
}

pub fn memory_is_per_incident_and_overwritable(s: &dyn Store) {
    let a = s.declare(&declared("a"), &|_| vec![]).unwrap();
    let b = s.declare(&declared("b"), &|_| vec![]).unwrap();
    assert_eq!(s.memory_get(a, "slack.ts").unwrap(), None);
    s.memory_set(a, "slack.ts", "1.1").unwrap();
    s.memory_set(b, "slack.ts", "2.2").unwrap();
    s.memory_set(a, "slack.ts", "1.2").unwrap();
    assert_eq!(s.memory_get(a, "slack.ts").unwrap().as_deref(), Some("1.2"));
    assert_eq!(s.memory_get(b, "slack.ts").unwrap().as_deref(), Some("2.2"));
}

pub fn ids_are_allocated_in_order(s: &dyn Store) {
    let a = s.declare(&declared("a"), &|_| vec![]).unwrap();
    let b = s.declare(&declared("b"), &|_| vec![]).unwrap();
    assert_eq!(a, IncidentId(1));
    assert_eq!(b, IncidentId(2));
    assert_eq!(s.incidents().unwrap(), vec![a, b]);
}

pub fn append_is_compare_and_set(s: &dyn Store) {
    let id = s.declare(&declared("a"), &|_| vec![]).unwrap();
    assert_eq!(s.append(id, 1, &[note("one", 1)], &[]).unwrap(), 2);
    // A writer that read version 1 loses: nothing of its append lands.
    match s.append(
        id,
        1,
        &[note("stale", 2), note("stale2", 3)],
        &[("file".into(), msg(id, "x"))],
    ) {
        Err(StoreError::Conflict {
            expected: 1,
            actual: 2,
            ..
        }) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(s.events(id).unwrap().len(), 2);
    assert!(s.undelivered().unwrap().is_empty());
    assert_eq!(
        s.append(id, 2, &[note("two", 4), note("three", 5)], &[])
            .unwrap(),
        4
    );
}

pub fn events_round_trip_in_order(s: &dyn Store) {
    let id = s.declare(&declared("a"), &|_| vec![]).unwrap();
    s.append(id, 1, &[note("one", 1), note("two", 2)], &[])
        .unwrap();
    let ev = s.events(id).unwrap();
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(ev[2].kind, EventKind::Note { text: "two".into() });
    assert_eq!(ev[2].at, at(2));
    assert_eq!(ev[0].actor, "dev@example.com");
}

pub fn outbox_is_written_with_the_events_and_delivered_once(s: &dyn Store) {
    let id = s
        .declare(&declared("a"), &|id| {
            vec![("file".into(), msg(id, "declared"))]
        })
        .unwrap();
    let file = vec!["file".to_string()];
    let claim = |t: i64| s.claim_outbox(at(t).as_second(), 60, &file, 10).unwrap();
    assert!(
        s.claim_outbox(at(10).as_second(), 60, &["slack".to_string()], 10)
            .unwrap()
            .is_empty(),
        "other notifiers' items are not claimed"
    );
    let pending = claim(10);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].message.incident, id);
    // Leased: a second deliverer gets nothing until the lease runs out.
    assert!(claim(11).is_empty());
    assert_eq!(claim(71).len(), 1, "a dead deliverer's lease expires");
    s.mark_failed(pending[0].id, "slack down", at(100).as_second())
        .unwrap();
    assert!(claim(80).is_empty(), "not due before the retry time");
    let due = claim(100);
    assert_eq!(due[0].attempts, 1);
    assert_eq!(due[0].last_error.as_deref(), Some("slack down"));
    s.mark_delivered(due[0].id, at(101).as_second()).unwrap();
    assert!(claim(1000).is_empty());
    assert!(s.undelivered().unwrap().is_empty());
}

pub fn unknown_incidents_are_not_found(s: &dyn Store) {
    assert!(matches!(
        s.events(IncidentId(42)),
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.append(IncidentId(42), 0, &[note("x", 1)], &[]),
        Err(StoreError::NotFound(_))
    ));
}
