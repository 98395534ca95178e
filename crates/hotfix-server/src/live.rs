//! Live updates for the dashboard: one task per replica polls the store's
//! watermark (it grows with every event, whichever replica wrote it) and
//! wakes the server-sent-event streams when it moves. Polling the shared
//! database keeps replicas consistent without a message bus.

use std::time::Duration;

use tokio::sync::watch;

use crate::AppState;

pub struct Live {
    tx: watch::Sender<i64>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Live {
        let (tx, _) = watch::channel(0);
        Live { tx }
    }

    /// A receiver that changes whenever any incident changes.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.tx.subscribe()
    }

    /// The last watermark seen.
    pub fn current(&self) -> i64 {
        *self.tx.borrow()
    }

    /// Records a watermark the poller read (never goes back).
    pub fn publish(&self, w: i64) {
        self.tx.send_if_modified(|cur| {
            if w > *cur {
                *cur = w;
                true
            } else {
                false
            }
        });
    }
}

/// Polls the watermark until shutdown.
pub fn spawn(st: AppState, mut shutdown: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            if let Ok(w) = st.blocking(|st| Ok(st.store.watermark()?)).await {
                st.live.publish(w);
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
                _ = shutdown.changed() => return,
            }
        }
    });
}
