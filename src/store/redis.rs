//! The store layer on Redis (or Valkey): standalone, Sentinel or Cluster, through the `redis`
//! crate (redis-rs, maintained by Redis: async connection manager with reconnection and
//! backoff, Cluster with slot routing, Sentinel master discovery, rustls for `rediss://`).
//!
//! - Standalone: one multiplexed connection that reconnects by itself.
//! - Sentinel: the master is asked of the sentinels; when the connection fails or the server
//!   answers READONLY (a failover made it a replica), the master is asked again and the
//!   command retried once on the new one.
//! - Cluster: commands are routed by slot; every key here is a single key, so no command
//!   spans slots. Messages (PUBLISH) reach subscribers on any node.
//!
//! Every key is written under `key_prefix`. Values are opaque bytes: what must not leak from
//! a dump is sealed by the caller before it gets here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisError, Script};
use tokio::sync::broadcast;

use super::{
    millis, random_token, Change, Changes, Documents, Lease, Leases, Records, SingleUse,
    StoreError, StoreResult,
};

/// How the servers are reached.
#[derive(Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a proxy in front of several): `redis://` or `rediss://` URL.
    Standalone {
        /// The server's URL (user and password may be in it).
        url: String,
    },
    /// Sentinels that know the master of `master`.
    Sentinel {
        /// The sentinels' URLs.
        sentinels: Vec<String>,
        /// The monitored master's name.
        master: String,
        /// The URL whose user, password and TLS apply to the master (its host is ignored).
        url: String,
    },
    /// A Redis Cluster, reached through any of these seed nodes' URLs.
    Cluster {
        /// Seed nodes.
        nodes: Vec<String>,
    },
}

/// URLs may carry a password: only the mode and the number of nodes are shown.
impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Topology::Standalone { .. } => f.write_str("Standalone"),
            Topology::Sentinel {
                sentinels, master, ..
            } => write!(f, "Sentinel({master}, {} sentinels)", sentinels.len()),
            Topology::Cluster { nodes } => write!(f, "Cluster({} seed nodes)", nodes.len()),
        }
    }
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Where the servers are.
    pub topology: Topology,
    /// Written before every key (e.g. `authgate:`).
    pub key_prefix: String,
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest wait for an answer.
    pub response_timeout: Duration,
    /// Connections per replica, used in turn (each multiplexed: many calls in flight on one).
    pub pool_size: usize,
}

enum Connection {
    Standalone(ConnectionManager),
    Sentinel(Arc<SentinelConnection>),
    Cluster(ClusterConnection),
}

struct SentinelConnection {
    sentinels: tokio::sync::Mutex<redis::sentinel::SentinelClient>,
    master: ArcSwap<(redis::Client, ConnectionManager)>,
    config: redis::aio::ConnectionManagerConfig,
}

/// Every store trait, on Redis.
pub struct RedisStore {
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// `pool_size` connections, each multiplexed, used in turn.
    connections: Vec<Connection>,
    next: AtomicUsize,
    settings: RedisSettings,
    release: Script,
    renew: Script,
    index_add: Script,
    replace: Script,
}

fn unavailable(e: RedisError) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Whether an error means the server we talk to is not (or no longer) the master.
fn master_moved(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.to_string().contains("READONLY")
}

