//! The SQLite store: the shared conformance suite on real files, plus what
//! only a file can show (durability across reopen, concurrent writers, a
//! corrupt file).

use hotfix_core::provider::Store;
use hotfix_core::team::{ApiRole, ServerStore, TeamStore};
use hotfix_store::SqliteStore;
use hotfix_store_conformance as conformance;

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

// ------------------------------------------------- broken, read-only, modes

#[allow(clippy::unwrap_used)]
mod hardening {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::path::{Path, PathBuf};

    use hotfix_core::event::{EventKind, NewEvent};
    use hotfix_core::id::IncidentId;
    use hotfix_core::provider::{BrokenStore, Store, StoreError};
    use hotfix_core::severity::Severity;
    use hotfix_store::{IfUnusable, SqliteStore};

    fn declared(name: &str) -> NewEvent {
        NewEvent {
            at: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            actor: "dev@example.com".into(),
            kind: EventKind::Declared {
                name: name.into(),
                title: format!("{name} broke"),
                severity: Severity::Critical,
                customer_facing: false,
                security: true,
                branch: format!("hotfix/{name}"),
                base_sha: "abc".into(),
            },
        }
    }

    fn note(text: &str) -> NewEvent {
        NewEvent {
            at: jiff::Timestamp::from_second(1_700_000_100).unwrap(),
            actor: "dev@example.com".into(),
            kind: EventKind::Note { text: text.into() },
        }
    }

    /// A store at `p` with two incidents (one with a note); closed again.
    fn store_with_incidents(p: &Path) {
        let s = SqliteStore::open(p).unwrap();
        let a = s.declare(&declared("pdf-crash"), &|_| vec![]).unwrap();
        s.append(a, 1, &[note("rolled the font cache")], &[])
            .unwrap();
        s.declare(&declared("login-loop"), &|_| vec![]).unwrap();
    }

    /// Every incident and its events, as text to compare.
    fn dump(s: &dyn Store) -> Vec<String> {
        let mut out = vec![];
        for id in s.incidents().unwrap() {
            for e in s.events(id).unwrap() {
                out.push(format!("{id} {e:?}"));
            }
        }
        out
    }

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[track_caller]
    fn unusable(r: Result<SqliteStore, StoreError>, p: &Path) -> BrokenStore {
        match r {
            Err(e @ StoreError::Unusable { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(&p.display().to_string()), "{msg}");
                assert!(msg.contains("backup") && msg.contains("--reinit"), "{msg}");
                match e {
                    StoreError::Unusable { path, problem } => {
                        assert_eq!(path, p);
                        problem
                    }
                    _ => unreachable!(),
                }
            }
            Err(e) => panic!("expected Unusable, got {e:?}"),
            Ok(_) => panic!("an unusable store was opened"),
        }
    }

