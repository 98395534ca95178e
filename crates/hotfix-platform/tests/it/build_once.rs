//! Issue 13, build once: a production deploy of a previewed tree promotes
//! the tested build (no second build, the same bytes); a new build starts
//! from the cache of an earlier one with the same lockfiles; concurrent
//! builds never share a writable directory; a crash mid-build leaves
//! nothing a re-run trips over. Real git repos, a real build script, the
//! real platform (in this process, or as its own process for kill -9).

use crate::common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Fixture, InProcess, RUNNER, SAMPLE, eventually, get, git, pid_alive, routes};
use hotfix_platform::{
    BuildHow, Client, DeployRequest, LaunchStep, PlatformConfig, PreviewedHint, ReleaseInfo,
};
use sha2::{Digest, Sha256};

/// A build with a slow "dependencies" step keyed on `Cargo.lock` (kept in
/// `target/`, like cargo's), an app step that runs every time, and a
/// counter outside the repo. `$1`: one line per build; `$2`: if it exists,
/// seconds to sleep mid-build; `$3`: start/end times of each build.
const BUILD: &str = r#"#!/bin/sh
set -e
echo "$HOTFIX_SHA" >> "$1"
echo "start $HOTFIX_SHA $(date +%s%N)" >> "$3"
mkdir -p target
if [ ! -f target/deps.stamp ] || ! cmp -s target/deps.stamp Cargo.lock; then
  echo "compiling dependencies"
  cp Cargo.lock target/deps.stamp
  echo "$HOTFIX_SHA" > target/deps.built-by
fi
echo "$HOTFIX_SHA" >> target/history
if [ -f "$2" ]; then sleep "$(cat "$2")"; fi
{ cat service/routes.toml; echo "built for $HOTFIX_SHA at $(date +%s%N)"; } > target/app.bin
echo "end $HOTFIX_SHA $(date +%s%N)" >> "$3"
echo "build done"
"#;

struct Repo {
    fx: Fixture,
}

impl Repo {
    fn new() -> Repo {
        let fx = Fixture::new();
        std::fs::write(fx.repo.join("build.sh"), BUILD).expect("write");
        std::fs::write(fx.repo.join("Cargo.lock"), "serde 1.0.1\n").expect("write");
        std::fs::write(fx.repo.join(".gitignore"), "target/\n").expect("write");
        git(&fx.repo, &["add", "-A"]);
        Repo { fx }
    }
    fn sleep_file(&self) -> PathBuf {
        self.fx.tmp.path().join("sleep")
    }
    fn timeline(&self) -> PathBuf {
        self.fx.tmp.path().join("timeline")
    }
    fn config(&self, cache: &[&str]) -> PlatformConfig {
        let mut c = self.fx.config();
        c.build = Some(vec![
            "sh".into(),
            "build.sh".into(),
            self.fx.builds_file().display().to_string(),
            self.sleep_file().display().to_string(),
            self.timeline().display().to_string(),
        ]);
        c.cache = cache.iter().map(|s| s.to_string()).collect();
        c
    }
    fn write(&self, path: &str, text: &str) -> String {
        std::fs::write(self.fx.repo.join(path), text).expect("write");
        git(&self.fx.repo, &["add", "-A"]);
        git(&self.fx.repo, &["commit", "-q", "-m", path]);
        git(&self.fx.repo, &["rev-parse", "HEAD"])
    }
    /// On branch `hotfix/x` from main: the fix. Back on main afterwards.
    fn fix(&self, version: &str) -> String {
        git(&self.fx.repo, &["checkout", "-q", "-B", "hotfix/x"]);
        let fix = self.fx.commit(&routes(version));
        git(&self.fx.repo, &["checkout", "-q", "main"]);
        fix
    }
    /// `git merge --no-ff hotfix/x` into main, as `ship` does.
    fn merge(&self) -> String {
        git(
            &self.fx.repo,
            &["merge", "-q", "--no-ff", "-m", "Merge hotfix", "hotfix/x"],
        );
        git(&self.fx.repo, &["rev-parse", "HEAD"])
    }
    fn tree(&self, sha: &str) -> String {
        git(&self.fx.repo, &["rev-parse", &format!("{sha}^{{tree}}")])
    }
}

