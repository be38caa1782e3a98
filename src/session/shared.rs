//! Sessions in a shared store (Redis), seen alike by every replica: sign in through one, be
//! signed in on all; sign out on one, be signed out on all.
//!
//! - Each session is one sealed record ([`super::packed`]) whose life in the store is the
//!   earlier of its absolute end and the idle timeout; the idle timeout is slid at most once per
//!   [`RECHECK`] per replica, not written on every request.
//! - A near cache keeps hot sessions in this process, so a signed-in request costs no round
//!   trip. A change or end of a session is announced on a channel and every replica drops its
//!   copy at once; a near copy is also re-checked against the store every [`RECHECK`], which
//!   bounds how long a missed announcement could matter. While the channel's subscription is
//!   down (Redis restarting, a Sentinel failover), near copies are re-checked on every use, and
//!   all are dropped when it resumes.
//! - When the store cannot be reached, sessions in the near cache keep serving; a lookup that
//!   needs the store fails as unavailable (a 503, never a sign-in loop).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;

use super::{id_hex, packed, Owner, Session, SessionId, SessionStore};
use crate::config::Gateway;
use crate::jwt::ClaimSet;
use crate::session::cookie::CookieKeys;
use crate::store::{Change, Changes, Leases, Records, SingleUse, StoreError, StoreResult};

/// How often a replica re-checks (and slides) a session it holds near.
pub const RECHECK: Duration = Duration::from_secs(5);

/// How often, while the change feed is interrupted, a replica re-checks a session it holds
/// near: within the second a sign-out elsewhere must be honoured in.
pub const RECHECK_WITHOUT_FEED: Duration = Duration::from_millis(500);

/// The channel on which session changes are announced.
const CHANNEL: &str = "sessions";

/// A backend for shared sessions.
pub trait Backend: Records + Changes + Leases + SingleUse + 'static {
    /// The same backend as leases.
    fn as_leases(&self) -> &dyn Leases;
    /// The same backend as single-use keys.
    fn as_single_use(&self) -> &dyn SingleUse;
}
impl<T: Records + Changes + Leases + SingleUse + 'static> Backend for T {
    fn as_leases(&self) -> &dyn Leases {
        self
    }
    fn as_single_use(&self) -> &dyn SingleUse {
        self
    }
}

struct Near {
    session: Arc<Session>,
    checked: Instant,
}

/// Sessions in a shared store, with a near cache.
pub struct SharedSessions {
    backend: Arc<dyn Backend>,
    config: Arc<ArcSwap<Gateway>>,
    idle: Duration,
    near: quick_cache::sync::Cache<SessionId, Arc<Near>>,
    /// False with a near cache of 0 entries: every lookup reads the store.
    hold_near: bool,
    /// False while the change feed is interrupted: near copies are re-checked on every use.
    feed_live: AtomicBool,
    /// This replica's name on the channel, so it does not drop what it just stored.
    replica: String,
}

fn unhex(text: &str) -> Option<SessionId> {
    let mut id = [0u8; super::ID_LEN];
    if text.len() != id.len() * 2 {
        return None;
    }
    for (i, byte) in id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(id)
}

fn key(id: &SessionId) -> String {
    format!("session:{}", id_hex(id))
}

/// The indexes a session is listed in: its user's, and its provider session's. Their names are
/// MACs under the cookie keys (every key, current first, so entries written before a rotation
/// are found): the store does not name its users.
fn index_names(keys: &CookieKeys, owner: Owner<'_>) -> Vec<String> {
    match owner {
        Owner::User { sub, .. } => keys
            .index_names(sub)
            .into_iter()
            .map(|n| format!("user:{n}"))
            .collect(),
        Owner::ProviderSession { provider, sid, .. } => keys
            .index_names(&format!("{provider}\0{sid}"))
            .into_iter()
            .map(|n| format!("sid:{n}"))
            .collect(),
    }
}

