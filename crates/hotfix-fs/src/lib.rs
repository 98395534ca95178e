//! Files and directories that hold incident data, readable by their owner
//! alone: files 0600, directories 0700.
//!
//! Why: the incident log holds security incidents and people's notes. A
//! file created with the process umask (usually 022, so 0644) is readable
//! by every account on the machine, and keeps that mode in every copy that
//! `cp -a`, `tar` or `rsync` makes, where no private parent directory
//! protects it any more. So everything hotfix writes about incidents (the
//! SQLite store and its `-wal`/`-shm`, the notification log, post-mortem
//! drafts, deploy logs, backups) is created through these helpers.
//!
//! Files are opened with `mode(0o600)` so that they never exist with a wider
//! mode, not even for a moment, whatever the umask (a umask can only remove
//! bits). Helpers that meet an existing file or directory of hotfix's own
//! only ever *remove* group and other access: a file someone made read-only
//! on purpose stays read-only.
//!
//! Unix only, like the rest of hotfix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of every file that holds incident data.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every directory that holds incident data.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` and any missing parents as 0700 directories.
///
/// An existing directory is left as it is: it may be shared on purpose
/// (`/srv`, a mount point, `/tmp`), and chmod-ing it could break other
/// programs. Use [`ensure_private_dir`] for directories that are hotfix's
/// own.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut missing: Vec<&Path> = vec![];
    let mut p = Some(path);
    while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
        match fs::metadata(d) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", d.display()),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(d),
            Err(e) => return Err(e),
        }
        p = d.parent();
    }
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(DIR_MODE).create(d) {
            // Exactly 0700 even under an odd umask: this directory is ours.
            Ok(()) => fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))?,
            // Another process made it in the meantime: theirs to set up.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// [`create_private_dir`], and removes group and other access from `path`
/// itself if it exists already: for directories that belong to hotfix alone
/// (`.git/hotfix/`), which earlier versions created 0755.
pub fn ensure_private_dir(path: &Path) -> io::Result<()> {
    create_private_dir(path)?;
    restrict(path)
}

/// Removes group and other access from an existing file or directory
/// (`0644` → `0600`, `0755` → `0700`, `0444` → `0400`); never adds any. A
/// missing path is not an error.
pub fn restrict(path: &Path) -> io::Result<()> {
    let mode = match fs::metadata(path) {
        Ok(m) => m.permissions().mode(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if mode & 0o077 == 0 {
        return Ok(());
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7700))
}

/// [`restrict`] on an open file (no path lookup, so no race with a rename).
fn restrict_open(f: &File) -> io::Result<()> {
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    f.set_permissions(fs::Permissions::from_mode(mode & 0o7700))
}

/// Creates a new, empty 0600 file; fails with `AlreadyExists` if `path`
/// exists (so nothing is ever overwritten). Missing parent directories are
/// created 0700.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    if let Some(d) = path.parent() {
        create_private_dir(d)?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Opens `path` for appending, creating it 0600 (and missing parents 0700);
/// an existing file loses group and other access.
pub fn append_private(path: &Path) -> io::Result<File> {
    if let Some(d) = path.parent() {
        create_private_dir(d)?;
    }
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    restrict_open(&f)?;
    Ok(f)
}

/// Writes `bytes` to `path` as a 0600 file so that readers see the old or
/// the new content, never half of it, even after a crash: a temporary file
/// in the same directory, synced, then renamed over `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_beside(path, "tmp");
    let written = (|| {
        let mut f = create_new_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Prepares the file of an SQLite database that holds incident data: an
/// existing database and its `-wal` and `-shm` lose group and other access;
/// a missing one is created empty and 0600 first, so that SQLite (which
/// gives `-wal` and `-shm` the mode of the database file) never creates
/// any of them world-readable. Returns whether it created the file.
pub fn private_sqlite_file(path: &Path) -> io::Result<bool> {
    let created = match create_new_private(path) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(e),
    };
    restrict_sqlite_files(path)?;
    Ok(created)
}

/// [`restrict`] on a database file and its `-wal` and `-shm`.
pub fn restrict_sqlite_files(path: &Path) -> io::Result<()> {
    for p in sqlite_files(path) {
        restrict(&p)?;
    }
    Ok(())
}

/// A database file and its `-wal` and `-shm` beside it (which may not exist).
pub fn sqlite_files(path: &Path) -> [PathBuf; 3] {
    [
        path.to_path_buf(),
        with_suffix(path, "-wal"),
        with_suffix(path, "-shm"),
    ]
}

/// `path` with `suffix` appended to its file name (`a.db` → `a.db-wal`).
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// A name beside `path` that no other process or thread uses
/// (`.NAME.TAG-PID-N`), for temporary files that are renamed into place.
pub fn temp_beside(path: &Path, tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id()))
}
