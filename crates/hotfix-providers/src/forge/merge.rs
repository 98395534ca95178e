//! Merges and reverts made with git plumbing and pushed atomically, without
//! touching anybody's work tree. Shared by the local forge (merge to main,
//! revert) and the backport (merge to develop).

use hotfix_core::provider::ForgeError;
use hotfix_git::{Git, GitError, MergeTree};

fn git_err(e: GitError) -> ForgeError {
    ForgeError::Other(crate::redact::redact(&e.to_string()))
}

/// Outcome of [`merge_into`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Merged {
    /// A new merge commit was pushed.
    Created(String),
    /// `head` was already merged; this is the merge commit that did it.
    Already(String),
}

impl Merged {
    pub fn sha(&self) -> &str {
        match self {
            Merged::Created(s) | Merged::Already(s) => s,
        }
    }
}

/// Merges `head` into the remote's `base` as a `--no-ff` merge commit and
/// pushes it atomically. Idempotent: a `head` already reachable from the
/// remote's `base` returns the merge that brought it there. Retries when
/// `base` moved between fetch and push.
pub fn merge_into(
    git: &Git,
    remote: &str,
    base: &str,
    head: &str,
    message: &str,
    fetched: bool,
) -> Result<Merged, ForgeError> {
    for attempt in 0..3 {
        if attempt > 0 || !fetched {
            git.fetch(remote).map_err(git_err)?;
        }
        let tracking = format!("refs/remotes/{remote}/{base}");
        let base_sha = git
            .rev_parse(&tracking)
            .map_err(git_err)?
            .ok_or_else(|| ForgeError::NotMergeable(format!("{remote} has no branch {base}")))?;
        if git.is_ancestor(head, &base_sha).map_err(git_err)? {
            let range = format!("{head}..{base_sha}");
            let m = git
                .find_merge_of(&range, head)
                .map_err(git_err)?
                .unwrap_or(base_sha.clone());
            return Ok(Merged::Already(m));
        }
        let tree = match git.merge_tree(&base_sha, head, None).map_err(git_err)? {
            MergeTree::Clean { tree } => tree,
            MergeTree::Conflicted { files } => return Err(ForgeError::Conflict(files)),
        };
        let commit = git
            .commit_tree(&tree, &[&base_sha, head], message)
            .map_err(git_err)?;
        let refspec = format!("{commit}:refs/heads/{base}");
        let lease = (format!("refs/heads/{base}"), base_sha.clone());
        match git.push(remote, &[refspec], true, &[lease]) {
            Ok(()) => return Ok(Merged::Created(commit)),
            Err(GitError::Failed { stderr, .. })
                if stderr.contains("stale info")
                    || stderr.contains("rejected")
                    || stderr.contains("non-fast-forward") =>
            {
                continue;
            }
            Err(e) => return Err(git_err(e)),
        }
    }
    Err(ForgeError::NotMergeable(format!(
        "{remote}/{base} kept moving while merging; try again"
    )))
}

/// The trailer that marks a revert, so a re-run finds it instead of reverting twice.
pub fn revert_trailer(merge_sha: &str) -> String {
    format!("Reverts-Merge: {merge_sha}")
}

