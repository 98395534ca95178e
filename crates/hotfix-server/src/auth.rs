//! API tokens and who is calling.
//!
//! A token is 32 random bytes shown once (`hf_` + hex). The store keeps only
//! its SHA-256: tokens are random and long, so a fast hash is enough (there
//! is nothing to brute-force as with a password) and lookups stay cheap on
//! every request. The dashboard keeps the token in an `HttpOnly`,
//! `SameSite=Strict` cookie after a sign-in form.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use hotfix_core::team::{ApiRole, TeamStore, TokenRecord};
use rand::Rng as _;
use sha2::{Digest, Sha256};

use crate::{ApiError, AppState};

/// The cookie the dashboard signs in with.
pub const COOKIE: &str = "hotfix_session";

/// A new random token (`hf_` + 64 hex digits).
pub fn generate_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    format!("hf_{}", hex::encode(b))
}

/// What the store keeps of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

/// Creates a token for `user` with `role`; returns the token (shown once) and its record id.
pub fn create_token(
    store: &dyn TeamStore,
    user: &str,
    role: ApiRole,
    now_s: i64,
) -> Result<(String, i64), ApiError> {
    let user = user.trim();
    if user.is_empty() || user.len() > 200 || user.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(
            "a token needs the team identity it acts as (e.g. lead@example.com)",
        ));
    }
    let token = generate_token();
    let id = store.token_create(user, role, &hash_token(&token), now_s)?;
    Ok((token, id))
}

/// The person (or system) behind a request, from its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub role: ApiRole,
}

impl Caller {
    pub fn from_record(r: TokenRecord) -> Caller {
        Caller {
            user: r.user,
            role: r.role,
        }
    }

    /// The rulebook's view of this caller acting through `door`.
    pub fn actor(&self, door: hotfix_core::admit::Door) -> hotfix_core::admit::Actor<'_> {
        hotfix_core::admit::Actor::new(&self.user, door).with_role(self.role)
    }

    /// Refuses unless the caller has at least `role`.
    pub fn require(&self, role: ApiRole, what: &str) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{what} needs a {} token; {} has a {} token",
                role.as_str(),
                self.user,
                self.role.as_str()
            )))
        }
    }
}

/// The token a request carries: `Authorization: Bearer …`, or HTTP basic
/// auth whose password (else user name) is the token (senders such as
/// Alertmanager's `basic_auth` can only do that); without that header, the
/// dashboard cookie.
///
/// A request that has the header is judged by it alone: a header that is
/// not one of those (no scheme, another scheme, nothing after `Bearer`,
/// basic credentials that are not base64 of `user:token`, the header twice)
/// is a 401 that says so, and never falls back to the cookie. The message
/// does not repeat the header, which may be a token sent without `Bearer `.
pub fn request_token(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Ok(cookie(headers, COOKIE));
    };
    if values.next().is_some() {
        return Err(malformed("it is sent more than once"));
    }
    let v = value
        .to_str()
        .map_err(|_| malformed("it is not plain ASCII text"))?
        .trim();
    let (scheme, rest) = v
        .split_once(|c: char| c.is_ascii_whitespace())
        .map_or((v, ""), |(s, r)| (s, r.trim()));
    if scheme.eq_ignore_ascii_case("bearer") {
        return match rest {
            "" => Err(malformed("`Bearer` is not followed by a token")),
            t if t.contains(|c: char| c.is_ascii_whitespace()) => {
                Err(malformed("the bearer token contains spaces"))
            }
            t => Ok(Some(t.to_string())),
        };
    }
    if scheme.eq_ignore_ascii_case("basic") {
        return basic_token(rest).map(Some).map_err(malformed);
    }
    Err(malformed(if rest.is_empty() {
        "it has no scheme (a token goes after `Bearer `)"
    } else {
        "its scheme is neither `Bearer` nor `Basic`"
    }))
}

/// [`request_token`] for callers that treat a malformed header as no
/// credential at all (still never the cookie instead).
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    request_token(headers).ok().flatten()
}

/// The 401 of an `Authorization` header that carries no usable token.
fn malformed(why: &str) -> ApiError {
    ApiError::unauthorized(format!("malformed Authorization header: {why}")).with_hint(
        "send `Authorization: Bearer <token>`, or HTTP basic auth with the token as the password; a request with this header is never signed in by the session cookie",
    )
}

/// The token in a basic credential (`base64(user:password)`): the password,
/// or the user name when the password is empty.
fn basic_token(b64: &str) -> Result<String, &'static str> {
    if b64.is_empty() {
        return Err("`Basic` is not followed by credentials");
    }
    let raw = base64_decode(b64)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("the `Basic` credentials are not base64 of `user:token`")?;
    let (user, pass) = raw.split_once(':').unwrap_or((raw.as_str(), ""));
    [pass, user]
        .into_iter()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .map(String::from)
        .ok_or("the `Basic` credentials carry no token")
}