fn build(r: &ReleaseInfo) -> hotfix_platform::BuildInfo {
    r.build
        .clone()
        .unwrap_or_else(|| panic!("no build info: {r:?}"))
}

fn sha256(p: &Path) -> String {
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn deploy(sha: &str, previewed: Option<(&str, &str)>) -> DeployRequest {
    DeployRequest {
        sha: sha.to_string(),
        previewed: previewed.map(|(sha, tree)| PreviewedHint {
            sha: sha.into(),
            tree: tree.into(),
        }),
        ..DeployRequest::default()
    }
}

#[test]
fn production_of_the_previewed_tree_runs_the_tested_build_without_building() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let fix = r.fix("v2");
    let p = InProcess::start(r.config(&[]));
    let prod = p.client.deploy_production(&base).expect("deploy v1");
    assert!(prod.built);
    assert_eq!(build(&prod.release).how, BuildHow::Cold);
    let pv = p.client.deploy_preview("HF-1", &fix).expect("preview");
    assert_eq!(r.fx.builds(), 2);
    let merge = r.merge();
    assert_eq!(r.tree(&merge), r.tree(&fix), "main did not move");
    assert_ne!(merge, fix);
    // The engine removes the preview at the merge, before production.
    p.client.remove_preview("HF-1").expect("remove");

    let tree = r.tree(&fix);
    let o = p
        .client
        .deploy_production_with(&deploy(&merge, Some((&fix, &tree))))
        .expect("ship");
    assert!(!o.built, "no second build");
    assert_eq!(
        r.fx.builds(),
        2,
        "the build ran twice only: v1 and the preview"
    );
    let b = build(&o.release);
    assert_eq!(b.how, BuildHow::Promoted, "{b:?}");
    assert_eq!(b.from.as_deref(), Some(pv.release.id.as_str()));
    assert_eq!(b.from_sha.as_deref(), Some(fix.as_str()));
    assert_eq!(b.tree, tree);
    assert_eq!(b.build_ms, None);
    assert_eq!(b.describe(), format!("promoted from {}", pv.release.id));
    // The same artifact: same checksum, the same file (hard link).
    let (tested, shipped) = (
        pv.release.worktree.join("target/app.bin"),
        o.release.worktree.join("target/app.bin"),
    );
    assert_eq!(sha256(&tested), sha256(&shipped));
    assert_eq!(
        std::fs::metadata(&tested).expect("stat").ino(),
        std::fs::metadata(&shipped).expect("stat").ino()
    );
    assert!(read(&shipped).contains(&format!("built for {fix}")));
    // Tracked files carry the tested worktree's mtimes too.
    assert_eq!(
        std::fs::metadata(pv.release.worktree.join("build.sh"))
            .and_then(|m| m.modified())
            .expect("mtime"),
        std::fs::metadata(o.release.worktree.join("build.sh"))
            .and_then(|m| m.modified())
            .expect("mtime"),
    );
    assert_eq!(get(&r.fx.url("/version")), (200, "v2".to_string()));
    let log = read(&o.release.log_path);
    assert!(log.contains("this release runs the tested build"), "{log}");
    assert!(!log.contains("building:"), "{log}");
    // Kept in the status with the build time.
    let st = p.client.status().expect("status");
    let live = st.production.expect("production");
    assert_eq!(build(&live).how, BuildHow::Promoted);
    assert_eq!(build(&st.previous.expect("previous")).how, BuildHow::Cold);
    // The promoted release's files outlive the tested worktree.
    drop(p);
    let p = InProcess::start(r.config(&[]));
    assert_eq!(get(&r.fx.url("/version")), (200, "v2".to_string()));
    p.stop();
}

