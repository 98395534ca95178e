//! A thin, typed wrapper over the `git` command line.
//!
//! Why the CLI and not a library: the user's SSH agent, credential helpers,
//! hooks and config all keep working, and `git merge-tree --write-tree`
//! gives conflict prediction and merges without a work tree. Every call is an
//! argument vector; user text never reaches a shell.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hotfix_core::event::{CommitInfo, DiffStat};

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("could not run git: {0} (is git installed and on PATH?)")]
    Spawn(std::io::Error),
    #[error("`git {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("{0} is not inside a git repository")]
    NotARepo(PathBuf),
    #[error("unexpected output from `git {0}`")]
    Parse(String),
}

/// The result of a merge computed without a work tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeTree {
    Clean { tree: String },
    Conflicted { files: Vec<String> },
}

/// One repository, addressed by its work tree root.
#[derive(Debug, Clone)]
pub struct Git {
    root: PathBuf,
}

impl Git {
    /// Opens the repository containing `dir`.
    pub fn open(dir: &Path) -> Result<Git, GitError> {
        let out = raw(dir, &["rev-parse", "--show-toplevel"])?;
        if !out.status.success() {
            return Err(GitError::NotARepo(dir.to_path_buf()));
        }
        let root = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok(Git {
            root: PathBuf::from(root),
        })
    }

    /// A handle on another directory (a worktree) of the same repository.
    pub fn at(&self, dir: &Path) -> Git {
        Git {
            root: dir.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Runs git and returns trimmed stdout, or the failure with stderr.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String, GitError> {
        let out = raw(&self.root, args)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(failed(args, &out))
        }
    }

    /// Runs git and returns the raw output whatever the exit status.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, GitError> {
        raw(&self.root, args)
    }

