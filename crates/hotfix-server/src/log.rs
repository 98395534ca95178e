//! The server's log: `tracing` events, written by `tracing-subscriber` to
//! stderr as text lines (for a terminal) or JSON lines (for log shippers).
//!
//! - `HOTFIX_LOG`: which events, as an `EnvFilter` directive (`info` when
//!   unset: `debug`, `warn`, `info,tower_http=warn`, …).
//! - `HOTFIX_LOG_FORMAT`: `text` (the default) or `json`; anything else is a
//!   start-up error, not a silent fallback a log shipper would choke on.
//!
//! What is logged may carry control characters (an incident's name, a remote
//! API's error text, a store error quoting a value, a client's request id):
//! a CR/LF in it must not forge a second log line, an ESC must not recolour
//! the operator's terminal. In JSON, serde escapes them; the text format
//! passes every line's fields through [`hotfix_core::display::line`].
//!
//! Every request runs in a `request` span (method, path without the query,
//! request id from `x-request-id`, made when the client sent none and sent
//! back in the answer), so each line about it can be found by that id.
//! Requests refused for who is asking or for the rulebook (401, 403, 422)
//! are logged with their reason ([`refusals`]); no credential is ever a
//! field: not the `Authorization` header, tokens, cookies, webhook secrets
//! or signatures (the reasons are the API's own messages, which never repeat
//! them).

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Span;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer};

use crate::ApiError;

/// The filter's environment variable.
pub const LOG_ENV: &str = hotfix_core::env_vars::HOTFIX_LOG;
/// The format's environment variable.
pub const FORMAT_ENV: &str = hotfix_core::env_vars::HOTFIX_LOG_FORMAT;
/// The filter when `HOTFIX_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";
/// The request-id header, read from the client (or a load balancer) and
/// sent back.
pub const REQUEST_ID: &str = "x-request-id";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `2026-01-02T03:04:05.000006Z  INFO target: message key=value`.
    Text,
    /// One JSON object per line, the event's fields at the top level.
    Json,
}

impl Format {
    /// `text` or `json` (any case, blanks around ignored); unset or empty
    /// is `text`.
    pub fn parse(v: Option<&str>) -> Result<Format, LogError> {
        match v.map(str::trim).unwrap_or("") {
            "" => Ok(Format::Text),
            t if t.eq_ignore_ascii_case("text") => Ok(Format::Text),
            j if j.eq_ignore_ascii_case("json") => Ok(Format::Json),
            other => Err(LogError::Format(
                hotfix_core::display::line(other).into_owned(),
            )),
        }
    }
}

/// A log setting the server cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{FORMAT_ENV}={0} is not a log format: use `text` (the default) or `json`")]
    Format(String),
    #[error(
        "{LOG_ENV}={value} is not a log filter ({why}): use a level (error, warn, info, debug, trace) or directives such as `info,hotfix_server=debug`"
    )]
    Filter { value: String, why: String },
    #[error("the log is already set up in this process: {0}")]
    AlreadySet(String),
}

/// What the log is to be: the filter and the format, checked.
#[derive(Debug)]
pub struct Settings {
    pub filter: EnvFilter,
    pub format: Format,
}

impl Settings {
    /// From `HOTFIX_LOG` and `HOTFIX_LOG_FORMAT`.
    pub fn from_env() -> Result<Settings, LogError> {
        let get = |k: &str| std::env::var(k).ok();
        Settings::parse(get(LOG_ENV).as_deref(), get(FORMAT_ENV).as_deref())
    }

    /// From the two variables' values (`None`: unset).
    pub fn parse(filter: Option<&str>, format: Option<&str>) -> Result<Settings, LogError> {
        let format = Format::parse(format)?;
        let directive = filter.map(str::trim).filter(|f| !f.is_empty());
        let filter = EnvFilter::builder()
            .parse(directive.unwrap_or(DEFAULT_FILTER))
            .map_err(|e| LogError::Filter {
                value: hotfix_core::display::line(directive.unwrap_or_default()).into_owned(),
                why: e.to_string(),
            })?;
        Ok(Settings { filter, format })
    }
}

