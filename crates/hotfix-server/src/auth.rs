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
use rand::RngCore;
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
/// Alertmanager's `basic_auth` can only do that), else the dashboard cookie.
pub fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let v = v.trim();
        if let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
        {
            return Some(t.trim().to_string());
        }
        if let Some(t) = v
            .strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
            .and_then(basic_token)
        {
            return Some(t);
        }
    }
    cookie(headers, COOKIE)
}

/// The token in a basic credential (`base64(user:password)`): the password,
/// or the user name when the password is empty.
fn basic_token(b64: &str) -> Option<String> {
    let raw = String::from_utf8(base64_decode(b64.trim())?).ok()?;
    let (user, pass) = raw.split_once(':').unwrap_or((raw.as_str(), ""));
    [pass, user]
        .into_iter()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .map(String::from)
}

/// Standard (or URL-safe) base64, padding optional; `None` if malformed.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        buf = (buf << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// One cookie's value.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    for v in headers.get_all(header::COOKIE) {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(';') {
            if let Some((k, val)) = part.trim().split_once('=')
                && k == name
                && !val.is_empty()
            {
                return Some(val.to_string());
            }
        }
    }
    None
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
        let Some(token) = token_of(&parts.headers) else {
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
    }
}

/// A caller if the request is signed in, without refusing anonymous ones
/// (the dashboard shows a sign-in form instead).
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, Self::Rejection> {
        match token_of(&parts.headers) {
            None => Ok(MaybeCaller(None)),
            Some(t) => Ok(MaybeCaller(authenticate(st, t).await?)),
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
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(token_of(&h), None);
        assert_eq!(base64_decode("aGk").as_deref(), Some(&b"hi"[..]));
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
