//! The one HTTP layer of the providers: how an agent is built, how much of
//! an answer is read, how `Retry-After` is understood, when a request may
//! be sent again and how long hotfix sleeps before it does.
//!
//! Every provider (the GitHub forge, the Railway deployer, the notifiers,
//! the metric sources, the health probe) speaks to a different API, but the
//! rules below are the same for all of them; they used to be written once
//! per provider, with two retry loops that disagreed on how `Retry-After`
//! is read. What stays in each provider is what is its own: which answers
//! mean "busy", what a refusal says, which operations are reads.

use std::time::Duration;

/// Sent on every request so that receivers can tell us apart.
pub const USER_AGENT: &str = concat!("hotfix/", env!("CARGO_PKG_VERSION"));

/// Whether an agent follows redirects. The notifiers and Railway do not: a
/// redirect would lead the `Authorization` header (or a URL that is itself
/// a secret) somewhere else. The GitHub API redirects renamed repositories
/// on its own host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    Follow,
    Never,
}

/// An agent with a global timeout (connect to last byte), hotfix's
/// `User-Agent`, and every HTTP status returned as an answer: the caller
/// decides what a 4xx or 5xx means for its API.
pub fn agent(timeout: Duration, redirects: Redirects) -> ureq::Agent {
    let b = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(USER_AGENT);
    let b = match redirects {
        Redirects::Follow => b,
        Redirects::Never => b.max_redirects(0),
    };
    b.build().into()
}

