//! Templates, the page layout, and the headers every HTML page carries.
//!
//! Templates are embedded in the binary (no files to deploy) and rendered by
//! minijinja with HTML auto-escaping (every template name ends in `.html`),
//! so whatever people typed (titles, notes, alert summaries) is shown, never
//! run. Pages are composed in two passes (page body, then the layout with
//! the body as safe HTML) because the minijinja build here has no
//! `{% extends %}`.

use std::sync::OnceLock;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use minijinja::{Environment, Value};
use serde::Serialize;

use crate::ApiError;
use crate::auth::Caller;

const TEMPLATES: [(&str, &str); 7] = [
    ("layout.html", include_str!("../../templates/layout.html")),
    ("login.html", include_str!("../../templates/login.html")),
    ("index.html", include_str!("../../templates/index.html")),
    (
        "incident.html",
        include_str!("../../templates/incident.html"),
    ),
    ("log.html", include_str!("../../templates/log.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("status.html", include_str!("../../templates/status.html")),
];

pub const CSS: &str = include_str!("../../templates/dashboard.css");
pub const JS: &str = include_str!("../../templates/live.js");

/// Bumped with the crate version so browsers fetch new assets after an upgrade.
pub const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

fn env() -> Result<&'static Environment<'static>, ApiError> {
    static ENV: OnceLock<Result<Environment<'static>, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .map_err(|e| format!("template {name}: {e}"))?;
        }
        Ok(env)
    })
    .as_ref()
    .map_err(|e| ApiError::internal(e.clone()))
}

/// Renders one template.
pub fn render(name: &str, ctx: impl Serialize) -> Result<String, ApiError> {
    env()?
        .get_template(name)
        .and_then(|t| t.render(Value::from_serialize(&ctx)))
        .map_err(|e| ApiError::internal(format!("rendering {name}: {e}")))
}

/// A one-off message shown above the page after an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Flash {
    /// `ok` or `error`.
    pub kind: &'static str,
    pub text: String,
}

/// What the layout around a page shows.
#[derive(Debug, Default)]
pub struct Layout<'a> {
    pub title: String,
    pub user: Option<&'a Caller>,
    /// Which nav entry is current (`incidents`, `log`).
    pub nav: &'static str,
    pub flash: Option<Flash>,
    /// The store watermark the page was built at; set on live pages.
    pub watermark: Option<i64>,
}

/// The page body wrapped in the layout.
pub fn page(l: Layout<'_>, content: String) -> Result<String, ApiError> {
    #[derive(Serialize)]
    struct Ctx<'a> {
        title: String,
        user: Option<&'a str>,
        role: Option<&'a str>,
        nav: &'static str,
        flash: Option<Flash>,
        watermark: Option<i64>,
        v: &'static str,
        content: Value,
    }
    render(
        "layout.html",
        Ctx {
            title: l.title,
            user: l.user.map(|c| c.user.as_str()),
            role: l.user.map(|c| c.role.as_str()),
            nav: l.nav,
            flash: l.flash,
            watermark: l.watermark,
            v: ASSET_VERSION,
            content: Value::from_safe_string(content),
        },
    )
}

/// Content Security Policy: no inline script or style and nothing from
/// elsewhere, so even a template bug cannot run injected code; no framing,
/// so the buttons cannot be clickjacked.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An HTML response with the headers every page carries. Signed-in pages
/// are `no-store`: they show incident details that must not linger in
/// shared caches or the back-button cache of a shared screen.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    r
}

fn security_headers(h: &mut axum::http::HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// An error as a page (the API's message and hint, as HTML).
pub fn error_page(e: &ApiError, user: Option<&Caller>) -> Response {
    #[derive(Serialize)]
    struct Ctx<'a> {
        status: u16,
        code: &'a str,
        message: &'a str,
        hint: Option<&'a str>,
    }
    let body = render(
        "error.html",
        Ctx {
            status: e.status.as_u16(),
            code: &e.code,
            message: &e.message,
            hint: e.hint.as_deref(),
        },
    )
    .and_then(|c| {
        page(
            Layout {
                title: format!("Error {}", e.status.as_u16()),
                user,
                ..Default::default()
            },
            c,
        )
    });
    let mut r = match body {
        Ok(b) => html(e.status, b),
        // The templates are compiled in; if even the error page fails,
        // say so in plain text rather than hide the original error.
        Err(_) => (e.status, format!("{}: {}", e.code, e.message)).into_response(),
    };
    r.extensions_mut().insert(crate::log::Reason::of(e));
    r
}

/// `2025-11-27 03:30:12 UTC`: the server's clock, one time zone for everyone.
pub fn time(t: Timestamp) -> String {
    hotfix_core::timeline::utc(t)
}

/// `20s`, `20m`, `1h05m`: the core's one way of saying how long
/// ([`hotfix_core::duration::span`]).
pub fn span(secs: i64) -> String {
    hotfix_core::duration::span(secs)
}

/// `awaiting_approval` → `awaiting approval`.
pub fn words(snake: &str) -> String {
    snake.replace('_', " ")
}

/// The phase as the dashboard shows it: `words` of it, but "in triage"
/// for an incident waiting for a tech lead, and how triage ended for one
/// declined or merged ("declined: false alarm", "merged into HF-3").
pub fn phase_label(s: &hotfix_core::state::IncidentState, phase: &str) -> String {
    use hotfix_core::event::DeclineReason as R;
    match (phase, &s.declined) {
        ("triage", _) => "in triage".into(),
        ("declined", Some(d)) => match (d.merged_into, d.duplicate_of, d.reason) {
            (Some(into), _, _) => format!("merged into {into}"),
            (None, Some(of), _) => format!("declined: duplicate of {of}"),
            (None, None, R::FalseAlarm) => "declined: false alarm".into(),
            (None, None, R::NotUrgent) => "declined: not urgent".into(),
            (None, None, R::Duplicate) => "declined: duplicate".into(),
        },
        _ => words(phase),
    }
}

/// The first 12 characters of a SHA (enough to be unambiguous to people).
pub fn short(sha: &str) -> String {
    sha.chars().take(12).collect()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    r
}

pub async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

pub async fn js() -> Response {
    asset("text/javascript; charset=utf-8", JS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        assert!(env().is_ok());
        let out = render(
            "error.html",
            serde_json::json!({"status": 400, "code": "x", "message": "<script>alert(1)</script>"}),
        )
        .unwrap_or_default();
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.contains("<script>alert"));
    }
}
