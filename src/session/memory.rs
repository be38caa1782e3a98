//! The in-memory session store: bounded, with each session expiring at the earlier of its
//! absolute end and `idle_timeout` after its last use.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Session, SessionId, SessionStore};

struct Lifetime {
    idle: Duration,
}

impl Lifetime {
    fn left(&self, session: &Session) -> Duration {
        self.idle.min(session.remaining())
    }
}

impl moka::Expiry<SessionId, Arc<Session>> for Lifetime {
    fn expire_after_create(&self, _: &SessionId, s: &Arc<Session>, _: Instant) -> Option<Duration> {
        Some(self.left(s))
    }

    fn expire_after_update(
        &self,
        _: &SessionId,
        s: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(self.left(s))
    }

    fn expire_after_read(
        &self,
        _: &SessionId,
        s: &Arc<Session>,
        _: Instant,
        _: Option<Duration>,
        _: Instant,
    ) -> Option<Duration> {
        Some(self.left(s))
    }
}

/// Sessions in this process's memory (moka).
pub struct MemoryStore {
    sessions: moka::sync::Cache<SessionId, Arc<Session>>,
}

impl MemoryStore {
    /// A store of at most `capacity` sessions, each dropped after `idle` without use.
    pub fn new(capacity: u64, idle: Duration) -> MemoryStore {
        MemoryStore {
            sessions: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .expire_after(Lifetime { idle })
                .build(),
        }
    }

    /// Sessions held (approximate until pending maintenance runs).
    pub fn len(&self) -> u64 {
        self.sessions.run_pending_tasks();
        self.sessions.entry_count()
    }

    /// True when no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn get(&self, id: &SessionId) -> Option<Arc<Session>> {
        // The cache's timer is coarse: check the absolute expiry on every read too.
        self.sessions.get(id).filter(|s| !s.remaining().is_zero())
    }

    async fn put(&self, id: SessionId, session: Arc<Session>) {
        self.sessions.insert(id, session);
    }

    async fn remove(&self, id: &SessionId) {
        self.sessions.invalidate(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn session(lasts: Duration) -> Arc<Session> {
        Arc::new(Session {
            app: Arc::from("a"),
            provider: Arc::from("p"),
            claims: serde_json::Map::new().into(),
            id_token: "".into(),
            refresh_token: None,
            tokens_expire_at: SystemTime::now() + lasts,
            expires_at: SystemTime::now() + lasts,
        })
    }

    #[tokio::test]
    async fn absolute_and_idle_expiry() {
        let store = MemoryStore::new(100, Duration::from_millis(300));
        let (a, b, c) = (
            super::super::new_id(),
            super::super::new_id(),
            super::super::new_id(),
        );
        store.put(a, session(Duration::from_millis(200))).await;
        store.put(b, session(Duration::from_secs(60))).await;
        store.put(c, session(Duration::from_secs(60))).await;
        // `b` is used every 100 ms, so its idle timer keeps restarting; `c` is not.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(store.get(&b).await.is_some(), "a used session stays");
        }
        assert!(store.get(&a).await.is_none(), "absolute expiry passed");
        assert!(store.get(&c).await.is_none(), "idle timeout passed");
        store.remove(&b).await;
        assert!(store.get(&b).await.is_none());
    }
}