#[test]
fn when_main_moved_production_builds_and_says_why() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let fix = r.fix("v2");
    let p = InProcess::start(r.config(&[]));
    p.client.deploy_production(&base).expect("deploy v1");
    p.client.deploy_preview("HF-1", &fix).expect("preview");
    // Someone else lands on main meanwhile.
    r.write("NOTES.md", "another change\n");
    let merge = r.merge();
    assert_ne!(r.tree(&merge), r.tree(&fix), "main moved");
    let o = p
        .client
        .deploy_production_with(&deploy(&merge, Some((&fix, &r.tree(&fix)))))
        .expect("ship");
    assert!(o.built);
    assert_eq!(r.fx.builds(), 3);
    let b = build(&o.release);
    assert_eq!(b.how, BuildHow::Cold);
    let note = b.note.unwrap_or_default();
    assert!(
        note.contains(&format!(
            "main moved: tree {} differs from the previewed {}",
            &r.tree(&merge)[..10],
            &r.tree(&fix)[..10]
        )),
        "{note}"
    );
    assert!(read(&o.release.log_path).contains("not promoted: main moved"));

    // A previewed tree whose build is not kept any more builds too.
    let fix2 = r.fix("v3");
    let merge2 = r.merge();
    assert_eq!(r.tree(&merge2), r.tree(&fix2));
    let o2 = p
        .client
        .deploy_production_with(&deploy(&merge2, Some((&fix2, &r.tree(&fix2)))))
        .expect("ship 2");
    assert!(o2.built);
    let note = build(&o2.release).note.unwrap_or_default();
    assert!(note.contains("the preview's build is gone"), "{note}");
    // No hint and no build of the tree: said so.
    let v4 = r.fx.commit(&routes("v4"));
    let o3 = p.client.deploy_production(&v4).expect("deploy v4");
    let note = build(&o3.release).note.unwrap_or_default();
    assert!(note.contains("no built release of this tree"), "{note}");
    assert_eq!(get(&r.fx.url("/version")), (200, "v4".to_string()));
    p.stop();
}

#[test]
fn a_cached_build_reuses_the_dependencies_and_a_lockfile_change_rebuilds_them() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let fix = r.fix("v2");
    let p = InProcess::start(r.config(&["target"]));
    let prod = p.client.deploy_production(&base).expect("deploy v1");
    let b = build(&prod.release);
    assert_eq!(b.how, BuildHow::Cold);
    assert!(
        b.note
            .unwrap_or_default()
            .contains("no earlier build to take it from")
    );
    let key = b.cache_key.expect("cache key");

    let pv = p.client.deploy_preview("HF-1", &fix).expect("preview");
    let b = build(&pv.release);
    assert_eq!(b.how, BuildHow::Cached, "{b:?}");
    assert_eq!(b.from.as_deref(), Some(prod.release.id.as_str()));
    assert_eq!(b.cache_key.as_deref(), Some(key.as_str()));
    assert!(b.build_ms.is_some());
    let (pw, vw) = (&prod.release.worktree, &pv.release.worktree);
    assert_eq!(
        read(&vw.join("target/deps.built-by")).trim(),
        base,
        "deps reused"
    );
    assert_eq!(read(&vw.join("target/history")), format!("{base}\n{fix}\n"));
    assert!(read(&vw.join("target/app.bin")).contains(&format!("built for {fix}")));
    let log = read(&pv.release.log_path);
    assert!(!log.contains("compiling dependencies"), "{log}");
    assert!(log.contains("cache: `target` copied from"), "{log}");
    let mtime = |p: PathBuf| {
        std::fs::metadata(p)
            .and_then(|m| m.modified())
            .expect("mtime")
    };
    // Copies keep their mtimes; unchanged tracked files get the source's.
    assert_eq!(
        mtime(pw.join("target/deps.stamp")),
        mtime(vw.join("target/deps.stamp"))
    );
    assert_eq!(mtime(pw.join("build.sh")), mtime(vw.join("build.sh")));
    // The source's cache is untouched by the build on the copy.
    assert_eq!(read(&pw.join("target/history")), format!("{base}\n"));

    // A dependency update: the cache does not apply, dependencies rebuild.
    git(&r.fx.repo, &["checkout", "-q", "hotfix/x"]);
    let bumped = r.write("Cargo.lock", "serde 1.0.2\n");
    git(&r.fx.repo, &["checkout", "-q", "main"]);
    let pv2 = p.client.deploy_preview("HF-1", &bumped).expect("preview 2");
    let b = build(&pv2.release);
    assert_eq!(b.how, BuildHow::Cold, "{b:?}");
    assert_ne!(b.cache_key.as_deref(), Some(key.as_str()));
    assert!(
        b.note.unwrap_or_default().contains("the lockfiles differ"),
        "{:?}",
        build(&pv2.release)
    );
    let w = &pv2.release.worktree;
    assert_eq!(read(&w.join("target/deps.built-by")).trim(), bumped);
    assert!(read(&pv2.release.log_path).contains("compiling dependencies"));
    p.stop();
}

