//! The in-memory session store: bounded, with each session expiring at the earlier of its
//! absolute end and `idle_timeout` after its last use.
//!
//! Sessions are many and each must stay small, so the store is `quick_cache` (a hash table
//! with a scan-resistant eviction policy and tens of bytes of overhead per entry; moka's
//! per-entry expiry timers cost ~340 bytes each). Expiry is checked on every read, and
//! expired sessions are swept out at most once a minute so their memory is returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Owner, Session, SessionId, SessionStore};
use crate::store::{SingleUse, StoreResult};

/// How often `put` sweeps expired sessions out.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Single-use keys held at most: a flood of sign-ins cannot grow the table without limit. An
/// evicted sign-in state is still single-use in effect, because the provider accepts each code
/// once; an evicted logout token could only end sessions that its first use already ended.
const MAX_CLAIMS: u64 = 100_000;

/// Sessions in this process's memory.
pub struct MemoryStore {
    sessions: quick_cache::sync::Cache<SessionId, Arc<Session>>,
    idle: Duration,
    started: Instant,
    /// Milliseconds after `started` when the next sweep is due.
    next_sweep: AtomicU64,
    claims: Claims,
}

/// Keys claimed once, each kept for its own lifetime, at most [`MAX_CLAIMS`] of them.
struct Claims(moka::sync::Cache<String, Duration>);

struct ClaimLife;

impl moka::Expiry<String, Duration> for ClaimLife {
    fn expire_after_create(&self, _: &String, ttl: &Duration, _: Instant) -> Option<Duration> {
        Some(*ttl)
    }
}

#[async_trait]
impl SingleUse for Claims {
    async fn claim(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        Ok(self.0.entry(key.to_string()).or_insert(ttl).is_fresh())
    }

    async fn release_claim(&self, key: &str) -> StoreResult<()> {
        self.0.invalidate(key);
        Ok(())
    }
}

impl MemoryStore {
    /// A store of at most `capacity` sessions, each dropped after `idle` without use.
    pub fn new(capacity: u64, idle: Duration) -> MemoryStore {
        MemoryStore {
            sessions: quick_cache::sync::Cache::new(capacity.try_into().unwrap_or(usize::MAX)),
            idle,
            started: Instant::now(),
            next_sweep: AtomicU64::new(SWEEP_EVERY.as_millis() as u64),
            claims: Claims(
                moka::sync::Cache::builder()
                    .max_capacity(MAX_CLAIMS)
                    .expire_after(ClaimLife)
                    .build(),
            ),
        }
    }

    /// Sessions held (expired ones included until the next sweep).
    pub fn len(&self) -> u64 {
        self.sessions.len() as u64
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn alive(&self, session: &Session) -> bool {
        !session.remaining().is_zero() && session.idle_for() < self.idle
    }

    /// Drops expired sessions, at most once per `SWEEP_EVERY` (one caller wins the race).
    fn sweep_if_due(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let due = self.next_sweep.load(Ordering::Relaxed);
        if now < due {
            return;
        }
        let next = now + SWEEP_EVERY.as_millis() as u64;
        if self
            .next_sweep
            .compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.sessions.retain(|_, s| self.alive(s));
        }
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> StoreResult<Option<Arc<Session>>> {
        let Some(session) = self.sessions.get(id) else {
            return Ok(None);
        };
        if !self.alive(&session) {
            self.sessions.remove(id);
            return Ok(None);
        }
        session.touch();
        Ok(Some(session))
    }

    async fn put(&self, id: SessionId, session: Arc<Session>) -> StoreResult<()> {
        self.sweep_if_due();
        self.sessions.insert(id, session);
        Ok(())
    }

    async fn remove(&self, id: &SessionId) -> StoreResult<()> {
        self.sessions.remove(id);
        Ok(())
    }

    async fn health(&self) -> Result<String, String> {
        Ok(format!("in memory, {} session(s)", self.len()))
    }

    fn single_use(&self) -> &dyn SingleUse {
        &self.claims
    }

    /// A scan of every session: ending a user's sessions is rare (an administrator, a logout
    /// token that verified), and an index would cost every session memory.
    async fn sessions_of(&self, owner: Owner<'_>) -> StoreResult<Vec<(SessionId, Arc<Session>)>> {
        Ok(self
            .sessions
            .iter()
            .filter(|(_, s)| self.alive(s) && owner.owns(s))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn session(lasts: Duration) -> Arc<Session> {
        let user = super::super::UserRecord::new(&serde_json::Map::new(), "a.e30.c", None).unwrap();
        Arc::new(Session::new(
            Arc::from("a"),
            Arc::from("p"),
            user,
            SystemTime::now() + lasts,
            SystemTime::now() + lasts,
        ))
    }

    #[tokio::test]
    async fn absolute_and_idle_expiry() {
        let store = MemoryStore::new(100, Duration::from_millis(300));
        let (a, b, c) = (
            super::super::new_id(),
            super::super::new_id(),
            super::super::new_id(),
        );
        store
            .put(a, session(Duration::from_millis(200)))
            .await
            .unwrap();
        store
            .put(b, session(Duration::from_secs(60)))
            .await
            .unwrap();
        store
            .put(c, session(Duration::from_secs(60)))
            .await
            .unwrap();
        // `b` is used every 100 ms, so its idle timer keeps restarting; `c` is not.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(
                store.get(&b).await.unwrap().is_some(),
                "a used session stays"
            );
        }
        assert!(
            store.get(&a).await.unwrap().is_none(),
            "absolute expiry passed"
        );
        assert!(
            store.get(&c).await.unwrap().is_none(),
            "idle timeout passed"
        );
        store.remove(&b).await.unwrap();
        assert!(store.get(&b).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn expired_sessions_are_swept_out() {
        let store = MemoryStore::new(100, Duration::from_secs(60));
        let (short, long) = (super::super::new_id(), super::super::new_id());
        store
            .put(short, session(Duration::from_millis(50)))
            .await
            .unwrap();
        store
            .put(long, session(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(store.len(), 2);
        tokio::time::sleep(Duration::from_millis(100)).await;
        store
            .put(super::super::new_id(), session(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(store.len(), 3, "no sweep before one is due");
        // Make the next put sweep.
        store.next_sweep.store(0, Ordering::Relaxed);
        store
            .put(super::super::new_id(), session(Duration::from_secs(60)))
            .await
            .unwrap();
        assert_eq!(store.len(), 3, "the expired session was swept out");
        assert!(store.get(&long).await.unwrap().is_some());
        assert!(store.get(&short).await.unwrap().is_none());
    }
}