/// Installs the log for this process, on stderr (stdout stays the
/// program's output). Once per process.
pub fn init(s: Settings) -> Result<(), LogError> {
    tracing_subscriber::registry()
        .with(layer(s.format, std::io::stderr).with_filter(s.filter))
        .try_init()
        .map_err(|e| LogError::AlreadySet(e.to_string()))
}

/// The formatting layer of `format` writing to `writer` (stderr in the
/// server; a buffer in tests, which stack both formats on one registry).
pub fn layer<S, W>(format: Format, writer: W) -> Box<dyn Layer<S> + Send + Sync + 'static>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        Format::Text => Box::new(fmt.fmt_fields(OneLine)),
        Format::Json => Box::new(
            fmt.json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false),
        ),
    }
}

/// The text format's fields (an event's and its spans'), as
/// `tracing-subscriber` writes them, with every control character escaped:
/// a value can neither end the line nor send a terminal escape.
#[derive(Debug, Default, Clone, Copy)]
pub struct OneLine;

impl<'w> FormatFields<'w> for OneLine {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut raw = String::new();
        DefaultFields::new().format_fields(Writer::new(&mut raw), fields)?;
        writer.write_str(&hotfix_core::display::line(&raw))
    }
}

/// The span of one request: method, path (never the query, where a client
/// may have put a credential) and request id.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSpan;

/// The longest request id logged as sent; a longer one is cut (it is the
/// client's, and a log line is no place for a kilobyte of it).
const MAX_REQUEST_ID: usize = 128;

impl<B> tower_http::trace::MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, req: &axum::http::Request<B>) -> Span {
        let id = req
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .map_or("-", |v| {
                // Visible ASCII only (to_str), so any byte is a boundary.
                &v[..v.len().min(MAX_REQUEST_ID)]
            });
        tracing::info_span!(
            "request",
            method = %req.method(),
            path = %req.uri().path(),
            request_id = %id,
        )
    }
}

/// Why a request was refused, carried on the answer (as a response
/// extension) from where it was decided to where it is logged.
#[derive(Debug, Clone)]
pub struct Reason {
    /// The refusing rule: the error code (`unauthorized`, a rulebook code…).
    pub code: String,
    /// The API's message, which never repeats a credential.
    pub message: String,
}

impl Reason {
    pub fn of(e: &ApiError) -> Reason {
        Reason {
            code: e.code.clone(),
            message: e.message.clone(),
        }
    }
}

/// Middleware inside the request span: a 401 or 403 is logged at `warn`
/// (someone lacks the right credential: a leaked or revoked token, a
/// misconfigured sender), a 422 at `info` (the rulebook said no), each
/// with its status, rule and reason.
pub async fn refusals(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    if !matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::UNPROCESSABLE_ENTITY
    ) {
        return res;
    }
    let (rule, reason) = res
        .extensions()
        .get::<Reason>()
        .map_or(("-", "(no reason recorded)"), |r| {
            (r.code.as_str(), r.message.as_str())
        });
    // The reason is the API's message; redacted all the same, in case a
    // remote system's text in it quotes a credential.
    let reason = hotfix_providers::redact::redact(reason);
    let status = status.as_u16();
    if status == 422 {
        tracing::info!(status, rule, reason, "request refused");
    } else {
        tracing::warn!(status, rule, reason, "request refused");
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_filters_are_checked() {
        assert_eq!(Format::parse(None).unwrap(), Format::Text);
        assert_eq!(Format::parse(Some(" ")).unwrap(), Format::Text);
        assert_eq!(Format::parse(Some("JSON")).unwrap(), Format::Json);
        assert_eq!(Format::parse(Some("text")).unwrap(), Format::Text);
        let e = Format::parse(Some(" log\x1bfmt\n"))
            .unwrap_err()
            .to_string();
        // Said with the value trimmed and its control characters escaped.
        assert!(
            e.starts_with("HOTFIX_LOG_FORMAT=log\\u{1b}fmt is not a log format")
                && e.contains("`json`"),
            "{e}"
        );
        for ok in [
            None,
            Some(""),
            Some("debug"),
            Some("info,hotfix_server=trace"),
        ] {
            assert!(Settings::parse(ok, None).is_ok(), "{ok:?}");
        }
        let e = Settings::parse(Some("info,hotfix=loud"), None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("HOTFIX_LOG=info,hotfix=loud is not a log filter (")
                && e.contains("use a level"),
            "{e}"
        );
    }
}
