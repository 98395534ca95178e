//! What the Slack, webhook and Statuspage notifiers add to the providers'
//! HTTP layer (`crate::http`: agent, body limit, `Retry-After`).
//!
//! Two rules shape it. A notifier runs inside `deliver`, in the path of a
//! person's command, so every request has a short global timeout and no
//! redirects are followed (a redirect would also be a way to lead our
//! `Authorization` header somewhere else). And URLs and tokens are secrets
//! (a Slack webhook URL *is* a credential), so no error produced here ever
//! contains the URL, a header or the request body: transport errors are
//! described from their kind, and whatever text a remote sends back is cut
//! to one short line and scrubbed of every secret we know.

use std::time::Duration;

/// How much of an answer we read: enough for any JSON a provider sends back,
/// small enough that a misbehaving server cannot make us buffer much.
const BODY_LIMIT: u64 = 256 * 1024;

/// What came back.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    /// The `Retry-After` header as sent (seconds or an HTTP date), if any.
    pub retry_after: Option<String>,
    pub body: String,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Method {
    Post,
    Patch,
}

/// An agent with a global timeout, no redirects, and HTTP error statuses
/// returned as replies (the callers map them with the provider's meaning).
pub(crate) fn agent(timeout: Duration) -> ureq::Agent {
    crate::http::agent(timeout, crate::http::Redirects::Never)
}

/// Sends one request with a body; `Err` only when there is no HTTP answer
/// at all, described without the URL.
pub(crate) fn send(
    agent: &ureq::Agent,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Reply, String> {
    let mut req = match method {
        Method::Post => agent.post(url),
        Method::Patch => agent.patch(url),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send(body).map_err(|e| transport_error(&e))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(|v| snippet(v, 40));
    // A body cut off or not UTF-8 is still an answer; the status decides.
    let body = crate::http::read_body(&mut resp, BODY_LIMIT).unwrap_or_default();
    Ok(Reply {
        status,
        retry_after,
        body,
    })
}

/// Why there was no answer, from the error's kind only: some ureq errors
/// carry the URL in their text, and the URL may be a secret.
pub(crate) fn transport_error(e: &ureq::Error) -> String {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(t) => {
            format!("no answer in time (timeout: {t}); will retry")
        }
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => "unreachable: connection refused".into(),
            ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                "no answer in time (timed out); will retry".into()
            }
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                "connection reset before an answer".into()
            }
            ErrorKind::UnexpectedEof => "connection closed before an answer".into(),
            kind => format!("network error ({kind})"),
        },
        ureq::Error::HostNotFound => "unreachable: host not found (DNS)".into(),
        ureq::Error::ConnectionFailed => "unreachable: connection failed".into(),
        ureq::Error::BadUri(_) => {
            "the configured URL is not valid (expected http(s)://host/...)".into()
        }
        ureq::Error::Http(_) => {
            "the request could not be built (a header or the URL has invalid characters; check the token and URL for stray whitespace)".into()
        }
        ureq::Error::Tls(_) | ureq::Error::TlsRequired => {
            "TLS failed or is not available in this build (https needs ureq's rustls feature)"
                .into()
        }
        ureq::Error::Protocol(_) | ureq::Error::LargeResponseHeader(..) => {
            "the server's answer is not valid HTTP".into()
        }
        ureq::Error::RedirectFailed | ureq::Error::TooManyRedirects => {
            "the server answered with a redirect, which is not followed; check the URL".into()
        }
        _ => "the request failed before an answer".into(),
    }
}

/// One line of at most `max` characters of text a remote sent us, with
/// control characters dropped (it ends up in a terminal and in the store).
pub(crate) fn snippet(text: &str, max: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > max {
        let mut s: String = t.chars().take(max).collect();
        s.push('…');
        s
    } else {
        t
    }
}

/// The providers' one scrubber (`crate::http::scrub`).
pub(crate) use crate::http::scrub;

/// "retry after 30s" from a `Retry-After` header, or a generic hint.
pub(crate) fn retry_hint(retry_after: Option<&str>) -> String {
    match retry_after {
        Some(v) if v.chars().all(|c| c.is_ascii_digit()) && !v.is_empty() => {
            format!("rate limited; retry after {v}s")
        }
        Some(v) => format!("rate limited; retry after {v}"),
        None => "rate limited; will retry later".into(),
    }
}

/// Joins a base URL and a path without doubling slashes.
pub(crate) fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Whether a value a remote gave us (an id, a `ts`) is safe to put in a URL
/// path or to store: short, and only characters ids are made of.
pub(crate) fn is_plain_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a configured or given URL enough to fail at startup rather than
/// at the first incident; the message never repeats the URL.
pub(crate) fn check_url(what: &str, url: &str) -> Result<(), String> {
    let u = url.trim();
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    match rest {
        Some(r) if !r.is_empty() && !u.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(format!(
            "{what} is not a valid URL: expected http(s)://host/... (value not shown)"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn snippet_is_one_short_line() {
        assert_eq!(snippet("a\nb\r\n  c", 10), "a b c");
        assert_eq!(snippet("abcdef", 3), "abc…");
    }

    #[test]
    fn scrub_hides_secrets() {
        assert_eq!(
            scrub(
                "bad http://h/T1/B2/XYZsecret",
                &["http://h/T1/B2/XYZsecret"]
            ),
            "bad ***"
        );
        assert_eq!(scrub("token xoxb-1-2-3", &[]), "token xoxb-***");
        let url = "https://hooks.example/services/T0001/B0001/abcdefghijklmnop";
        assert_eq!(
            scrub("no /services/T0001/B0001/abcdefghijklmnop", &[url]),
            "no ***"
        );
        assert_eq!(scrub("bad token abcdefghijklmnop", &[url]), "bad token ***");
    }

    #[test]
    fn ids() {
        assert!(is_plain_id("1700000000.000100"));
        assert!(is_plain_id("C0123ABC"));
        assert!(!is_plain_id("../x"));
        assert!(!is_plain_id("a/b"));
        assert!(!is_plain_id(""));
    }

    #[test]
    fn urls() {
        assert!(check_url("u", "http://127.0.0.1:1/x").is_ok());
        assert!(check_url("u", "ftp://x").is_err());
        assert!(check_url("u", "https://").is_err());
        let e = check_url("u", "hooks.slack.com/services/SECRET").unwrap_err();
        assert!(!e.contains("SECRET"));
    }

    #[test]
    fn hints() {
        assert_eq!(retry_hint(Some("30")), "rate limited; retry after 30s");
        assert_eq!(retry_hint(None), "rate limited; will retry later");
    }
}
