//! The PostgreSQL store on the machine's server (`HOTFIX_TEST_DATABASE_URL`,
//! set by `.ci/run`): the same conformance suite as SQLite, plus concurrent
//! writers on separate connections and on one store's pool. Each test works
//! in a schema of its own.
//!
//! TLS: `.ci/run` starts a second, TLS-only cluster (`.ci/pg-tls`) with a
//! CA made for the run and exports `HOTFIX_TEST_DATABASE_TLS_URL`, `_CA`
//! (the CA that signed the server's certificate) and `_OTHER_CA` (one that
//! did not). Under `CI=true` a missing service fails the test instead of
//! skipping it.

use std::sync::atomic::{AtomicU32, Ordering};

use hotfix_core::event::{EventKind, NewEvent};
use hotfix_core::notify::Message;
use hotfix_core::provider::Store;
use hotfix_core::provider::StoreError;
use hotfix_core::team::{ServerStore, TeamStore};
use hotfix_store::{PgOptions, PgStore, pg_connect};
use hotfix_store_conformance as conformance;

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

fn note(t: &str) -> NewEvent {
    NewEvent {
        at: jiff::Timestamp::now(),
        actor: "x".into(),
        kind: EventKind::Note { text: t.into() },
    }
}

fn message(incident: hotfix_core::id::IncidentId, text: &str) -> Message {
    Message {
        incident,
        step: "note".into(),
        severity: "critical".into(),
        channel: "#dev-alerts".into(),
        text: text.into(),
        mentions: vec![],
        customer_facing: false,
        security: false,
        at: jiff::Timestamp::now(),
        title: "t".into(),
        pr_url: None,
        triage: false,
        public_text: None,
    }
}

fn pooled(u: &str, schema: &str, pool_size: u32) -> PgStore {
    PgStore::open_with(
        u,
        &PgOptions {
            pool_size,
            schema: Some(schema.to_string()),
        },
    )
    .expect("connect")
}

/// How many statements wait for a lock on `table` (of `schema`) right now.
fn waiting_on(c: &mut postgres::Client, schema: &str, table: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::text::regclass",
        &[&format!("{schema}.{table}")],
    )
    .expect("pg_locks")
    .get(0)
}

