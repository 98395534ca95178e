//! The layout of the platform's state directory, in one place.
//!
//! ```text
//! <state_dir>/
//!   control.json      port + pid of the control API (0600)
//!   token             bearer token of the control API (0600)
//!   platform.pid      pid of the running platform
//!   platform.lock     held (flock) while a platform runs here
//!   platform.log      stdout+stderr of a background platform
//!   state.json        production, previous, previews (atomic writes)
//!   releases/<id>/    one git worktree per release
//!   logs/production-<sha12>.log   build and run output of production
//!                     releases of that commit (named before the deploy
//!                     starts, so a client can show it: [`release_log`])
//!   logs/preview-<key>-<sha12>.log  the same for a preview
//!   data/production/  DATA_DIR of production releases (kept across deploys)
//!   data/previews/<id>/  DATA_DIR of one preview (deleted with it)
//! ```

use std::path::{Path, PathBuf};

use crate::types::ReleaseKind;

/// The log file of a release of `sha` (a full sha) in the platform kept in
/// `state_dir`: production releases `logs/production-<sha12>.log`, previews
/// `logs/preview-<key>-<sha12>.log`. A name known before the platform
/// creates the release, so the client waiting on a deploy can name the
/// file to watch while it builds; deploys of the same commit append to it.
pub fn release_log(state_dir: &Path, kind: ReleaseKind, key: Option<&str>, sha: &str) -> PathBuf {
    let short = &sha[..sha.len().min(12)];
    let name = match (kind, key) {
        (ReleaseKind::Preview, Some(k)) => format!("preview-{k}-{short}.log"),
        (ReleaseKind::Preview, None) => format!("preview-{short}.log"),
        (ReleaseKind::Production, _) => format!("production-{short}.log"),
    };
    Paths::new(state_dir).logs().join(name)
}

#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn new(root: &Path) -> Paths {
        Paths {
            root: root.to_path_buf(),
        }
    }
    pub fn control(&self) -> PathBuf {
        self.root.join("control.json")
    }
    pub fn token(&self) -> PathBuf {
        self.root.join("token")
    }
    pub fn pid(&self) -> PathBuf {
        self.root.join("platform.pid")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("platform.lock")
    }
    pub fn platform_log(&self) -> PathBuf {
        self.root.join("platform.log")
    }
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub fn releases(&self) -> PathBuf {
        self.root.join("releases")
    }
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    pub fn data(&self) -> PathBuf {
        self.root.join("data")
    }
}
