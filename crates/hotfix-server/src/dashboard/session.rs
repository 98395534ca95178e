//! Signing in to the dashboard, and what protects its forms.
//!
//! People sign in by pasting an API token (the same token the CLI uses,
//! created with `hotfix serve token create`): there is no second password
//! database to keep. The token goes into an `HttpOnly` (scripts cannot read
//! it), `SameSite=Strict` (other sites cannot make the browser send it)
//! cookie; every request looks it up again, so revoking the token signs the
//! browser out at once.
//!
//! `Secure` is added when the browser reached us over HTTPS (the form's
//! `Origin` is `https://…`, or a proxy says `X-Forwarded-Proto: https`):
//! always adding it would make sign-in silently fail on plain
//! `http://127.0.0.1`, the way the server runs on a laptop and in tests.
//!
//! Forms are protected against cross-site request forgery twice: the
//! cookie is `SameSite=Strict`, and every dashboard POST whose `Origin` is
//! present and is not this host (or whose `Sec-Fetch-Site` is
//! `cross-site`) is refused before anything is read or written.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::render::{self, Flash, Layout};
use crate::auth::{COOKIE, Caller, MaybeCaller, authenticate};
use crate::{ApiError, AppState};

/// The cookie that carries a one-off message to the next page.
pub const FLASH_COOKIE: &str = "hotfix_flash";

/// Refuses a state-changing request that another site made the browser send.
pub fn check_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let refuse = || {
        ApiError::forbidden("cross-origin request refused: dashboard forms only work from the dashboard's own pages")
            .with_hint("open the dashboard at its own address and submit the form there")
    };
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Err(refuse());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| refuse())?.trim();
    let Some(host) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        // `null` (sandboxed frames, some redirects) or another scheme.
        return Err(refuse());
    };
    // Behind a proxy the Host header may be rewritten; the browser cannot
    // set X-Forwarded-Host on a cross-site form, so trusting it is safe.
    let ours = [header::HOST.as_str(), "x-forwarded-host"]
        .into_iter()
        .filter_map(|h| headers.get(h).and_then(|v| v.to_str().ok()))
        .filter_map(|v| v.split(',').next())
        .any(|v| v.trim().eq_ignore_ascii_case(host));
    if ours { Ok(()) } else { Err(refuse()) }
}

/// Was this request made over HTTPS (as the browser or the proxy sees it)?
fn https(headers: &HeaderMap) -> bool {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase())
    };
    h("x-forwarded-proto").is_some_and(|p| p.split(',').next() == Some("https"))
        || h(header::ORIGIN.as_str()).is_some_and(|o| o.starts_with("https://"))
}

/// A `Set-Cookie` value for one of the dashboard's cookies: `HttpOnly`,
/// `SameSite=Strict`, the whole site, `Secure` over HTTPS; `max_age` in
/// seconds (`Some(0)` deletes it), else a session cookie. `None` if the
/// value cannot be a header (never, for the hex and token values used).
fn set_cookie(
    name: &'static str,
    value: String,
    secure: bool,
    max_age: Option<i64>,
) -> Option<HeaderValue> {
    let mut c = cookie::Cookie::build((name, value))
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .path("/")
        .secure(secure);
    if let Some(s) = max_age {
        c = c.max_age(cookie::time::Duration::seconds(s));
    }
    HeaderValue::from_str(&c.build().to_string()).ok()
}

/// Only local paths: `next` comes from the query string, and redirecting
/// to wherever it says would make the sign-in page an open redirect.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains(['\\', '\r', '\n'])
                && !n.starts_with("/login")
                && n.len() <= 2000 =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// What [`encode`] escapes: everything but RFC 3986's unreserved
/// characters and `/` (kept so that `next=/incidents/HF-1` stays readable in
/// the address bar; a `/` means nothing special inside a query value).
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a query value (RFC 3986 unreserved characters and `/`
/// stay; UTF-8 bytes are escaped one by one).
pub fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, QUERY_VALUE).to_string()
}

