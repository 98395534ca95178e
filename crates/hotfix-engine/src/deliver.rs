//! Delivering the outbox: every notification was written with its event;
//! here it goes out, with retries and backoff. A notifier being down never
//! fails a step.

use hotfix_core::id::IncidentId;
use hotfix_core::provider::{Memory, Notifier, Store};

use crate::Engine;

/// Notifier memory kept in the store.
struct StoreMemory<'a>(&'a dyn Store);

impl Memory for StoreMemory<'_> {
    fn get(&self, incident: IncidentId, key: &str) -> Option<String> {
        self.0.memory_get(incident, key).ok().flatten()
    }
    fn set(&self, incident: IncidentId, key: &str, value: &str) -> Result<(), String> {
        self.0
            .memory_set(incident, key, value)
            .map_err(|e| e.to_string())
    }
}

impl Engine {
    /// Sends what is due. Failures are recorded and retried by the next run.
    pub fn deliver(&self) {
        let now = self.clock.now().as_second();
        let wall = jiff::Timestamp::now().as_second().max(now);
        deliver_outbox(self.store.as_ref(), &self.notifiers, wall, &|w| {
            self.ui
                .warn(&format!("notification not delivered yet (will retry): {w}"))
        });
    }
}

/// What one round of delivery did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    pub sent: usize,
    pub failed: usize,
}

/// One round of outbox delivery by these notifiers at `now_s`: claims what is
/// due (leased, so concurrent processes or server replicas never send the
/// same item), sends, records the outcome. Shared by the CLI and the server.
pub fn deliver_outbox(
    store: &dyn Store,
    notifiers: &[Box<dyn Notifier>],
    now_s: i64,
    warn: &dyn Fn(&str),
) -> Delivered {
    // Leased for a minute: long enough for a round of short-timeout sends.
    deliver_outbox_leased(store, notifiers, now_s, 60, warn)
}

/// How long a round may keep sending under a lease of `lease_s` seconds.
/// Leases are stamped in whole seconds, so one may end up to a second early;
/// stopping at half of what is surely left keeps a slow round from sending
/// an item another deliverer has claimed again in the meantime.
pub fn send_budget(lease_s: i64) -> std::time::Duration {
    std::time::Duration::from_millis((lease_s - 1).max(1) as u64 * 500)
}

/// [`deliver_outbox`] with the claim held for `lease_s` seconds: the server
/// uses its replicas' lease so that a dead replica's claimed items come back
/// as soon as its other work does. Items not sent within [`send_budget`] are
/// given back for the next round instead of being sent on a lapsing lease.
pub fn deliver_outbox_leased(
    store: &dyn Store,
    notifiers: &[Box<dyn Notifier>],
    now_s: i64,
    lease_s: i64,
    warn: &dyn Fn(&str),
) -> Delivered {
    let mut done = Delivered::default();
    let names: Vec<String> = notifiers.iter().map(|n| n.name().to_string()).collect();
    if names.is_empty() {
        return done;
    }
    let started = std::time::Instant::now();
    let budget = send_budget(lease_s);
    let Ok(items) = store.claim_outbox(now_s, lease_s.max(1), &names, 200) else {
        return done;
    };
    // A notifier that just failed is not tried again in this round: a
    // service that is down must not make every command wait on its timeout.
    let mut down: Vec<String> = vec![];
    for item in items {
        // Out of time, or its notifier is down: given back for the next
        // round. (Only items of these notifiers were claimed, so the notifier
        // is always found; items of one this process lacks, with no secret
        // here or no longer configured, stay for one that has it.)
        let sendable = started.elapsed() < budget && !down.contains(&item.notifier);
        let Some(n) = notifiers
            .iter()
            .find(|n| n.name() == item.notifier)
            .filter(|_| sendable)
        else {
            let _ = store.release_outbox(item.id);
            continue;
        };
        match n.send(item.id, &item.message, &StoreMemory(store)) {
            Ok(()) => {
                let _ = store.mark_delivered(item.id, now_s);
                done.sent += 1;
            }
            Err(e) => {
                let backoff = 5i64 * 2i64.pow(item.attempts.min(10));
                let _ = store.mark_failed(item.id, &e.to_string(), now_s + backoff);
                down.push(item.notifier.clone());
                done.failed += 1;
                warn(&e.to_string());
            }
        }
    }
    done
}
