//! Build once: how a fresh release worktree gets its build — promoted from a
//! built release of the same tree (hard links, no build), else `build` on top
//! of the `[deploy] cache` of an earlier build with the same lockfiles, else
//! `build` from nothing — and the [`Pin`] that keeps a source worktree from
//! being deleted while it is read. Apart because it is the one part that
//! reads other releases' worktrees, and the reason a deploy is fast or slow.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::buildcache::{self, Mode};
use crate::config::PlatformConfig;
use crate::procs::{SpawnSpec, run_to_end};
use crate::types::{BuildHow, BuildInfo, LaunchStep, ReleaseInfo, ReleaseKind, ReleaseState};
use crate::util::{log_line, log_tail};
use crate::{PlatformError, git};

use super::{Inner, LOG_TAIL_LINES, Release, State, lock, ms_since, short};

/// A promotion or a cache copy reads `0`'s worktree: it is not deleted
/// until the pin is dropped.
struct Pin(Arc<Release>);

impl Pin {
    fn new(rel: &Arc<Release>) -> Pin {
        rel.pins.fetch_add(1, Ordering::SeqCst);
        Pin(rel.clone())
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        self.0.pins.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The release number of `r12-1a2b3c4` (newest = largest).
fn release_no(id: &str) -> u64 {
    id.strip_prefix('r')
        .and_then(|r| r.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn join_notes(notes: &[String]) -> Option<String> {
    (!notes.is_empty()).then(|| notes.join("; "))
}

impl Inner {
    /// Checks `info.sha` out into the release's new worktree and gets it its
    /// build: promoted from a built release of the same tree (production
    /// and canary releases; the engine's previewed build preferred), else
    /// `build` on top of the `[deploy] cache` of an earlier build with the
    /// same lockfiles, else `build` from nothing. Records how, and how long
    /// it took, in the release's [`BuildInfo`]. Returns whether `build` ran.
    pub(super) async fn prepare(
        self: &Arc<Self>,
        rel: &Arc<Release>,
        cfg: &Arc<PlatformConfig>,
        info: &ReleaseInfo,
    ) -> Result<bool, PlatformError> {
        let t0 = Instant::now();
        let log = &info.log_path;
        let tree = match git::tree_of(&self.cfg.repo_root, &info.sha).await {
            Ok(t) => t,
            Err(e) => {
                log_line(log, &format!("cannot read the tree of {}: {e}", info.sha));
                return Err(e);
            }
        };
        // Decided before the checkout, so a source found is pinned while
        // the worktree is being made.
        let promotion = (info.kind == ReleaseKind::Production && cfg.promote)
            .then(|| self.promotion_source(rel, cfg, &tree));
        self.checkout(info).await?;
        let mut notes: Vec<String> = Vec::new();
        match promotion {
            Some(Ok(src)) => {
                rel.set(|i| i.step = Some(LaunchStep::Promote));
                let from = src.0.info();
                log_line(
                    log,
                    &format!(
                        "promoting the build of {} ({}): same tree {}, so no build runs",
                        from.id,
                        short(&from.sha),
                        short(&tree)
                    ),
                );
                match self.promote(&src, cfg, info).await {
                    Ok(n) => {
                        let ms = ms_since(t0);
                        log_line(
                            log,
                            &format!(
                                "promoted from {}: {} files ({}) linked, ready in {ms} ms: this release runs the tested build",
                                from.id,
                                n.files,
                                human_bytes(n.bytes)
                            ),
                        );
                        let cache_key = from.build.and_then(|b| b.cache_key);
                        rel.set(|i| {
                            i.build = Some(BuildInfo {
                                how: BuildHow::Promoted,
                                tree,
                                from: Some(from.id),
                                from_sha: Some(from.sha),
                                cache_key,
                                ms,
                                build_ms: None,
                                note: None,
                            })
                        });
                        return Ok(false);
                    }
                    Err(e) => {
                        drop(src);
                        let why =
                            format!("the build of {} could not be carried over ({e})", from.id);
                        log_line(log, &format!("{why}; building in a fresh checkout instead"));
                        // Files linked so far are the tested build's own:
                        // a build must never write into them.
                        self.checkout(info).await?;
                        notes.push(why);
                    }
                }
            }
            Some(Err(why)) => {
                log_line(log, &format!("not promoted: {why}; building"));
                notes.push(why);
            }
            None => {}
        }
        let key = {
            let (wt, extra) = (info.worktree.clone(), cfg.cache_key.clone());
            tokio::task::spawn_blocking(move || buildcache::cache_key(&wt, &extra))
                .await
                .ok()
                .and_then(Result::ok)
        };
        let Some(build) = &cfg.build else {
            let ms = ms_since(t0);
            rel.set(|i| {
                i.build = Some(BuildInfo {
                    how: BuildHow::None,
                    tree,
                    from: None,
                    from_sha: None,
                    cache_key: key,
                    ms,
                    build_ms: None,
                    note: join_notes(&notes),
                })
            });
            return Ok(false);
        };
        let mut how = BuildHow::Cold;
        let mut from = None;
        if !cfg.cache.is_empty() {
            rel.set(|i| i.step = Some(LaunchStep::Cache));
            match self.restore_cache(rel, cfg, info, key.as_deref()).await {
                Ok(src) => {
                    how = BuildHow::Cached;
                    from = Some(src);
                }
                Err(why) => {
                    log_line(log, &format!("cache: {why}; building cold"));
                    notes.push(format!("cold: {why}"));
                }
            }
        }
        rel.set(|i| i.step = Some(LaunchStep::Build));
        log_line(log, &format!("building: {}", build.join(" ")));
        let spec = SpawnSpec {
            argv: build.clone(),
            cwd: info.worktree.clone(),
            env: self.release_env(info, None),
            log: log.clone(),
        };
        let tb = Instant::now();
        if let Err(detail) = run_to_end(&self.spawner, spec, cfg.build_timeout).await {
            log_line(log, &format!("build failed: {detail}"));
            return Err(PlatformError::Build {
                release: info.id.clone(),
                detail,
                tail: log_tail(log, LOG_TAIL_LINES),
                log: log.clone(),
            });
        }
        let build_ms = ms_since(tb);
        let (from, from_sha) = from.unzip();
        let bi = BuildInfo {
            how,
            tree,
            from,
            from_sha,
            cache_key: key,
            ms: ms_since(t0),
            build_ms: Some(build_ms),
            note: join_notes(&notes),
        };
        log_line(
            log,
            &format!(
                "built ({}) in {build_ms} ms; ready to start after {} ms",
                bi.describe(),
                bi.ms
            ),
        );
        rel.set(|i| i.build = Some(bi));
        Ok(true)
    }

    /// `git worktree add` of the release's sha (a leftover directory of a
    /// crash, or of a promotion given up, is removed first).
    async fn checkout(&self, info: &ReleaseInfo) -> Result<(), PlatformError> {
        log_line(
            &info.log_path,
            &format!("checking out {} into {}", info.sha, info.worktree.display()),
        );
        let _g = self.git_lock.lock().await;
        if let Err(e) = git::worktree_add(&self.cfg.repo_root, &info.worktree, &info.sha).await {
            log_line(&info.log_path, &format!("checkout failed: {e}"));
            return Err(e);
        }
        Ok(())
    }

    /// Every release whose worktree holds a finished build: production,
    /// previous, canary, previews and the kept builds of removed previews
    /// (never one still starting). Newest first.
    fn built_releases(st: &State, except: &Arc<Release>) -> Vec<Arc<Release>> {
        let mut out: Vec<Arc<Release>> = st
            .production
            .iter()
            .chain(st.previous.iter())
            .chain(st.canary.iter().map(|c| &c.rel))
            .chain(st.previews.values())
            .chain(st.kept.iter())
            .filter(|r| !Arc::ptr_eq(r, except))
            .filter(|r| {
                let i = r.info();
                i.build.is_some()
                    && !matches!(i.state, ReleaseState::Stopped | ReleaseState::Starting)
                    && i.worktree.join(".git").exists()
            })
            .cloned()
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(release_no(&r.info().id)));
        out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        out
    }

    /// The built release `rel` can be promoted from: one of the same tree,
    /// built with the same command and not crashed, the engine's previewed
    /// sha first. Otherwise why not, in words for the log and the answer.
    fn promotion_source(
        &self,
        rel: &Arc<Release>,
        cfg: &PlatformConfig,
        tree: &str,
    ) -> Result<Pin, String> {
        // Without a build command a release is the checkout of its tree:
        // there is no build to promote, and another release's untracked
        // files (what its process wrote into its worktree) are not one.
        if cfg.build.is_none() {
            return Err("no build command: the release is the checkout of its tree".into());
        }
        let hint = lock(&rel.hint).clone();
        let st = lock(&self.state);
        let same_tree: Vec<Arc<Release>> = Self::built_releases(&st, rel)
            .into_iter()
            .filter(|r| {
                let i = r.info();
                i.state != ReleaseState::Crashed && i.build.as_ref().is_some_and(|b| b.tree == tree)
            })
            .collect();
        let (usable, other_build): (Vec<_>, Vec<_>) = same_tree
            .into_iter()
            .partition(|r| r.cfg.build == cfg.build);
        if let Some(h) = &hint
            && let Some(r) = usable.iter().find(|r| r.info().sha == h.sha)
        {
            return Ok(Pin::new(r));
        }
        if let Some(r) = usable.first() {
            return Ok(Pin::new(r));
        }
        Err(match (&hint, other_build.first()) {
            (_, Some(r)) => format!(
                "the build command changed since {} built this tree",
                r.info().id
            ),
            (Some(h), None) if h.tree != tree => format!(
                "main moved: tree {} differs from the previewed {} (preview {})",
                short(tree),
                short(&h.tree),
                short(&h.sha)
            ),
            (Some(h), None) => format!(
                "the preview's build is gone (no release of {} is kept)",
                short(&h.sha)
            ),
            (None, None) => format!("no built release of this tree ({})", short(tree)),
        })
    }

    /// Links the build outputs of `src` into `info`'s fresh worktree: the
    /// `[deploy] artifacts` paths, or every untracked and ignored file of
    /// `src`'s worktree. Tracked files get `src`'s mtimes too, so the
    /// promoted worktree is indistinguishable from the tested one (and a
    /// later cache copy from it is as incremental as one from `src`).
    async fn promote(
        &self,
        src: &Pin,
        cfg: &PlatformConfig,
        info: &ReleaseInfo,
    ) -> Result<buildcache::Carried, String> {
        let from = src.0.info();
        let configured = !cfg.artifacts.is_empty();
        let paths: Vec<PathBuf> = if configured {
            cfg.artifacts.iter().map(PathBuf::from).collect()
        } else {
            git::untracked(&from.worktree)
                .await
                .map_err(|e| e.to_string())?
        };
        let tracked = git::tracked(&info.worktree)
            .await
            .map_err(|e| e.to_string())?;
        let (sw, dw) = (from.worktree.clone(), info.worktree.clone());
        tokio::task::spawn_blocking(move || {
            let mut total = buildcache::Carried::default();
            for p in &paths {
                // `git ls-files --directory` writes `target/`: one path.
                let p: PathBuf = p.components().collect();
                let src = sw.join(&p);
                if std::fs::symlink_metadata(&src).is_err() {
                    if configured {
                        return Err(format!("it has no `{}`", p.display()));
                    }
                    continue;
                }
                let n = buildcache::restore(&src, &dw.join(&p), Mode::Link)
                    .map_err(|e| format!("{}: {e}", p.display()))?;
                total.files += n.files;
                total.bytes += n.bytes;
            }
            buildcache::sync_mtimes(&sw, &dw, &tracked);
            Ok(total)
        })
        .await
        .map_err(|e| format!("the copy stopped: {e}"))?
    }

    /// Copies each `[deploy] cache` path from the newest built release with
    /// the same cache key into `info`'s fresh worktree, and gives tracked
    /// files unchanged since that release its mtimes. Returns the release
    /// it copied from (id, sha), or why there was none to copy from.
    async fn restore_cache(
        &self,
        rel: &Arc<Release>,
        cfg: &PlatformConfig,
        info: &ReleaseInfo,
        key: Option<&str>,
    ) -> Result<(String, String), String> {
        let Some(key) = key else {
            return Err("the lockfiles could not be read to key the cache".into());
        };
        let src = {
            let st = lock(&self.state);
            let built = Self::built_releases(&st, rel);
            let same = built
                .iter()
                .find(|r| r.info().build.and_then(|b| b.cache_key).as_deref() == Some(key));
            match (same, built.first()) {
                (Some(r), _) => Pin::new(r),
                (None, Some(newest)) => {
                    let i = newest.info();
                    let old = i.build.and_then(|b| b.cache_key).unwrap_or_default();
                    return Err(format!(
                        "the lockfiles differ from every kept build's (newest {}: cache key {} here {}), so its dependencies are rebuilt",
                        i.id,
                        short(&old),
                        short(key)
                    ));
                }
                (None, None) => return Err("no earlier build to take it from".into()),
            }
        };
        let from = src.0.info();
        // Unchanged tracked files get the source's mtimes; without the
        // list (a git error) they keep the checkout's, which only costs
        // rebuilding more than needed.
        let unchanged: Vec<PathBuf> =
            match git::changed(&self.cfg.repo_root, &from.sha, &info.sha).await {
                Ok(c) => {
                    let changed: std::collections::HashSet<PathBuf> = c.into_iter().collect();
                    git::tracked(&info.worktree)
                        .await
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| !changed.contains(p))
                        .collect()
                }
                Err(_) => Vec::new(),
            };
        let (sw, dw, log) = (
            from.worktree.clone(),
            info.worktree.clone(),
            info.log_path.clone(),
        );
        let (paths, id) = (cfg.cache.clone(), from.id.clone());
        let copied = tokio::task::spawn_blocking(move || {
            let _pin = src;
            let mut copied = 0;
            for p in &paths {
                let t = Instant::now();
                let s = sw.join(p);
                if std::fs::symlink_metadata(&s).is_err() {
                    log_line(&log, &format!("cache: {id} has no `{p}`; it starts empty"));
                    continue;
                }
                match buildcache::restore(&s, &dw.join(p), Mode::Copy) {
                    Ok(n) => {
                        copied += 1;
                        log_line(
                            &log,
                            &format!(
                                "cache: `{p}` copied from {id} (same lockfiles): {} files, {} in {} ms",
                                n.files,
                                human_bytes(n.bytes),
                                ms_since(t)
                            ),
                        );
                    }
                    Err(e) => log_line(
                        &log,
                        &format!("cache: `{p}` could not be copied from {id} ({e}); it starts empty"),
                    ),
                }
            }
            if copied > 0 {
                buildcache::sync_mtimes(&sw, &dw, &unchanged);
            }
            copied
        })
        .await
        .unwrap_or(0);
        if copied == 0 {
            return Err(format!("nothing could be copied from {}", from.id));
        }
        Ok((from.id, from.sha))
    }
}
