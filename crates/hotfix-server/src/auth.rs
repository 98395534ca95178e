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
    pub token_id: i64,
}

impl Caller {
    pub fn from_record(r: TokenRecord) -> Caller {
        Caller {
            user: r.user,
            role: r.role,
            token_id: r.id,
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

/// The token a request carries: `Authorization: Bearer …`, else the dashboard cookie.
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
    }
    cookie(headers, COOKIE)
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