/// Appends of one store that block in the database block side by side, up
/// to the pool's size: with the single connection of old (`Mutex<Client>`,
/// now pool size 1) the second one waited in the process, for the first.
/// The block is real: another connection holds a lock every append with an
/// outbox message needs.
fn appends_blocked_at_once(u: &str, tag: &str, pool_size: u32, writers: u32) -> i64 {
    let s = schema(tag);
    let _cleanup = Cleanup(u.to_string(), s.clone());
    let st = pooled(u, &s, pool_size);
    let ids: Vec<_> = (0..writers)
        .map(|i| {
            st.declare(&note(&format!("i{i}")), &|_| vec![])
                .expect("declare")
        })
        .collect();
    let mut blocker = pg_connect(u).expect("connect");
    let mut tx = blocker.transaction().expect("begin");
    tx.batch_execute(&format!("LOCK TABLE {s}.outbox IN SHARE MODE"))
        .expect("lock");
    let mut watcher = pg_connect(u).expect("connect");
    let most = std::thread::scope(|sc| {
        for &id in &ids {
            let st = &st;
            sc.spawn(move || {
                st.append(id, 1, &[note("late")], &[("file".into(), message(id, "m"))])
                    .expect("append");
            });
        }
        // Until as many wait as can; then a little longer, to see no more do.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut most = 0;
        let mut settled = None;
        while std::time::Instant::now() < deadline {
            let n = waiting_on(&mut watcher, &s, "outbox");
            if n > most {
                most = n;
                settled = Some(std::time::Instant::now());
            }
            if settled.is_some_and(|t| t.elapsed() > std::time::Duration::from_millis(500)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tx.commit().expect("unlock");
        most
    });
    for &id in &ids {
        assert_eq!(st.events(id).expect("events").len(), 2, "{id:?}");
    }
    most
}

#[test]
fn a_pooled_store_runs_blocked_calls_side_by_side_up_to_its_size() {
    let Some(u) = url() else { return };
    assert_eq!(appends_blocked_at_once(&u, "pool4", 4, 6), 4);
    // Pool size 1 is the single connection: calls queue in the process.
    assert_eq!(appends_blocked_at_once(&u, "pool1", 1, 3), 1);
}

/// Threads sharing one pooled store (as a replica's requests and workers
/// do) append to one incident by compare-and-set, retrying on conflict:
/// every append lands exactly once, in one unbroken sequence; and of
/// writers racing from the same version, exactly one wins.
#[test]
fn threads_sharing_one_pooled_store_append_by_compare_and_set() {
    let Some(u) = url() else { return };
    let s = schema("poolcas");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let st = pooled(&u, &s, 4);
    let id = st.declare(&note("start"), &|_| vec![]).expect("declare");
    const THREADS: usize = 8;
    const EACH: usize = 10;
    let conflicts: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let st = &st;
                sc.spawn(move || {
                    let mut conflicts = 0;
                    for k in 0..EACH {
                        loop {
                            let v = st.events(id).expect("events").len() as u64;
                            match st.append(id, v, &[note(&format!("{t}/{k}"))], &[]) {
                                Ok(n) => {
                                    assert_eq!(n, v + 1);
                                    break;
                                }
                                Err(StoreError::Conflict { .. }) => conflicts += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                    conflicts
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    let events = st.events(id).expect("events");
    assert_eq!(events.len(), 1 + THREADS * EACH);
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=(1 + THREADS * EACH) as u64).collect::<Vec<_>>());
    let mut texts: Vec<String> = events
        .iter()
        .skip(1)
        .map(|e| match &e.kind {
            EventKind::Note { text } => text.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    texts.sort();
    let mut want: Vec<String> = (0..THREADS)
        .flat_map(|t| (0..EACH).map(move |k| format!("{t}/{k}")))
        .collect();
    want.sort();
    assert_eq!(texts, want, "every append exactly once");
    // Eight writers on one pool really raced (the pool has four connections).
    assert!(
        conflicts > 0,
        "no append ever conflicted: did they run one at a time?"
    );

    let race = st.declare(&note("race"), &|_| vec![]).expect("declare");
    let wins: usize = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let st = &st;
                sc.spawn(
                    move || match st.append(race, 1, &[note(&format!("{t}"))], &[]) {
                        Ok(_) => 1,
                        Err(StoreError::Conflict { .. }) => 0,
                        Err(e) => panic!("{e}"),
                    },
                )
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("thread")).sum()
    });
    assert_eq!(wins, 1);
    assert_eq!(st.events(race).expect("events").len(), 2);
}

/// The team tables' races, with the racers being one store's pooled
/// connections instead of separate stores.
#[test]
fn team_races_on_one_pooled_store_have_one_winner() {
    let Some(u) = url() else { return };
    let s = schema("poolteam");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let st = pooled(&u, &s, 4);
    let refs: Vec<&dyn ServerStore> = (0..4).map(|_| &st as &dyn ServerStore).collect();
    conformance::team_concurrent_all(&refs);
}

#[test]
fn a_pool_of_zero_connections_is_refused() {
    let err = PgStore::open_with(
        "postgres://u:s3cret@127.0.0.1:1/x",
        &PgOptions {
            pool_size: 0,
            schema: None,
        },
    )
    .err()
    .expect("must fail");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

/// The TLS-only cluster `.ci/pg-tls` starts: its URL (with the password),
/// the CA that signed its certificate, and an unrelated CA.
struct TlsFixture {
    url: String,
    ca: String,
    other_ca: String,
}

fn tls_fixture() -> Option<TlsFixture> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    match (
        var("HOTFIX_TEST_DATABASE_TLS_URL"),
        var("HOTFIX_TEST_DATABASE_TLS_CA"),
        var("HOTFIX_TEST_DATABASE_TLS_OTHER_CA"),
    ) {
        (Some(url), Some(ca), Some(other_ca)) => Some(TlsFixture { url, ca, other_ca }),
        _ => {
            hotfix_testkit::skip(
                "HOTFIX_TEST_DATABASE_TLS_URL, _CA and _OTHER_CA are not set (`eval \"$(.ci/pg-tls start DIR)\"`): PostgreSQL TLS tests skipped",
            );
            None
        }
    }
}

impl TlsFixture {
    /// The URL with query parameters added (`k=v&k=v`, values as written).
    fn with(&self, params: &str) -> String {
        format!("{}?{params}", self.url)
    }

    fn password(&self) -> String {
        let creds = self.url.split('@').next().expect("url");
        creds.rsplit(':').next().expect("password").to_string()
    }

    fn verify_full(&self) -> String {
        self.with(&format!("sslmode=verify-full&sslrootcert={}", self.ca))
    }
}

fn open_err(url: &str) -> String {
    PgStore::open(url)
        .err()
        .expect("the connection must be refused")
        .to_string()
}

/// Whether the session a connection opened is encrypted, per the server.
fn encrypted(c: &mut postgres::Client) -> bool {
    c.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )
    .expect("pg_stat_ssl")
    .get(0)
}

#[test]
fn verify_full_with_the_right_ca_connects_over_tls_and_the_pool_works() {
    let Some(f) = tls_fixture() else { return };
    let url = f.verify_full();
    assert!(encrypted(&mut pg_connect(&url).expect("verify-full")));
    // The whole store on it: the pool's connections are verified too.
    let base = schema("tls");
    let n = AtomicU32::new(0);
    conformance::run_all(&|| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        Box::new(pooled(&url, &format!("{base}_{i}"), 4))
    });
    // By name as well as by address: the certificate lists both.
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    assert!(encrypted(
        &mut pg_connect(&by_name).expect("verify-full by name")
    ));
}

#[test]
fn a_wrong_ca_is_refused_with_a_clear_error() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["verify-full", "verify-ca", "require"] {
        let m = open_err(&f.with(&format!("sslmode={mode}&sslrootcert={}", f.other_ca)));
        assert!(
            m.contains(&format!(
                "TLS: the server's certificate is not signed by the CA in {}",
                f.other_ca
            )),
            "{mode}: {m}"
        );
        assert!(
            !m.contains(&f.password()),
            "{mode}: the password is shown: {m}"
        );
    }
    let m = open_err(&f.with("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"));
    assert!(
        m.contains("sslrootcert: cannot read /nonexistent/ca.pem"),
        "{m}"
    );
}

/// `verify-full` checks the host name, `verify-ca` only the CA: reached as
/// `db.invalid` (not in the certificate; `hostaddr` gives the address).
#[test]
fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some(f) = tls_fixture() else { return };
    let renamed = |mode: &str| {
        f.with(&format!(
            "sslmode={mode}&sslrootcert={}&hostaddr=127.0.0.1",
            f.ca
        ))
        .replace("@127.0.0.1:", "@db.invalid:")
    };
    let m = open_err(&renamed("verify-full"));
    assert!(
        m.contains("not valid for the host name db.invalid") && m.contains("sslmode=verify-ca"),
        "{m}"
    );
    assert!(encrypted(
        &mut pg_connect(&renamed("verify-ca")).expect("verify-ca")
    ));
}