impl RedisStore {
    /// Connects (waiting at most `connect_timeout`); fails when no server answers.
    pub async fn connect(settings: RedisSettings) -> StoreResult<RedisStore> {
        let mut connections = Vec::new();
        for _ in 0..settings.pool_size.max(1) {
            connections.push(open(&settings).await?);
        }
        Ok(RedisStore {
            metrics: None,
            connections,
            next: AtomicUsize::new(0),
            settings,
            release: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('DEL', KEYS[1]) else return 0 end",
            ),
            renew: Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                 return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
            ),
            // SADD, then the set lives at least ARGV[2] ms more (never less than it had).
            index_add: Script::new(
                "redis.call('SADD', KEYS[1], ARGV[1]) \
                 local left = redis.call('PTTL', KEYS[1]) \
                 if left < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end \
                 return 1",
            ),
            // Compare-and-swap of a whole document: ARGV[1] says whether one is expected
            // ('1', equal to ARGV[2]) or none ('0'); ARGV[3] is the new value.
            replace: Script::new(
                "local current = redis.call('GET', KEYS[1]) \
                 if (ARGV[1] == '0' and current == false) \
                 or (ARGV[1] == '1' and current == ARGV[2]) then \
                 redis.call('SET', KEYS[1], ARGV[3]) return 1 end \
                 return 0",
            ),
        })
    }

    /// The next connection of the pool, in turn.
    fn connection(&self) -> &Connection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.connections.len();
        &self.connections[i]
    }

    /// Records each operation's duration and failures in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> RedisStore {
        self.metrics = Some(metrics);
        self
    }

    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl std::future::Future<Output = StoreResult<T>>,
    ) -> StoreResult<T> {
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some(metrics) = &self.metrics {
            metrics.store_call(op, started.elapsed().as_secs_f64(), result.is_err());
        }
        result
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.settings.key_prefix)
    }

    async fn query<T: FromRedisValue>(&self, op: &'static str, cmd: &Cmd) -> StoreResult<T> {
        self.timed(op, self.query_untimed(cmd)).await
    }

    async fn query_untimed<T: FromRedisValue>(&self, cmd: &Cmd) -> StoreResult<T> {
        match self.connection() {
            Connection::Standalone(c) => cmd.query_async(&mut c.clone()).await.map_err(unavailable),
            Connection::Cluster(c) => cmd.query_async(&mut c.clone()).await.map_err(unavailable),
            Connection::Sentinel(s) => {
                let first = cmd.query_async(&mut s.master.load().1.clone()).await;
                match first {
                    Err(e) if master_moved(&e) => {
                        s.find_master().await?;
                        cmd.query_async(&mut s.master.load().1.clone())
                            .await
                            .map_err(unavailable)
                    }
                    other => other.map_err(unavailable),
                }
            }
        }
    }

    async fn script<T: FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> StoreResult<T> {
        self.timed(op, self.script_untimed(script, key, args)).await
    }

    async fn script_untimed<T: FromRedisValue>(
        &self,
        script: &Script,
        key: &str,
        args: &[&[u8]],
    ) -> StoreResult<T> {
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(*arg);
        }
        match self.connection() {
            Connection::Standalone(c) => invocation
                .invoke_async(&mut c.clone())
                .await
                .map_err(unavailable),
            Connection::Cluster(c) => invocation
                .invoke_async(&mut c.clone())
                .await
                .map_err(unavailable),
            Connection::Sentinel(s) => {
                let first = invocation
                    .invoke_async(&mut s.master.load().1.clone())
                    .await;
                match first {
                    Err(e) if master_moved(&e) => {
                        s.find_master().await?;
                        invocation
                            .invoke_async(&mut s.master.load().1.clone())
                            .await
                            .map_err(unavailable)
                    }
                    other => other.map_err(unavailable),
                }
            }
        }
    }

    /// A client for a subscription: the server itself, the current master, or a seed node
    /// (a cluster delivers every PUBLISH to subscribers on any node).
    /// Where subscriptions go: the server, the current master (asked of the sentinels at
    /// every resubscription, so a failover is followed), or a cluster node.
    fn subscription_target(&self) -> StoreResult<SubscriptionTarget> {
        match (&self.connections[0], &self.settings.topology) {
            (Connection::Standalone(_), Topology::Standalone { url }) => {
                Ok(SubscriptionTarget::Fixed(Box::new(
                    redis::Client::open(url.as_str()).map_err(unavailable)?,
                )))
            }
            (Connection::Sentinel(s), _) => Ok(SubscriptionTarget::Master(s.clone())),
            (_, Topology::Cluster { nodes }) => {
                let mut last = None;
                for node in nodes {
                    match redis::Client::open(node.as_str()) {
                        Ok(client) => return Ok(SubscriptionTarget::Fixed(Box::new(client))),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.map_or_else(
                    || StoreError::Unavailable("no cluster node configured".into()),
                    unavailable,
                ))
            }
            _ => Err(StoreError::Unavailable("no server to subscribe to".into())),
        }
    }
}

/// Where a subscription connects.
#[derive(Clone)]
enum SubscriptionTarget {
    Fixed(Box<redis::Client>),
    Master(Arc<SentinelConnection>),
}

