//! `POST {auth_prefix}/backchannel-logout` (OpenID Connect Back-Channel Logout 1.0): the
//! provider says a user's session there ended, and every session it started here ends too, on
//! every replica. The provider is the only caller; its request carries no cookie, only a signed
//! logout token, which must verify ([`crate::oidc::logout_token`]) and is used once. Anything
//! else gets a 400 and ends nothing.

use std::time::Duration;

use super::{unix_now, Answer, SignIn};
use crate::config::App;
use crate::session::Owner;

/// The largest request body read: a logout token is a few hundred bytes to a few kilobytes.
pub const MAX_BODY: usize = 16 * 1024;

/// What became of a back-channel logout request, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The token verified; its sessions (if any were left) ended.
    Ended,
    /// The request or its token was refused; nothing ended.
    Refused,
    /// The session store could not be reached; the provider may send it again.
    Unavailable,
}

impl Outcome {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ended => "ended",
            Outcome::Refused => "refused",
            Outcome::Unavailable => "store_unavailable",
        }
    }
}

fn refused(description: &str) -> (Answer, Outcome) {
    (
        Answer::json(
            400,
            "backchannel_refused",
            serde_json::json!({"error": "invalid_request", "error_description": description}),
        ),
        Outcome::Refused,
    )
}

impl SignIn {
    /// Answers a back-channel logout request whose form body is `body`.
    pub async fn backchannel_logout(
        &self,
        app: &App,
        content_type: Option<&str>,
        body: &[u8],
    ) -> (Answer, Outcome) {
        let Some(provider) = &app.provider else {
            return refused("this app has no sign-in configured");
        };
        let form = content_type
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !form {
            return refused("the body must be application/x-www-form-urlencoded");
        }
        let mut tokens = url::form_urlencoded::parse(body).filter(|(k, _)| k == "logout_token");
        let token = match (tokens.next(), tokens.next()) {
            (Some((_, token)), None) => token,
            (None, _) => return refused("no logout_token"),
            (Some(_), Some(_)) => return refused("logout_token given more than once"),
        };
        let token = match provider.verify_logout_token(&token).await {
            Ok(token) => token,
            Err(why) => {
                tracing::warn!(app = %app.id, provider = %provider.id, reason = %why, "back-channel logout refused");
                return refused(&format!("invalid logout_token: {why}"));
            }
        };
        let unavailable = |e: crate::store::StoreError| {
            tracing::error!(app = %app.id, error = %e, "back-channel logout not done: session store unavailable");
            (
                Answer::json(
                    503,
                    "session_store_unavailable",
                    serde_json::json!({"error": "temporarily_unavailable", "error_description": "sessions cannot be ended right now"}),
                ),
                Outcome::Unavailable,
            )
        };
        // Used once, on every replica, for as long as the token is valid.
        let lives = Duration::from_secs(token.exp.saturating_sub(unix_now()).max(1) + 60);
        let jti = format!("logout:{}:{}", provider.id, token.jti);
        match self.store.single_use().claim(&jti, lives).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(app = %app.id, provider = %provider.id, "back-channel logout refused: logout token replayed");
                return refused("logout_token already used");
            }
            Err(e) => return unavailable(e),
        }
        let owner = match (&token.sid, &token.sub) {
            (Some(sid), sub) => Owner::ProviderSession {
                provider: &provider.id,
                sid,
                sub: sub.as_deref(),
            },
            (None, Some(sub)) => Owner::User {
                provider: Some(&provider.id),
                sub,
            },
            (None, None) => return refused("neither sid nor sub"),
        };
        match self.store.end_sessions_of(owner).await {
            Err(e) => {
                // Not done: the provider may send the token again, and it must be accepted then.
                if let Err(e) = self.store.single_use().release_claim(&jti).await {
                    tracing::warn!(error = %e, "a logout token's jti stays claimed after a failed logout");
                }
                unavailable(e)
            }
            Ok(ended) => {
                tracing::info!(app = %app.id, provider = %provider.id, sessions = ended, by_sid = token.sid.is_some(), "back-channel logout: sessions ended");
                (Answer::empty(200, "backchannel_logout"), Outcome::Ended)
            }
        }
    }
}