/// A header's value, trimmed, when it is text.
pub fn header(r: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// The body as text, at most `limit` bytes: a misbehaving server cannot
/// make hotfix buffer more than that.
pub fn read_body(
    r: &mut ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<String, ureq::Error> {
    r.body_mut().with_config().limit(limit).read_to_string()
}

/// `Retry-After` as RFC 9110 spells it: delay-seconds or an HTTP date (a
/// date in the past is "now"). Anything else is no hint.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let secs = at.as_second() - jiff::Timestamp::now().as_second();
    Some(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
}

/// Whether a transport error happened before any byte of the request left
/// hotfix, so that nothing can have been applied and sending it again is
/// safe even for a change (the idempotency rule). Everything else (a
/// connection dropped or timed out after connecting) counts as "sent": the
/// global timeout does not say in which phase it fired, so when in doubt a
/// request is assumed to have arrived.
pub fn never_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::BadUri(_)
        | ureq::Error::Http(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::InvalidProxyUrl
        | ureq::Error::ConnectProxyFailed(_)
        | ureq::Error::TlsRequired => true,
        ureq::Error::Timeout(t) => matches!(t, ureq::Timeout::Resolve | ureq::Timeout::Connect),
        ureq::Error::Io(io) => io.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// Replaces every known secret in `text` with `***`; the last line of
/// defence behind never formatting a secret in the first place.
///
/// A URL is a secret as a whole and in parts: a receiver may echo back only
/// its path, or only the token segment of it.
pub fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut parts: Vec<&str> = vec![];
    for s in secrets {
        let s = s.trim();
        parts.push(s);
        if let Some(i) = s.find("://") {
            let after = &s[i + 3..];
            if let Some(p) = after.find(['/', '?']) {
                let path = &after[p..];
                parts.push(path);
                parts.extend(
                    path.split(['/', '?', '&', '='])
                        .filter(|seg| seg.len() >= 10),
                );
            }
        }
    }
    // Longest first, so a part never leaves pieces of a longer match.
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    let mut out = text.to_string();
    for p in parts {
        // Very short values would blank out ordinary words.
        if p.len() >= 6 {
            out = out.replace(p, "***");
        }
    }
    crate::redact::redact(&out)
}

/// What one attempt of a retried request came to.
pub enum Attempt<T, E> {
    /// Finished, well or badly: no retry.
    Done(Result<T, E>),
    /// The API is busy (429, 5xx, a rate limit): try again after `wait`
    /// (capped by [`Retry::max_wait`]); `last` is the error if no retry is left.
    Busy { wait: Duration, last: E },
}

/// Bounded retries of a request that is safe to repeat (a read, or a
/// change the API documents as idempotent): at most `max_retries` more
/// attempts, never sleeping longer than `max_wait` at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub max_retries: u32,
    pub max_wait: Duration,
}

/// The retries ran out: the last error and how many attempts were made.
#[derive(Debug)]
pub struct GaveUp<E> {
    pub attempts: u32,
    pub last: E,
}

impl Retry {
    /// Exponential backoff from `base`: `base`, 2×, 4×, … (the exponent
    /// stops at 2^8), before the `max_wait` cap.
    pub fn backoff(base: Duration, attempt: u32) -> Duration {
        base.saturating_mul(1u32 << attempt.min(8))
    }

    /// Runs `f(attempt)` (from 0) until it is done or the retries run out,
    /// sleeping between attempts.
    pub fn run<T, E>(&self, mut f: impl FnMut(u32) -> Attempt<T, E>) -> Result<T, GaveUp<E>> {
        self.run_with(&mut f, &mut std::thread::sleep)
    }

    /// [`Retry::run`] with the sleep given (the tests count the waits).
    pub fn run_with<T, E>(
        &self,
        f: &mut impl FnMut(u32) -> Attempt<T, E>,
        sleep: &mut impl FnMut(Duration),
    ) -> Result<T, GaveUp<E>> {
        let mut attempt = 0u32;
        loop {
            match f(attempt) {
                Attempt::Done(Ok(t)) => return Ok(t),
                Attempt::Done(Err(last)) => {
                    return Err(GaveUp {
                        attempts: attempt + 1,
                        last,
                    });
                }
                Attempt::Busy { wait, last } => {
                    if attempt >= self.max_retries {
                        return Err(GaveUp {
                            attempts: attempt + 1,
                            last,
                        });
                    }
                    sleep(wait.min(self.max_wait));
                    attempt += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        let later = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(120);
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&later)
            .expect("date");
        let d = parse_retry_after(&date).expect("parsed");
        assert!(
            d >= Duration::from_secs(118) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-5"), None);
    }

    #[test]
    fn retries_are_bounded_capped_and_stop_at_the_first_answer() {
        let policy = Retry {
            max_retries: 2,
            max_wait: Duration::from_secs(5),
        };
        let mut waits = vec![];
        let mut calls = 0;
        let r: Result<u32, GaveUp<&str>> = policy.run_with(
            &mut |_| {
                calls += 1;
                Attempt::Busy {
                    wait: Duration::from_secs(60),
                    last: "busy",
                }
            },
            &mut |d| waits.push(d),
        );
        let e = r.expect_err("gave up");
        assert_eq!((e.attempts, e.last, calls), (3, "busy", 3));
        assert_eq!(waits, vec![Duration::from_secs(5); 2], "capped by max_wait");

        let mut waits = vec![];
        let r: Result<u32, GaveUp<&str>> = policy.run_with(
            &mut |attempt| {
                if attempt == 0 {
                    Attempt::Busy {
                        wait: Duration::from_millis(10),
                        last: "busy",
                    }
                } else {
                    Attempt::Done(Ok(attempt))
                }
            },
            &mut |d| waits.push(d),
        );
        assert_eq!(r.ok(), Some(1));
        assert_eq!(waits, vec![Duration::from_millis(10)]);

        let r: Result<u32, GaveUp<&str>> = policy
            .run_with(&mut |_| Attempt::Done(Err("refused")), &mut |_| {
                panic!("no sleep after a refusal")
            });
        assert_eq!(r.expect_err("refused").attempts, 1);
    }

    #[test]
    fn backoff_doubles_and_stops_growing() {
        let b = Duration::from_millis(250);
        assert_eq!(Retry::backoff(b, 0), b);
        assert_eq!(Retry::backoff(b, 2), Duration::from_secs(1));
        assert_eq!(Retry::backoff(b, 8), Retry::backoff(b, 30));
    }

    #[test]
    fn only_errors_before_sending_are_safe_to_resend() {
        assert!(never_sent(&ureq::Error::HostNotFound));
        assert!(never_sent(&ureq::Error::ConnectionFailed));
        assert!(never_sent(&ureq::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!never_sent(&ureq::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionReset
        ))));
        assert!(!never_sent(&ureq::Error::Timeout(ureq::Timeout::Global)));
        assert!(never_sent(&ureq::Error::Timeout(ureq::Timeout::Connect)));
    }
}
