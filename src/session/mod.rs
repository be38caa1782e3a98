//! Server-side sign-in sessions. The browser holds only an opaque id (see [`cookie`]); the
//! tokens and claims stay here.

pub mod cookie;
pub mod memory;
#[cfg(test)]
mod owners_tests;
pub mod packed;
pub mod record;
pub mod shared;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::jwt::ClaimSet;
use crate::store::StoreResult;
pub use record::UserRecord;

/// A session's times as a store keeps them: milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredTimes {
    /// When the tokens should be refreshed.
    pub tokens_expire_at: u64,
    /// When they were issued.
    pub tokens_issued_at: u64,
    /// The session's absolute end.
    pub expires_at: u64,
}

/// Bytes in a session id: 128 random bits, as OWASP recommends (the cookie adds a MAC).
pub const ID_LEN: usize = 16;

/// A session id.
pub type SessionId = [u8; ID_LEN];

/// One signed-in browser session of one app.
pub struct Session {
    /// The app the session belongs to; it is worthless on any other.
    pub app: Arc<str>,
    /// The OIDC provider that signed the user in.
    pub provider: Arc<str>,
    /// The user's claims (ID token, merged with userinfo when enabled), the ID token (for
    /// `id_token_hint` at sign-out) and the refresh token.
    pub user: UserRecord,
    /// When the tokens should be refreshed (expiry of the access token, or of the ID token),
    /// in milliseconds since the Unix epoch (the times are kept as 8 bytes, not 16).
    tokens_expire_at: u64,
    /// When those tokens were issued (sign-in or the last refresh), in the same unit: the
    /// refresh pace is bounded by their lifetime.
    tokens_issued_at: u64,
    /// The absolute end of the session (sign-in time + the app's `session_duration`).
    expires_at: u64,
    /// Last use (the idle timer).
    last_used: AtomicU64,
    /// The identity assertion last signed for this session (reused while fresh).
    pub assertion: crate::keys::assertion::AssertionSlot,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens are never printed.
        f.debug_struct("Session")
            .field("app", &self.app)
            .field("provider", &self.provider)
            .field("sub", &self.user.claim("sub"))
            .field("expires_at", &self.expires_at())
            .finish()
    }
}

impl Session {
    /// A session that starts now.
    pub fn new(
        app: Arc<str>,
        provider: Arc<str>,
        user: UserRecord,
        tokens_expire_at: SystemTime,
        expires_at: SystemTime,
    ) -> Session {
        Session {
            app,
            provider,
            user,
            tokens_expire_at: millis(tokens_expire_at),
            tokens_issued_at: now_millis(),
            expires_at: millis(expires_at),
            last_used: AtomicU64::new(now_millis()),
            assertion: Default::default(),
        }
    }

    /// A session as a store kept it: its times in milliseconds since the Unix epoch; the idle
    /// timer starts now (the store keeps the idle deadline itself).
    pub fn restore(
        app: Arc<str>,
        provider: Arc<str>,
        user: UserRecord,
        times: StoredTimes,
    ) -> Session {
        Session {
            app,
            provider,
            user,
            tokens_expire_at: times.tokens_expire_at,
            tokens_issued_at: times.tokens_issued_at,
            expires_at: times.expires_at,
            last_used: AtomicU64::new(now_millis()),
            assertion: Default::default(),
        }
    }

    /// The session's times, in milliseconds since the Unix epoch, for a store.
    pub fn stored_times(&self) -> StoredTimes {
        StoredTimes {
            tokens_expire_at: self.tokens_expire_at,
            tokens_issued_at: self.tokens_issued_at,
            expires_at: self.expires_at,
        }
    }

    /// The same sign-in with renewed tokens (after a refresh); the idle timer restarts.
    pub fn renewed(&self, user: UserRecord, tokens_expire_at: SystemTime) -> Session {
        Session::new(
            self.app.clone(),
            self.provider.clone(),
            user,
            tokens_expire_at,
            self.expires_at(),
        )
    }

    /// When the tokens should be refreshed.
    pub fn tokens_expire_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.tokens_expire_at)
    }

    /// When the current tokens were issued.
    pub fn tokens_issued_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.tokens_issued_at)
    }

    /// When the tokens are due for a refresh: `before` their expiry, but never before half
    /// their lifetime (at least a second) has passed, so a provider whose tokens live no
    /// longer than `before` is not asked again on every request.
    pub fn refresh_due_at(&self, before: Duration) -> SystemTime {
        let expire = self.tokens_expire_at();
        let issued = self.tokens_issued_at();
        let lifetime = expire.duration_since(issued).unwrap_or_default();
        let earliest = issued + (lifetime / 2).max(MIN_REFRESH_INTERVAL);
        expire
            .checked_sub(before)
            .unwrap_or(UNIX_EPOCH)
            .max(earliest)
    }

    /// The absolute end of the session.
    pub fn expires_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.expires_at)
    }

    /// Time since the session was last used.
    pub fn idle_for(&self) -> Duration {
        Duration::from_millis(now_millis().saturating_sub(self.last_used.load(Ordering::Relaxed)))
    }

    /// Counts a use: the idle timer restarts.
    pub fn touch(&self) {
        self.last_used.store(now_millis(), Ordering::Relaxed);
    }

    /// Time left before the absolute expiry (zero once passed).
    pub fn remaining(&self) -> Duration {
        Duration::from_millis(self.expires_at.saturating_sub(now_millis()))
    }
}

