//! Hooks for the fuzz targets in `fuzz/` at the repository root; not an
//! API (hidden from the docs, no stability promised).
//!
//! The control API is fuzzed as what reaches its socket: raw bytes, served
//! by the connection code and handler of a real platform
//! ([`crate::server`]), on a platform with no releases over a directory
//! that holds no commits, so no request can start anything but
//! `git rev-parse` (which finds nothing).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

use crate::PlatformError;
use crate::config::PlatformConfig;
use crate::paths::Paths;
use crate::platform::{Inner, StateFile, no_production};
use crate::procs::Spawner;
use crate::proxy::{self, Proxy};
use crate::server;

/// A platform's control API without a socket.
pub struct Control {
    inner: Arc<Inner>,
}

impl Control {
    /// A platform keeping its state in `state_dir`, deploying from
    /// `repo_root`, answering requests that carry `token`. Call it inside a
    /// tokio runtime: the process spawner keeps its handle.
    pub fn new(repo_root: &Path, state_dir: &Path, token: &str) -> Result<Control, PlatformError> {
        let cfg = PlatformConfig::new(repo_root, state_dir, vec!["true".into()]);
        let client = proxy::http_client();
        let proxy = Arc::new(Proxy::new(client.clone(), no_production()));
        let spawner = Spawner::new(tokio::runtime::Handle::current())?;
        let (shutdown_tx, _) = watch::channel(false);
        let inner = Inner::new(
            cfg,
            Paths::new(state_dir),
            proxy,
            0,
            token.to_string(),
            client,
            spawner,
            &StateFile::default(),
            shutdown_tx,
        );
        Ok(Control { inner })
    }

    /// Writes `request` on a new connection and closes the writing side,
    /// as a client that sent everything would; every byte the platform
    /// wrote back. A `POST /v1/shutdown` of an earlier input is forgotten
    /// first, so each input meets a running platform.
    pub async fn exchange(&self, request: &[u8]) -> Vec<u8> {
        self.inner.shutting_down.store(false, Ordering::SeqCst);
        let (mut client, io) = tokio::io::duplex(64 * 1024);
        let conn = tokio::spawn(server::serve_connection(self.inner.clone(), io));
        let mut out = Vec::new();
        let (mut rd, mut wr) = tokio::io::split(&mut client);
        let send = async {
            let _ = wr.write_all(request).await;
            let _ = wr.shutdown().await;
        };
        let recv = async {
            let _ = rd.read_to_end(&mut out).await;
        };
        tokio::join!(send, recv);
        let _ = conn.await;
        out
    }
}