impl SharedSessions {
    /// Sessions in `backend`, sealed under the running configuration's cookie keys, at most
    /// `near_capacity` of them held near. Listens for other replicas' changes from now on.
    pub async fn start(
        backend: Arc<dyn Backend>,
        config: Arc<ArcSwap<Gateway>>,
        near_capacity: u64,
    ) -> StoreResult<Arc<SharedSessions>> {
        let idle = config.load().sessions.idle_timeout;
        let sessions = Arc::new(SharedSessions {
            backend: backend.clone(),
            config,
            idle,
            near: quick_cache::sync::Cache::new(near_capacity.clamp(1, usize::MAX as u64) as usize),
            hold_near: near_capacity > 0,
            feed_live: AtomicBool::new(true),
            replica: crate::store::random_token(),
        });
        let mut changes = backend.subscribe(CHANNEL).await?;
        let listener = Arc::downgrade(&sessions);
        tokio::spawn(async move {
            loop {
                let message = changes.recv().await;
                let Some(sessions) = listener.upgrade() else {
                    return;
                };
                match message {
                    Ok(Change::Message(text)) => {
                        let Some((from, id)) = text.split_once(':') else {
                            continue;
                        };
                        if from != sessions.replica {
                            if let Some(id) = unhex(id) {
                                sessions.near.remove(&id);
                            }
                        }
                    }
                    // Until the feed is back, each near copy is re-checked on every use (and
                    // still serves if the store cannot answer).
                    Ok(Change::Lost) => sessions.feed_live.store(false, Ordering::Relaxed),
                    // Announcements may have been missed: nothing held near can be trusted.
                    Ok(Change::Resumed) => {
                        sessions.near.clear();
                        sessions.feed_live.store(true, Ordering::Relaxed);
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        sessions.near.clear();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(sessions)
    }

    fn keys(&self) -> StoreResult<Arc<super::cookie::CookieKeys>> {
        self.config
            .load()
            .sessions
            .cookie_keys
            .clone()
            .ok_or_else(|| StoreError::Unavailable("no sessions.cookie_keys to seal with".into()))
    }

    /// How long the record lives from now: the earlier of the session's end and the idle
    /// timeout. `None` once the session has ended.
    fn life(&self, session: &Session) -> Option<Duration> {
        let left = session.remaining().min(self.idle);
        (!left.is_zero()).then_some(left)
    }

    /// Keeps `session` near (unless the near cache is off).
    fn hold(&self, id: SessionId, session: Arc<Session>) {
        if self.hold_near {
            self.near.insert(
                id,
                Arc::new(Near {
                    session,
                    checked: Instant::now(),
                }),
            );
        }
    }

    async fn announce(&self, id: &SessionId) {
        let message = format!("{}:{}", self.replica, id_hex(id));
        if let Err(e) = self.backend.publish(CHANNEL, &message).await {
            tracing::warn!(error = %e, "a session change could not be announced; other replicas notice within the re-check interval");
        }
    }
}

#[async_trait]
impl SessionStore for SharedSessions {
    async fn get(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>> {
        if let Some(near) = self.near.get(id) {
            if near.session.remaining().is_zero() {
                self.near.remove(id);
                return Ok(None);
            }
            let every = if self.feed_live.load(Ordering::Relaxed) {
                RECHECK
            } else {
                RECHECK_WITHOUT_FEED
            };
            if near.checked.elapsed() < every {
                return Ok(Some(near.session.clone()));
            }
            // Due for a re-check: still there (ended elsewhere, its announcement missed)?
            // The same call slides the idle timeout.
            let life = self.life(&near.session).unwrap_or(Duration::from_millis(1));
            return match self.backend.touch(&key(id), life).await {
                Ok(true) => {
                    let session = near.session.clone();
                    self.hold(*id, session.clone());
                    Ok(Some(session))
                }
                Ok(false) => {
                    self.near.remove(id);
                    Ok(None)
                }
                // The store is away: what is held near keeps serving (and is not asked about
                // again before the next interval).
                Err(e) => {
                    tracing::warn!(error = %e, "session re-check failed; serving the near copy");
                    let session = near.session.clone();
                    self.hold(*id, session.clone());
                    Ok(Some(session))
                }
            };
        }
        // One round trip reads the session and slides its idle timeout.
        let Some(bytes) = self.backend.get_touch(&key(id), self.idle).await? else {
            return Ok(None);
        };
        let Some(session) = packed::open(&*self.keys()?, id, &bytes) else {
            return Ok(None);
        };
        let Some(life) = self.life(&session) else {
            return Ok(None);
        };
        // Near its absolute end the record must not outlive the session: a second step
        // shortens its life (only in a session's last idle-timeout).
        if life < self.idle {
            self.backend.touch(&key(id), life).await?;
        }
        let session = Arc::new(session);
        self.hold(*id, session.clone());
        Ok(Some(session))
    }

    async fn put(&self, id: SessionId, session: Arc<Session>) -> StoreResult<()> {
        let Some(life) = self.life(&session) else {
            return Ok(());
        };
        let keys = self.keys()?;
        let sealed = packed::seal(&keys, &id, &session);
        self.backend.put(&key(&id), &sealed, life).await?;
        let claim = |name: &str| {
            session
                .user
                .claim(name)
                .and_then(|v| v.as_str().map(str::to_string))
        };
        let (sub, sid) = (claim("sub"), claim("sid"));
        let owners = [
            sub.as_deref().map(|sub| Owner::User {
                provider: None,
                sub,
            }),
            sid.as_deref().map(|sid| Owner::ProviderSession {
                provider: &session.provider,
                sid,
                sub: None,
            }),
        ];
        for owner in owners.into_iter().flatten() {
            // The current key's name; a failure here only makes the session harder to end by
            // user, so it does not fail the sign-in (the session itself is stored).
            if let Some(index) = index_names(&keys, owner).into_iter().next() {
                if let Err(e) = self
                    .backend
                    .index_add(&index, &id_hex(&id), session.remaining())
                    .await
                {
                    tracing::warn!(error = %e, "a session could not be indexed by its user");
                }
            }
        }
        self.hold(id, session);
        self.announce(&id).await;
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> StoreResult<()> {
        self.near.remove(id);
        self.backend.delete(&key(id)).await?;
        self.announce(id).await;
        Ok(())
    }

    fn leases(&self) -> Option<&dyn Leases> {
        Some(self.backend.as_leases())
    }

    fn single_use(&self) -> &dyn SingleUse {
        self.backend.as_single_use()
    }

    /// Read from the owner's indexes; members whose session has ended are dropped from the
    /// index on the way.
    async fn sessions_of(&self, owner: Owner<'_>) -> StoreResult<Vec<(SessionId, Arc<Session>)>> {
        let keys = self.keys()?;
        let mut found = Vec::new();
        for index in index_names(&keys, owner) {
            for member in self.backend.index_members(&index).await? {
                let live = match unhex(&member) {
                    Some(id) => match self.backend.get(&key(&id)).await? {
                        Some(bytes) => packed::open(&keys, &id, &bytes)
                            .filter(|s| self.life(s).is_some())
                            .map(|s| (id, s)),
                        None => None,
                    },
                    None => None,
                };
                match live {
                    Some((id, session)) => {
                        if owner.owns(&session) && !found.iter().any(|(f, _)| *f == id) {
                            found.push((id, Arc::new(session)));
                        }
                    }
                    None => self.backend.index_remove(&index, &member).await?,
                }
            }
        }
        Ok(found)
    }

    async fn health(&self) -> Result<String, String> {
        match self.backend.get("health-probe").await {
            Ok(_) => Ok(format!(
                "shared store reachable, {} session(s) held near",
                self.near.len()
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_text() {
        let id = [0xab; 16];
        assert_eq!(unhex(&id_hex(&id)), Some(id));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(32)), None);
    }
}
