//! Build once (issue 13): the file work behind promotion and the build cache.
//!
//! - **Promotion** links a tested build's outputs into a new worktree of the
//!   same tree: hard links where the file system allows (else copies). That
//!   is safe because a promoted release never builds: nothing writes into
//!   those files in place, and the tested build's worktree is never built
//!   again either (a new push is a new release in a new worktree). Hard
//!   links also mean the preview's worktree can be deleted without touching
//!   production's files.
//! - **Cache** copies `[deploy] cache` paths (e.g. `target`) from an earlier
//!   build with the same lockfiles into the new worktree *before* `build`
//!   runs there. A copy, never a link or a shared directory: `cargo`, `npm`
//!   and friends rewrite files of their state in place, so each release
//!   builds in a directory no other build can write to. That is the whole
//!   isolation argument for concurrent preview and production builds.
//!   `std::fs::copy` uses `copy_file_range`, which file systems that can
//!   share extents (btrfs, XFS) turn into a reflink.
//! - **mtimes** are what make incremental builds incremental: copies keep
//!   them, and tracked files the new commit did not change get the mtime
//!   they had in the source worktree, so `cargo`/`make` see exactly the
//!   changed files as newer than their outputs.
//! - **Crash safety**: every path is assembled under a temporary name next
//!   to its destination and renamed into place, so a half-copied `target`
//!   is never taken for a whole one; a re-run removes the temporary first.
//!
//! Everything here is blocking file work: the platform runs it on tokio's
//! blocking pool.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Lockfiles at the repository root that key the cache: a release whose
/// lockfiles differ gets no cache (its dependencies are rebuilt).
pub(crate) const LOCKFILES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "Gemfile.lock",
    "go.sum",
];