    /// The shared `.git` directory (the same from every worktree).
    pub fn common_dir(&self) -> Result<PathBuf, GitError> {
        let p = self.run(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?;
        Ok(PathBuf::from(p))
    }

    pub fn current_branch(&self) -> Result<Option<String>, GitError> {
        let out = self.output(&["symbolic-ref", "--quiet", "--short", "HEAD"])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// Tracked files with uncommitted changes (untracked files are not at risk).
    pub fn dirty_files(&self) -> Result<Vec<String>, GitError> {
        let s = self.run(&["status", "--porcelain=v1", "--untracked-files=no"])?;
        Ok(s.lines()
            .filter(|l| l.len() > 3)
            .map(|l| l[3..].to_string())
            .collect())
    }

    pub fn fetch(&self, remote: &str) -> Result<(), GitError> {
        // No auto-maintenance on our hot path; the user's next git command runs it.
        self.run(&[
            "-c",
            "maintenance.auto=false",
            "-c",
            "gc.auto=0",
            "fetch",
            "--quiet",
            "--prune",
            remote,
        ])
        .map(drop)
    }

    /// Resolves a revision to a commit sha, `None` if it does not exist.
    pub fn rev_parse(&self, rev: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{rev}^{{commit}}");
        let out = self.output(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// The tree id of `rev` (`git rev-parse REV^{tree}`), `None` when it
    /// names no commit here. Why trees: a merge commit and the hotfix head
    /// it merged have different shas but, when main did not move, the same
    /// tree: the same files, so the same build (issue 13 compares trees).
    pub fn tree_of(&self, rev: &str) -> Result<Option<String>, GitError> {
        let spec = format!("{rev}^{{tree}}");
        let out = self.output(&[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &spec,
        ])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|t| !t.is_empty()))
    }

    /// The sha of a branch on the remote right now (asks the remote).
    pub fn remote_branch_sha(
        &self,
        remote: &str,
        branch: &str,
    ) -> Result<Option<String>, GitError> {
        let r = format!("refs/heads/{branch}");
        let s = self.run(&["ls-remote", "--heads", remote, &r])?;
        Ok(s.lines()
            .find(|l| l.ends_with(&r))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string))
    }

    pub fn local_branch_sha(&self, branch: &str) -> Result<Option<String>, GitError> {
        self.rev_parse(&format!("refs/heads/{branch}"))
    }

    /// Is `name` a valid branch name for git?
    pub fn valid_branch_name(&self, name: &str) -> Result<bool, GitError> {
        Ok(self
            .output(&["check-ref-format", "--branch", name])?
            .status
            .success())
    }

    pub fn create_branch(&self, name: &str, start: &str) -> Result<(), GitError> {
        self.run(&["branch", "--no-track", "--", name, start])
            .map(drop)
    }

    /// Points HEAD at another branch without touching the index or the work
    /// tree: only correct when that branch is at HEAD's commit.
    pub fn switch_head(&self, branch: &str) -> Result<(), GitError> {
        let r = format!("refs/heads/{branch}");
        let msg = format!("hotfix: moving to {branch}");
        self.run(&["symbolic-ref", "-m", &msg, "HEAD", &r])
            .map(drop)
    }

    pub fn checkout(&self, branch: &str) -> Result<(), GitError> {
        self.run(&["checkout", "--quiet", branch, "--"]).map(drop)
    }

    /// Pushes refspecs, all or nothing when `atomic`. `leases` are
    /// `(ref, expected sha or "" for must-not-exist)`.
    pub fn push(
        &self,
        remote: &str,
        refspecs: &[String],
        atomic: bool,
        leases: &[(String, String)],
    ) -> Result<(), GitError> {
        let mut args: Vec<String> = vec![
            "-c".into(),
            "maintenance.auto=false".into(),
            "push".into(),
            "--quiet".into(),
            "--porcelain".into(),
        ];
        if atomic {
            args.push("--atomic".into());
        }
        for (r, sha) in leases {
            args.push(format!("--force-with-lease={r}:{sha}"));
        }
        args.push(remote.into());
        args.extend(refspecs.iter().cloned());
        self.run(&args).map(drop)
    }

    /// Merges `theirs` into `ours` without a work tree (`git merge-tree --write-tree`).
    pub fn merge_tree(
        &self,
        ours: &str,
        theirs: &str,
        merge_base: Option<&str>,
    ) -> Result<MergeTree, GitError> {
        let mut args = vec!["merge-tree", "--write-tree", "--name-only", "--no-messages"];
        let mb;
        if let Some(b) = merge_base {
            mb = format!("--merge-base={b}");
            args.push(&mb);
        }
        args.push(ours);
        args.push(theirs);
        let out = self.output(&args)?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut lines = text.lines();
        match out.status.code() {
            Some(0) => {
                let tree = lines
                    .next()
                    .ok_or_else(|| GitError::Parse("merge-tree".into()))?;
                Ok(MergeTree::Clean {
                    tree: tree.to_string(),
                })
            }
            Some(1) => {
                let _tree = lines.next();
                let mut files: Vec<String> = lines
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
                files.dedup();
                Ok(MergeTree::Conflicted { files })
            }
            _ => Err(failed(&args, &out)),
        }
    }

    /// Writes a commit object for `tree` with `parents`.
    pub fn commit_tree(
        &self,
        tree: &str,
        parents: &[&str],
        message: &str,
    ) -> Result<String, GitError> {
        let mut args: Vec<&str> = vec!["commit-tree", tree];
        for p in parents {
            args.push("-p");
            args.push(p);
        }
        args.push("-m");
        args.push(message);
        self.run(&args)
    }

    /// Is `a` an ancestor of (or equal to) `b`?
    pub fn is_ancestor(&self, a: &str, b: &str) -> Result<bool, GitError> {
        let out = self.output(&["merge-base", "--is-ancestor", a, b])?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => Err(failed(&["merge-base", "--is-ancestor", a, b], &out)),
        }
    }

