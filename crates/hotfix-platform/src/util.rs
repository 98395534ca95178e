//! Small helpers: atomic writes, log tails, ports, tokens, timestamps.

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::PlatformError;

/// Writes `bytes` to `path` so that readers see the old or the new content,
/// never a half-written file, even if the platform is killed mid-write.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PlatformError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let ctx = |what: &str| format!("cannot {what} {}", tmp.display());
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| PlatformError::io(ctx("create"), e))?;
    f.write_all(bytes)
        .map_err(|e| PlatformError::io(ctx("write"), e))?;
    f.sync_all()
        .map_err(|e| PlatformError::io(ctx("sync"), e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| {
        PlatformError::io(
            format!("cannot move {} to {}", tmp.display(), path.display()),
            e,
        )
    })
}

/// Creates a directory (and parents) readable by the user alone: it holds the
/// control token and release logs.
pub(crate) fn private_dir(path: &Path) -> Result<(), PlatformError> {
    fs::create_dir_all(path)
        .map_err(|e| PlatformError::io(format!("cannot create {}", path.display()), e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|e| PlatformError::io(format!("cannot restrict {}", path.display()), e))
}

/// Opens a log for appending, created 0600 (an existing one loses group and
/// other access): release logs can quote incident details the deploy
/// printed, and copies of the state directory keep the file's mode.
pub(crate) fn private_append(path: &Path) -> std::io::Result<fs::File> {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    let mode = f.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        f.set_permissions(fs::Permissions::from_mode(mode & 0o7700))?;
    }
    Ok(f)
}

/// The last `max_lines` lines (at most 8 KiB) of a log file; a note instead
/// if it cannot be read, because a missing log must not hide the real error.
pub fn log_tail(path: &Path, max_lines: usize) -> String {
    const MAX: u64 = 8 * 1024;
    let mut f = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return format!("(no log at {}: {e})", path.display()),
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(MAX).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(max_lines);
    lines[from..].join("\n")
}

/// A port that was free a moment ago on 127.0.0.1 (bind to 0, read, release).
pub fn free_port() -> Result<u16, PlatformError> {
    let l = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(|e| PlatformError::io("cannot find a free port on 127.0.0.1", e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| PlatformError::io("cannot find a free port on 127.0.0.1", e))
}

/// Whether `port` can be bound on 127.0.0.1 right now.
pub(crate) fn port_free(port: u16) -> bool {
    port != 0 && TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_ok()
}

/// 256 random bits from the kernel, hex encoded.
pub(crate) fn random_token() -> Result<String, PlatformError> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PlatformError::io("cannot read /dev/urandom for the control token", e))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Compares two secrets in time independent of where they differ.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub(crate) fn now_string() -> String {
    now().to_string()
}

/// Appends one line to a release log, so the log tells the platform's side of
/// the story (build started, health failing, stopped) next to the service's.
pub(crate) fn log_line(path: &Path, line: &str) {
    if let Ok(mut f) = private_append(path) {
        let _ = writeln!(f, "[hotfix-platform {}] {line}", now_string());
    }
}