/// Two refreshes of one session's tokens are at least this far apart.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Whose sessions a lookup or an ending is about.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    /// Every session of the user `sub` — signed in by `provider`, or by any provider.
    User {
        /// The provider's id, or `None` for every provider.
        provider: Option<&'a str>,
        /// The user's `sub` at the provider.
        sub: &'a str,
    },
    /// Every session of one sign-in at the provider: its `sid` (OIDC Front- and Back-Channel
    /// Logout), and the `sub` when the provider names it too.
    ProviderSession {
        /// The provider's id.
        provider: &'a str,
        /// The provider's session id.
        sid: &'a str,
        /// The user, when the logout names them.
        sub: Option<&'a str>,
    },
}

impl Owner<'_> {
    /// True when `session` is one of the owner's.
    pub fn owns(&self, session: &Session) -> bool {
        let claim = |name: &str| {
            session
                .user
                .claim(name)
                .and_then(|v| v.as_str().map(str::to_owned))
        };
        match *self {
            Owner::User { provider, sub } => {
                provider.is_none_or(|p| p == &*session.provider)
                    && claim("sub").as_deref() == Some(sub)
            }
            Owner::ProviderSession { provider, sid, sub } => {
                provider == &*session.provider
                    && claim("sid").as_deref() == Some(sid)
                    && sub.is_none_or(|sub| claim("sub").as_deref() == Some(sub))
            }
        }
    }
}

/// Where sessions live. Implementations expire a session at its absolute `expires_at` and
/// after `idle_timeout` without use.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// The live session with this id, counting as a use (the idle timer restarts).
    async fn get(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>>;
    /// Stores (or replaces) a session.
    async fn put(&self, id: SessionId, session: Arc<Session>) -> StoreResult<()>;
    /// Removes a session.
    async fn remove(&self, id: &SessionId) -> StoreResult<()>;
    /// Whether the store serves now (for readiness): `Ok` with what it is, `Err` with why not.
    async fn health(&self) -> Result<String, String>;
    /// Leases shared with the other replicas, when sessions are shared (so exactly one
    /// replica refreshes a session); `None` for a store only this process sees.
    fn leases(&self) -> Option<&dyn crate::store::Leases> {
        None
    }
    /// Keys claimed once across every replica that shares the store: sign-in states, logout
    /// tokens' `jti`.
    fn single_use(&self) -> &dyn crate::store::SingleUse;
    /// The live sessions of `owner`, with their ids.
    async fn sessions_of(&self, owner: Owner<'_>) -> StoreResult<Vec<(SessionId, Arc<Session>)>>;
    /// Ends every live session of `owner` on every replica; how many there were.
    async fn end_sessions_of(&self, owner: Owner<'_>) -> StoreResult<usize> {
        let sessions = self.sessions_of(owner).await?;
        for (id, _) in &sessions {
            self.remove(id).await?;
        }
        Ok(sessions.len())
    }
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn now_millis() -> u64 {
    millis(SystemTime::now())
}

/// A session id as 32 lowercase hex digits (store keys, lease names, seal bindings).
pub fn id_hex(id: &SessionId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh random session id.
pub fn new_id() -> SessionId {
    let mut id = [0u8; ID_LEN];
    aws_lc_rs::rand::fill(&mut id).expect("the system random source is available");
    id
}

#[cfg(test)]
mod refresh_pace_tests {
    use super::*;

    fn session(lifetime: Duration) -> Session {
        let claims = serde_json::json!({"sub": "u1"});
        let user = UserRecord::new(claims.as_object().unwrap(), "a.b.c", Some("r")).unwrap();
        Session::new(
            "app".into(),
            "idp".into(),
            user,
            SystemTime::now() + lifetime,
            SystemTime::now() + Duration::from_secs(86_400),
        )
    }

    #[test]
    fn refreshes_come_before_expiry_but_at_most_once_per_half_lifetime() {
        let hour = session(Duration::from_secs(3600));
        let due = hour.refresh_due_at(Duration::from_secs(60));
        assert_eq!(due, hour.tokens_expire_at() - Duration::from_secs(60));
        // Tokens that live no longer than the margin: half their lifetime, not at once.
        let short = session(Duration::from_secs(30));
        let due = short.refresh_due_at(Duration::from_secs(60));
        assert_eq!(due, short.tokens_issued_at() + Duration::from_secs(15));
        // Tokens with no lifetime at all: still at most one refresh a second.
        let none = session(Duration::ZERO);
        let due = none.refresh_due_at(Duration::from_secs(60));
        assert_eq!(due, none.tokens_issued_at() + MIN_REFRESH_INTERVAL);
    }
}