/// `require` and `prefer` without a CA encrypt without checking who
/// answers (libpq's meaning); `disable` sends plaintext, which this server
/// refuses, so the connections above that worked were encrypted.
#[test]
fn require_and_prefer_encrypt_and_disable_does_not() {
    let Some(f) = tls_fixture() else { return };
    for mode in ["require", "prefer"] {
        let url = f.with(&format!("sslmode={mode}"));
        assert!(encrypted(&mut pg_connect(&url).expect(mode)), "{mode}");
    }
    assert!(encrypted(&mut pg_connect(&f.url).expect("default: prefer")));
    let m = open_err(&f.with("sslmode=disable"));
    assert!(m.contains("no encryption"), "{m}");
    assert!(!m.contains(&f.password()), "{m}");
}

/// The server's last handle on the store can go on a tokio runtime thread
/// (a worker task cancelled at shutdown). Closing a connection there must
/// not panic: it did, inside a destructor, and aborted the process.
#[test]
fn a_store_dropped_on_a_runtime_thread_closes_its_connections_quietly() {
    let Some(u) = url() else { return };
    let s = schema("rtdrop");
    let _cleanup = Cleanup(u.clone(), s.clone());
    let st = pooled(&u, &s, 2);
    st.declare(&note("x"), &|_| vec![]).expect("declare");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let dropped = rt.block_on(async move { tokio::spawn(async move { drop(st) }).await });
    assert!(dropped.is_ok(), "dropping the store panicked: {dropped:?}");
}
