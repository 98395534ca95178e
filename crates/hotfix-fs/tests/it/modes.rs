//! The modes these helpers promise, on real files.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn chmod(p: &Path, m: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn created_directories_are_0700_and_existing_ones_are_left_alone() {
    let t = tempfile::tempdir().unwrap();
    chmod(t.path(), 0o755);
    let deep = t.path().join("a/b/c");
    hotfix_fs::create_private_dir(&deep).unwrap();
    for d in ["a", "a/b", "a/b/c"] {
        assert_eq!(mode(&t.path().join(d)), 0o700, "{d}");
    }
    // Not ours: a shared parent keeps its mode.
    assert_eq!(mode(t.path()), 0o755);
    let shared = t.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o755);
    hotfix_fs::create_private_dir(&shared).unwrap();
    assert_eq!(mode(&shared), 0o755);
    // Ours: tightened, never widened.
    hotfix_fs::ensure_private_dir(&shared).unwrap();
    assert_eq!(mode(&shared), 0o700);
    chmod(&shared, 0o555);
    hotfix_fs::ensure_private_dir(&shared).unwrap();
    assert_eq!(mode(&shared), 0o500);
    // A file in the way is an error, not a silent success.
    std::fs::write(t.path().join("file"), "x").unwrap();
    assert!(hotfix_fs::create_private_dir(&t.path().join("file")).is_err());
}

#[test]
fn files_are_0600_whether_new_appended_or_replaced() {
    let t = tempfile::tempdir().unwrap();
    let new = t.path().join("d/new");
    hotfix_fs::create_new_private(&new).unwrap();
    assert_eq!(mode(&new), 0o600);
    assert_eq!(mode(&t.path().join("d")), 0o700);
    let again = hotfix_fs::create_new_private(&new).unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);

    let log = t.path().join("log.jsonl");
    hotfix_fs::append_private(&log)
        .unwrap()
        .write_all(b"1\n")
        .unwrap();
    assert_eq!(mode(&log), 0o600);
    // One an earlier version made world-readable is tightened on the next append.
    chmod(&log, 0o644);
    hotfix_fs::append_private(&log)
        .unwrap()
        .write_all(b"2\n")
        .unwrap();
    assert_eq!(mode(&log), 0o600);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "1\n2\n");

    let doc = t.path().join("doc.md");
    std::fs::write(&doc, "old").unwrap();
    chmod(&doc, 0o644);
    hotfix_fs::write_private(&doc, b"new").unwrap();
    assert_eq!(mode(&doc), 0o600);
    assert_eq!(std::fs::read_to_string(&doc).unwrap(), "new");
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(t.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
}

#[test]
fn sqlite_files_are_created_private_and_old_ones_tightened() {
    let t = tempfile::tempdir().unwrap();
    let db = t.path().join("s.db");
    assert!(hotfix_fs::private_sqlite_file(&db).unwrap());
    assert_eq!(mode(&db), 0o600);
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0);
    for p in hotfix_fs::sqlite_files(&db) {
        std::fs::write(&p, "x").unwrap();
        chmod(&p, 0o644);
    }
    assert!(!hotfix_fs::private_sqlite_file(&db).unwrap());
    for p in hotfix_fs::sqlite_files(&db) {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    // A read-only file stays read-only.
    chmod(&db, 0o444);
    hotfix_fs::restrict_sqlite_files(&db).unwrap();
    assert_eq!(mode(&db), 0o400);
}