/// The cache key of a worktree: sha256 over the name and content of each
/// lockfile present ([`LOCKFILES`], `requirements*.txt` at the root) and
/// of each `extra` file (`[deploy] cache_key`; a missing one counts as
/// missing, so adding it later changes the key).
pub(crate) fn cache_key(worktree: &Path, extra: &[String]) -> io::Result<String> {
    let mut names: Vec<String> = LOCKFILES.iter().map(|s| s.to_string()).collect();
    for e in fs::read_dir(worktree)? {
        let name = e?.file_name().to_string_lossy().into_owned();
        if name.starts_with("requirements") && name.ends_with(".txt") {
            names.push(name);
        }
    }
    names.sort();
    names.dedup();
    let mut h = Sha256::new();
    for name in &names {
        match fs::read(worktree.join(name)) {
            Ok(bytes) => feed(&mut h, name, Some(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for name in extra {
        match fs::read(worktree.join(name)) {
            Ok(bytes) => feed(&mut h, name, Some(&bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => feed(&mut h, name, None),
            Err(e) => return Err(e),
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn feed(h: &mut Sha256, name: &str, bytes: Option<&[u8]>) {
    h.update(name.as_bytes());
    h.update([0u8]);
    match bytes {
        Some(b) => {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        }
        None => h.update(b"\xffmissing"),
    }
}

/// How [`restore`] carries files over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Hard links (promotion), copies where a link is refused.
    Link,
    /// Copies (the build cache: the build will write into them).
    Copy,
}

/// What [`restore`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Carried {
    pub files: u64,
    pub bytes: u64,
}

/// Puts `src` (a file, a symlink or a directory tree) at `dst` with its
/// mtimes: assembled at a temporary name beside `dst`, then renamed into
/// place. Refuses when `dst` exists (a checkout never holds a build
/// output; if it does, the tracked file wins).
pub(crate) fn restore(src: &Path, dst: &Path, mode: Mode) -> io::Result<Carried> {
    if fs::symlink_metadata(dst).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists in the checkout", dst.display()),
        ));
    }
    let parent = dst
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a parent"))?;
    fs::create_dir_all(parent)?;
    let tmp = temp_name(dst);
    remove_any(&tmp)?;
    let mut carried = Carried::default();
    let res = carry(src, &tmp, mode, &mut carried).and_then(|()| fs::rename(&tmp, dst));
    if res.is_err() {
        let _ = remove_any(&tmp);
    }
    res.map(|()| carried)
}

/// `<dir>/.hotfix-tmp-<name>`: where [`restore`] assembles `dst`.
pub(crate) fn temp_name(dst: &Path) -> PathBuf {
    let name = dst
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dst.with_file_name(format!(".hotfix-tmp-{name}"))
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
    }
}

fn carry(src: &Path, dst: &Path, mode: Mode, n: &mut Carried) -> io::Result<()> {
    let meta = fs::symlink_metadata(src)?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(src)?, dst)?;
    } else if ft.is_dir() {
        fs::create_dir(dst)?;
        for e in fs::read_dir(src)? {
            let e = e?;
            carry(&e.path(), &dst.join(e.file_name()), mode, n)?;
        }
        // After the contents: creating them moved the directory's mtime
        // (and a read-only directory could not have taken them).
        set_mtime(dst, &meta)?;
        fs::set_permissions(dst, meta.permissions())?;
    } else if ft.is_file() {
        let linked = mode == Mode::Link && fs::hard_link(src, dst).is_ok();
        if !linked {
            // Keeps the permission bits; the mtime is set below.
            fs::copy(src, dst)?;
            set_mtime(dst, &meta)?;
        }
        n.files += 1;
        n.bytes += meta.len();
    }
    // Sockets, fifos, devices: not build outputs; left out.
    Ok(())
}

fn set_mtime(p: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let times = fs::FileTimes::new()
        .set_modified(meta.modified()?)
        .set_accessed(meta.accessed()?);
    fs::File::open(p)?.set_times(times)
}

/// Gives each of `paths` (relative, regular files) in `dst_root` the mtime
/// it has in `src_root`; paths missing on either side are skipped. Returns
/// how many were set.
pub(crate) fn sync_mtimes(src_root: &Path, dst_root: &Path, paths: &[PathBuf]) -> u64 {
    let mut n = 0;
    for p in paths {
        let (Ok(sm), Ok(dm)) = (
            fs::symlink_metadata(src_root.join(p)),
            fs::symlink_metadata(dst_root.join(p)),
        ) else {
            continue;
        };
        if sm.is_file() && dm.is_file() && set_mtime(&dst_root.join(p), &sm).is_ok() {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, SystemTime};

    fn old(p: &Path) -> SystemTime {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        fs::File::open(p)
            .unwrap()
            .set_times(fs::FileTimes::new().set_modified(t))
            .unwrap();
        t
    }

    #[test]
    fn copies_keep_mtimes_and_links_share_inodes() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a/target");
        fs::create_dir_all(src.join("release/deps")).unwrap();
        fs::write(src.join("release/app"), "bin").unwrap();
        fs::write(src.join("release/deps/x.rlib"), "lib").unwrap();
        std::os::unix::fs::symlink("app", src.join("release/link")).unwrap();
        let t = old(&src.join("release/app"));
        let dst = d.path().join("b/target");
        let n = restore(&src, &dst, Mode::Copy).unwrap();
        assert_eq!(n.files, 2);
        let m = fs::metadata(dst.join("release/app")).unwrap();
        assert_eq!(m.modified().unwrap(), t);
        assert_ne!(
            m.ino(),
            fs::metadata(src.join("release/app")).unwrap().ino()
        );
        assert_eq!(
            fs::read_link(dst.join("release/link")).unwrap(),
            Path::new("app")
        );
        let dst2 = d.path().join("c/target");
        restore(&src, &dst2, Mode::Link).unwrap();
        assert_eq!(
            fs::metadata(dst2.join("release/app")).unwrap().ino(),
            fs::metadata(src.join("release/app")).unwrap().ino()
        );
        // An existing destination is never overwritten.
        assert!(restore(&src, &dst, Mode::Copy).is_err());
        assert!(!temp_name(&dst).exists());
    }

    #[test]
    fn a_leftover_temporary_of_a_crashed_copy_is_replaced() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("a/target");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("whole"), "1").unwrap();
        let dst = d.path().join("b/target");
        let tmp = temp_name(&dst);
        fs::create_dir_all(&tmp).unwrap();
        fs::write(tmp.join("half"), "x").unwrap();
        restore(&src, &dst, Mode::Copy).unwrap();
        assert!(dst.join("whole").exists());
        assert!(!dst.join("half").exists());
        assert!(!tmp.exists());
    }

    #[test]
    fn the_cache_key_follows_the_lockfiles_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let w = d.path();
        fs::write(w.join("Cargo.lock"), "a").unwrap();
        fs::write(w.join("main.rs"), "1").unwrap();
        let k1 = cache_key(w, &[]).unwrap();
        fs::write(w.join("main.rs"), "2").unwrap();
        assert_eq!(cache_key(w, &[]).unwrap(), k1);
        fs::write(w.join("Cargo.lock"), "b").unwrap();
        let k2 = cache_key(w, &[]).unwrap();
        assert_ne!(k2, k1);
        fs::write(w.join("requirements-dev.txt"), "x").unwrap();
        let k3 = cache_key(w, &[]).unwrap();
        assert_ne!(k3, k2);
        let extra = vec!["rust-toolchain.toml".to_string()];
        let k4 = cache_key(w, &extra).unwrap();
        assert_ne!(k4, k3);
        fs::write(w.join("rust-toolchain.toml"), "1.95").unwrap();
        assert_ne!(cache_key(w, &extra).unwrap(), k4);
    }

    #[test]
    fn mtimes_of_unchanged_files_follow_the_source() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (d.path().join("a"), d.path().join("b"));
        fs::create_dir_all(a.join("src")).unwrap();
        fs::create_dir_all(b.join("src")).unwrap();
        fs::write(a.join("src/lib.rs"), "x").unwrap();
        fs::write(b.join("src/lib.rs"), "x").unwrap();
        let t = old(&a.join("src/lib.rs"));
        let n = sync_mtimes(
            &a,
            &b,
            &[PathBuf::from("src/lib.rs"), PathBuf::from("gone")],
        );
        assert_eq!(n, 1);
        assert_eq!(
            fs::metadata(b.join("src/lib.rs"))
                .unwrap()
                .modified()
                .unwrap(),
            t
        );
    }
}