impl SubscriptionTarget {
    async fn client(&self) -> StoreResult<redis::Client> {
        match self {
            SubscriptionTarget::Fixed(client) => Ok((**client).clone()),
            SubscriptionTarget::Master(sentinel) => {
                sentinel.find_master().await?;
                Ok(sentinel.master.load().0.clone())
            }
        }
    }

    async fn subscribe(&self, channel: &str) -> StoreResult<redis::aio::PubSub> {
        let mut pubsub = self
            .client()
            .await?
            .get_async_pubsub()
            .await
            .map_err(unavailable)?;
        pubsub.subscribe(channel).await.map_err(unavailable)?;
        Ok(pubsub)
    }
}

/// One connection to the store's servers.
async fn open(settings: &RedisSettings) -> StoreResult<Connection> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.connect_timeout))
        .set_response_timeout(Some(settings.response_timeout))
        .set_number_of_retries(2)
        .set_max_delay(Duration::from_secs(2));
    Ok(match &settings.topology {
        Topology::Standalone { url } => {
            let client = redis::Client::open(url.as_str()).map_err(unavailable)?;
            Connection::Standalone(
                ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(unavailable)?,
            )
        }
        Topology::Sentinel {
            sentinels,
            master,
            url,
        } => {
            let info: redis::ConnectionInfo =
                redis::IntoConnectionInfo::into_connection_info(url.as_str())
                    .map_err(unavailable)?;
            let node = redis::sentinel::SentinelNodeConnectionInfo::default()
                .set_redis_connection_info(info.redis_settings().clone());
            let mut client = redis::sentinel::SentinelClient::build(
                sentinels.clone(),
                master.clone(),
                Some(node),
                redis::sentinel::SentinelServerType::Master,
            )
            .map_err(unavailable)?;
            let master_client = client.async_get_client().await.map_err(unavailable)?;
            let manager = ConnectionManager::new_with_config(master_client.clone(), config.clone())
                .await
                .map_err(unavailable)?;
            Connection::Sentinel(Arc::new(SentinelConnection {
                sentinels: tokio::sync::Mutex::new(client),
                master: ArcSwap::from_pointee((master_client, manager)),
                config,
            }))
        }
        Topology::Cluster { nodes } => {
            let client = redis::cluster::ClusterClientBuilder::new(nodes.clone())
                .connection_timeout(settings.connect_timeout)
                .response_timeout(settings.response_timeout)
                .build()
                .map_err(unavailable)?;
            Connection::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        }
    })
}

impl SentinelConnection {
    /// Asks the sentinels for the master again and connects to it.
    async fn find_master(&self) -> StoreResult<()> {
        let mut sentinels = self.sentinels.lock().await;
        let client = sentinels.async_get_client().await.map_err(unavailable)?;
        if client.get_connection_info().addr() == self.master.load().0.get_connection_info().addr()
        {
            return Ok(());
        }
        let manager = ConnectionManager::new_with_config(client.clone(), self.config.clone())
            .await
            .map_err(unavailable)?;
        tracing::warn!(master = %client.get_connection_info().addr(), "Redis master changed");
        self.master.store(Arc::new((client, manager)));
        Ok(())
    }
}