/// Standard (or URL-safe) base64, padding optional; `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

/// One cookie's value: the first non-empty one of that name in any
/// `Cookie` header (HTTP/2 clients may send several), without the double
/// quotes RFC 6265 allows around a value. Pairs that do not parse are
/// skipped, not the whole header: a broken cookie another app on the same
/// host left does not sign anyone out.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == name && !c.value_trimmed().is_empty())
        .map(|c| c.value_trimmed().to_string())
}

/// Looks a token up (on a blocking thread).
pub async fn authenticate(st: &AppState, token: String) -> Result<Option<Caller>, ApiError> {
    st.blocking(move |st| {
        Ok(st
            .store
            .token_lookup(&hash_token(&token))?
            .map(Caller::from_record))
    })
    .await
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        let Some(token) = request_token(&parts.headers)? else {
            return Err(ApiError::unauthorized(
                "no API token: send `Authorization: Bearer <token>` (create one with `hotfix serve token create`)",
            ));
        };
        // The dashboard's session cookie is sent by the browser on its own,
        // also on requests another site makes it send: for the JSON API it
        // only reads. Writes need the token in a header, which no other
        // site can make the browser add (no CSRF through the API).
        let from_header = parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION);
        let safe = matches!(
            parts.method,
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if !from_header && !safe {
            return Err(ApiError::unauthorized(
                "the JSON API takes its token in `Authorization` for writes; the browser session only reads",
            )
            .with_hint("use the dashboard's buttons, or send `Authorization: Bearer <token>`"));
        }
        authenticate(st, token)
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown or revoked API token"))
            .and_then(not_intake)
    }
}

/// Every route that takes a [`Caller`] (all but the alert route, which
/// authenticates on its own) refuses an `intake` token: it is the
/// credential a monitoring tool keeps in its config, and must not read
/// incidents, append steps, approve or sign in to the dashboard if it
/// leaks.
pub fn not_intake(c: Caller) -> Result<Caller, ApiError> {
    if c.role == ApiRole::Intake {
        return Err(ApiError::forbidden(format!(
            "{} has an intake token, which may only post alerts (POST /api/v1/alerts/{{source}})",
            c.user
        ))
        .with_hint("use a developer, tech_lead or admin token (`hotfix serve token create`)"));
    }
    Ok(c)
}

