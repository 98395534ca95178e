//! Starting and stopping the processes of releases (build and run commands).
//!
//! Every child is spawned from one long-lived thread, the *spawner*. On Linux
//! the parent-death signal fires when the spawning **thread** ends, not the
//! process; spawning from tokio's blocking pool (whose threads retire when
//! idle) would kill healthy releases at random. The spawner lives as long as
//! the platform, so a release dies exactly when the platform does.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::oneshot;

use crate::PlatformError;
use crate::sys;

/// What to spawn.
pub(crate) struct SpawnSpec {
    pub argv: Vec<String>,
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// stdout and stderr are appended here.
    pub log: PathBuf,
}

type Job = (SpawnSpec, oneshot::Sender<std::io::Result<Child>>);

/// Handle to the spawner thread, plus the set of process groups alive, so
/// that shutdown can reach every one of them.
#[derive(Clone)]
pub(crate) struct Spawner {
    tx: mpsc::Sender<Job>,
    groups: Arc<Mutex<HashSet<u32>>>,
}

impl Spawner {
    pub fn new(rt: tokio::runtime::Handle) -> Result<Spawner, PlatformError> {
        let (tx, rx) = mpsc::channel::<Job>();
        let me = std::process::id();
        std::thread::Builder::new()
            .name("hotfix-spawner".into())
            .spawn(move || {
                // tokio's child reaper needs a runtime context.
                let _enter = rt.enter();
                while let Ok((spec, reply)) = rx.recv() {
                    let _ = reply.send(spawn_now(&spec, me));
                }
            })
            .map_err(|e| PlatformError::io("cannot start the spawner thread", e))?;
        Ok(Spawner {
            tx,
            groups: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    /// Spawns `spec` in its own process group; returns the child (its pid is
    /// the group id).
    pub async fn spawn(&self, spec: SpawnSpec) -> Result<Child, PlatformError> {
        let what = format!(
            "cannot start `{}` in {}",
            spec.argv.join(" "),
            spec.cwd.display()
        );
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((spec, reply))
            .map_err(|_| PlatformError::ShuttingDown)?;
        let child = rx
            .await
            .map_err(|_| PlatformError::ShuttingDown)?
            .map_err(|e| PlatformError::io(what, e))?;
        if let Some(pid) = child.id() {
            self.track(pid);
        }
        Ok(child)
    }

    pub fn track(&self, pgid: u32) {
        if let Ok(mut g) = self.groups.lock() {
            g.insert(pgid);
        }
    }

    pub fn untrack(&self, pgid: u32) {
        if let Ok(mut g) = self.groups.lock() {
            g.remove(&pgid);
        }
    }

    /// Stops every process group still tracked: SIGTERM, up to `grace`, SIGKILL.
    pub async fn stop_all(&self, grace: Duration) {
        let groups: Vec<u32> = match self.groups.lock() {
            Ok(g) => g.iter().copied().collect(),
            Err(_) => return,
        };
        for g in &groups {
            sys::kill_group(*g, libc::SIGTERM);
        }
        let deadline = tokio::time::Instant::now() + grace;
        while tokio::time::Instant::now() < deadline && groups.iter().any(|g| sys::group_alive(*g))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for g in &groups {
            sys::kill_group(*g, libc::SIGKILL);
        }
    }
}

fn spawn_now(spec: &SpawnSpec, platform_pid: u32) -> std::io::Result<Child> {
    let log = crate::util::private_append(&spec.log)?;
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty command",
        ));
    };
    let mut cmd = tokio::process::Command::new(resolve_program(prog, &spec.cwd));
    cmd.args(args)
        .current_dir(&spec.cwd)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(false);
    sys::make_child_of_platform(&mut cmd, platform_pid);
    cmd.spawn()
}

/// `./target/release/app` means the one in the release's worktree, whatever
/// the platform's own working directory is.
fn resolve_program(prog: &str, cwd: &Path) -> PathBuf {
    let p = Path::new(prog);
    if p.is_relative() && prog.contains('/') {
        cwd.join(p)
    } else {
        p.to_path_buf()
    }
}

/// How a process ended, the way a person reads it.
pub(crate) fn describe_exit(status: &std::io::Result<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(sig)) => format!("killed by signal {sig}{}", signal_name(sig)),
            _ => s.to_string(),
        },
        Err(e) => format!("unknown ({e})"),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => " (SIGKILL)",
        libc::SIGTERM => " (SIGTERM)",
        libc::SIGSEGV => " (SIGSEGV)",
        libc::SIGABRT => " (SIGABRT)",
        libc::SIGINT => " (SIGINT)",
        _ => "",
    }
}

/// Runs a build command to completion within `timeout`; its output goes to
/// the release log.
pub(crate) async fn run_to_end(
    spawner: &Spawner,
    spec: SpawnSpec,
    timeout: Duration,
) -> Result<(), String> {
    let shown = spec.argv.join(" ");
    let mut child = spawner.spawn(spec).await.map_err(|e| e.to_string())?;
    let pgid = child.id();
    let res = tokio::time::timeout(timeout, child.wait()).await;
    let out = match res {
        Ok(status) => {
            let ok = matches!(&status, Ok(s) if s.success());
            if ok {
                Ok(())
            } else {
                Err(format!("`{shown}` failed: {}", describe_exit(&status)))
            }
        }
        Err(_) => Err(format!(
            "`{shown}` did not finish within {timeout:?}; it was killed"
        )),
    };
    if let Some(g) = pgid {
        // Whatever the build left running (daemons, a hung step) goes with it.
        sys::kill_group(g, libc::SIGKILL);
        let _ = child.wait().await;
        spawner.untrack(g);
    }
    out
}
