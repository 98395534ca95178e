//! The git commands the platform needs: resolve a sha, add and remove a
//! release worktree. System `git` with argument vectors, never a shell.

use std::path::Path;

use tokio::process::Command;

use crate::PlatformError;

async fn git(repo: &Path, args: &[&std::ffi::OsStr]) -> Result<String, PlatformError> {
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
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
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