#[test]
fn concurrent_preview_and_production_builds_on_one_cache_do_not_touch_each_other() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let fix = r.fix("v2");
    let main2 = r.write("NOTES.md", "main moves on\n");
    let p = InProcess::start(r.config(&["target"]));
    let prod = p.client.deploy_production(&base).expect("deploy v1");
    std::fs::write(r.sleep_file(), "1").expect("slow builds");
    let (c1, c2) = (p.client.clone(), p.client.clone());
    let (f, m) = (fix.clone(), main2.clone());
    let a = std::thread::spawn(move || c1.deploy_preview("HF-1", &f));
    let b = std::thread::spawn(move || c2.deploy_production(&m));
    let pv = a.join().expect("join").expect("preview");
    let pr = b.join().expect("join").expect("production");
    // They did build at the same time.
    let times: Vec<(String, String, u128)> = read(&r.timeline())
        .lines()
        .filter_map(|l| {
            let mut w = l.split(' ');
            Some((
                w.next()?.to_string(),
                w.next()?.to_string(),
                w.next()?.parse().ok()?,
            ))
        })
        .collect();
    let at = |what: &str, sha: &str| {
        times
            .iter()
            .find(|(w, s, _)| w == what && s == sha)
            .map(|t| t.2)
            .unwrap_or_else(|| panic!("{what} {sha} in {times:?}"))
    };
    assert!(
        at("start", &fix) < at("end", &main2) && at("start", &main2) < at("end", &fix),
        "the two builds overlapped: {times:?}"
    );
    for (rel, sha) in [(&pv.release, &fix), (&pr.release, &main2)] {
        let bi = build(rel);
        assert_eq!(bi.how, BuildHow::Cached, "{bi:?}");
        assert_eq!(bi.from.as_deref(), Some(prod.release.id.as_str()));
        let w = &rel.worktree;
        assert_eq!(read(&w.join("target/history")), format!("{base}\n{sha}\n"));
        assert!(read(&w.join("target/app.bin")).contains(&format!("built for {sha}")));
        assert_eq!(read(&w.join("target/deps.built-by")).trim(), base);
    }
    assert_eq!(
        read(&prod.release.worktree.join("target/history")),
        format!("{base}\n"),
        "the cache source is never written"
    );
    assert_eq!(get(&r.fx.url("/version")), (200, "v1".to_string()));
    assert_eq!(get(&format!("{}/version", pv.url)), (200, "v2".to_string()));
    p.stop();
}