    #[test]
    fn an_emptied_store_is_refused_and_never_set_up_again() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        std::fs::File::create(&p).unwrap(); // `: > hotfix.db`
        assert_eq!(unusable(SqliteStore::open(&p), &p), BrokenStore::Empty);
        // Twice: the first refusal wrote nothing either.
        assert_eq!(unusable(SqliteStore::open(&p), &p), BrokenStore::Empty);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        assert_eq!(names_in(dir.path()), ["hotfix.db"]);
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_refused_as_such() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("notes.db", b"meeting notes, not a database".to_vec()),
            ("zeros.db", vec![0u8; 4096]),
            ("short.db", b"SQLite".to_vec()),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(
                unusable(SqliteStore::open(&p), &p),
                BrokenStore::NotADatabase,
                "{name}"
            );
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{name} was changed");
        }
    }

    #[test]
    fn another_programs_sqlite_database_is_refused_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("other.db");
        {
            let c = rusqlite::Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('keep me');")
                .unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        assert_eq!(
            unusable(SqliteStore::open(&p), &p),
            BrokenStore::ForeignDatabase {
                tables: vec!["notes".into()]
            }
        );
        // Not converted to WAL, not migrated: byte for byte as it was.
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert_eq!(names_in(dir.path()), ["other.db"]);

        // A valid but empty SQLite database (no tables, user_version 0).
        let e = dir.path().join("blank.db");
        {
            let c = rusqlite::Connection::open(&e).unwrap();
            c.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x); DROP TABLE t;")
                .unwrap();
        }
        assert_eq!(
            unusable(SqliteStore::open(&e), &e),
            BrokenStore::ForeignDatabase { tables: vec![] }
        );
    }

    #[test]
    fn a_missing_database_whose_wal_is_left_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        std::fs::write(dir.path().join("hotfix.db-wal"), b"frames").unwrap();
        assert_eq!(
            unusable(SqliteStore::open(&p), &p),
            BrokenStore::OnlyWriteAheadLog
        );
        assert!(!p.exists());
    }

    #[test]
    fn reinit_moves_a_broken_store_aside_and_leaves_a_healthy_one_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        std::fs::write(&p, b"").unwrap();
        let (s, moved) = SqliteStore::open_with(&p, IfUnusable::MoveAside).unwrap();
        let moved = moved.expect("moved aside");
        assert_eq!(moved.problem, BrokenStore::Empty);
        assert_eq!(moved.files.len(), 1);
        let (from, to) = &moved.files[0];
        assert_eq!(from, &p);
        let to_name = to.file_name().unwrap().to_string_lossy().into_owned();
        assert!(to_name.starts_with("hotfix.db.broken-"), "{to_name}");
        assert_eq!(std::fs::metadata(to).unwrap().len(), 0, "kept, not deleted");
        // A new, working store.
        assert_eq!(
            s.declare(&declared("a"), &|_| vec![]).unwrap(),
            IncidentId(1)
        );
        drop(s);

        // --reinit on a healthy store changes nothing.
        let before = dump(&SqliteStore::open(&p).unwrap());
        let (s, moved) = SqliteStore::open_with(&p, IfUnusable::MoveAside).unwrap();
        assert!(moved.is_none());
        assert_eq!(dump(&s), before);
        drop(s);

        // A second broken file on the same second gets another name.
        std::fs::write(&p, b"junk").unwrap();
        let (_, again) = SqliteStore::open_with(&p, IfUnusable::MoveAside).unwrap();
        let again = again.expect("moved aside");
        assert_eq!(again.problem, BrokenStore::NotADatabase);
        assert_ne!(&again.files[0].1, to);
        assert_eq!(std::fs::read(&again.files[0].1).unwrap(), b"junk");
        assert_eq!(std::fs::metadata(to).unwrap().len(), 0);
    }

    #[track_caller]
    fn refused_as_read_only(r: Result<impl std::fmt::Debug, StoreError>, p: &Path) -> String {
        match r {
            Err(e @ StoreError::ReadOnly { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with(&format!("incident store {} is read-only: ", p.display())),
                    "{msg}"
                );
                msg
            }
            other => panic!("expected ReadOnly, got {other:?}"),
        }
    }

    #[test]
    fn a_store_without_write_permission_reads_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        let expected = dump(&SqliteStore::open(&p).unwrap());
        chmod(&p, 0o444);
        let bytes = std::fs::read(&p).unwrap();

        let s = SqliteStore::open(&p).unwrap();
        assert!(s.read_only().is_some());
        assert_eq!(dump(&s), expected);
        assert_eq!(s.undelivered().unwrap(), vec![]);
        let msg = refused_as_read_only(s.declare(&declared("new"), &|_| vec![]), &p);
        assert!(msg.contains("no write permission"), "{msg}");
        refused_as_read_only(s.append(IncidentId(1), 2, &[note("x")], &[]), &p);
        refused_as_read_only(s.memory_set(IncidentId(1), "k", "v"), &p);
        refused_as_read_only(s.claim_outbox(0, 60, &["file".into()], 10), &p);
        drop(s);
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "the file was written");
        assert_eq!(mode(&p), 0o444);
    }

    #[test]
    fn a_read_only_store_shows_what_a_running_writer_committed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        // The writer keeps its connection: the last step is in the -wal only.
        let writer = SqliteStore::open(&p).unwrap();
        writer
            .append(IncidentId(2), 1, &[note("still in the WAL")], &[])
            .unwrap();
        assert!(dir.path().join("hotfix.db-wal").exists());
        chmod(&p, 0o444);
        let reader = SqliteStore::open(&p).unwrap();
        assert!(reader.read_only().is_some());
        assert_eq!(dump(&reader), dump(&writer));
        assert_eq!(reader.events(IncidentId(2)).unwrap().len(), 2);
    }

    #[test]
    fn a_store_in_a_read_only_directory_reads_and_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("archive");
        let p = sub.join("hotfix.db");
        store_with_incidents(&p);
        let expected = dump(&SqliteStore::open(&p).unwrap());
        chmod(&sub, 0o555);
        let s = SqliteStore::open(&p).unwrap();
        assert_eq!(dump(&s), expected);
        let msg = refused_as_read_only(s.declare(&declared("new"), &|_| vec![]), &p);
        assert!(msg.contains("directory"), "{msg}");
        drop(s);
        chmod(&sub, 0o700);
    }

    #[test]
    fn a_read_only_store_that_needs_a_schema_upgrade_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        {
            let raw = rusqlite::Connection::open(&p).unwrap();
            raw.execute_batch("DROP TABLE open_names; PRAGMA user_version = 4;")
                .unwrap();
        }
        chmod(&p, 0o444);
        let msg = refused_as_read_only(SqliteStore::open(&p).map(|_| ()), &p);
        assert!(msg.contains("schema upgrade (version 4 to"), "{msg}");
        // Writable again, it upgrades and reads.
        chmod(&p, 0o600);
        assert_eq!(dump(&SqliteStore::open(&p).unwrap()).len(), 3);
    }

    #[test]
    fn store_files_are_0600_in_0700_directories() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let p = dir.path().join("data/hotfix/hotfix.db");
        let s = SqliteStore::open(&p).unwrap();
        s.declare(&declared("a"), &|_| vec![]).unwrap();
        // While the store is open its -wal and -shm exist.
        for f in ["hotfix.db", "hotfix.db-wal", "hotfix.db-shm"] {
            assert_eq!(mode(&dir.path().join("data/hotfix").join(f)), 0o600, "{f}");
        }
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&dir.path().join("data/hotfix")), 0o700);
        // An existing directory that is not the store's own keeps its mode.
        assert_eq!(mode(dir.path()), 0o755);
        drop(s);
        assert_eq!(names_in(&dir.path().join("data/hotfix")), ["hotfix.db"]);

        // A store an earlier version left world-readable is tightened.
        let s = SqliteStore::open(&p).unwrap();
        s.declare(&declared("b"), &|_| vec![]).unwrap();
        for f in ["hotfix.db", "hotfix.db-wal", "hotfix.db-shm"] {
            chmod(&dir.path().join("data/hotfix").join(f), 0o644);
        }
        let again = SqliteStore::open(&p).unwrap();
        for f in ["hotfix.db", "hotfix.db-wal", "hotfix.db-shm"] {
            assert_eq!(mode(&dir.path().join("data/hotfix").join(f)), 0o600, "{f}");
        }
        drop((s, again));
    }

    #[test]
    fn first_opens_racing_on_a_new_file_share_one_store() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|sc| {
            for i in 0..8 {
                let (p, barrier) = (&p, &barrier);
                sc.spawn(move || {
                    barrier.wait();
                    let s = SqliteStore::open(p).unwrap();
                    s.declare(&declared(&format!("n{i}")), &|_| vec![]).unwrap();
                });
            }
        });
        assert_eq!(SqliteStore::open(&p).unwrap().incidents().unwrap().len(), 8);
        assert_eq!(names_in(dir.path()), ["hotfix.db"]);
    }

    #[test]
    fn a_backup_is_a_private_consistent_copy_that_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        let s = SqliteStore::open(&p).unwrap();
        let dest = dir.path().join("backups/hotfix-1.db");
        let sum = s.backup_to(&dest).unwrap();
        assert_eq!((sum.incidents, sum.events), (2, 3));
        assert_eq!(sum.path, dest);
        assert_eq!(mode(&dest), 0o600);
        assert_eq!(mode(&dir.path().join("backups")), 0o700);
        assert_eq!(dump(&SqliteStore::open(&dest).unwrap()), dump(&s));
        // Never over an existing file.
        std::fs::write(dir.path().join("taken.db"), b"mine").unwrap();
        let err = s.backup_to(&dir.path().join("taken.db")).unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
        assert_eq!(std::fs::read(dir.path().join("taken.db")).unwrap(), b"mine");
        // No partial files left.
        assert_eq!(names_in(&dir.path().join("backups")), ["hotfix-1.db"]);
        // A read-only store can be backed up too.
        drop(s);
        chmod(&p, 0o444);
        let ro = SqliteStore::open(&p).unwrap();
        ro.backup_to(&dir.path().join("ro-copy.db")).unwrap();
    }

    #[test]
    fn a_backup_taken_while_another_process_writes_is_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hotfix.db");
        store_with_incidents(&p);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let copies: Vec<PathBuf> = std::thread::scope(|sc| {
            sc.spawn(|| {
                let w = SqliteStore::open(&p).unwrap();
                let mut v = 2;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && v < 400 {
                    v = w
                        .append(IncidentId(1), v, &[note("busy"), note("busier")], &[])
                        .unwrap();
                }
            });
            let b = SqliteStore::open(&p).unwrap();
            let copies = (0..5)
                .map(|i| {
                    let d = dir.path().join(format!("copy-{i}.db"));
                    b.backup_to(&d).unwrap();
                    d
                })
                .collect();
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            copies
        });
        for c in copies {
            let s = SqliteStore::open(&c).unwrap();
            // Every append is two events in one transaction: a copy never
            // holds half of one, and its events are numbered without gaps.
            let seqs: Vec<u64> = s
                .events(IncidentId(1))
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
            assert_eq!(seqs.len() % 2, 0, "{} has half an append", c.display());
        }
    }

    /// A reader who truly cannot write the directory (not root): SQLite
    /// cannot create the -shm there, so the store is read as immutable. As
    /// root (who may write anyway), the check runs as `nobody` through
    /// `setpriv`, in a copy of this test binary.
    #[test]
    fn an_unprivileged_reader_of_a_read_only_directory() {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let sub = dir.path().join("ro");
        let p = sub.join("hotfix.db");
        store_with_incidents(&p);
        chmod(&p, 0o644);
        chmod(&sub, 0o555);
        let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
        if !root {
            unprivileged_checks(&p);
            chmod(&sub, 0o700);
            return;
        }
        let Ok(setpriv) = which("setpriv") else {
            hotfix_testkit::skip("setpriv (util-linux) is not installed");
            return;
        };
        let exe = dir.path().join("store-tests");
        std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
        chmod(&exe, 0o755);
        let out = std::process::Command::new(setpriv)
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(&exe)
            .args([
                "--exact",
                // Its full name in the crate's one test binary (tests/it).
                "sqlite::hardening::unprivileged_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("HOTFIX_TEST_RO_STORE", &p)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("1 passed"), "{text}");
        chmod(&sub, 0o700);
    }

    fn which(name: &str) -> Result<PathBuf, ()> {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
            .ok_or(())
    }

    #[test]
    #[ignore = "run by an_unprivileged_reader_of_a_read_only_directory as another user"]
    fn unprivileged_child() {
        let Some(p) = std::env::var_os("HOTFIX_TEST_RO_STORE") else {
            return;
        };
        unprivileged_checks(Path::new(&p));
    }

    fn unprivileged_checks(p: &Path) {
        let dir = p.parent().unwrap();
        let before = names_in(dir);
        let s = SqliteStore::open(p).unwrap();
        assert!(s.read_only().is_some());
        assert_eq!(s.incidents().unwrap(), vec![IncidentId(1), IncidentId(2)]);
        assert_eq!(s.events(IncidentId(1)).unwrap().len(), 2);
        refused_as_read_only(s.declare(&declared("new"), &|_| vec![]), p);
        drop(s);
        assert_eq!(names_in(dir), before, "nothing was created");
    }
}