/// 303 to `to`.
pub fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// The way to the sign-in form, coming back to where the person was.
#[derive(Debug)]
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        see_other(&self.0)
    }
}

/// The signed-in caller, or a redirect to the sign-in form that comes back here.
pub fn require(c: MaybeCaller, uri: &Uri) -> Result<Caller, ToLogin> {
    match c.0 {
        Some(c) => Ok(c),
        None => {
            let back = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            Err(ToLogin(format!("/login?next={}", encode(back))))
        }
    }
}

/// The flash the previous action left, if any.
pub fn take_flash(headers: &HeaderMap) -> Option<Flash> {
    let v = crate::auth::cookie(headers, FLASH_COOKIE)?;
    let (kind, hexed) = v.split_once('.')?;
    let kind = match kind {
        "ok" => "ok",
        "error" => "error",
        _ => return None,
    };
    let text = String::from_utf8(hex::decode(hexed).ok()?).ok()?;
    Some(Flash { kind, text })
}

/// Sets a flash for the next page (hex-encoded: cookie values cannot hold
/// every character a message can).
pub fn set_flash(r: &mut Response, f: &Flash) {
    let text: String = f.text.chars().take(600).collect();
    let value = format!("{}.{}", f.kind, hex::encode(text.as_bytes()));
    if let Some(v) = set_cookie(FLASH_COOKIE, value, false, Some(60)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// Clears the flash once a page showed it.
pub fn clear_flash(r: &mut Response) {
    if let Some(v) = set_cookie(FLASH_COOKIE, String::new(), false, Some(0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Serialize)]
struct LoginCtx<'a> {
    next: &'a str,
    error: Option<&'a str>,
    signed_in_as: Option<&'a str>,
}

fn login_page(
    status: StatusCode,
    next: &str,
    error: Option<&str>,
    user: Option<&Caller>,
) -> Response {
    let body = render::render(
        "login.html",
        LoginCtx {
            next,
            error,
            signed_in_as: user.map(|c| c.user.as_str()),
        },
    )
    .and_then(|c| {
        render::page(
            Layout {
                title: "Sign in".into(),
                user,
                ..Default::default()
            },
            c,
        )
    });
    let mut res = match body {
        Ok(b) => render::html(status, b),
        Err(e) => render::error_page(&e, user),
    };
    // The log says why a sign-in was refused, as it does for the API.
    if let Some(why) = error.filter(|_| status.is_client_error()) {
        res.extensions_mut().insert(crate::log::Reason {
            code: if status == StatusCode::FORBIDDEN {
                "forbidden".into()
            } else if status == StatusCode::UNAUTHORIZED {
                "unauthorized".into()
            } else {
                "bad_request".into()
            },
            message: why.to_string(),
        });
    }
    res
}

/// `GET /login`: the form.
pub async fn login_form(c: MaybeCaller, Query(q): Query<LoginQuery>) -> Response {
    let next = safe_next(q.next.as_deref());
    login_page(StatusCode::OK, &next, None, c.0.as_ref())
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login`: checks the token and sets the session cookie.
pub async fn login(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    if let Err(e) = check_origin(&headers) {
        return render::error_page(&e, None);
    }
    let Ok(Form(f)) = form else {
        return login_page(
            StatusCode::BAD_REQUEST,
            "/",
            Some("the sign-in form was not sent as a form"),
            None,
        );
    };
    let next = safe_next(f.next.as_deref());
    let token = f.token.trim().to_string();
    // Tokens are `hf_` + hex; anything else cannot be one, and must never
    // end up in a Set-Cookie header.
    if token.is_empty()
        || token.len() > 200
        || !token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return login_page(
            StatusCode::BAD_REQUEST,
            &next,
            Some(
                "paste an API token (it starts with hf_); create one with `hotfix serve token create`",
            ),
            None,
        );
    }
    match authenticate(&st, token.clone()).await {
        // The monitoring tools' credential never signs in (`auth::not_intake`).
        Ok(Some(c)) if c.role == hotfix_core::team::ApiRole::Intake => login_page(
            StatusCode::FORBIDDEN,
            &next,
            Some(
                "an intake token may only post alerts; sign in with a developer, tech_lead or admin token",
            ),
            None,
        ),
        Ok(Some(_)) => {
            let mut r = see_other(&next);
            if let Some(v) = set_cookie(COOKIE, token, https(&headers), None) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            r
        }
        Ok(None) => login_page(
            StatusCode::UNAUTHORIZED,
            &next,
            Some("unknown or revoked token"),
            None,
        ),
        Err(e) => render::error_page(&e, None),
    }
}

/// `POST /logout`: forgets the cookie (the token itself stays valid for
/// the CLI; revoke it with `hotfix serve token revoke`).
pub async fn logout(headers: HeaderMap) -> Response {
    if let Err(e) = check_origin(&headers) {
        return render::error_page(&e, None);
    }
    let mut r = see_other("/login");
    if let Some(v) = set_cookie(COOKIE, String::new(), https(&headers), Some(0)) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn origin_must_be_this_host_when_present() {
        assert!(check_origin(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(
            check_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ]))
            .is_ok()
        );
        assert!(
            check_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example")
            ]))
            .is_err()
        );
        assert!(check_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])).is_err());
        assert!(
            check_origin(&headers(&[
                ("host", "10.0.0.5:8080"),
                ("x-forwarded-host", "hotfix.example.com"),
                ("origin", "https://hotfix.example.com")
            ]))
            .is_ok()
        );
        assert!(
            check_origin(&headers(&[
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site")
            ]))
            .is_err()
        );
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/incidents/HF-1")), "/incidents/HF-1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(encode("/log?q=a b&x=1"), "/log%3Fq%3Da%20b%26x%3D1");
    }

    #[test]
    fn query_values_are_escaped_byte_by_byte() {
        // `+` would read as a space in a query; `%` as an escape.
        assert_eq!(encode("a+b%2Fc"), "a%2Bb%252Fc");
        // Multi-byte UTF-8: every byte, upper-case hex.
        assert_eq!(encode("/incidents/ünï"), "/incidents/%C3%BCn%C3%AF");
        assert_eq!(encode("-_.~/AZaz09"), "-_.~/AZaz09");
        assert_eq!(encode("#\"\r\n"), "%23%22%0D%0A");
        // The sign-in redirect keeps the way back as one value.
        let uri: Uri = "/incidents/HF-1?tab=log&q=a%20b".parse().unwrap();
        let to = match require(MaybeCaller(None), &uri) {
            Err(ToLogin(to)) => to,
            Ok(_) => panic!("signed in"),
        };
        assert_eq!(to, "/login?next=/incidents/HF-1%3Ftab%3Dlog%26q%3Da%2520b");
    }

    #[test]
    fn dashboard_cookies_carry_their_attributes() {
        let v = set_cookie(COOKIE, "hf_1".into(), false, None).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("hotfix_session=hf_1;"), "{v}");
        for a in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(v.split("; ").any(|p| p == a), "{a}: {v}");
        }
        assert!(!v.contains("Secure") && !v.contains("Max-Age"), "{v}");
        let v = set_cookie(COOKIE, String::new(), true, Some(0)).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("hotfix_session=;"), "{v}");
        assert!(v.contains("; Secure") && v.contains("; Max-Age=0"), "{v}");
        let mut r = StatusCode::OK.into_response();
        clear_flash(&mut r);
        let v = r.headers()[header::SET_COOKIE].to_str().unwrap();
        assert!(
            v.starts_with("hotfix_flash=;") && v.contains("Max-Age=0"),
            "{v}"
        );
    }

    #[test]
    fn flash_round_trips_through_its_cookie() {
        let mut r = StatusCode::OK.into_response();
        let f = Flash {
            kind: "error",
            text: "dev@example.com may not approve; \"quoted\" ünïcode".into(),
        };
        set_flash(&mut r, &f);
        let sc = r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        let pair = sc.split(';').next().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        assert_eq!(take_flash(&h), Some(f));
    }
}
