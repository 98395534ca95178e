//! Per-release traffic counters of the production proxy, and their two
//! read-outs: [`PlatformStats`] (JSON, `GET /v1/stats`) and the Prometheus
//! text exposition (`GET /metrics`).
//!
//! The proxy measures what users see, so `provider = "platform"` analysis
//! needs nothing installed. Counters are cumulative for the life of a
//! release in this platform process (a client computes a window by
//! differencing two snapshots; a platform restart resets them, as a
//! Prometheus counter reset). Memory is bounded: a fixed histogram, and at
//! most [`MAX_PATHS`] distinct paths per release (the rest count as
//! [`OTHER_PATHS`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::types::{ReleaseStats, RouteStats};

/// Upper bounds of the latency histogram, in milliseconds (`+Inf` follows).
pub(crate) const BUCKETS_MS: [f64; 11] = [
    5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
];
/// Distinct paths counted per release: request paths are chosen by clients,
/// so without a bound a scanner could grow the platform's memory forever.
pub(crate) const MAX_PATHS: usize = 500;
/// Where requests to paths beyond [`MAX_PATHS`] are counted.
pub(crate) const OTHER_PATHS: &str = "(other)";
/// Longest path kept as it is; longer ones are cut (memory bound again).
const MAX_PATH_LEN: usize = 200;
/// Routes listed in [`ReleaseStats::routes`].
const TOP_ROUTES: usize = 50;

/// The counters of one release.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    requests: AtomicU64,
    /// By status class: index 1..=5 for 1xx..5xx, 0 for anything else.
    by_class: [AtomicU64; 6],
    latency_sum_us: AtomicU64,
    /// Not cumulative: `buckets[i]` counts latencies in `(BUCKETS_MS[i-1], BUCKETS_MS[i]]`,
    /// the last one those above every bound.
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    routes: Mutex<HashMap<String, (u64, u64)>>,
}

fn class_index(status: u16) -> usize {
    match status / 100 {
        c @ 1..=5 => usize::from(c),
        _ => 0,
    }
}

impl Counters {
    /// Counts one answer of the proxy: its status and how long it took
    /// until its body was sent.
    pub fn record(&self, path: &str, status: u16, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let ms = took.as_secs_f64() * 1000.0;
        let i = BUCKETS_MS
            .iter()
            .position(|le| ms <= *le)
            .unwrap_or(BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        let is_5xx = u64::from(status / 100 == 5);
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let mut key = path;
        if key.len() > MAX_PATH_LEN {
            let mut cut = MAX_PATH_LEN;
            while !key.is_char_boundary(cut) {
                cut -= 1;
            }
            key = &key[..cut];
        }
        if !routes.contains_key(key) && routes.len() >= MAX_PATHS {
            key = OTHER_PATHS;
        }
        match routes.get_mut(key) {
            Some(e) => {
                e.0 += 1;
                e.1 += is_5xx;
            }
            None => {
                routes.insert(key.to_string(), (1, is_5xx));
            }
        }
    }

    /// A consistent-enough copy (each counter is read once).
    /// Also returns the answers by status class (`[other, 1xx, .. 5xx]`) for `/metrics`.
    pub fn snapshot(&self, id: &str, sha: &str, role: &str) -> (ReleaseStats, [u64; 6]) {
        let mut cum = 0;
        let mut latency_buckets_ms = Vec::with_capacity(BUCKETS_MS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            cum += b.load(Ordering::Relaxed);
            let le = BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY);
            latency_buckets_ms.push((le, cum));
        }
        let mut routes: Vec<RouteStats> = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(p, (r, e))| RouteStats {
                path: p.clone(),
                requests: *r,
                errors_5xx: *e,
            })
            .collect();
        routes.sort_by(|a, b| b.requests.cmp(&a.requests).then(a.path.cmp(&b.path)));
        routes.truncate(TOP_ROUTES);
        let by_class = std::array::from_fn(|i| self.by_class[i].load(Ordering::Relaxed));
        let stats = ReleaseStats {
            id: id.to_string(),
            sha: sha.to_string(),
            role: role.to_string(),
            // The histogram total, so requests, buckets and sum agree even
            // while requests are being counted.
            requests: cum,
            errors_5xx: self.by_class[5].load(Ordering::Relaxed),
            latency_sum_ms: self.latency_sum_us.load(Ordering::Relaxed) as f64 / 1000.0,
            latency_buckets_ms,
            routes,
        };
        (stats, by_class)
    }
}

