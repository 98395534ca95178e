//! The conformance suite every [`Store`] must pass. Each backend's tests call
//! [`run_all`] with a fresh, empty store, and [`run_team_all`] for the team
//! server's tables ([`TeamStore`]); [`team_concurrent_all`] takes several
//! connections to one store, as replicas would have.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::notify::Message;
use hotfix_core::provider::{Store, StoreError};
use hotfix_core::severity::Severity;
use hotfix_core::team::{AdminGuard, ApiRole, InboxPut, Revoke, ServerStore};
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

fn attempt(name: &str, attempt: u32, s: i64) -> NewEvent {
    NewEvent {
        at: at(s),
        actor: "dev@example.com".into(),
        kind: EventKind::AttemptStarted {
            attempt,
            name: name.into(),
            branch: format!("hotfix/{name}"),
            base_sha: "def".into(),
            severity: Severity::Critical,
        },
    }
}

fn closed(s: i64) -> NewEvent {
    NewEvent {
        at: at(s),
        actor: "lead@example.com".into(),
        kind: EventKind::Closed,
    }
}

/// Asserts a refusal of `name` because `holder` holds it.
#[track_caller]
fn assert_name_in_use<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    name: &str,
    holder: IncidentId,
) {
    match r {
        Err(StoreError::NameInUse { name: n, incident }) => {
            assert_eq!((n.as_str(), incident), (name, holder));
        }
        other => panic!("expected `{name}` to be in use by {holder}, got {other:?}"),
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
        triage: false,
        public_text: None,
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
    outbox_claims_oldest_first_up_to_the_limit(fresh().as_ref());
    an_open_incident_holds_its_name(fresh().as_ref());
    closing_frees_the_name(fresh().as_ref());
    a_new_attempt_takes_its_name_and_frees_the_old_one(fresh().as_ref());
}

/// A second declaration of a name an open incident holds is refused with
/// the holder, writes nothing and uses up no incident number.
pub fn an_open_incident_holds_its_name(s: &dyn Store) {
    let a = s
        .declare(&declared("pdf-crash"), &|id| {
            vec![("file".into(), msg(id, "declared"))]
        })
        .unwrap();
    assert_name_in_use(
        s.declare(&declared("pdf-crash"), &|id| {
            vec![("file".into(), msg(id, "declared"))]
        }),
        "pdf-crash",
        a,
    );
    assert_eq!(s.incidents().unwrap(), vec![a], "nothing was declared");
    assert_eq!(s.undelivered().unwrap().len(), 1, "no notification either");
    // Other names are free; the refusal took no number.
    let b = s.declare(&declared("login-loop"), &|_| vec![]).unwrap();
    assert_eq!(b, IncidentId(a.0 + 1));
    // Names are exact: another spelling is another name.
    s.declare(&declared("pdf-crash-2"), &|_| vec![]).unwrap();
    // Appends that do not start an attempt leave the name where it is.
    s.append(a, 1, &[note("one", 1)], &[]).unwrap();
    assert_name_in_use(
        s.declare(&declared("pdf-crash"), &|_| vec![]),
        "pdf-crash",
        a,
    );
    // A declaration that is not a `declared` event takes no name.
    let c = s.declare(&note("imported", 2), &|_| vec![]).unwrap();
    let d = s.declare(&note("imported", 3), &|_| vec![]).unwrap();
    assert_ne!(c, d);
}

/// Closing gives the name up: it can be declared again, and the closed
/// incident's new events (a late note, even an `attempt_started`) do not
/// take it back.
pub fn closing_frees_the_name(s: &dyn Store) {
    let a = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
    assert_eq!(
        s.append(a, 1, &[note("fixed", 1), closed(2)], &[]).unwrap(),
        3
    );
    let b = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
    assert_ne!(a, b);
    assert_name_in_use(
        s.declare(&declared("pdf-crash"), &|_| vec![]),
        "pdf-crash",
        b,
    );
    s.append(a, 3, &[note("late", 3)], &[]).unwrap();
    // A closed incident is not reopened by an attempt: it takes nothing,
    // not even a free name.
    s.append(a, 4, &[attempt("pdf-crash", 2, 4)], &[]).unwrap();
    s.append(a, 5, &[attempt("other", 3, 5)], &[]).unwrap();
    s.declare(&declared("other"), &|_| vec![]).unwrap();
    // Closing the second frees the name once more.
    s.append(b, 1, &[closed(6)], &[]).unwrap();
    let c = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
    assert!(c > b);
}

/// `attempt_started` renames: the incident takes the new name (refused,
/// with nothing appended, if another open incident holds it) and frees the
/// old one; restarting under its own name is not a conflict with itself.
pub fn a_new_attempt_takes_its_name_and_frees_the_old_one(s: &dyn Store) {
    let a = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
    let b = s.declare(&declared("login-loop"), &|_| vec![]).unwrap();
    // Its own name again (a reported incident's first branch): fine.
    assert_eq!(
        s.append(a, 1, &[attempt("pdf-crash", 1, 1)], &[]).unwrap(),
        2
    );
    // Another open incident's name: refused, nothing lands.
    assert_name_in_use(
        s.append(
            a,
            2,
            &[note("before", 2), attempt("login-loop", 2, 3)],
            &[("file".into(), msg(a, "attempt"))],
        ),
        "login-loop",
        b,
    );
    assert_eq!(s.events(a).unwrap().len(), 2, "nothing of the batch landed");
    assert!(s.undelivered().unwrap().is_empty());
    // A free name: taken, and the old one is free.
    assert_eq!(
        s.append(a, 2, &[attempt("pdf-render", 2, 4)], &[]).unwrap(),
        3
    );
    assert_name_in_use(
        s.declare(&declared("pdf-render"), &|_| vec![]),
        "pdf-render",
        a,
    );
    let c = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
    assert_name_in_use(
        s.append(b, 1, &[attempt("pdf-crash", 2, 5)], &[]),
        "pdf-crash",
        c,
    );
    // Only the end of a batch counts: renamed twice, it holds the last name.
    assert_eq!(
        s.append(b, 1, &[attempt("x-1", 2, 6), attempt("x-2", 3, 7)], &[])
            .unwrap(),
        3
    );
    let x1 = s.declare(&declared("x-1"), &|_| vec![]).unwrap();
    assert_name_in_use(s.declare(&declared("x-2"), &|_| vec![]), "x-2", b);
    // Renamed and closed in one batch: it holds nothing.
    s.append(x1, 1, &[attempt("x-3", 2, 8), closed(9)], &[])
        .unwrap();
    s.declare(&declared("x-1"), &|_| vec![]).unwrap();
    s.declare(&declared("x-3"), &|_| vec![]).unwrap();
}

/// Writes, on a store with the name rule, a log as a build without it
/// could have: `forget()` must empty the backend's record of who holds
/// which name, and is called before every declaration. The backend's test
/// then takes its schema back to before the name rule and reopens it, and
/// checks the migrated store with [`a_log_from_before_the_name_rule_migrates`].
pub fn write_a_log_from_before_the_name_rule(s: &dyn Store, forget: &dyn Fn()) {
    let declare = |name: &str| {
        forget();
        s.declare(&declared(name), &|_| vec![]).unwrap()
    };
    let ids = [
        declare("dup"),  // HF-1: the oldest open `dup`
        declare("dup"),  // HF-2: open too
        declare("old"),  // HF-3: renamed to `new` below
        declare("gone"), // HF-4: closed below
        declare("dup"),  // HF-5: closed below
        declare("new"),  // HF-6: open, but HF-3 (older) is `new` now
    ];
    assert_eq!(ids.map(|i| i.0), [1, 2, 3, 4, 5, 6]);
    forget();
    s.append(IncidentId(3), 1, &[attempt("new", 2, 1)], &[])
        .unwrap();
    s.append(IncidentId(4), 1, &[closed(2)], &[]).unwrap();
    s.append(IncidentId(5), 1, &[closed(3)], &[]).unwrap();
    forget();
}

/// What the migration made of [`write_a_log_from_before_the_name_rule`]'s
/// log: of the open incidents sharing a name, the oldest holds it and the
/// others hold none; a renamed incident holds its latest name; closed ones
/// hold nothing.
pub fn a_log_from_before_the_name_rule_migrates(s: &dyn Store) {
    let hf = IncidentId;
    assert_eq!(s.incidents().unwrap().len(), 6, "the log is untouched");
    assert_name_in_use(s.declare(&declared("dup"), &|_| vec![]), "dup", hf(1));
    assert_name_in_use(s.declare(&declared("new"), &|_| vec![]), "new", hf(3));
    assert_eq!(s.declare(&declared("old"), &|_| vec![]).unwrap(), hf(7));
    assert_eq!(s.declare(&declared("gone"), &|_| vec![]).unwrap(), hf(8));
    // The duplicates stay usable; a new attempt of theirs needs a free name.
    s.append(hf(2), 1, &[note("still here", 4)], &[]).unwrap();
    assert_name_in_use(
        s.append(hf(2), 2, &[attempt("dup", 2, 5)], &[]),
        "dup",
        hf(1),
    );
    s.append(hf(2), 2, &[attempt("dup-2", 2, 6)], &[]).unwrap();
    s.append(hf(6), 1, &[closed(7)], &[]).unwrap();
    assert_name_in_use(s.declare(&declared("new"), &|_| vec![]), "new", hf(3));
    // Once the holder closes, the name is free.
    s.append(hf(1), 1, &[closed(8)], &[]).unwrap();
    assert_eq!(s.declare(&declared("dup"), &|_| vec![]).unwrap(), hf(9));
}

/// Declarers racing for one name, each on its own connection as separate
/// processes or replicas would be: exactly one gets an incident, the
/// others are told it holds the name and write nothing. Again after the
/// winner closes, and for attempts racing to rename two incidents to one
/// name. `open` returns a new connection to the same, empty store each call.
pub fn concurrent_declarations_of_one_name_have_one_winner(
    open: &(dyn Fn() -> Box<dyn Store> + Sync),
    writers: usize,
) {
    let first = open();
    let stores: Vec<Box<dyn Store>> = (0..writers).map(|_| open()).collect();
    let mut winners = vec![];
    for round in 0..3u64 {
        let results: Vec<Result<IncidentId, StoreError>> = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter()
                .map(|s| sc.spawn(move || s.declare(&declared("pdf-crash"), &|_| vec![])))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let won: Vec<IncidentId> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().copied())
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let winner = won[0];
        for r in results.into_iter().filter(|r| r.is_err()) {
            assert_name_in_use(r, "pdf-crash", winner);
        }
        // The losers used up no incident number.
        assert_eq!(winner, IncidentId(round + 1), "round {round}");
        winners.push(winner);
        first.append(winner, 1, &[closed(10)], &[]).unwrap();
    }
    assert_eq!(first.incidents().unwrap(), winners);

    // Two open incidents racing to rename themselves to one name.
    let a = first.declare(&declared("a"), &|_| vec![]).unwrap();
    let b = first.declare(&declared("b"), &|_| vec![]).unwrap();
    let results: Vec<Result<u64, StoreError>> = std::thread::scope(|sc| {
        let handles: Vec<_> = [a, b]
            .into_iter()
            .zip(&stores)
            .map(|(id, s)| sc.spawn(move || s.append(id, 1, &[attempt("shared", 2, 20)], &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (won, lost): (Vec<_>, Vec<_>) = [a, b]
        .into_iter()
        .zip(results)
        .partition(|(_, r)| r.is_ok());
    assert_eq!((won.len(), lost.len()), (1, 1), "{won:?} {lost:?}");
    let (winner, loser) = (won[0].0, lost[0].0);
    assert_name_in_use(
        lost.into_iter().map(|(_, r)| r).next().unwrap(),
        "shared",
        winner,
    );
    assert_eq!(first.events(winner).unwrap().len(), 2);
    assert_eq!(first.events(loser).unwrap().len(), 1);
}

pub fn outbox_claims_oldest_first_up_to_the_limit(s: &dyn Store) {
    let id = s
        .declare(&declared("a"), &|id| {
            vec![
                ("file".into(), msg(id, "declared")),
                ("slack".into(), msg(id, "declared")),
            ]
        })
        .unwrap();
    s.append(
        id,
        1,
        &[note("one", 1)],
        &[
            ("file".into(), msg(id, "one")),
            ("file".into(), msg(id, "two")),
        ],
    )
    .unwrap();
    let now = at(10).as_second();
    let steps = |v: &[hotfix_core::provider::OutboxItem]| -> Vec<String> {
        v.iter().map(|i| i.message.step.clone()).collect()
    };
    let first = s.claim_outbox(now, 60, &["file".to_string()], 2).unwrap();
    assert_eq!(steps(&first), vec!["declared", "one"], "oldest first");
    assert!(first[0].id < first[1].id);
    assert!(first.iter().all(|i| i.notifier == "file"));
    let rest = s
        .claim_outbox(now, 60, &["file".to_string()], usize::MAX)
        .unwrap();
    assert_eq!(steps(&rest), vec!["two"], "no limit: all that is left");
    let both = s
        .claim_outbox(now, 60, &["file".to_string(), "slack".to_string()], 10)
        .unwrap();
    assert_eq!(both.len(), 1, "{both:?}");
    assert_eq!(both[0].notifier, "slack");
    assert_eq!(both[0].message.incident, id);
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

/// Writers racing to append to one incident at the same version, each on
/// its own connection as separate processes or replicas would be: exactly
/// one wins, the others get a conflict and write nothing. `open` returns a
/// new connection to the same, empty store each call.
pub fn concurrent_appends_have_one_winner(
    open: &(dyn Fn() -> Box<dyn Store> + Sync),
    writers: usize,
) {
    let first = open();
    ids_are_allocated_in_order(first.as_ref());
    let id = IncidentId(1);
    let wins: usize = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..writers)
            .map(|i| {
                sc.spawn(move || {
                    let s = open();
                    let e = NewEvent {
                        at: at(1),
                        actor: format!("w{i}"),
                        kind: EventKind::Note {
                            text: format!("{i}"),
                        },
                    };
                    match s.append(id, 1, &[e], &[]) {
                        Ok(_) => 1,
                        Err(StoreError::Conflict { .. }) => 0,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
    assert_eq!(first.events(id).unwrap().len(), 2);
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

/// Runs every [`TeamStore`] check against `fresh()`, which must return an
/// empty store each call.
pub fn run_team_all(fresh: &dyn Fn() -> Box<dyn ServerStore>) {
    tokens_are_found_by_hash_until_revoked(fresh().as_ref());
    the_last_admin_token_is_kept(fresh().as_ref());
    token_hashes_are_unique(fresh().as_ref());
    inbox_stores_a_delivery_once(fresh().as_ref());
    inbox_claims_due_items_oldest_first_under_a_lease(fresh().as_ref());
    inbox_failed_items_come_back_at_the_retry_time(fresh().as_ref());
    inbox_a_late_report_does_not_undo_a_finished_item(fresh().as_ref());
    inbox_deferred_items_come_back_without_spending_an_attempt(fresh().as_ref());
    inbox_recent_is_newest_first_with_outcomes(fresh().as_ref());
    alert_links_keep_the_first_incident(fresh().as_ref());
    leases_have_one_holder_until_they_expire(fresh().as_ref());
    once_is_true_only_the_first_time(fresh().as_ref());
    watermark_grows_with_every_append(fresh().as_ref());
    incident_versions_follow_every_append(fresh().as_ref());
}

/// Races on one store through separate connections: `stores` must all be
/// handles to the same, empty store.
pub fn team_concurrent_all(stores: &[&dyn ServerStore]) {
    concurrent_inbox_claimers_never_share_an_item(stores);
    concurrent_lease_acquirers_have_one_winner(stores);
    concurrent_once_has_one_winner(stores);
    concurrent_alert_links_agree_on_one_incident(stores);
    concurrent_admins_revoking_each_other_leave_one(stores);
}

/// Each handle revokes a different live admin token at the same moment,
/// round after round: every round leaves exactly one, whoever wins.
pub fn concurrent_admins_revoking_each_other_leave_one(stores: &[&dyn ServerStore]) {
    let first = stores[0];
    for round in 0..8 {
        // One admin is left from the round before; top up to one per handle.
        let live = |s: &dyn ServerStore| -> Vec<i64> {
            s.token_list()
                .unwrap()
                .into_iter()
                .filter(|t| t.role == ApiRole::Admin && !t.revoked)
                .map(|t| t.id)
                .collect()
        };
        let mut ids = live(first);
        for i in ids.len()..stores.len() {
            ids.push(
                first
                    .token_create(
                        &format!("admin{i}@example.com"),
                        ApiRole::Admin,
                        &format!("h-race-{round}-{i}"),
                        T0 + round,
                    )
                    .unwrap(),
            );
        }
        let barrier = std::sync::Barrier::new(stores.len());
        let outcomes: Vec<Revoke> = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter()
                .zip(&ids)
                .map(|(s, &id)| {
                    let barrier = &barrier;
                    sc.spawn(move || {
                        barrier.wait();
                        s.token_revoke(id, AdminGuard::KeepOne).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let left = live(first);
        assert_eq!(left.len(), 1, "round {round}: {outcomes:?} left {left:?}");
        assert_eq!(
            outcomes.iter().filter(|o| **o == Revoke::LastAdmin).count(),
            1,
            "round {round}: {outcomes:?}"
        );
    }
}

const T0: i64 = 1_700_000_000;

pub fn tokens_are_found_by_hash_until_revoked(s: &dyn ServerStore) {
    assert!(s.token_list().unwrap().is_empty());
    assert_eq!(s.token_lookup("h-dev").unwrap(), None);
    let dev = s
        .token_create("dev@example.com", ApiRole::Developer, "h-dev", T0 + 1)
        .unwrap();
    let lead = s
        .token_create("lead@example.com", ApiRole::TechLead, "h-lead", T0 + 2)
        .unwrap();
    let admin = s
        .token_create("ops@example.com", ApiRole::Admin, "h-admin", T0 + 3)
        .unwrap();
    assert!(dev != lead && lead != admin && dev != admin);

    let found = s.token_lookup("h-lead").unwrap().expect("live token");
    assert_eq!(found.id, lead);
    assert_eq!(found.user, "lead@example.com");
    assert_eq!(found.role, ApiRole::TechLead);
    assert_eq!(found.created_at, T0 + 2);
    assert!(!found.revoked);
    assert_eq!(
        s.token_lookup("h-admin").unwrap().unwrap().role,
        ApiRole::Admin
    );
    assert_eq!(s.token_lookup("h-nope").unwrap(), None);

    assert_eq!(
        s.token_revoke(lead, AdminGuard::KeepOne).unwrap(),
        Revoke::Revoked
    );
    assert_eq!(s.token_lookup("h-lead").unwrap(), None, "revoked is dead");
    assert_eq!(
        s.token_revoke(lead, AdminGuard::KeepOne).unwrap(),
        Revoke::NotFound,
        "already revoked"
    );
    assert_eq!(
        s.token_revoke(admin + 1000, AdminGuard::AllowNone).unwrap(),
        Revoke::NotFound,
        "no such token"
    );
    assert!(s.token_lookup("h-dev").unwrap().is_some(), "others live on");

    let list = s.token_list().unwrap();
    let ids: Vec<i64> = list.iter().map(|t| t.id).collect();
    assert_eq!(
        ids,
        vec![dev, lead, admin],
        "oldest first, revoked included"
    );
    let roles: Vec<ApiRole> = list.iter().map(|t| t.role).collect();
    assert_eq!(
        roles,
        vec![ApiRole::Developer, ApiRole::TechLead, ApiRole::Admin]
    );
    let revoked: Vec<bool> = list.iter().map(|t| t.revoked).collect();
    assert_eq!(revoked, vec![false, true, false]);
}

/// The last live admin token is kept unless the caller allows revoking it
/// (the CLI on the server's machine); revoked admin tokens do not count.
pub fn the_last_admin_token_is_kept(s: &dyn ServerStore) {
    let dev = s
        .token_create("dev@example.com", ApiRole::Developer, "h-dev", T0)
        .unwrap();
    let a = s
        .token_create("a@example.com", ApiRole::Admin, "h-a", T0 + 1)
        .unwrap();
    let b = s
        .token_create("b@example.com", ApiRole::Admin, "h-b", T0 + 2)
        .unwrap();
    assert_eq!(
        s.token_revoke(a, AdminGuard::KeepOne).unwrap(),
        Revoke::Revoked,
        "another admin is left"
    );
    assert_eq!(
        s.token_revoke(b, AdminGuard::KeepOne).unwrap(),
        Revoke::LastAdmin
    );
    assert!(
        s.token_lookup("h-b").unwrap().is_some(),
        "the last one lives"
    );
    assert_eq!(
        s.token_revoke(a, AdminGuard::KeepOne).unwrap(),
        Revoke::NotFound,
        "a revoked admin is not found, not the last admin"
    );
    assert_eq!(
        s.token_revoke(dev, AdminGuard::KeepOne).unwrap(),
        Revoke::Revoked,
        "other roles are not guarded"
    );
    let c = s
        .token_create("c@example.com", ApiRole::Admin, "h-c", T0 + 3)
        .unwrap();
    assert_eq!(
        s.token_revoke(b, AdminGuard::KeepOne).unwrap(),
        Revoke::Revoked
    );
    assert_eq!(
        s.token_revoke(c, AdminGuard::AllowNone).unwrap(),
        Revoke::Revoked,
        "allowed on purpose"
    );
    assert!(s.token_list().unwrap().iter().all(|t| t.revoked));
}

pub fn token_hashes_are_unique(s: &dyn ServerStore) {
    s.token_create("a@example.com", ApiRole::Admin, "same", T0)
        .unwrap();
    let again = s.token_create("b@example.com", ApiRole::Developer, "same", T0 + 1);
    assert!(
        matches!(again, Err(StoreError::Backend(_))),
        "a second token with the same hash: {again:?}"
    );
    let only = s.token_lookup("same").unwrap().unwrap();
    assert_eq!(only.user, "a@example.com");
    assert_eq!(s.token_list().unwrap().len(), 1);
}

pub fn inbox_stores_a_delivery_once(s: &dyn ServerStore) {
    let InboxPut::Stored(a) = s.inbox_put("github", "d-1", "first", T0).unwrap() else {
        panic!("the first delivery is stored");
    };
    assert_eq!(
        s.inbox_put("github", "d-1", "changed body", T0 + 5)
            .unwrap(),
        InboxPut::Duplicate(a)
    );
    // The same delivery id from another source is another thing.
    let InboxPut::Stored(b) = s.inbox_put("sentry", "d-1", "other", T0 + 6).unwrap() else {
        panic!("another source's delivery is stored");
    };
    assert_ne!(a, b);
    let got = s.inbox_claim(T0 + 10, 60, 10).unwrap();
    assert_eq!(got.len(), 2, "the duplicate added nothing: {got:?}");
    assert_eq!(got[0].id, a);
    assert_eq!(got[0].body, "first", "the duplicate changed nothing");
    assert_eq!(got[0].received_at, T0);
    assert_eq!(got[0].source, "github");
    s.inbox_done(a, "declared HF-1", T0 + 11).unwrap();
    // A redelivery after processing is still a duplicate and is not requeued.
    assert_eq!(
        s.inbox_put("github", "d-1", "first", T0 + 20).unwrap(),
        InboxPut::Duplicate(a)
    );
    assert!(
        s.inbox_claim(T0 + 1000, 60, 10)
            .unwrap()
            .iter()
            .all(|i| i.id != a)
    );
    let rec = s.inbox_recent(10).unwrap();
    let ra = rec.iter().find(|r| r.id == a).unwrap();
    assert_eq!(ra.processed_at, Some(T0 + 11));
    assert_eq!(ra.outcome.as_deref(), Some("declared HF-1"));
}

fn put(s: &dyn ServerStore, delivery: &str, now: i64) -> i64 {
    match s.inbox_put("generic", delivery, delivery, now).unwrap() {
        InboxPut::Stored(id) => id,
        InboxPut::Duplicate(id) => panic!("{delivery} stored before as {id}"),
    }
}

pub fn inbox_claims_due_items_oldest_first_under_a_lease(s: &dyn ServerStore) {
    assert!(s.inbox_claim(T0, 60, 10).unwrap().is_empty());
    let a = put(s, "a", T0);
    let b = put(s, "b", T0 + 1);
    let c = put(s, "c", T0 + 2);
    assert!(
        s.inbox_claim(T0 - 1, 60, 10).unwrap().is_empty(),
        "not due before it came in"
    );
    let first = s.inbox_claim(T0 + 2, 60, 2).unwrap();
    let ids: Vec<i64> = first.iter().map(|i| i.id).collect();
    assert_eq!(ids, vec![a, b], "oldest first, at most the limit");
    assert!(first.iter().all(|i| i.attempts == 1), "{first:?}");
    let rest = s.inbox_claim(T0 + 3, 60, 10).unwrap();
    assert_eq!(rest.iter().map(|i| i.id).collect::<Vec<_>>(), vec![c]);
    // Everything is leased now: nobody else gets anything.
    assert!(s.inbox_claim(T0 + 30, 60, 10).unwrap().is_empty());
    // a and b were leased until T0+62: a replica that died holding them
    // loses them at that second, and the next claim counts another attempt.
    s.inbox_done(b, "ignored: resolved alert", T0 + 40).unwrap();
    assert!(s.inbox_claim(T0 + 61, 60, 10).unwrap().is_empty());
    let again = s.inbox_claim(T0 + 62, 60, 10).unwrap();
    assert_eq!(again.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].body, "a");
    let c_again = s.inbox_claim(T0 + 63, 60, 10).unwrap();
    assert_eq!(c_again.iter().map(|i| i.id).collect::<Vec<_>>(), vec![c]);
    // Done items are never claimed again, however late.
    s.inbox_done(a, "declared HF-1", T0 + 64).unwrap();
    s.inbox_done(c, "declared HF-2", T0 + 64).unwrap();
    assert!(s.inbox_claim(T0 + 100_000, 60, 10).unwrap().is_empty());
    let limit0 = put(s, "d", T0 + 200);
    assert!(
        s.inbox_claim(T0 + 300, 60, 0).unwrap().is_empty(),
        "limit 0"
    );
    assert_eq!(s.inbox_claim(T0 + 300, 60, 1).unwrap()[0].id, limit0);
}

pub fn inbox_deferred_items_come_back_without_spending_an_attempt(s: &dyn ServerStore) {
    let a = put(s, "a", T0);
    let first = s.inbox_claim(T0, 60, 10).unwrap();
    assert_eq!(first[0].attempts, 1);
    s.inbox_defer(a, "deferred: settling", T0 + 5).unwrap();
    assert!(
        s.inbox_claim(T0 + 4, 60, 10).unwrap().is_empty(),
        "not before its time"
    );
    let again = s.inbox_claim(T0 + 5, 60, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 1, "the deferred claim did not count");
    let rec = s.inbox_recent(1).unwrap();
    assert_eq!(rec[0].outcome.as_deref(), Some("deferred: settling"));
    // A failure does count.
    s.inbox_failed(a, "boom", T0 + 6).unwrap();
    assert_eq!(s.inbox_claim(T0 + 6, 60, 10).unwrap()[0].attempts, 2);
    // A finished item is not given back.
    s.inbox_done(a, "done", T0 + 7).unwrap();
    s.inbox_defer(a, "late", T0 + 7).unwrap();
    assert!(s.inbox_claim(T0 + 100, 60, 10).unwrap().is_empty());
    assert_eq!(
        s.inbox_recent(1).unwrap()[0].outcome.as_deref(),
        Some("done")
    );
}

pub fn inbox_failed_items_come_back_at_the_retry_time(s: &dyn ServerStore) {
    let a = put(s, "a", T0);
    let b = put(s, "b", T0);
    assert_eq!(s.inbox_claim(T0, 60, 10).unwrap().len(), 2);
    s.inbox_failed(a, "GitHub API 502", T0 + 300).unwrap();
    s.inbox_failed(b, "GitHub API 502", T0 + 10).unwrap();
    // The lease is cleared, but a failed item waits for its retry time.
    let early = s.inbox_claim(T0 + 10, 60, 10).unwrap();
    assert_eq!(early.iter().map(|i| i.id).collect::<Vec<_>>(), vec![b]);
    s.inbox_done(b, "declared HF-1", T0 + 11).unwrap();
    assert!(s.inbox_claim(T0 + 299, 60, 10).unwrap().is_empty());
    let rec = s.inbox_recent(10).unwrap();
    let ra = rec.iter().find(|r| r.id == a).unwrap();
    assert_eq!(ra.outcome.as_deref(), Some("GitHub API 502"));
    assert_eq!(ra.processed_at, None, "a failure is not processed");
    assert_eq!(ra.attempts, 1);
    let retry = s.inbox_claim(T0 + 300, 60, 10).unwrap();
    assert_eq!(retry.iter().map(|i| i.id).collect::<Vec<_>>(), vec![a]);
    assert_eq!(retry[0].attempts, 2);
    s.inbox_done(a, "declared HF-2", T0 + 301).unwrap();
    let ra = s.inbox_recent(10).unwrap();
    let ra = ra.iter().find(|r| r.id == a).unwrap();
    assert_eq!(
        ra.outcome.as_deref(),
        Some("declared HF-2"),
        "done replaces the error"
    );
    assert_eq!(ra.processed_at, Some(T0 + 301));
}

pub fn inbox_a_late_report_does_not_undo_a_finished_item(s: &dyn ServerStore) {
    let a = put(s, "a", T0);
    let slow = s.inbox_claim(T0, 60, 10).unwrap();
    assert_eq!(slow[0].id, a);
    // The slow replica's lease runs out; another takes the item and finishes.
    let fast = s.inbox_claim(T0 + 60, 60, 10).unwrap();
    assert_eq!(fast[0].id, a);
    s.inbox_done(a, "declared HF-1", T0 + 61).unwrap();
    // The slow one reports afterwards, either way.
    s.inbox_failed(a, "timed out", T0 + 90).unwrap();
    s.inbox_done(a, "declared HF-2", T0 + 95).unwrap();
    let rec = s.inbox_recent(1).unwrap();
    assert_eq!(rec[0].id, a);
    assert_eq!(rec[0].outcome.as_deref(), Some("declared HF-1"));
    assert_eq!(rec[0].processed_at, Some(T0 + 61));
    assert!(s.inbox_claim(T0 + 1000, 60, 10).unwrap().is_empty());
}

pub fn inbox_recent_is_newest_first_with_outcomes(s: &dyn ServerStore) {
    assert!(s.inbox_recent(10).unwrap().is_empty());
    let a = put(s, "a", T0);
    let b = put(s, "b", T0 + 1);
    let c = put(s, "c", T0 + 2);
    s.inbox_claim(T0 + 2, 60, 10).unwrap();
    s.inbox_done(a, "declared HF-1", T0 + 3).unwrap();
    s.inbox_failed(b, "bad payload", T0 + 100).unwrap();
    let rec = s.inbox_recent(10).unwrap();
    assert_eq!(rec.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c, b, a]);
    assert_eq!(rec[2].source, "generic");
    assert_eq!(rec[2].received_at, T0);
    assert_eq!(rec[2].processed_at, Some(T0 + 3));
    assert_eq!(rec[2].outcome.as_deref(), Some("declared HF-1"));
    assert_eq!(rec[2].attempts, 1);
    assert_eq!(rec[1].processed_at, None);
    assert_eq!(rec[1].outcome.as_deref(), Some("bad payload"));
    assert_eq!(rec[0].outcome, None, "claimed, not yet processed");
    assert_eq!(rec[0].received_at, T0 + 2);
    let two = s.inbox_recent(2).unwrap();
    assert_eq!(two.iter().map(|r| r.id).collect::<Vec<_>>(), vec![c, b]);
}

pub fn alert_links_keep_the_first_incident(s: &dyn ServerStore) {
    let one = s.declare(&declared("a"), &|_| vec![]).unwrap();
    let two = s.declare(&declared("b"), &|_| vec![]).unwrap();
    assert_eq!(s.alert_link_get("alertmanager", "k1").unwrap(), None);
    assert_eq!(s.alert_link_set("alertmanager", "k1", one).unwrap(), one);
    assert_eq!(
        s.alert_link_set("alertmanager", "k1", two).unwrap(),
        one,
        "the first link wins"
    );
    assert_eq!(s.alert_link_get("alertmanager", "k1").unwrap(), Some(one));
    // The key is per source.
    assert_eq!(s.alert_link_get("sentry", "k1").unwrap(), None);
    assert_eq!(s.alert_link_set("sentry", "k1", two).unwrap(), two);
    assert_eq!(s.alert_link_get("sentry", "k1").unwrap(), Some(two));
    assert_eq!(s.alert_link_get("alertmanager", "k1").unwrap(), Some(one));
    assert_eq!(s.alert_link_get("alertmanager", "k2").unwrap(), None);
}

pub fn leases_have_one_holder_until_they_expire(s: &dyn ServerStore) {
    let t = T0;
    assert!(s.lease_acquire("reminders", "r1", t, 30).unwrap(), "free");
    assert!(
        !s.lease_acquire("reminders", "r2", t + 1, 30).unwrap(),
        "held"
    );
    assert!(
        s.lease_acquire("other", "r2", t + 1, 1000).unwrap(),
        "names are separate"
    );
    // r1 renews at t+20, until t+50: r2 still cannot take it at t+30 (the
    // first lease's end) but can at t+50.
    assert!(
        s.lease_acquire("reminders", "r1", t + 20, 30).unwrap(),
        "renew"
    );
    assert!(!s.lease_acquire("reminders", "r2", t + 30, 30).unwrap());
    assert!(!s.lease_acquire("reminders", "r2", t + 49, 30).unwrap());
    assert!(
        s.lease_acquire("reminders", "r2", t + 50, 30).unwrap(),
        "expired"
    );
    assert!(
        !s.lease_acquire("reminders", "r1", t + 51, 30).unwrap(),
        "the old holder lost it"
    );
    // Only the holder can release.
    s.lease_release("reminders", "r1").unwrap();
    assert!(!s.lease_acquire("reminders", "r3", t + 52, 30).unwrap());
    s.lease_release("reminders", "r2").unwrap();
    assert!(
        s.lease_acquire("reminders", "r3", t + 52, 30).unwrap(),
        "released"
    );
    assert!(
        !s.lease_acquire("other", "r3", t + 52, 30).unwrap(),
        "r2 still holds the other lease"
    );
}

pub fn once_is_true_only_the_first_time(s: &dyn ServerStore) {
    assert!(s.once("postmortem-reminder:HF-3", T0).unwrap());
    assert!(!s.once("postmortem-reminder:HF-3", T0 + 1).unwrap());
    assert!(!s.once("postmortem-reminder:HF-3", T0 + 100_000).unwrap());
    assert!(s.once("postmortem-reminder:HF-4", T0 + 2).unwrap());
}

pub fn watermark_grows_with_every_append(s: &dyn ServerStore) {
    let w0 = s.watermark().unwrap();
    assert_eq!(s.watermark().unwrap(), w0, "reading changes nothing");
    let a = s.declare(&declared("a"), &|_| vec![]).unwrap();
    let w1 = s.watermark().unwrap();
    assert!(w1 > w0, "a declaration is an event: {w0} -> {w1}");
    let b = s.declare(&declared("b"), &|_| vec![]).unwrap();
    let w2 = s.watermark().unwrap();
    assert!(w2 > w1, "{w1} -> {w2}");
    s.append(a, 1, &[note("one", 1)], &[]).unwrap();
    let w3 = s.watermark().unwrap();
    assert!(w3 > w2, "an append to an older incident: {w2} -> {w3}");
    s.append(b, 1, &[note("x", 2), note("y", 3)], &[]).unwrap();
    let w4 = s.watermark().unwrap();
    assert!(w4 > w3, "{w3} -> {w4}");
    // A lost compare-and-set writes nothing, so nothing to re-read.
    assert!(matches!(
        s.append(a, 1, &[note("stale", 4)], &[]),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(s.watermark().unwrap(), w4);
    // Team tables are not incident events.
    s.inbox_put("generic", "d", "{}", T0).unwrap();
    s.once("k", T0).unwrap();
    assert_eq!(s.watermark().unwrap(), w4);
    s.append(a, 2, &[note("two", 5)], &[]).unwrap();
    assert!(s.watermark().unwrap() > w4);
}

pub fn incident_versions_follow_every_append(s: &dyn ServerStore) {
    assert!(s.incident_versions().unwrap().is_empty());
    let a = s.declare(&declared("a"), &|_| vec![]).unwrap();
    let b = s.declare(&declared("b"), &|_| vec![]).unwrap();
    assert_eq!(s.incident_versions().unwrap(), vec![(a, 1), (b, 1)]);
    s.append(b, 1, &[note("x", 1), note("y", 2)], &[]).unwrap();
    assert_eq!(s.incident_versions().unwrap(), vec![(a, 1), (b, 3)]);
    // A lost compare-and-set changes no version.
    assert!(s.append(a, 7, &[note("stale", 3)], &[]).is_err());
    s.append(a, 1, &[note("z", 4)], &[]).unwrap();
    assert_eq!(s.incident_versions().unwrap(), vec![(a, 2), (b, 3)]);
    // They agree with the logs themselves.
    for (id, v) in s.incident_versions().unwrap() {
        assert_eq!(s.events(id).unwrap().len() as u64, v);
    }
}

pub fn concurrent_inbox_claimers_never_share_an_item(stores: &[&dyn ServerStore]) {
    const ITEMS: usize = 200;
    let mut put_ids: Vec<i64> = (0..ITEMS)
        .map(|i| put(stores[0], &format!("c{i}"), T0))
        .collect();
    put_ids.sort_unstable();
    let per_store: Vec<Vec<i64>> = std::thread::scope(|sc| {
        let handles: Vec<_> = stores
            .iter()
            .map(|s| {
                sc.spawn(move || {
                    let mut mine = vec![];
                    loop {
                        let got = s.inbox_claim(T0 + 1, 600, 3).unwrap();
                        if got.is_empty() {
                            return mine;
                        }
                        for i in got {
                            assert_eq!(i.attempts, 1, "claimed twice: {i:?}");
                            mine.push(i.id);
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<i64> = per_store.concat();
    all.sort_unstable();
    assert_eq!(all, put_ids, "every item claimed exactly once");
}

pub fn concurrent_lease_acquirers_have_one_winner(stores: &[&dyn ServerStore]) {
    for round in 0..20 {
        let name = format!("race-{round}");
        let wins: usize = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let name = &name;
                    sc.spawn(move || s.lease_acquire(name, &format!("h{i}"), T0, 30).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1, "lease {name}");
    }
}

pub fn concurrent_once_has_one_winner(stores: &[&dyn ServerStore]) {
    for round in 0..20 {
        let key = format!("once-{round}");
        let wins: usize = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter()
                .map(|s| {
                    let key = &key;
                    sc.spawn(move || s.once(key, T0).unwrap())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(wins, 1, "once {key}");
    }
}

pub fn concurrent_alert_links_agree_on_one_incident(stores: &[&dyn ServerStore]) {
    let incidents: Vec<IncidentId> = stores
        .iter()
        .enumerate()
        .map(|(i, s)| s.declare(&declared(&format!("i{i}")), &|_| vec![]).unwrap())
        .collect();
    for round in 0..20 {
        let key = format!("alert-{round}");
        let seen: Vec<IncidentId> = std::thread::scope(|sc| {
            let handles: Vec<_> = stores
                .iter()
                .zip(&incidents)
                .map(|(s, &mine)| {
                    let key = &key;
                    sc.spawn(move || s.alert_link_set("alertmanager", key, mine).unwrap())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let first = seen[0];
        assert!(seen.iter().all(|&i| i == first), "{key}: {seen:?}");
        assert_eq!(
            stores[0].alert_link_get("alertmanager", &key).unwrap(),
            Some(first)
        );
    }
}
