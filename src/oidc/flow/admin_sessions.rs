//! Sessions as the admin API sees them: a user's sessions listed, one ended, all ended. The
//! API never shows a session's id (half of what a cookie proves) or its tokens: each session
//! is named by a handle, its id sealed under the cookie keys, which only the gateway opens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;

use super::SignIn;
use crate::config::Gateway;
use crate::jwt::ClaimSet;
use crate::session::{Owner, SessionId, ID_LEN};
use crate::store::StoreResult;

/// What the admin API says of one session.
#[derive(Debug, Serialize)]
pub struct SessionView {
    /// Names the session to `DELETE /api/sessions/{handle}`.
    pub handle: String,
    /// The app signed in to.
    pub app: String,
    /// The provider that signed the user in.
    pub provider: String,
    /// The user at that provider.
    pub sub: Option<String>,
    /// The provider's session, when its ID token named one.
    pub sid: Option<String>,
    /// When the current tokens were issued (sign-in or last refresh), Unix seconds.
    pub tokens_issued_at: u64,
    /// When they are due for a refresh, Unix seconds.
    pub tokens_expire_at: u64,
    /// The session's absolute end, Unix seconds.
    pub expires_at: u64,
}

/// What a handle's seal is bound to.
const HANDLE: &str = "session-handle";

fn unix(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SignIn {
    fn handle(&self, gw: &Gateway, id: &SessionId) -> String {
        URL_SAFE_NO_PAD.encode(self.keys(gw).seal_bytes("", HANDLE, id))
    }

    fn open_handle(&self, gw: &Gateway, handle: &str) -> Option<SessionId> {
        let raw = URL_SAFE_NO_PAD.decode(handle).ok()?;
        let plain = self.keys(gw).open_bytes("", HANDLE, &raw)?;
        <[u8; ID_LEN]>::try_from(plain.as_slice()).ok()
    }

    /// The live sessions of `sub` (signed in by `provider`, or by any).
    pub async fn user_sessions(
        &self,
        gw: &Gateway,
        sub: &str,
        provider: Option<&str>,
    ) -> StoreResult<Vec<SessionView>> {
        let found = self
            .store
            .sessions_of(Owner::User { provider, sub })
            .await?;
        let text = |s: &crate::session::Session, name: &str| {
            s.user
                .claim(name)
                .and_then(|v| v.as_str().map(str::to_string))
        };
        Ok(found
            .iter()
            .map(|(id, s)| SessionView {
                handle: self.handle(gw, id),
                app: s.app.to_string(),
                provider: s.provider.to_string(),
                sub: text(s, "sub"),
                sid: text(s, "sid"),
                tokens_issued_at: unix(s.tokens_issued_at()),
                tokens_expire_at: unix(s.tokens_expire_at()),
                expires_at: unix(s.expires_at()),
            })
            .collect())
    }

    /// Ends every session of `sub` (signed in by `provider`, or by any) on every replica;
    /// how many there were.
    pub async fn end_user_sessions(&self, sub: &str, provider: Option<&str>) -> StoreResult<usize> {
        self.store
            .end_sessions_of(Owner::User { provider, sub })
            .await
    }

    /// Ends the session `handle` names on every replica; false when it names none (a handle
    /// that does not open, or a session that already ended).
    pub async fn end_session(&self, gw: &Gateway, handle: &str) -> StoreResult<bool> {
        let Some(id) = self.open_handle(gw, handle) else {
            return Ok(false);
        };
        if self.store.get(&id).await?.is_none() {
            return Ok(false);
        }
        self.store.remove(&id).await?;
        Ok(true)
    }
}
