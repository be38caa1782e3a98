//! Server-side sign-in sessions. The browser holds only an opaque id (see [`cookie`]); the
//! tokens and claims stay here.

pub mod cookie;
pub mod memory;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use serde_json::Value;

use crate::jwt::{ClaimSet, Claims};

/// A session's claims, stored compactly: one boxed slice sorted by name, looked up by binary
/// search. A `serde_json` map of the same claims takes about twice the memory (B-tree nodes
/// sized for eleven entries), and sessions are many.
#[derive(Clone, Debug, PartialEq)]
pub struct CompactClaims(Box<[(Box<str>, Value)]>);

impl CompactClaims {
    /// The claims as a JSON map (for `/_auth/me` and token refresh; not the hot path).
    pub fn to_map(&self) -> Claims {
        self.0
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

impl From<Claims> for CompactClaims {
    fn from(claims: Claims) -> CompactClaims {
        let mut entries: Vec<(Box<str>, Value)> = claims
            .into_iter()
            .map(|(k, v)| (k.into_boxed_str(), v))
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        CompactClaims(entries.into_boxed_slice())
    }
}

impl ClaimSet for CompactClaims {
    fn claim(&self, name: &str) -> Option<&Value> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

/// A session id: 32 random bytes.
pub type SessionId = [u8; 32];

/// One signed-in browser session of one app.
#[derive(Clone)]
pub struct Session {
    /// The app the session belongs to; it is worthless on any other.
    pub app: Arc<str>,
    /// The OIDC provider that signed the user in.
    pub provider: Arc<str>,
    /// The user's claims (ID token, merged with userinfo when enabled).
    pub claims: CompactClaims,
    /// The raw ID token, kept for `id_token_hint` at sign-out.
    pub id_token: Box<str>,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<Box<str>>,
    /// When the tokens should be refreshed (expiry of the access token, or of the ID token).
    pub tokens_expire_at: SystemTime,
    /// The absolute end of the session (sign-in time + the app's `session_duration`).
    pub expires_at: SystemTime,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are never printed.
        f.debug_struct("Session")
            .field("app", &self.app)
            .field("provider", &self.provider)
            .field("sub", &self.claims.claim("sub"))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl Session {
    /// Time left before the absolute expiry (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.expires_at
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
    }
}

/// Where sessions live. Implementations expire a session at its absolute `expires_at` and
/// after `idle_timeout` without use.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The live session with this id, counting as a use (the idle timer restarts).
    async fn get(&self, id: &SessionId) -> Option<Arc<Session>>;
    /// Stores (or replaces) a session.
    async fn put(&self, id: SessionId, session: Arc<Session>);
    /// Removes a session.
    async fn remove(&self, id: &SessionId);
}

/// A fresh random session id.
pub fn new_id() -> SessionId {
    let mut id = [0u8; 32];
    aws_lc_rs::rand::fill(&mut id).expect("the system random source is available");
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_claims_find_every_claim() {
        let claims = serde_json::json!({"sub": "u", "groups": ["a"], "email": "e", "z": 1});
        let map = claims.as_object().unwrap().clone();
        let compact = CompactClaims::from(map.clone());
        for (k, v) in &map {
            assert_eq!(compact.claim(k), Some(v));
        }
        assert_eq!(compact.claim("missing"), None);
        assert_eq!(compact.to_map(), map);
    }
}
