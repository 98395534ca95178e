//! The PostgreSQL store on the machine's server (`HOTFIX_TEST_DATABASE_URL`,
//! set by `.ci/run`): the same conformance suite as SQLite, plus concurrent
//! writers on separate connections. Each test works in a schema of its own.

use std::sync::atomic::{AtomicU32, Ordering};

use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::notify::Message;
use hotfix_core::provider::Store;
use hotfix_core::team::{ServerStore, TeamStore};
use hotfix_store::{PgStore, conformance};

fn url() -> Option<String> {
    match std::env::var("HOTFIX_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            // CI always sets it; a developer machine without PostgreSQL skips, loudly.
            hotfix_testkit::skip(
                "HOTFIX_TEST_DATABASE_URL is not set: PostgreSQL store tests skipped",
            );
            None
        }
    }
}

fn schema(tag: &str) -> String {
    format!(
        "hf_test_{tag}_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
    )
}

/// Drops the test's schemas (prefix match) when the test ends, pass or fail.
struct Cleanup(String, String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.0, postgres::NoTls) {
            let like = format!("{}%", self.1);
            if let Ok(rows) = c.query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&like],
            ) {
                for r in rows {
                    let n: String = r.get(0);
                    let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {n} CASCADE"));
                }
            }
        }
    }
}

#[test]
fn postgres_passes_the_conformance_suite() {
    let Some(u) = url() else { return };
    let n = AtomicU32::new(0);
    let base = schema("conf");
    let _cleanup = Cleanup(u.clone(), base.clone());
    conformance::run_all(&|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        Box::new(PgStore::open_in_schema(&u, Some(&format!("{base}_{i}"))).expect("connect"))
    });
}

#[test]
fn postgres_passes_the_team_conformance_suite() {
    let Some(u) = url() else { return };
    let n = AtomicU32::new(0);
    let base = schema("team");
    let _cleanup = Cleanup(u.clone(), base.clone());
    conformance::run_team_all(&|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        Box::new(PgStore::open_in_schema(&u, Some(&format!("{base}_{i}"))).expect("connect"))
    });
}

#[test]
fn replicas_racing_on_team_tables_have_one_winner() {
    let Some(u) = url() else { return };
    let s = schema("teamrace");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let stores: Vec<PgStore> = (0..4)
        .map(|_| PgStore::open_in_schema(&u, Some(&s)).expect("connect"))
        .collect();
    let refs: Vec<&dyn ServerStore> = stores.iter().map(|s| s as &dyn ServerStore).collect();
    conformance::team_concurrent_all(&refs);
}

