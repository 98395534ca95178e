//! HTTP probes: smoke checks against a preview, health watch of production.

use std::time::{Duration, Instant};

use hotfix_core::config::HttpCheck;
use hotfix_core::event::CheckResult;

fn agent(timeout: Duration) -> ureq::Agent {
    crate::http::agent(timeout, crate::http::Redirects::Follow)
}

/// One GET: the status and up to 64 KiB of the body, or why there is none.
pub fn get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let mut resp = agent(timeout).get(url).call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Ok((status, body))
}

/// Joins a base URL and a path without doubling slashes.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn check_once(base: &str, c: &HttpCheck, timeout: Duration) -> CheckResult {
    let url = join(base, &c.path);
    let (ok, detail) = match get(&url, timeout) {
        Err(e) => (false, format!("no answer: {e}")),
        Ok((status, body)) => {
            if status != c.status {
                (false, format!("status {status}, expected {}", c.status))
            } else if let Some(needle) = &c.contains {
                if body.contains(needle.as_str()) {
                    (true, format!("status {status}, body contains {needle:?}"))
                } else {
                    (false, format!("status {status} but body lacks {needle:?}"))
                }
            } else {
                (true, format!("status {status}"))
            }
        }
    };
    CheckResult {
        name: c.label(),
        url,
        ok,
        detail,
    }
}

/// Runs every check against `base`; a failing check is retried until
/// `settle` has passed, since a fresh preview may still be starting.
pub fn run_checks(
    base: &str,
    checks: &[HttpCheck],
    timeout: Duration,
    settle: Duration,
) -> Vec<CheckResult> {
    let deadline = Instant::now() + settle;
    checks
        .iter()
        .map(|c| {
            loop {
                let r = check_once(base, c, timeout);
                if r.ok || Instant::now() >= deadline {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
        .collect()
}

/// Settings of a production health watch.
#[derive(Debug, Clone)]
pub struct Watch {
    pub url: String,
    pub window: Duration,
    pub interval: Duration,
    pub unhealthy_after: u32,
    pub timeout: Duration,
}

/// One probe of a watch: the status of a healthy answer, or why it is not
/// healthy. A trait so that the engine's watch logic (failure counts, the
/// window, the verdict) is tested against a scripted production without
/// HTTP; [`HttpProbe`] is the real one.
pub trait Probe: Send + Sync {
    fn probe(&self, w: &Watch) -> Result<u16, String>;
}

/// `GET w.url`: 2xx is healthy; otherwise why not, with the URL and the
/// start of the body.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpProbe;

impl Probe for HttpProbe {
    fn probe(&self, w: &Watch) -> Result<u16, String> {
        match get(&w.url, w.timeout) {
            Ok((s, _)) if (200..300).contains(&s) => Ok(s),
            Ok((s, body)) => Err(format!(
                "{} answered {s}: {}",
                w.url,
                excerpt(body.lines().next().unwrap_or(""), 160)
            )),
            Err(e) => Err(format!("{} did not answer: {e}", w.url)),
        }
    }
}

/// Probes `url` for the whole window. Healthy = 2xx. Returns the number of
/// probes, or the reason production is unhealthy (after `unhealthy_after`
/// consecutive failures).
pub fn watch(w: &Watch, on_probe: impl FnMut(u32, &Result<u16, String>)) -> Result<u32, String> {
    watch_with(w, &HttpProbe, on_probe)
}

/// [`watch`] with the probe given.
pub fn watch_with(
    w: &Watch,
    probe: &dyn Probe,
    mut on_probe: impl FnMut(u32, &Result<u16, String>),
) -> Result<u32, String> {
    let start = Instant::now();
    let mut probes = 0u32;
    let mut failures = 0u32;
    loop {
        probes += 1;
        let r = probe.probe(w);
        on_probe(probes, &r);
        match r {
            Ok(_) => failures = 0,
            Err(reason) => {
                failures += 1;
                if failures >= w.unhealthy_after {
                    return Err(reason);
                }
            }
        }
        if start.elapsed() >= w.window {
            // The last probe must be healthy for the watch to pass.
            if failures == 0 {
                return Ok(probes);
            }
        }
        std::thread::sleep(w.interval);
    }
}

/// The start of a body for a message: at most `max` characters, with `…`
/// where it was cut (so a cut reason never reads as if it ended there).
fn excerpt(line: &str, max: usize) -> String {
    if line.chars().count() <= max {
        return line.to_string();
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod excerpt_tests {
    use super::excerpt;

    #[test]
    fn a_cut_body_says_it_was_cut() {
        assert_eq!(excerpt("short", 160), "short");
        let long = "x".repeat(300);
        let e = excerpt(&long, 160);
        assert_eq!(e.chars().count(), 160);
        assert!(e.ends_with('…'));
    }
}