#[async_trait]
impl Records for RedisStore {
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query("get", redis::cmd("GET").arg(self.key(key)))
            .await
    }

    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
        self.query(
            "set",
            redis::cmd("SET")
                .arg(self.key(key))
                .arg(value)
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    /// `GETEX key PX ttl` (Redis 6.2 and later, Valkey).
    async fn get_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Vec<u8>>> {
        self.query(
            "getex",
            redis::cmd("GETEX")
                .arg(self.key(key))
                .arg("PX")
                .arg(millis(ttl)),
        )
        .await
    }

    async fn touch(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        self.query(
            "pexpire",
            redis::cmd("PEXPIRE").arg(self.key(key)).arg(millis(ttl)),
        )
        .await
    }

    async fn delete(&self, key: &str) -> StoreResult<bool> {
        let removed: u64 = self
            .query("del", redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(removed > 0)
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> StoreResult<()> {
        let ttl = millis(ttl).to_string();
        let _: i64 = self
            .script(
                "index_add",
                &self.index_add,
                &self.key(index),
                &[member.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        Ok(())
    }

    async fn index_members(&self, index: &str) -> StoreResult<Vec<String>> {
        let mut members: Vec<String> = self
            .query("smembers", redis::cmd("SMEMBERS").arg(self.key(index)))
            .await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn index_remove(&self, index: &str, member: &str) -> StoreResult<()> {
        let _: i64 = self
            .query("srem", redis::cmd("SREM").arg(self.key(index)).arg(member))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Documents for RedisStore {
    async fn read(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        self.query("get", redis::cmd("GET").arg(self.key(key)))
            .await
    }

    async fn replace(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let (flag, current): (&[u8], &[u8]) = match expected {
            Some(value) => (b"1", value),
            None => (b"0", b""),
        };
        let replaced: i64 = self
            .script(
                "replace",
                &self.replace,
                &self.key(key),
                &[flag, current, new],
            )
            .await?;
        Ok(replaced > 0)
    }
}

#[async_trait]
impl SingleUse for RedisStore {
    async fn claim(&self, key: &str, ttl: Duration) -> StoreResult<bool> {
        let set: Option<String> = self
            .query(
                "set",
                redis::cmd("SET")
                    .arg(self.key(key))
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.is_some())
    }

    async fn release_claim(&self, key: &str) -> StoreResult<()> {
        let _: u64 = self
            .query("del", redis::cmd("DEL").arg(self.key(key)))
            .await?;
        Ok(())
    }
}

#[async_trait]
impl Leases for RedisStore {
    async fn acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<Lease>> {
        let token = random_token();
        let set: Option<String> = self
            .query(
                "set",
                redis::cmd("SET")
                    .arg(self.key(name))
                    .arg(&token)
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(ttl)),
            )
            .await?;
        Ok(set.map(|_| Lease {
            name: name.to_string(),
            token,
        }))
    }

    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        let removed: i64 = self
            .script(
                "release",
                &self.release,
                &self.key(&lease.name),
                &[lease.token.as_bytes()],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<bool> {
        let ttl = millis(ttl).to_string();
        let extended: i64 = self
            .script(
                "renew",
                &self.renew,
                &self.key(&lease.name),
                &[lease.token.as_bytes(), ttl.as_bytes()],
            )
            .await?;
        Ok(extended > 0)
    }
}

/// Messages kept for a subscriber that is behind.
const CHANNEL_DEPTH: usize = 1024;

#[async_trait]
impl Changes for RedisStore {
    async fn publish(&self, channel: &str, message: &str) -> StoreResult<()> {
        let _: i64 = self
            .query(
                "publish",
                redis::cmd("PUBLISH").arg(self.key(channel)).arg(message),
            )
            .await?;
        Ok(())
    }

    /// A task holds the subscription, resubscribing with backoff after a lost connection;
    /// it ends when every receiver is gone. Returns once the first subscription is in place.
    async fn subscribe(&self, channel: &str) -> StoreResult<broadcast::Receiver<Change>> {
        let (sender, receiver) = broadcast::channel(CHANNEL_DEPTH);
        let channel = self.key(channel);
        let target = self.subscription_target()?;
        let pubsub = target.subscribe(&channel).await?;
        let timeout = self.settings.connect_timeout;
        tokio::spawn(async move {
            let mut stream = pubsub.into_on_message();
            loop {
                while let Some(message) = stream.next().await {
                    if let Ok(text) = message.get_payload::<String>() {
                        if sender.send(Change::Message(text)).is_err() {
                            return; // nobody listens any more
                        }
                    }
                }
                if sender.send(Change::Lost).is_err() {
                    return;
                }
                tracing::warn!(channel, "Redis subscription lost; resubscribing");
                // Retried every second at most: while it is down, subscribers cannot trust
                // what they hold.
                let mut backoff = Duration::from_millis(100);
                loop {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    if let Ok(Ok(pubsub)) =
                        tokio::time::timeout(timeout, target.subscribe(&channel)).await
                    {
                        stream = pubsub.into_on_message();
                        tracing::info!(channel, "Redis subscription resumed");
                        if sender.send(Change::Resumed).is_err() {
                            return;
                        }
                        break;
                    }
                }
            }
        });
        Ok(receiver)
    }
}
