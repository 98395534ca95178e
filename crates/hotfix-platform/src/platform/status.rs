//! What the platform reports: `/v1/status` (production, previous, previews,
//! canary, crashes, history, settings) and the proxy's counters per release
//! for `/v1/stats`. Read-only views of the state, one lock each.

use std::sync::atomic::Ordering;

use crate::types::{PlatformStatus, ReleaseStats};

use super::canary::Canary;
use super::preview::preview_info;
use super::{Inner, Release, lock};

impl Inner {
    pub fn status(&self) -> PlatformStatus {
        let st = lock(&self.state);
        PlatformStatus {
            pid: std::process::id(),
            url: self.proxy_url(),
            port: self.proxy_port,
            recovering: self.recovering.load(Ordering::SeqCst),
            production: st.production.as_ref().map(|p| p.info()),
            previous: st.previous.as_ref().map(|p| p.info()),
            previews: st
                .previews
                .iter()
                .map(|(k, r)| preview_info(k, r))
                .collect(),
            crashed: st.crashed.iter().cloned().collect(),
            starting: st.starting.iter().map(|r| r.info()).collect(),
            history: st.history.iter().cloned().collect(),
            settings: Some(self.current().settings()),
            canary: st.canary.as_ref().map(Canary::info),
            builds: st.kept.iter().map(|r| r.info()).collect(),
        }
    }

    /// What the proxy counted, per release serving (or kept warm for) production.
    pub fn stats(&self) -> Vec<(ReleaseStats, [u64; 6])> {
        let st = lock(&self.state);
        let mut out = Vec::new();
        let mut add = |rel: &Release, role: &str| {
            let i = rel.info();
            out.push(rel.stats.snapshot(&i.id, &i.sha, role));
        };
        if let Some(p) = &st.production {
            add(p, "production");
        }
        if let Some(c) = &st.canary {
            add(&c.rel, "canary");
        }
        if let Some(p) = &st.previous {
            add(p, "previous");
        }
        out
    }
}
