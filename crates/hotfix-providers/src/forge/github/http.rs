//! The REST/GraphQL transport of the GitHub forge: one agent, bounded
//! retries on rate limits and 5xx (sleeps capped by `max_retry_wait`), the
//! token only in the `Authorization` header and scrubbed from messages,
//! pagination links followed only on the API host.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hotfix_core::provider::ForgeError;
use serde_json::{Value, json};

use super::API_VERSION;
use crate::http::Attempt;

/// An answer, whatever its status.
pub(super) struct Resp {
    pub(super) status: u16,
    pub(super) link: Option<String>,
    pub(super) body: String,
}

/// The REST/GraphQL client: headers, retries, redaction.
pub(super) struct Http {
    pub(super) agent: ureq::Agent,
    pub(super) token: String,
    pub(super) api_url: String,
    pub(super) timeout: Duration,
    pub(super) max_retries: u32,
    pub(super) max_wait: Duration,
}

pub(super) fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What to do about a 403/429 that is a rate limit.
pub(super) enum Limited {
    /// Wait this long, then try again.
    Wait(Duration),
    /// The primary limit resets later than we are willing to sleep.
    Exhausted { reset_in_s: u64 },
}

impl Http {
    pub(super) fn scrub(&self, text: &str) -> String {
        crate::http::scrub(text, &[&self.token])
    }

    /// One request with the documented headers. `retry_5xx` is false for
    /// calls that are not safe to repeat blindly (the revert mutation).
    pub(super) fn send(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
        retry_5xx: bool,
    ) -> Result<Resp, ForgeError> {
        let policy = crate::http::Retry {
            max_retries: self.max_retries,
            max_wait: self.max_wait,
        };
        let mut attempt = |attempt: u32| {
            let (resp, limited) = match self.once(method, url, body) {
                Ok(r) => r,
                Err(e) => return Attempt::Done(Err(e)),
            };
            match limited {
                Some(Limited::Exhausted { reset_in_s }) => {
                    Attempt::Done(Err(ForgeError::Other(format!(
                        "GitHub rate limit exhausted for this token; it resets in {reset_in_s}s, longer than max_retry_wait ({}s): try again later",
                        self.max_wait.as_secs()
                    ))))
                }
                Some(Limited::Wait(wait)) => Attempt::Busy {
                    wait,
                    last: self.gave_up(method, url, &resp, attempt),
                },
                None if resp.status >= 500 && retry_5xx => Attempt::Busy {
                    wait: crate::http::Retry::backoff(Duration::from_millis(500), attempt.min(6)),
                    last: self.gave_up(method, url, &resp, attempt),
                },
                None => Attempt::Done(Ok(resp)),
            }
        };
        policy.run(&mut attempt).map_err(|g| g.last)
    }

    /// The error once the retries of a busy answer ran out.
    fn gave_up(&self, method: &str, url: &str, resp: &Resp, attempt: u32) -> ForgeError {
        let what = if resp.status >= 500 {
            format!("GitHub kept failing ({})", resp.status)
        } else {
            "GitHub kept rate-limiting this token".to_string()
        };
        ForgeError::Other(format!(
            "{what} on {method} {}; gave up after {} attempts: {}",
            self.path_of(url),
            attempt + 1,
            self.scrub(&message_of(&resp.body))
        ))
    }