/// Escapes a Prometheus label value (`\`, `"` and newlines).
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn le_label(le: f64) -> String {
    if le.is_infinite() {
        "+Inf".to_string()
    } else {
        format!("{}", le / 1000.0)
    }
}

/// The Prometheus text exposition (format 0.0.4) of `stats`.
/// `releases` pairs each release with its answers by status class.
pub(crate) fn exposition(releases: &[(ReleaseStats, [u64; 6])]) -> String {
    let mut out = String::new();
    let ids = |r: &ReleaseStats| {
        format!(
            "release=\"{}\",sha=\"{}\",role=\"{}\"",
            label(&r.id),
            label(&r.sha),
            label(&r.role)
        )
    };
    out.push_str(
        "# HELP hotfix_platform_requests_total Requests answered by the production proxy, by release and status class.\n\
         # TYPE hotfix_platform_requests_total counter\n",
    );
    for (r, by_class) in releases {
        let l = ids(r);
        for (i, class) in ["other", "1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .enumerate()
        {
            let _ = writeln!(
                out,
                "hotfix_platform_requests_total{{{l},code_class=\"{class}\"}} {}",
                by_class[i]
            );
        }
    }
    out.push_str(
        "# HELP hotfix_platform_request_duration_seconds Time from request to the end of the answer, through the production proxy.\n\
         # TYPE hotfix_platform_request_duration_seconds histogram\n",
    );
    for (r, _) in releases {
        let l = ids(r);
        for (le, n) in &r.latency_buckets_ms {
            let _ = writeln!(
                out,
                "hotfix_platform_request_duration_seconds_bucket{{{l},le=\"{}\"}} {n}",
                le_label(*le)
            );
        }
        let _ = writeln!(
            out,
            "hotfix_platform_request_duration_seconds_sum{{{l}}} {}",
            r.latency_sum_ms / 1000.0
        );
        let _ = writeln!(
            out,
            "hotfix_platform_request_duration_seconds_count{{{l}}} {}",
            r.requests
        );
    }
    out.push_str(
        "# HELP hotfix_platform_route_requests_total Requests by path (the 50 busiest per release).\n\
         # TYPE hotfix_platform_route_requests_total counter\n",
    );
    for (r, _) in releases {
        let l = ids(r);
        for route in &r.routes {
            let _ = writeln!(
                out,
                "hotfix_platform_route_requests_total{{{l},path=\"{}\"}} {}",
                label(&route.path),
                route.requests
            );
        }
    }
    out.push_str(
        "# HELP hotfix_platform_route_errors_5xx_total Answers with a 5xx status by path (the 50 busiest per release).\n\
         # TYPE hotfix_platform_route_errors_5xx_total counter\n",
    );
    for (r, _) in releases {
        let l = ids(r);
        for route in &r.routes {
            let _ = writeln!(
                out,
                "hotfix_platform_route_errors_5xx_total{{{l},path=\"{}\"}} {}",
                label(&route.path),
                route.errors_5xx
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_paths_bounded() {
        let c = Counters::default();
        c.record("/a", 200, Duration::from_millis(3));
        c.record("/a", 500, Duration::from_millis(300));
        c.record("/b", 200, Duration::from_secs(20));
        for i in 0..(MAX_PATHS + 10) {
            c.record(&format!("/p{i}"), 404, Duration::from_millis(1));
        }
        let (s, by_class) = c.snapshot("r1-abc", "abc", "production");
        assert_eq!(by_class, [0, 0, 2, 0, MAX_PATHS as u64 + 10, 1]);
        assert_eq!(s.requests, 3 + MAX_PATHS as u64 + 10);
        assert_eq!(s.errors_5xx, 1);
        assert_eq!(s.latency_buckets_ms[0], (5.0, 1 + MAX_PATHS as u64 + 10));
        assert_eq!(s.latency_buckets_ms[6].1, 2 + MAX_PATHS as u64 + 10);
        assert_eq!(s.latency_buckets_ms.last().map(|b| b.1), Some(s.requests));
        assert!(
            s.latency_buckets_ms
                .last()
                .is_some_and(|b| b.0.is_infinite())
        );
        assert!(c.routes.lock().map(|r| r.len()).unwrap_or(0) <= MAX_PATHS + 1);
        assert_eq!(s.routes.len(), TOP_ROUTES);
    }
}
