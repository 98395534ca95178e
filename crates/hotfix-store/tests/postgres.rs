//! The PostgreSQL store on the machine's server (`HOTFIX_TEST_DATABASE_URL`,
//! set by `.ci/run`): the same conformance suite as SQLite, plus concurrent
//! writers on separate connections. Each test works in a schema of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::id::IncidentId;
use hotfix_core::provider::{Store, StoreError};
use hotfix_store::{PgStore, conformance};

fn url() -> Option<String> {
    match std::env::var("HOTFIX_TEST_DATABASE_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            // CI always sets it; a developer machine without PostgreSQL skips, loudly.
            eprintln!("HOTFIX_TEST_DATABASE_URL is not set: PostgreSQL store tests skipped");
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
fn replicas_on_one_database_never_both_win_an_append() {
    let Some(u) = url() else { return };
    let s = schema("race");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let first = PgStore::open_in_schema(&u, Some(&s)).expect("connect");
    conformance::ids_are_allocated_in_order(&first);
    let id = IncidentId(1);
    let wins = Arc::new(AtomicU32::new(0));
    let threads: Vec<_> = (0..6)
        .map(|i| {
            let (u, s, wins) = (u.clone(), s.clone(), wins.clone());
            std::thread::spawn(move || {
                let st = PgStore::open_in_schema(&u, Some(&s)).expect("connect");
                let e = NewEvent {
                    at: jiff::Timestamp::now(),
                    actor: format!("r{i}"),
                    kind: EventKind::Note {
                        text: format!("{i}"),
                    },
                };
                match st.append(id, 1, &[e], &[]) {
                    Ok(_) => {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(StoreError::Conflict { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(wins.load(Ordering::Relaxed), 1);
    assert_eq!(first.events(id).expect("events").len(), 2);
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