    /// The URL without the API base, for messages.
    pub(super) fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.api_url.trim_end_matches('/'))
            .unwrap_or(url)
    }

    pub(super) fn once(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> Result<(Resp, Option<Limited>), ForgeError> {
        let auth = format!("Bearer {}", self.token);
        macro_rules! hdrs {
            ($rb:expr) => {
                $rb.header("Authorization", &auth)
                    .header("Accept", "application/vnd.github+json")
                    .header("X-GitHub-Api-Version", API_VERSION)
            };
        }
        let empty = json!({});
        let res = match method {
            "GET" => hdrs!(self.agent.get(url)).call(),
            "DELETE" => hdrs!(self.agent.delete(url)).call(),
            "POST" => hdrs!(self.agent.post(url)).send_json(body.unwrap_or(&empty)),
            "PUT" => hdrs!(self.agent.put(url)).send_json(body.unwrap_or(&empty)),
            "PATCH" => hdrs!(self.agent.patch(url)).send_json(body.unwrap_or(&empty)),
            other => {
                return Err(ForgeError::Other(format!(
                    "unsupported HTTP method {other}"
                )));
            }
        };
        let mut r = res.map_err(|e| self.transport_error(method, url, e))?;
        let status = r.status().as_u16();
        let link = crate::http::header(&r, "link");
        let retry_after = crate::http::header(&r, "retry-after");
        let remaining = crate::http::header(&r, "x-ratelimit-remaining");
        let reset = crate::http::header(&r, "x-ratelimit-reset");
        let body = r
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(method, url, e))?;
        let limited = if status == 403 || status == 429 {
            rate_limit(
                status,
                retry_after.as_deref(),
                remaining.as_deref(),
                reset.as_deref(),
                &body,
                self.max_wait,
            )
        } else {
            None
        };
        Ok((Resp { status, link, body }, limited))
    }

    pub(super) fn transport_error(&self, method: &str, url: &str, e: ureq::Error) -> ForgeError {
        let path = self.path_of(url).to_string();
        let detail = self.scrub(&e.to_string());
        match e {
            ureq::Error::Timeout(_) => ForgeError::Unreachable(format!(
                "no answer to {method} {path} within {:?} (timeout): {detail}",
                self.timeout
            )),
            ureq::Error::Io(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::HostNotFound
            | ureq::Error::ConnectProxyFailed(_)
            | ureq::Error::Protocol(_)
            | ureq::Error::BodyStalled => {
                ForgeError::Unreachable(format!("{method} {path}: {detail}"))
            }
            ureq::Error::TlsRequired | ureq::Error::Tls(_) => ForgeError::Unreachable(format!(
                "{method} {path}: {detail} (this build has no TLS support for https URLs)"
            )),
            _ => ForgeError::Other(format!("{method} {path}: {detail}")),
        }
    }
}

/// Classifies a 403/429. GitHub documents: primary limit = remaining `0`,
/// wait until `x-ratelimit-reset`; secondary limit = `retry-after` seconds,
/// or at least a minute when absent. A 403 that is none of these is a
/// permission problem and not retried.
pub(super) fn rate_limit(
    status: u16,
    retry_after: Option<&str>,
    remaining: Option<&str>,
    reset: Option<&str>,
    body: &str,
    max_wait: Duration,
) -> Option<Limited> {
    if let Some(wait) = retry_after.and_then(crate::http::parse_retry_after) {
        return Some(Limited::Wait(wait));
    }
    if remaining == Some("0") {
        let reset_at = reset.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
        let reset_in_s = reset_at.saturating_sub(now_s());
        // Retrying before the reset is useless: fail fast if it is too far.
        if Duration::from_secs(reset_in_s) > max_wait {
            return Some(Limited::Exhausted { reset_in_s });
        }
        return Some(Limited::Wait(Duration::from_secs(reset_in_s + 1)));
    }
    if status == 429 || body.to_ascii_lowercase().contains("secondary rate limit") {
        return Some(Limited::Wait(Duration::from_secs(60)));
    }
    None
}

/// GitHub's `message` plus each `errors[].message`, or the start of the body.
pub(super) fn message_of(body: &str) -> String {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let mut parts: Vec<String> = Vec::new();
            if let Some(m) = v.get("message").and_then(Value::as_str) {
                parts.push(m.to_string());
            }
            if let Some(errs) = v.get("errors").and_then(Value::as_array) {
                for e in errs {
                    if let Some(m) = e.get("message").and_then(Value::as_str) {
                        parts.push(m.to_string());
                    } else if let Some(c) = e.get("code").and_then(Value::as_str) {
                        let field = e.get("field").and_then(Value::as_str).unwrap_or("");
                        parts.push(format!("{field} {c}").trim().to_string());
                    }
                }
            }
            if parts.is_empty() {
                truncate(body, 200)
            } else {
                parts.join("; ")
            }
        }
        Err(_) => truncate(body, 200),
    }
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    let t: String = s.chars().take(n).collect();
    if t.len() < s.len() {
        format!("{t}…")
    } else {
        t
    }
}

/// Everything but RFC 3986's unreserved characters: a branch name such as
/// `hotfix/HF-1` is one path segment or one query value, so its `/` (and
/// any `?`, `#`, `&`, `+`, space) must not be read as URL syntax.
pub(super) const COMPONENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes a query or path component (RFC 3986 unreserved kept).
pub(super) fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// The `rel="next"` target of a `Link` header.
pub(super) fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}
