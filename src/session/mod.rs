//! Server-side sign-in sessions. The browser holds only an opaque id (see [`cookie`]); the
//! tokens and claims stay here.

pub mod cookie;
pub mod memory;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::jwt::Claims;

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
    pub claims: Arc<Claims>,
    /// The raw ID token, kept for `id_token_hint` at sign-out.
    pub id_token: String,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<String>,
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
            .field("sub", &self.claims.get("sub"))
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
