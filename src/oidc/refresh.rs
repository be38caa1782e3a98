//! Token refresh for signed-in sessions: once per session however many requests find the
//! tokens due (single-flight), paced by the tokens' lifetime, and forgiving of provider blips.
//!
//! A refresh that fails because the provider could not be reached, timed out, or answered
//! something other than a token response keeps the session: it serves on until its tokens
//! actually expire, and the refresh is retried with backoff (1 s, doubling, at most 30 s). The
//! session ends when the provider refuses the refresh token (`invalid_grant` and the other
//! OAuth errors that say the grant is no good), when the new ID token does not verify or
//! describes another sign-in, or when the tokens expire with the provider still away.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::config::{App, Gateway};
use crate::oidc::flow::Lookup;
use crate::oidc::ProviderError;
use crate::session::{Session, SessionId, SessionStore};

/// The first retry after a failed refresh waits this long; each further failure doubles it.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Retries are never further apart than this.
const LONGEST_RETRY: Duration = Duration::from_secs(30);

/// Per-session refresh state: the single-flight locks and the retry times after failures.
pub struct Refresher {
    metrics: Arc<crate::metrics::Metrics>,
    locks: moka::sync::Cache<SessionId, Arc<tokio::sync::Mutex<()>>>,
    /// After a failed refresh: when to try again, and how many failed in a row.
    retry: moka::sync::Cache<SessionId, (Instant, u32)>,
}