/// Reverts the merge commit `merge_sha` on the remote's `base` (mainline =
/// first parent) and pushes atomically. Idempotent through a trailer.
pub fn revert_on(
    git: &Git,
    remote: &str,
    base: &str,
    merge_sha: &str,
    message: &str,
) -> Result<String, ForgeError> {
    for _ in 0..3 {
        git.fetch(remote).map_err(git_err)?;
        let tracking = format!("refs/remotes/{remote}/{base}");
        let base_sha = git
            .rev_parse(&tracking)
            .map_err(git_err)?
            .ok_or_else(|| ForgeError::NotMergeable(format!("{remote} has no branch {base}")))?;
        let trailer = revert_trailer(merge_sha);
        let range = format!("{merge_sha}..{base_sha}");
        if let Some(existing) = git.find_commit_with(&range, &trailer).map_err(git_err)? {
            return Ok(existing);
        }
        // A revert made by hand (`git revert -m 1 <merge>`, as a stalled
        // rollback asks when reverting conflicts) says so in git's own words.
        let by_hand = format!("This reverts commit {merge_sha}");
        if let Some(existing) = git.find_commit_with(&range, &by_hand).map_err(git_err)? {
            return Ok(existing);
        }
        if !git.is_ancestor(merge_sha, &base_sha).map_err(git_err)? {
            return Err(ForgeError::NotMergeable(format!(
                "{merge_sha} is not on {remote}/{base}: nothing to revert there"
            )));
        }
        let parent = format!("{merge_sha}^1");
        let tree = match git
            .merge_tree(&base_sha, &parent, Some(merge_sha))
            .map_err(git_err)?
        {
            MergeTree::Clean { tree } => tree,
            MergeTree::Conflicted { files } => return Err(ForgeError::Conflict(files)),
        };
        let full = format!("{message}\n\n{trailer}\n");
        let commit = git
            .commit_tree(&tree, &[&base_sha], &full)
            .map_err(git_err)?;
        let refspec = format!("{commit}:refs/heads/{base}");
        let lease = (format!("refs/heads/{base}"), base_sha.clone());
        match git.push(remote, &[refspec], true, &[lease]) {
            Ok(()) => return Ok(commit),
            Err(GitError::Failed { stderr, .. })
                if stderr.contains("stale info") || stderr.contains("rejected") =>
            {
                continue;
            }
            Err(e) => return Err(git_err(e)),
        }
    }
    Err(ForgeError::NotMergeable(format!(
        "{remote}/{base} kept moving while reverting; try again"
    )))
}

/// Merges `head` into the remote's `main` and `develop` (as git-flow's
/// finish does) and pushes both in ONE atomic push: either both branches
/// move or neither. Both merges are predicted first; returns `None`, having
/// pushed nothing, when either would conflict (the caller then merges main
/// alone and leaves the backport to `hotfix backport`). Returns the two merge
/// commits.
pub fn merge_both(
    git: &Git,
    remote: &str,
    (main, main_message): (&str, &str),
    (develop, develop_message): (&str, &str),
    (branch, head): (&str, &str),
) -> Result<Option<(String, String)>, ForgeError> {
    git.fetch(remote).map_err(git_err)?;
    // The sha guard: if the branch moved since it was tested, merge nothing
    // here and let the forge's merge refuse with the details.
    let tracked = git
        .rev_parse(&format!("refs/remotes/{remote}/{branch}"))
        .map_err(git_err)?;
    if tracked.as_deref() != Some(head) {
        return Ok(None);
    }
    let tip = |b: &str| -> Result<String, ForgeError> {
        git.rev_parse(&format!("refs/remotes/{remote}/{b}"))
            .map_err(git_err)?
            .ok_or_else(|| ForgeError::NotMergeable(format!("{remote} has no branch {b}")))
    };
    let (m0, d0) = (tip(main)?, tip(develop)?);
    if git.is_ancestor(head, &m0).map_err(git_err)?
        || git.is_ancestor(head, &d0).map_err(git_err)?
    {
        return Ok(None);
    }
    let (MergeTree::Clean { tree: mt }, MergeTree::Clean { tree: dt }) = (
        git.merge_tree(&m0, head, None).map_err(git_err)?,
        git.merge_tree(&d0, head, None).map_err(git_err)?,
    ) else {
        return Ok(None);
    };
    let m = git
        .commit_tree(&mt, &[&m0, head], main_message)
        .map_err(git_err)?;
    let d = git
        .commit_tree(&dt, &[&d0, head], develop_message)
        .map_err(git_err)?;
    let refspecs = [
        format!("{m}:refs/heads/{main}"),
        format!("{d}:refs/heads/{develop}"),
    ];
    let leases = [
        (format!("refs/heads/{main}"), m0),
        (format!("refs/heads/{develop}"), d0),
    ];
    match git.push(remote, &refspecs, true, &leases) {
        Ok(()) => Ok(Some((m, d))),
        // Someone moved a branch meanwhile: nothing was pushed; merge the usual way.
        Err(GitError::Failed { stderr, .. })
            if stderr.contains("stale info") || stderr.contains("rejected") =>
        {
            Ok(None)
        }
        Err(e) => Err(git_err(e)),
    }
}
