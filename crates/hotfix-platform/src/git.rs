//! The git commands the platform needs: resolve a sha, add and remove a
//! release worktree. System `git` with argument vectors, never a shell.

use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::PlatformError;

async fn git(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<String, PlatformError> {
    let out = git_raw(repo, args).await?;
    Ok(String::from_utf8_lossy(&out).trim().to_string())
}

/// stdout of a git command as it is (no trimming: NUL-separated lists).
async fn git_raw(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, PlatformError> {
    let shown = args
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| PlatformError::io("cannot run git (is it installed?)", e))?;
    if !out.status.success() {
        return Err(PlatformError::Git {
            args: shown,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Full sha of the commit `rev` names. Refuses anything that looks like an
/// option, so a request body can never smuggle flags into git.
pub(crate) async fn resolve_commit(repo: &Path, rev: &str) -> Result<String, PlatformError> {
    let ok = !rev.is_empty()
        && !rev.starts_with('-')
        && rev.len() <= 200
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-~^".contains(c));
    if !ok {
        return Err(PlatformError::Invalid(format!(
            "`{rev}` is not a commit sha: pass the 40-hex sha to deploy"
        )));
    }
    let spec = format!("{rev}^{{commit}}");
    git(
        repo,
        &[
            "rev-parse".as_ref(),
            "--verify".as_ref(),
            "--quiet".as_ref(),
            "--end-of-options".as_ref(),
            spec.as_ref(),
        ],
    )
    .await
    .map_err(|_| {
        PlatformError::NotFound(format!(
            "commit `{rev}` is not in the repository at {}: push or fetch it first",
            repo.display()
        ))
    })
}

/// `git worktree add --detach <dir> <sha>`.
pub(crate) async fn worktree_add(repo: &Path, dir: &Path, sha: &str) -> Result<(), PlatformError> {
    // A leftover directory from a crash in the middle of an earlier add.
    if dir.exists() {
        worktree_remove(repo, dir).await;
    }
    git(
        repo,
        &[
            "worktree".as_ref(),
            "add".as_ref(),
            "--detach".as_ref(),
            dir.as_os_str(),
            sha.as_ref(),
        ],
    )
    .await
    .map(|_| ())
}

/// Removes a release worktree; never fails, because a discarded release must
/// not block a deploy or a rollback. Falls back to deleting the directory and
/// pruning git's bookkeeping.
pub(crate) async fn worktree_remove(repo: &Path, dir: &Path) {
    let removed = git(
        repo,
        &[
            "worktree".as_ref(),
            "remove".as_ref(),
            "--force".as_ref(),
            "--force".as_ref(),
            dir.as_os_str(),
        ],
    )
    .await;
    if removed.is_err() {
        let _ = tokio::fs::remove_dir_all(dir).await;
        let _ = git(repo, &["worktree".as_ref(), "prune".as_ref()]).await;
    }
}

/// The tree id of commit `sha` (`git rev-parse <sha>^{tree}`): two commits
/// with the same tree have byte-identical tracked files, which is what
/// makes a tested build reusable for a merge commit whose main did not move.
pub(crate) async fn tree_of(repo: &Path, sha: &str) -> Result<String, PlatformError> {
    let spec = format!("{sha}^{{tree}}");
    git(
        repo,
        &[
            "rev-parse".as_ref(),
            "--verify".as_ref(),
            "--quiet".as_ref(),
            "--end-of-options".as_ref(),
            spec.as_ref(),
        ],
    )
    .await
}

/// NUL-separated output of git, split (paths may hold any byte but NUL).
async fn git_z(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<Vec<PathBuf>, PlatformError> {
    use std::os::unix::ffi::OsStrExt;
    let out = git_raw(repo, args).await?;
    Ok(out
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| PathBuf::from(std::ffi::OsStr::from_bytes(s)))
        .collect())
}

/// What a build left in a worktree: every untracked file, ignored ones
/// included (no `--exclude-standard`), with wholly untracked directories
/// as one entry (`target/`), relative to the worktree.
pub(crate) async fn untracked(worktree: &Path) -> Result<Vec<PathBuf>, PlatformError> {
    git_z(
        worktree,
        &[
            "ls-files".as_ref(),
            "--others".as_ref(),
            "--directory".as_ref(),
            "-z".as_ref(),
        ],
    )
    .await
}

/// The tracked files of a worktree, relative to it.
pub(crate) async fn tracked(worktree: &Path) -> Result<Vec<PathBuf>, PlatformError> {
    git_z(worktree, &["ls-files".as_ref(), "-z".as_ref()]).await
}

/// The paths whose content differs between commits `a` and `b` (both
/// sides of a rename).
pub(crate) async fn changed(repo: &Path, a: &str, b: &str) -> Result<Vec<PathBuf>, PlatformError> {
    git_z(
        repo,
        &[
            "diff".as_ref(),
            "--name-only".as_ref(),
            "--no-renames".as_ref(),
            "-z".as_ref(),
            "--end-of-options".as_ref(),
            a.as_ref(),
            b.as_ref(),
            "--".as_ref(),
        ],
    )
    .await
}