impl Refresher {
    /// Bounded state: a flood of sessions cannot grow it without limit.
    pub fn new(metrics: Arc<crate::metrics::Metrics>) -> Refresher {
        Refresher {
            metrics,
            locks: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(300))
                .build(),
            retry: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(LONGEST_RETRY * 2)
                .build(),
        }
    }

    fn due(&self, gw: &Gateway, id: &SessionId, session: &Session) -> bool {
        session.user.refresh_token().is_some()
            && SystemTime::now() >= session.refresh_due_at(gw.sessions.refresh_before_expiry)
            && self
                .retry
                .get(id)
                .is_none_or(|(at, _)| Instant::now() >= at)
    }

    /// The session, its tokens refreshed first when they are due.
    pub async fn refresh_if_due(
        &self,
        gw: &Gateway,
        app: &App,
        store: &dyn SessionStore,
        id: SessionId,
        session: Arc<Session>,
    ) -> Lookup {
        if !self.due(gw, &id, &session) {
            return Lookup::Valid(session);
        }
        let lock = self
            .locks
            .get_with(id, || Arc::new(tokio::sync::Mutex::new(())));
        let _guard = lock.lock().await;
        // Another request may have refreshed (or failed to) while this one waited.
        let session = match store.get(&id).await {
            Ok(Some(session)) => session,
            Ok(None) => return Lookup::Missing,
            Err(_) => return Lookup::Unavailable,
        };
        if !self.due(gw, &id, &session) {
            return Lookup::Valid(session);
        }
        let (Some(provider), Some(refresh_token)) = (&app.provider, session.user.refresh_token())
        else {
            return Lookup::Valid(session);
        };
        // Sessions shared by replicas: exactly one of them refreshes (a rotating refresh token
        // must be used once); the others wait for what it stores.
        let lease = match store.leases() {
            None => None,
            Some(leases) => {
                let name = format!("refresh:{}", crate::session::id_hex(&id));
                match leases.acquire(&name, REFRESH_LEASE).await {
                    Ok(Some(lease)) => {
                        // Another replica may have refreshed just before the lease came free.
                        if let Ok(Some(now)) = store.get(&id).await {
                            if now.tokens_issued_at() > session.tokens_issued_at() {
                                let _ = leases.release(&lease).await;
                                return Lookup::Valid(now);
                            }
                        }
                        Some((leases, lease))
                    }
                    Ok(None) => return self.await_winner(store, leases, &name, &id, session).await,
                    // Cannot coordinate: serve with the tokens held; a later request retries.
                    Err(e) => {
                        tracing::warn!(app = %app.id, error = %e, "refresh deferred: the refresh lease cannot be taken");
                        return Lookup::Valid(session);
                    }
                }
            }
        };
        let refresh_token = refresh_token.to_string();
        let outcome = self
            .refresh(app, store, id, session, provider, &refresh_token)
            .await;
        if let Some((leases, lease)) = lease {
            let _ = leases.release(&lease).await;
        }
        outcome
    }

    /// Another replica holds the refresh lease: wait for the session it stores with new
    /// tokens, or for the session's end — and no longer than the winner works: once the lease
    /// is free and no new tokens came (its refresh failed), the tokens held serve on and a
    /// later request retries.
    async fn await_winner(
        &self,
        store: &dyn SessionStore,
        leases: &dyn crate::store::Leases,
        lease: &str,
        id: &SessionId,
        session: Arc<Session>,
    ) -> Lookup {
        let issued = session.tokens_issued_at();
        let deadline = Instant::now() + REFRESH_LEASE;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(25)).await;
            match store.get(id).await {
                Ok(Some(now)) if now.tokens_issued_at() > issued => return Lookup::Valid(now),
                Ok(Some(_)) => {}
                Ok(None) => return Lookup::Missing,
                Err(_) => return Lookup::Unavailable,
            }
            // The winner is done (the lease came free) without storing new tokens.
            if let Ok(Some(free)) = leases.acquire(lease, Duration::from_secs(1)).await {
                let _ = leases.release(&free).await;
                return match store.get(id).await {
                    Ok(Some(now)) => Lookup::Valid(now),
                    Ok(None) => Lookup::Missing,
                    Err(_) => Lookup::Unavailable,
                };
            }
        }
        // The winner took too long: the tokens held still serve until they expire.
        if SystemTime::now() < session.tokens_expire_at() {
            Lookup::Valid(session)
        } else {
            Lookup::Unavailable
        }
    }

    /// Uses the refresh token and stores the outcome.
    async fn refresh(
        &self,
        app: &App,
        store: &dyn SessionStore,
        id: SessionId,
        session: Arc<Session>,
        provider: &crate::oidc::Provider,
        refresh_token: &str,
    ) -> Lookup {
        match provider.refresh(refresh_token, &session.user).await {
            Ok(signed) => {
                self.retry.invalidate(&id);
                let renewed =
                    Arc::new(session.renewed(signed.user, SystemTime::now() + signed.expires_in));
                self.metrics.refresh(&app.id, "ok");
                match store.put(id, renewed.clone()).await {
                    Ok(()) => Lookup::Valid(renewed),
                    // The new tokens could not be kept: serve this request with them, the
                    // next one finds the old tokens and refreshes again.
                    Err(e) => {
                        tracing::error!(app = %app.id, error = %e, "refreshed tokens not stored: session store unavailable");
                        Lookup::Valid(renewed)
                    }
                }
            }
            Err(e) if is_transient(&e) && SystemTime::now() < session.tokens_expire_at() => {
                let failures = self.retry.get(&id).map_or(0, |(_, n)| n) + 1;
                let wait = FIRST_RETRY
                    .saturating_mul(1 << (failures - 1).min(5))
                    .min(LONGEST_RETRY);
                self.retry.insert(id, (Instant::now() + wait, failures));
                tracing::warn!(app = %app.id, error = %e, retry_in_s = wait.as_secs(), "token refresh failed; the session goes on until its tokens expire");
                self.metrics.refresh(&app.id, "kept");
                Lookup::Valid(session)
            }
            Err(e) => {
                tracing::info!(app = %app.id, error = %e, "token refresh failed; the session ends");
                self.metrics.refresh(&app.id, "ended");
                self.retry.invalidate(&id);
                if store.remove(&id).await.is_err() {
                    return Lookup::Unavailable;
                }
                Lookup::Missing
            }
        }
    }
}

/// How long one replica may hold a session's refresh (a provider round trip with its
/// timeouts fits well within it).
const REFRESH_LEASE: Duration = Duration::from_secs(15);

/// Failures that say nothing about the grant: the provider was away or broken for a moment.
fn is_transient(e: &ProviderError) -> bool {
    match e {
        ProviderError::Unreachable(_) | ProviderError::Exchange(_) => true,
        ProviderError::Refused(code) => {
            matches!(code.as_str(), "server_error" | "temporarily_unavailable")
        }
        ProviderError::Misconfigured(_)
        | ProviderError::IdToken(_)
        | ProviderError::UserInfo(_) => false,
    }
}