    pub fn merge_base(&self, a: &str, b: &str) -> Result<Option<String>, GitError> {
        let out = self.output(&["merge-base", a, b])?;
        Ok(out
            .status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
    }

    /// The commits in `base..head`, oldest first.
    pub fn commits(&self, base: &str, head: &str) -> Result<Vec<CommitInfo>, GitError> {
        let range = format!("{base}..{head}");
        let s = self.run(&[
            "log",
            "--reverse",
            "--no-merges",
            "--format=%H%x1f%ae%x1f%ce%x1f%s",
            &range,
        ])?;
        // A commit message may hold anything, an ESC or a bidi override
        // included: the subject and addresses are recorded with those made
        // visible, so a hotfix is never blocked by (or carries into every
        // view) a terminal escape in a commit someone wrote.
        let shown = |f: &str| hotfix_core::display::line(f).into_owned();
        Ok(s.lines()
            .filter_map(|l| {
                let mut f = l.split('\x1f');
                Some(CommitInfo {
                    sha: f.next()?.to_string(),
                    author_email: shown(f.next()?),
                    committer_email: shown(f.next()?),
                    subject: shown(&f.collect::<Vec<_>>().join("\u{1f}")),
                })
            })
            .collect())
    }

    /// Files and lines changed between `base` and `head`, and files whose added
    /// lines carry conflict markers.
    pub fn diff_stat(&self, base: &str, head: &str) -> Result<DiffStat, GitError> {
        let s = self.run(&["diff", "--numstat", "--no-renames", base, head])?;
        let mut d = DiffStat::default();
        for l in s.lines() {
            let mut f = l.splitn(3, '\t');
            let (Some(a), Some(r), Some(path)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            d.lines_added += a.parse::<u64>().unwrap_or(0);
            d.lines_removed += r.parse::<u64>().unwrap_or(0);
            d.files.push(path.to_string());
        }
        let patch = self.run(&["diff", "-U0", "--no-renames", "--no-color", base, head])?;
        let mut current = String::new();
        for l in patch.lines() {
            if let Some(p) = l.strip_prefix("+++ b/") {
                current = p.to_string();
            } else if let Some(added) = l.strip_prefix('+')
                && is_conflict_marker(added)
                && !d.conflict_markers.contains(&current)
            {
                d.conflict_markers.push(current.clone());
            }
        }
        Ok(d)
    }

    /// The first commit in `range` whose message contains `needle` (fixed string).
    pub fn find_commit_with(&self, range: &str, needle: &str) -> Result<Option<String>, GitError> {
        let grep = format!("--grep={needle}");
        let s = self.run(&["log", "--fixed-strings", &grep, "--format=%H", range])?;
        Ok(s.lines().next().map(str::to_string))
    }

    /// The first merge commit in `range` whose second parent is `head`.
    pub fn find_merge_of(&self, range: &str, head: &str) -> Result<Option<String>, GitError> {
        let s = self.run(&["log", "--merges", "--format=%H %P", range])?;
        Ok(s.lines().find_map(|l| {
            let mut f = l.split_whitespace();
            let sha = f.next()?;
            let _p1 = f.next()?;
            let p2 = f.next()?;
            (p2 == head).then(|| sha.to_string())
        }))
    }

    pub fn user_email(&self) -> Result<Option<String>, GitError> {
        let out = self.output(&["config", "user.email"])?;
        let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Ok((out.status.success() && !s.is_empty()).then_some(s))
    }

    pub fn worktree_add_detached(&self, path: &Path, commit: &str) -> Result<(), GitError> {
        let p = path.to_string_lossy();
        self.run(&["worktree", "add", "--quiet", "--detach", &p, commit])
            .map(drop)
    }

    pub fn worktree_remove(&self, path: &Path) -> Result<(), GitError> {
        let p = path.to_string_lossy();
        if path.exists() {
            self.run(&["worktree", "remove", "--force", &p])?;
        }
        self.run(&["worktree", "prune"]).map(drop)
    }

    /// The content of `path` in the commit `rev`, `None` when the commit or
    /// the file does not exist: the committed config of a branch can be read
    /// without touching the work tree (a branch checked out elsewhere, the
    /// remote's main as last fetched).
    pub fn show_file(&self, rev: &str, path: &str) -> Result<Option<String>, GitError> {
        // `rev:path` is one argument and git never runs it through a shell;
        // `--end-of-options` keeps a rev that starts with `-` from being an option.
        let spec = format!("{rev}:{path}");
        let exists = self
            .output(&["cat-file", "-e", "--end-of-options", &spec])?
            .status
            .success();
        if !exists {
            return Ok(None);
        }
        let out = self.output(&["cat-file", "blob", "--end-of-options", &spec])?;
        if !out.status.success() {
            // A tree (a directory named like the file), not a blob.
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    /// Is `path` (relative to the work tree root) tracked in the index?
    pub fn is_tracked(&self, path: &str) -> Result<bool, GitError> {
        let s = self.run(&["ls-files", "--", path])?;
        Ok(!s.trim().is_empty())
    }

    /// The repository's main work tree (the clone itself, not a linked
    /// worktree), `None` for a bare repository. A command run from inside a
    /// worktree that hotfix is about to remove works from here instead, so
    /// that no git command runs in a directory that no longer exists.
    pub fn main_worktree(&self) -> Result<Option<PathBuf>, GitError> {
        let s = self.run(&["worktree", "list", "--porcelain"])?;
        // The first record is the main work tree; "bare" marks a bare one.
        let mut first = s.split("\n\n").next().unwrap_or("").lines();
        let Some(path) = first.next().and_then(|l| l.strip_prefix("worktree ")) else {
            return Err(GitError::Parse("worktree list --porcelain".into()));
        };
        if first.any(|l| l == "bare") {
            return Ok(None);
        }
        Ok(Some(PathBuf::from(path)))
    }

    /// Files with unresolved conflicts in this work tree.
    pub fn unmerged_files(&self) -> Result<Vec<String>, GitError> {
        let s = self.run(&["diff", "--name-only", "--diff-filter=U"])?;
        Ok(s.lines().map(str::to_string).collect())
    }
}

/// `<<<<<<< `, `>>>>>>> ` or a bare `=======` line.
pub fn is_conflict_marker(line: &str) -> bool {
    line.starts_with("<<<<<<< ")
        || line.starts_with(">>>>>>> ")
        || line == "======="
        || line == "<<<<<<<"
        || line == ">>>>>>>"
}

fn raw<S: AsRef<OsStr>>(dir: &Path, args: &[S]) -> Result<Output, GitError> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .output()
        .map_err(GitError::Spawn)
}

fn failed<S: AsRef<OsStr>>(args: &[S], out: &Output) -> GitError {
    let args = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.is_empty() {
        stderr = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    GitError::Failed { args, stderr }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn repo() -> (tempfile::TempDir, Git) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("r");
        std::fs::create_dir_all(&dir).unwrap();
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .args(args)
                .current_dir(&dir)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        git(&["init", "--quiet", "-b", "main"]);
        std::fs::write(dir.join("hotfix.toml"), "[team]\n").unwrap();
        git(&["add", "hotfix.toml"]);
        git(&[
            "-c",
            "user.email=t@example.com",
            "-c",
            "user.name=T",
            "commit",
            "--quiet",
            "-m",
            "config",
        ]);
        let g = Git::open(&dir).unwrap();
        (tmp, g)
    }

    #[test]
    fn show_file_reads_a_committed_file_and_says_none_for_what_is_not_there() {
        let (_tmp, g) = repo();
        assert_eq!(
            g.show_file("main", "hotfix.toml").unwrap().as_deref(),
            Some("[team]\n")
        );
        assert_eq!(g.show_file("main", "missing.toml").unwrap(), None);
        assert_eq!(
            g.show_file("refs/remotes/origin/main", "hotfix.toml")
                .unwrap(),
            None
        );
        assert_eq!(g.show_file("--help", "hotfix.toml").unwrap(), None);
        assert!(g.is_tracked("hotfix.toml").unwrap());
        assert!(!g.is_tracked("missing.toml").unwrap());
    }

    #[test]
    fn tree_of_is_equal_for_two_commits_of_the_same_files() {
        let (_tmp, g) = repo();
        let head = g.rev_parse("HEAD").unwrap().unwrap();
        let tree = g.tree_of("HEAD").unwrap().unwrap();
        assert_eq!(tree.len(), 40);
        assert_ne!(tree, head);
        // Another commit of the same tree (what a merge is when main did not move).
        let twin = g
            .run(&[
                "-c",
                "user.email=t@example.com",
                "-c",
                "user.name=T",
                "commit-tree",
                &tree,
                "-p",
                &head,
                "-m",
                "twin",
            ])
            .unwrap();
        let twin = twin.trim();
        assert_ne!(twin, head);
        assert_eq!(g.tree_of(twin).unwrap().as_deref(), Some(tree.as_str()));
        assert_eq!(g.tree_of(&"0".repeat(40)).unwrap(), None);
        assert_eq!(g.tree_of("--help").unwrap(), None);
    }

    #[test]
    fn main_worktree_is_the_clone_from_a_linked_worktree_too() {
        let (tmp, g) = repo();
        let wt = tmp.path().join("linked");
        let head = g.rev_parse("HEAD").unwrap().unwrap();
        g.worktree_add_detached(&wt, &head).unwrap();
        let main = g.main_worktree().unwrap().unwrap();
        let from_linked = g.at(&wt).main_worktree().unwrap().unwrap();
        assert_eq!(from_linked, main);
        assert_eq!(
            main.canonicalize().unwrap(),
            g.root().canonicalize().unwrap()
        );
    }
}
