//! The store layer in this process's memory: one node, nothing survives a restart. Expired
//! entries are dropped when read and swept out every so many writes, so memory stays bounded
//! by what is alive.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::broadcast;

use super::{
    random_token, Change, Changes, Documents, Lease, Leases, Records, SingleUse, StoreResult,
};

/// Writes between two sweeps of expired entries.
const SWEEP_EVERY: u64 = 1024;

/// Messages kept for a subscriber that is behind.
const CHANNEL_DEPTH: usize = 1024;

#[derive(Default)]
struct Tables {
    values: HashMap<String, (Vec<u8>, Instant)>,
    sets: HashMap<String, (HashSet<String>, Instant)>,
    claims: HashMap<String, Instant>,
    leases: HashMap<String, (String, Instant)>,
    documents: HashMap<String, Vec<u8>>,
    writes: u64,
}

impl Tables {
    fn wrote(&mut self, now: Instant) {
        self.writes += 1;
        if self.writes % SWEEP_EVERY == 0 {
            self.values.retain(|_, (_, until)| *until > now);
            self.sets.retain(|_, (_, until)| *until > now);
            self.claims.retain(|_, until| *until > now);
            self.leases.retain(|_, (_, until)| *until > now);
        }
    }
}

/// Every store trait, in memory.
#[derive(Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    channels: Mutex<HashMap<String, broadcast::Sender<Change>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Documents for MemoryStore {
    async fn read(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.tables().documents.get(key).cloned())
    }

    async fn replace(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let mut tables = self.tables();
        if tables.documents.get(key).map(Vec::as_slice) != expected {
            return Ok(false);
        }
        tables.documents.insert(key.to_string(), new.to_vec());
        Ok(true)
    }
}

#[async_trait]
impl Records for MemoryStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let now = Instant::now();
        let tables = self.tables();
        Ok(tables
            .values
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(value, _)| value.clone()))
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        let now = Instant::now();
        let mut tables = self.tables();
        tables
            .values
            .insert(key.to_string(), (value.to_vec(), now + ttl));
        tables.wrote(now);
        Ok(())
    }

    async fn get_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Vec<u8>>> {
        let now = Instant::now();
        let mut tables = self.tables();
        match tables.values.get_mut(key) {
            Some((value, until)) if *until > now => {
                *until = now + ttl;
                Ok(Some(value.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn touch(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut tables = self.tables();
        match tables.values.get_mut(key) {
            Some((_, until)) if *until > now => {
                *until = now + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let now = Instant::now();
        Ok(self
            .tables()
            .values
            .remove(key)
            .is_some_and(|(_, until)| until > now))
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> StoreResult<()> {
        let now = Instant::now();
        let mut tables = self.tables();
        let entry = tables
            .sets
            .entry(index.to_string())
            .or_insert_with(|| (HashSet::new(), now));
        if entry.1 <= now {
            entry.0.clear();
        }
        entry.0.insert(member.to_string());
        entry.1 = entry.1.max(now + ttl);
        tables.wrote(now);
        Ok(())
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<String>> {
        let now = Instant::now();
        let tables = self.tables();
        let mut members: Vec<String> = tables
            .sets
            .get(index)
            .filter(|(_, until)| *until > now)
            .map(|(set, _)| set.iter().cloned().collect())
            .unwrap_or_default();
        members.sort_unstable();
        Ok(members)
    }

    async fn index_remove(&self, index: &str, member: &str) -> StoreResult<()> {
        let mut tables = self.tables();
        if let Some((set, _)) = tables.sets.get_mut(index) {
            set.remove(member);
            if set.is_empty() {
                tables.sets.remove(index);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl SingleUse for MemoryStore {
    async fn claim(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut tables = self.tables();
        let fresh = tables.claims.get(key).is_none_or(|until| *until <= now);
        if fresh {
            tables.claims.insert(key.to_string(), now + ttl);
            tables.wrote(now);
        }
        Ok(fresh)
    }

    async fn release_claim(&self, key: &str) -> StoreResult<()> {
        self.tables().claims.remove(key);
        Ok(())
    }
}

#[async_trait]
impl Leases for MemoryStore {
    async fn acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<Lease>> {
        let now = Instant::now();
        let mut tables = self.tables();
        if tables
            .leases
            .get(name)
            .is_some_and(|(_, until)| *until > now)
        {
            return Ok(None);
        }
        let token = random_token();
        tables
            .leases
            .insert(name.to_string(), (token.clone(), now + ttl));
        tables.wrote(now);
        Ok(Some(Lease {
            name: name.to_string(),
            token,
        }))
    }

    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        let now = Instant::now();
        let mut tables = self.tables();
        let held = tables
            .leases
            .get(&lease.name)
            .is_some_and(|(token, until)| *token == lease.token && *until > now);
        if held {
            tables.leases.remove(&lease.name);
        }
        Ok(held)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut tables = self.tables();
        let Some((token, until)) = tables.leases.get_mut(&lease.name) else {
            return Ok(false);
        };
        if *token != lease.token || *until <= now {
            return Ok(false);
        }
        *until = now + ttl;
        tables.wrote(now);
        Ok(true)
    }
}

#[async_trait]
impl Changes for MemoryStore {
    async fn publish(&self, channel: &str, message: &str) -> StoreResult<()> {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = channels.get(channel) {
            // No receiver left is not an error: nobody is listening.
            let _ = sender.send(Change::Message(message.to_string()));
        }
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<broadcast::Receiver<Change>> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        Ok(channels
            .entry(channel.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_DEPTH).0)
            .subscribe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_passes_the_conformance_suite() {
        let store = MemoryStore::new();
        super::super::conformance::run(&store, "conformance").await;
    }
}
