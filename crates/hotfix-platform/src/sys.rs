//! The few system calls std does not wrap: process-group signals, the
//! parent-death signal and `setsid`. Unsafe code is denied workspace-wide; each
//! function here is the smallest possible `unsafe` island with its reasoning.

use std::io;

/// Sends `sig` to the whole process group `pgid` (a release and whatever it
/// forked). Refuses pgid 0 and 1, which would mean "our own group" and
/// "every process we may signal".
#[allow(unsafe_code)]
pub(crate) fn kill_group(pgid: u32, sig: i32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; a
    // negative pid addresses exactly one process group.
    unsafe { libc::kill(-pgid, sig) == 0 }
}

/// Sends `sig` to one process.
#[allow(unsafe_code)]
pub(crate) fn kill_pid(pid: u32, sig: i32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 1 {
        return false;
    }
    // SAFETY: as in `kill_group`; a positive pid addresses one process.
    unsafe { libc::kill(pid, sig) == 0 }
}

/// Whether a process with this pid exists and is not a zombie.
pub(crate) fn pid_alive(pid: u32) -> bool {
    if pid <= 1 {
        return false;
    }
    #[cfg(target_os = "linux")]
    {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => {
                // `pid (comm) S ...`: the state follows the last `)`.
                let state = stat
                    .rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().chars().next());
                !matches!(state, Some(Some('Z' | 'X')))
            }
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        kill_pid(pid, 0) || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
}

/// Whether any process of group `pgid` is still alive.
pub(crate) fn group_alive(pgid: u32) -> bool {
    kill_group(pgid, 0)
}

/// Makes a release child die with the platform: it gets its own process group
/// (so stopping it reaches everything it forked) and, on Linux, SIGKILL when
/// the thread that spawned it dies — which is what keeps a `kill -9` of the
/// platform from leaving orphans. `parent` is the platform's pid, checked after
/// `prctl` to close the race where the platform died before it took effect.
#[allow(unsafe_code)]
pub(crate) fn make_child_of_platform(cmd: &mut tokio::process::Command, parent: u32) {
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = parent as libc::pid_t;
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe functions may be called: prctl(2), getppid(2) and
        // _exit(2) are, and it allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(
                    libc::PR_SET_PDEATHSIG,
                    libc::SIGKILL as libc::c_ulong,
                    0,
                    0,
                    0,
                ) != 0
                {
                    return Err(io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = parent;
}

/// Detaches the background platform from the caller's terminal and session, so
/// closing the terminal (SIGHUP) or Ctrl-C in it does not stop production.
#[allow(unsafe_code)]
pub(crate) fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: runs in the forked child before exec; setsid(2) is
    // async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Puts SIGPIPE back to its default action (end the process quietly), as
/// every Unix filter expects: `hotfix log | head` then stops when `head`
/// has read enough, instead of panicking on a failed `println!` (Rust
/// ignores SIGPIPE by default). Only for commands that print and exit: a
/// process that serves sockets or feeds children keeps the default.
#[allow(unsafe_code)]
pub fn default_sigpipe() {
    // SAFETY: signal(2) with SIG_DFL installs no handler of ours and is
    // called before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