/// A caller if the request is signed in, without refusing anonymous ones
/// (the dashboard shows a sign-in form instead).
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        // A malformed header is refused here too rather than read as
        // "signed out": the cookie is never the fallback for it.
        match request_token(&parts.headers)? {
            None => Ok(MaybeCaller(None)),
            Some(t) => Ok(MaybeCaller(
                authenticate(st, t).await?.map(not_intake).transpose()?,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let a = generate_token();
        let b = generate_token();
        assert_ne!(a, b);
        assert!(a.starts_with("hf_") && a.len() == 67);
        assert_eq!(hash_token(&a), hash_token(&format!(" {a}\n")));
        assert_ne!(hash_token(&a), hash_token(&b));
        assert!(!hash_token(&a).contains(&a[3..]));
    }

    #[test]
    fn basic_auth_carries_the_token_as_password_or_user() {
        let mut h = HeaderMap::new();
        // base64("alertmanager:hf_abc")
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxlcnRtYW5hZ2VyOmhmX2FiYw==".parse().unwrap(),
        );
        assert_eq!(token_of(&h).as_deref(), Some("hf_abc"));
        // base64("hf_abc:")
        h.insert(header::AUTHORIZATION, "Basic aGZfYWJjOg==".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("hf_abc"));
        // Padding is optional, and the URL-safe alphabet is read too.
        h.insert(header::AUTHORIZATION, "basic aGZfYWJjOg".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("hf_abc"));
        assert_eq!(base64_decode("aGk").as_deref(), Some(&b"hi"[..]));
        assert_eq!(base64_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64_decode("+/8=").as_deref(), Some(&[0xfb, 0xff][..]));
        for bad in ["!!!", "a", "aGk=x", "a b"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(token_of(&h), None);
    }

    #[test]
    fn a_malformed_header_is_a_clear_401_and_never_falls_back_to_the_cookie() {
        let with = |auth: &[&[u8]]| {
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, "hotfix_session=fromcookie".parse().unwrap());
            for a in auth {
                h.append(
                    header::AUTHORIZATION,
                    header::HeaderValue::from_bytes(a).unwrap(),
                );
            }
            h
        };
        let cases: &[(&[u8], &str)] = &[
            (b"xyz", "has no scheme"),
            (b"hf_secret_token", "has no scheme"),
            (b"Basic !!!", "not base64"),
            (b"Basic", "not followed by credentials"),
            (b"Basic Og==", "carry no token"), // base64(":")
            (b"Basic //79", "not base64"),     // not UTF-8 once decoded
            (b"Bearer ", "not followed by a token"),
            (b"Bearer", "not followed by a token"),
            (b"Bearer a b", "contains spaces"),
            (b"Digest username=\"x\"", "neither `Bearer` nor `Basic`"),
            (b"Token hf_secret_token", "neither `Bearer` nor `Basic`"),
            (b"Bearer \xff", "not plain ASCII"),
        ];
        for (auth, why) in cases {
            let shown = String::from_utf8_lossy(auth);
            let h = with(&[auth]);
            let e = request_token(&h).expect_err(&shown);
            assert_eq!(e.status, axum::http::StatusCode::UNAUTHORIZED, "{shown}");
            assert!(
                e.message.starts_with("malformed Authorization header: ")
                    && e.message.contains(why),
                "{shown}: {}",
                e.message
            );
            assert!(!e.message.contains("secret"), "echoed: {}", e.message);
            assert!(
                e.hint
                    .as_deref()
                    .is_some_and(|h| h.contains("Bearer <token>"))
            );
            assert_eq!(token_of(&h), None, "{shown}: not the cookie");
        }
        let twice = with(&[b"Bearer a", b"Bearer b"]);
        assert!(request_token(&twice).is_err_and(|e| e.message.contains("more than once")));
        // Well-formed headers, in any case of the scheme, and no header at all.
        assert_eq!(
            request_token(&with(&[b"BEARER  hf_x "]))
                .unwrap()
                .as_deref(),
            Some("hf_x")
        );
        assert_eq!(
            request_token(&with(&[])).unwrap().as_deref(),
            Some("fromcookie")
        );
        assert_eq!(request_token(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn cookies_are_read_as_browsers_send_them() {
        let jar = |values: &[&str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::COOKIE, v.parse().unwrap());
            }
            cookie(&h, COOKIE)
        };
        let got = |values: &[&str]| jar(values);
        assert_eq!(got(&["hotfix_session=hf_1"]).as_deref(), Some("hf_1"));
        // Spaces around `;` and `=`, other cookies first, a value with `=`.
        assert_eq!(
            got(&["a=b=c;hotfix_session = hf_2 ; z=1"]).as_deref(),
            Some("hf_2")
        );
        // RFC 6265 lets a value sit in double quotes.
        assert_eq!(got(&["hotfix_session=\"hf_3\""]).as_deref(), Some("hf_3"));
        // Several Cookie headers; an empty value does not count.
        assert_eq!(
            got(&["hotfix_session=", "x=1", "hotfix_session=hf_4"]).as_deref(),
            Some("hf_4")
        );
        assert_eq!(got(&["hotfix_session=\"\""]), None);
        // A pair without `=` (left by another app) is skipped, not fatal.
        assert_eq!(got(&["junk; hotfix_session=hf_5"]).as_deref(), Some("hf_5"));
        // Names are exact: no prefix, suffix or case folding.
        assert_eq!(got(&["hotfix_session_old=hf_6; HOTFIX_SESSION=hf_7"]), None);
        assert_eq!(got(&[]), None);
    }

    #[test]
    fn basic_credentials_in_utf8_and_with_base64_edge_cases() {
        let token = |b64: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Basic {b64}").parse().unwrap(),
            );
            request_token(&h)
        };
        // base64("jürgen:hf_abc"): a user name in UTF-8.
        assert_eq!(
            token("asO8cmdlbjpoZl9hYmM=").unwrap().as_deref(),
            Some("hf_abc")
        );
        // base64("u:hf_>>>?") has `+` and `/` in the standard alphabet,
        // `-` and `_` in the URL-safe one: both read the same.
        for b64 in ["dTpoZl8+Pj4/", "dTpoZl8-Pj4_"] {
            assert_eq!(token(b64).unwrap().as_deref(), Some("hf_>>>?"), "{b64}");
        }
        // A `+` that a form decoder turned into a space is not base64.
        assert!(token("dTpoZl8 Pj4/").is_err());
        // A password with `:` keeps everything after the first one.
        // base64("u:hf_a:b")
        assert_eq!(token("dTpoZl9hOmI=").unwrap().as_deref(), Some("hf_a:b"));
        // Padding in the middle or too much of it is malformed.
        for bad in ["aGk==", "aG=k", "aGk=x"] {
            assert!(token(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_header_wins_over_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "x=1; hotfix_session=fromcookie".parse().unwrap(),
        );
        assert_eq!(token_of(&h).as_deref(), Some("fromcookie"));
        h.insert(header::AUTHORIZATION, "Bearer fromheader".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("fromheader"));
    }
}
