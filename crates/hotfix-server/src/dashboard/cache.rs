//! Every incident, folded once and kept until the store says it changed.
//!
//! Reading and folding every log on every call would take a second or
//! more per page with 10,000 incidents on PostgreSQL. The pages, the
//! status page and [`crate::ops::all`] (API list, metrics, workers) read
//! through this cache instead. It checks the store's watermark (one cheap
//! read, so a page always shows what was written before it was requested,
//! by any replica) and, only when it moved, asks the store for every
//! incident's version and re-folds just the incidents whose version
//! moved. Refreshes are single-flight: requests that arrive during one
//! wait for it instead of starting their own.
//!
//! Each entry holds both views of its incident (full and, for a security
//! incident, restricted), so pages, their live refreshes and the search
//! serve every reader the view they may get without folding anything per
//! request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hotfix_core::access::redact;
use hotfix_core::id::IncidentId;
use hotfix_core::state::IncidentState;

use crate::{ApiError, AppState, ops};

/// One incident as the pages need it, in both of the views people may
/// get of it (`hotfix_core::access`): the full one and, for a security
/// incident, the restricted one. Both are built once per version of the
/// incident, so a page costs the same whoever reads it; which one a reader
/// gets is decided by [`crate::ops::Seen`], never here.
#[derive(Debug)]
pub struct Entry {
    /// The full incident: what writes, workers and the people allowed to
    /// read it work on. Shown to nobody except through [`crate::ops::Seen`].
    pub state: IncidentState,
    /// Lowercased text the log's search looks in (full view).
    search: String,
    /// The restricted view of a security incident (none for the others).
    restricted: Option<Restricted>,
}

/// The restricted view of a security incident, as cached.
#[derive(Debug)]
pub struct Restricted {
    pub state: IncidentState,
    /// The search text of the restricted view: a search must not find an
    /// incident by a word its reader may not see (no oracle for a title).
    pub search: String,
    /// What the view hides, for scrubbing texts the server composed
    /// around the incident (`hotfix_core::access::Redacted::secrets`).
    pub secrets: Vec<String>,
}

/// Lowercased text to search in: id, title, name, branch, severity, who
/// declared it, and every event (actor and body).
fn search_text(s: &IncidentState) -> String {
    let mut search = format!(
        "{} {} {} {} {} {}",
        s.id,
        s.title,
        s.name,
        s.branch,
        s.severity.as_str(),
        s.declared_by
    );
    for e in &s.events {
        search.push('\n');
        search.push_str(&e.actor);
        search.push(' ');
        // The event as stored: its type, notes, SHAs, URLs, reasons.
        if let Ok(body) = serde_json::to_string(&e.kind) {
            search.push_str(&body);
        }
    }
    search.to_lowercase()
}

impl Entry {
    /// Builds both views of `state` (the restricted one only for a
    /// security incident).
    pub fn new(state: IncidentState) -> Result<Entry, ApiError> {
        let restricted = if state.security {
            let r = redact(&state).map_err(|e| ApiError::internal(e.to_string()))?;
            Some(Restricted {
                search: search_text(&r.state),
                state: r.state,
                secrets: r.secrets,
            })
        } else {
            None
        };
        Ok(Entry {
            search: search_text(&state),
            state,
            restricted,
        })
    }

    /// The restricted view, for a security incident.
    pub fn restricted(&self) -> Option<&Restricted> {
        self.restricted.as_ref()
    }

    /// The full view's search text.
    pub fn full_search(&self) -> &str {
        &self.search
    }
}

/// What a page reads: every incident, oldest first, as of `watermark`.
#[derive(Clone)]
pub struct View {
    pub watermark: i64,
    pub incidents: Arc<Vec<Arc<Entry>>>,
}

#[derive(Default)]
struct Snapshot {
    watermark: Option<i64>,
    by_id: HashMap<IncidentId, Arc<Entry>>,
    list: Arc<Vec<Arc<Entry>>>,
}

/// The cache (one per replica, in [`crate::Inner`]).
#[derive(Default)]
pub struct Cache {
    snap: Mutex<Snapshot>,
}

impl Cache {
    /// Every incident as of now. Synchronous: call it inside [`AppState::blocking`].
    pub fn get(&self, st: &AppState) -> Result<View, ApiError> {
        // Read before looking at anything else: a write that lands while we
        // refresh leaves the snapshot stamped older than its content, so the
        // next request refreshes again rather than missing it.
        let w = st.store.watermark()?;
        // A panic elsewhere cannot leave the snapshot half-written (it is
        // replaced whole below), so a poisoned lock is safe to reuse.
        let mut snap = self.snap.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cw) = snap.watermark
            && cw >= w
        {
            return Ok(View {
                watermark: cw,
                incidents: snap.list.clone(),
            });
        }
        let versions = st.store.incident_versions()?;
        let mut list = Vec::with_capacity(versions.len());
        for (id, version) in versions {
            let entry = match snap.by_id.get(&id) {
                Some(e) if e.state.version >= version => e.clone(),
                _ => Arc::new(Entry::new(ops::load(st, id)?)?),
            };
            list.push(entry);
        }
        snap.by_id = list.iter().map(|e| (e.state.id, e.clone())).collect();
        snap.list = Arc::new(list);
        snap.watermark = Some(w);
        Ok(View {
            watermark: w,
            incidents: snap.list.clone(),
        })
    }
}
