//! `state.json`: what the platform records of production, previous, canary,
//! previews and kept builds, and writing it (atomically, under the state
//! lock). Its own module because the file format is a contract with the next
//! start of the platform (see [`super::recover`]): a field changed here must
//! still read the files written before.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{CrashReport, HistoryEntry, ReleaseInfo};
use crate::{PlatformError, util};

use super::{Inner, Release, State, lock};

/// What `state.json` holds.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct StateFile {
    #[serde(default)]
    pub version: u32,
    #[serde(default)]
    pub next_id: u64,
    #[serde(default)]
    pub proxy_port: Option<u16>,
    #[serde(default)]
    pub production: Option<Persisted>,
    #[serde(default)]
    pub previous: Option<Persisted>,
    #[serde(default)]
    pub previews: BTreeMap<String, Persisted>,
    #[serde(default)]
    pub crashed: Vec<CrashReport>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The canary and its weight: a restarted platform routes the same share to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<PersistedCanary>,
    /// Aborted canaries not yet discarded: a restart completes the abort.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aborting: Vec<Persisted>,
    /// Builds of removed previews, newest first (see [`KEEP_BUILDS`](super::KEEP_BUILDS)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<Persisted>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PersistedCanary {
    pub release: Persisted,
    pub weight: f64,
    pub since: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Persisted {
    #[serde(flatten)]
    pub info: ReleaseInfo,
    /// Process group of the last run, to clean up after a kill -9.
    #[serde(default)]
    pub pgid: Option<u32>,
}

impl Inner {
    pub(super) fn persist(&self, st: &State) {
        let p = |r: &Arc<Release>| Persisted {
            info: r.info(),
            pgid: r.pgid(),
        };
        let file = StateFile {
            version: 1,
            next_id: st.next_id,
            proxy_port: Some(self.proxy_port),
            production: st.production.as_ref().map(p),
            previous: st.previous.as_ref().map(p),
            previews: st.previews.iter().map(|(k, r)| (k.clone(), p(r))).collect(),
            crashed: st.crashed.iter().cloned().collect(),
            history: st.history.iter().cloned().collect(),
            canary: st.canary.as_ref().map(|c| PersistedCanary {
                release: p(&c.rel),
                weight: c.weight,
                since: c.since.clone(),
            }),
            aborting: st.aborting.iter().map(p).collect(),
            kept: st.kept.iter().map(p).collect(),
        };
        let res = serde_json::to_vec_pretty(&file)
            .map_err(|e| PlatformError::Json {
                context: "state".into(),
                detail: e.to_string(),
            })
            .and_then(|bytes| util::atomic_write(&self.paths.state(), &bytes, 0o600));
        if let Err(e) = res {
            eprintln!("hotfix platform: WARNING: could not record state: {e}");
        }
    }

    pub(super) fn persist_now(&self) {
        let st = lock(&self.state);
        self.persist(&st);
    }
}