#[test]
fn a_platform_killed_mid_build_leaves_nothing_a_rerun_trips_over() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let fix = r.fix("v2");
    let text = format!(
        "[deploy]\nprovider = \"local\"\nrun = \"'{SAMPLE}'\"\nbuild = \"sh build.sh '{}' '{}' '{}'\"\ncache = [\"target\"]\nport = {}\nready_timeout = \"5s\"\nstop_timeout = \"1s\"\n",
        r.fx.builds_file().display(),
        r.sleep_file().display(),
        r.timeline().display(),
        r.fx.port
    );
    std::fs::write(r.fx.repo.join("hotfix.toml"), text).expect("write");
    let mut cfg = PlatformConfig::load(&r.fx.repo).expect("config");
    cfg.state_dir = r.fx.state.clone();
    let start = || {
        let info = hotfix_platform::start_background(&cfg, RUNNER.as_ref(), &r.fx.runner_args())
            .expect("start");
        let c = Client::connect(&r.fx.state).expect("client");
        eventually(Duration::from_secs(15), "recovered", || {
            c.status().is_ok_and(|s| !s.recovering)
        });
        (info, c)
    };
    let (info, client) = start();
    let prod = client.deploy_production(&base).expect("deploy v1");

    // A preview whose build hangs; the platform is killed in the middle.
    std::fs::write(r.sleep_file(), "20").expect("slow");
    let c = client.clone();
    let f = fix.clone();
    let waiting = std::thread::spawn(move || c.deploy_preview("HF-1", &f));
    let mut building: Option<ReleaseInfo> = None;
    eventually(Duration::from_secs(15), "the preview builds", || {
        building = client.status().ok().and_then(|s| {
            s.starting
                .into_iter()
                .find(|r| r.step == Some(LaunchStep::Build))
        });
        building.is_some()
    });
    let building = building.expect("building");
    assert!(
        building.worktree.join("target/history").exists(),
        "the cache was copied before the build"
    );
    // And a promotion that was interrupted while it linked files.
    let half = r.fx.state.join("releases/r999-deadbee");
    std::fs::create_dir_all(half.join(".hotfix-tmp-target/release")).expect("mkdir");
    std::fs::write(half.join(".hotfix-tmp-target/release/app"), "half").expect("write");
    let killed = std::process::Command::new("kill")
        .args(["-9", &info.pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    eventually(Duration::from_secs(5), "platform gone", || {
        !pid_alive(info.pid) && !hotfix_platform::is_running(&r.fx.state)
    });
    assert!(waiting.join().expect("join").is_err(), "that deploy failed");
    std::fs::remove_file(r.sleep_file()).expect("fast again");

    let (_info2, client) = start();
    assert_eq!(get(&r.fx.url("/version")), (200, "v1".to_string()));
    assert!(!building.worktree.exists(), "the interrupted build is gone");
    assert!(!half.exists(), "the interrupted promotion is gone");
    let left: Vec<PathBuf> = std::fs::read_dir(r.fx.state.join("releases"))
        .expect("releases")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(left, vec![prod.release.worktree.clone()], "{left:?}");
    // The re-run works, from the cache.
    let pv = client.deploy_preview("HF-1", &fix).expect("re-run");
    assert_eq!(build(&pv.release).how, BuildHow::Cached);
    assert_eq!(get(&format!("{}/version", pv.url)), (200, "v2".to_string()));
    assert_eq!(
        read(&pv.release.worktree.join("target/history")),
        format!("{base}\n{fix}\n")
    );
    assert!(hotfix_platform::stop(&r.fx.state).expect("stop"));
}

/// A service without a build command (the demo's): the release is the
/// checkout of its tree. A release of the same tree (here the first one,
/// whose tree the fix restores) is not "promoted": its worktree holds only
/// what its process wrote, not a build.
#[test]
fn without_a_build_command_nothing_is_promoted_even_for_an_equal_tree() {
    let r = Repo::new();
    let base = r.fx.commit(&routes("v1"));
    let newer = r.fx.commit(&routes("v2"));
    // The fix restores v1's files exactly: its tree is v1's.
    let fix = r.fix("v1");
    assert_eq!(r.tree(&fix), r.tree(&base));
    let mut cfg = r.config(&[]);
    cfg.build = None;
    let p = InProcess::start(cfg.clone());
    p.client.deploy_production(&base).expect("deploy v1");
    p.client.deploy_production(&newer).expect("deploy v2");
    let merge = r.merge();
    let tree = r.tree(&merge);
    let o = p
        .client
        .deploy_production_with(&deploy(&merge, Some((&fix, &tree))))
        .expect("ship");
    let b = build(&o.release);
    assert_ne!(b.how, BuildHow::Promoted, "{b:?}");
    assert!(
        b.note
            .as_deref()
            .is_some_and(|n| n.contains("no build command")),
        "{b:?}"
    );
    assert_eq!(get(&r.fx.url("/version")), (200, "v1".to_string()));
    p.stop();
}