/// A slow append that commits after a faster one must still move the
/// watermark, or live pages would never show its events. (A `MAX` over a
/// sequence column fails this: the slow transaction took the smaller value.)
/// The slow one is made slow for real: a second connection holds a lock the
/// append needs after its events are written and before it commits.
#[test]
fn a_slow_append_committed_last_still_moves_the_watermark() {
    let Some(u) = url() else { return };
    let s = schema("wm");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let st = PgStore::open_in_schema(&u, Some(&s)).expect("connect");
    let note = |t: &str| NewEvent {
        at: jiff::Timestamp::now(),
        actor: "x".into(),
        kind: EventKind::Note { text: t.into() },
    };
    let slow_id = st.declare(&note("slow"), &|_| vec![]).expect("declare");
    let fast_id = st.declare(&note("fast"), &|_| vec![]).expect("declare");
    let w0 = st.watermark().expect("watermark");

    let mut blocker = postgres::Client::connect(&u, postgres::NoTls).expect("connect");
    let mut tx = blocker.transaction().expect("begin");
    tx.batch_execute(&format!("LOCK TABLE {s}.outbox IN SHARE MODE"))
        .expect("lock");
    let slow = {
        let (u, s) = (u.clone(), s.clone());
        let msg = Message {
            incident: slow_id,
            step: "note".into(),
            severity: "critical".into(),
            channel: "#dev-alerts".into(),
            text: "slow".into(),
            mentions: vec![],
            customer_facing: false,
            security: false,
            at: jiff::Timestamp::now(),
            title: "t".into(),
            pr_url: None,
            triage: false,
            public_text: None,
        };
        std::thread::spawn(move || {
            let st = PgStore::open_in_schema(&u, Some(&s)).expect("connect");
            let e = NewEvent {
                at: jiff::Timestamp::now(),
                actor: "slow".into(),
                kind: EventKind::Note {
                    text: "late".into(),
                },
            };
            st.append(slow_id, 1, &[e], &[("file".into(), msg)])
                .expect("slow append");
        })
    };
    // Wait until the slow append has written its event and waits on the lock.
    let mut watcher = postgres::Client::connect(&u, postgres::NoTls).expect("connect");
    let mut waiting = || -> i64 {
        watcher
            .query_one(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::text::regclass",
                &[&format!("{s}.outbox")],
            )
            .expect("pg_locks")
            .get(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while waiting() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow append never blocked"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }

    st.append(fast_id, 1, &[note("quick")], &[])
        .expect("fast append");
    let w1 = st.watermark().expect("watermark");
    assert!(w1 > w0, "{w0} -> {w1}");
    assert_eq!(
        st.events(slow_id).expect("events").len(),
        1,
        "not committed yet"
    );

    tx.commit().expect("unlock");
    slow.join().expect("slow thread");
    assert_eq!(st.events(slow_id).expect("events").len(), 2);
    let w2 = st.watermark().expect("watermark");
    assert!(
        w2 > w1,
        "the slow append's commit did not move the watermark: {w1} -> {w2}"
    );
}

#[test]
fn replicas_on_one_database_never_both_win_an_append() {
    let Some(u) = url() else { return };
    let s = schema("race");
    let _cleanup = Cleanup(u.clone(), s.clone());
    conformance::concurrent_appends_have_one_winner(
        &|| Box::new(PgStore::open_in_schema(&u, Some(&s)).expect("connect")),
        6,
    );
}

#[test]
fn replicas_declaring_one_name_have_one_winner() {
    let Some(u) = url() else { return };
    let s = schema("names");
    let _cleanup = Cleanup(u.clone(), s.clone());
    conformance::concurrent_declarations_of_one_name_have_one_winner(
        &|| Box::new(PgStore::open_in_schema(&u, Some(&s)).expect("connect")),
        8,
    );
}

/// A database written before the one-open-incident-per-name rule, with
/// open incidents sharing a name, migrates without failing (the oldest
/// holds it).
#[test]
fn a_database_from_before_the_name_rule_migrates_with_its_duplicates() {
    let Some(u) = url() else { return };
    let s = schema("oldnames");
    let _cleanup = Cleanup(u.clone(), s.clone());
    {
        let st = PgStore::open_in_schema(&u, Some(&s)).expect("connect");
        let raw =
            std::sync::Mutex::new(postgres::Client::connect(&u, postgres::NoTls).expect("connect"));
        let sql = |q: &str| raw.lock().expect("lock").batch_execute(q).expect(q);
        conformance::write_a_log_from_before_the_name_rule(&st, &|| {
            sql(&format!("DELETE FROM {s}.open_names"));
        });
        // Schema 4: the last one before `open_names`.
        sql(&format!(
            "DROP TABLE {s}.open_names; UPDATE {s}.hotfix_schema SET version = 4"
        ));
    }
    let st = PgStore::open_in_schema(&u, Some(&s)).expect("reopen");
    conformance::a_log_from_before_the_name_rule_migrates(&st);
}

#[test]
fn a_bad_url_is_a_clear_error_without_the_password() {
    let err = PgStore::open("postgres://u:s3cret@127.0.0.1:1/x")
        .err()
        .expect("must fail");
    let m = err.to_string();
    assert!(
        m.contains("cannot connect to PostgreSQL") && !m.contains("s3cret"),
        "{m}"
    );
}
