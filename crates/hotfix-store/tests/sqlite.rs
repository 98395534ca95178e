//! The SQLite store: the shared conformance suite on real files, plus what
//! only a file can show (durability across reopen, concurrent writers, a
//! corrupt file).

use hotfix_core::provider::Store;
use hotfix_core::team::{ApiRole, ServerStore, TeamStore};
use hotfix_store::{SqliteStore, conformance};

#[test]
fn sqlite_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    conformance::run_all(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(SqliteStore::open(&dir.path().join(format!("s{i}.db"))).unwrap())
    });
}

#[test]
fn sqlite_passes_the_team_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let n = std::sync::atomic::AtomicU32::new(0);
    conformance::run_team_all(&|| {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Box::new(SqliteStore::open(&dir.path().join(format!("t{i}.db"))).unwrap())
    });
}

#[test]
fn team_races_on_one_file_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    // Each its own connection, as separate processes would have.
    let stores: Vec<SqliteStore> = (0..4).map(|_| SqliteStore::open(&p).unwrap()).collect();
    let refs: Vec<&dyn ServerStore> = stores.iter().map(|s| s as &dyn ServerStore).collect();
    conformance::team_concurrent_all(&refs);
}

#[test]
fn team_tables_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    {
        let s = SqliteStore::open(&p).unwrap();
        s.token_create("a@example.com", ApiRole::Admin, "h", 1)
            .unwrap();
        s.inbox_put("generic", "d", "{}", 1).unwrap();
    }
    let s = SqliteStore::open(&p).unwrap();
    assert_eq!(s.token_lookup("h").unwrap().unwrap().role, ApiRole::Admin);
    assert_eq!(s.inbox_claim(1, 60, 10).unwrap().len(), 1);
}

#[test]
fn the_log_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    let id = {
        let s = SqliteStore::open(&p).unwrap();
        conformance::ids_are_allocated_in_order(&s);
        hotfix_core::id::IncidentId(1)
    };
    let s = SqliteStore::open(&p).unwrap();
    assert_eq!(s.events(id).unwrap().len(), 1);
    assert_eq!(s.incidents().unwrap().len(), 2);
}

#[test]
fn concurrent_writers_on_one_file_never_both_win() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    conformance::concurrent_appends_have_one_winner(
        &|| Box::new(SqliteStore::open(&p).unwrap()),
        8,
    );
}

#[test]
fn declarers_of_one_name_on_one_file_have_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    conformance::concurrent_declarations_of_one_name_have_one_winner(
        &|| Box::new(SqliteStore::open(&p).unwrap()),
        8,
    );
}

/// A file written before the one-open-incident-per-name rule, with open
/// incidents sharing a name, migrates without failing (the oldest holds it).
#[test]
fn a_file_from_before_the_name_rule_migrates_with_its_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    {
        let s = SqliteStore::open(&p).unwrap();
        let raw = rusqlite::Connection::open(&p).unwrap();
        conformance::write_a_log_from_before_the_name_rule(&s, &|| {
            raw.execute("DELETE FROM open_names", []).unwrap();
        });
        // Schema 4: the last one before `open_names`.
        raw.execute_batch("DROP TABLE open_names; PRAGMA user_version = 4;")
            .unwrap();
    }
    conformance::a_log_from_before_the_name_rule_migrates(&SqliteStore::open(&p).unwrap());
}

#[test]
fn a_corrupt_file_is_a_clear_error_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.db");
    std::fs::write(&p, b"this is not a database, but someone's notes").unwrap();
    let err = SqliteStore::open(&p).err().expect("must fail");
    let msg = err.to_string();
    assert!(msg.contains("h.db"), "{msg}");
    assert_eq!(
        std::fs::read(&p).unwrap(),
        b"this is not a database, but someone's notes"
    );
}
