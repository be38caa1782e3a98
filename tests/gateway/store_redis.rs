//! The store layer's conformance suite against a real `redis-server` (Debian's) in each mode
//! the gateway supports: standalone, Sentinel (with a failover in the middle) and a 3-master
//! Cluster. Each test starts its own servers on free loopback ports.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use authgate::store::redis::{RedisSettings, RedisStore, Topology};
use authgate::store::{conformance, random_token, Change, Changes, Records};

use crate::common::free_port;

/// A Redis process, stopped when dropped.
pub(crate) struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli (Debian's redis-tools) is installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn wait_for(what: &str, within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server (Debian's) is installed");
    let server = Server { child, port };
    wait_for("redis-server answers", Duration::from_secs(10), || {
        redis_cli(port, &["PING"]) == "PONG"
    });
    server
}

/// Three sentinels watching the master on `master_port` (as `primary`; down after 1 s).
pub(crate) fn start_sentinels(dir: &std::path::Path, master_port: u16) -> Vec<Server> {
    let mut sentinels = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let conf = dir.join(format!("sentinel-{port}.conf"));
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nsentinel monitor primary 127.0.0.1 {master_port} 2\nsentinel down-after-milliseconds primary 1000\nsentinel failover-timeout primary 3000\n"
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let sentinel = Server { child, port };
        wait_for("the sentinel answers", Duration::from_secs(10), || {
            redis_cli(port, &["PING"]) == "PONG"
        });
        sentinels.push(sentinel);
    }
    sentinels
}

/// A master on `dir` and a replica in sync with it.
pub(crate) fn start_master_and_replica(dir: &std::path::Path) -> (Server, Server) {
    let master = start(&tempfile::tempdir_in(dir).unwrap().keep(), &[]);
    let replica = start(
        &tempfile::tempdir_in(dir).unwrap().keep(),
        &["--replicaof", "127.0.0.1", &master.port.to_string()],
    );
    wait_for("the replica is in sync", Duration::from_secs(10), || {
        redis_cli(replica.port, &["INFO", "replication"]).contains("master_link_status:up")
    });
    (master, replica)
}

/// A 3-master cluster on loopback; the nodes and their `host:port`.
pub(crate) fn start_cluster(dir: &std::path::Path) -> (Vec<Server>, Vec<String>) {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let node_dir = tempfile::tempdir_in(dir).unwrap().keep();
        nodes.push(start(
            &node_dir,
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "2000"],
        ));
    }
    let addresses: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addresses)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stdout)
    );
    wait_for("the cluster is up", Duration::from_secs(20), || {
        nodes
            .iter()
            .all(|n| redis_cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
    });
    (nodes, addresses)
}

fn settings(topology: Topology) -> RedisSettings {
    RedisSettings {
        topology,
        key_prefix: format!("authgate-test:{}:", random_token()),
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(2),
        // Two connections used in turn: the suite's claims, leases and messages must hold
        // across them.
        pool_size: 2,
    }
}

#[tokio::test]
async fn standalone_redis_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let store = RedisStore::connect(settings(Topology::Standalone {
        url: format!("redis://127.0.0.1:{}/", server.port),
    }))
    .await
    .unwrap();
    conformance::run(&store, "standalone").await;
}

#[tokio::test]
async fn a_store_that_cannot_reach_redis_says_so_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let port = server.port;
    let store = RedisStore::connect(settings(Topology::Standalone {
        url: format!("redis://127.0.0.1:{port}/"),
    }))
    .await
    .unwrap();
    store.put("k", b"v", Duration::from_secs(60)).await.unwrap();
    let mut changes = store.subscribe("changes").await.unwrap();
    drop(server);
    let err = store.get("k").await.unwrap_err();
    assert!(err.to_string().starts_with("store unavailable"), "{err}");
    // Back on the same port: the connection comes back by itself.
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _again = Server { child, port };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if store.put("k", b"v2", Duration::from_secs(60)).await.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not reconnect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v2"[..]));
    // The subscriber was told the feed was interrupted, and when it came back; then messages
    // flow again.
    let mut seen = Vec::new();
    while seen.last() != Some(&Change::Resumed) {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("the subscription resumes within 10 s")
            .unwrap();
        seen.push(change);
    }
    assert_eq!(seen, [Change::Lost, Change::Resumed]);
    store.publish("changes", "after").await.unwrap();
    let after = tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after, Change::Message("after".into()));
}

#[tokio::test]
async fn sentinel_redis_passes_the_conformance_suite_and_follows_a_failover() {
    let dir = tempfile::tempdir().unwrap();
    let (master, replica) = start_master_and_replica(dir.path());
    let sentinels = start_sentinels(dir.path(), master.port);
    let store = RedisStore::connect(settings(Topology::Sentinel {
        sentinels: sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}/", s.port))
            .collect(),
        master: "primary".into(),
        url: "redis://127.0.0.1/".into(),
    }))
    .await
    .unwrap();
    conformance::run(&store, "sentinel").await;

    // The master dies; the sentinels promote the replica; the store follows.
    store
        .put("before", b"1", Duration::from_secs(600))
        .await
        .unwrap();
    wait_for(
        "the write reached the replica",
        Duration::from_secs(5),
        || redis_cli(replica.port, &["KEYS", "*before"]).contains("before"),
    );
    drop(master);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if store
            .put("after", b"2", Duration::from_secs(600))
            .await
            .is_ok()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no write succeeded after the failover"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        store.get("before").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(
        store.get("after").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

#[tokio::test]
async fn a_three_master_cluster_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (nodes, addresses) = start_cluster(dir.path());
    let store = RedisStore::connect(settings(Topology::Cluster {
        nodes: addresses.iter().map(|a| format!("redis://{a}/")).collect(),
    }))
    .await
    .unwrap();
    conformance::run(&store, "cluster").await;
    // The keys really are spread over the masters.
    for i in 0..30 {
        store
            .put(&format!("spread-{i}"), b"x", Duration::from_secs(60))
            .await
            .unwrap();
    }
    let holding = nodes
        .iter()
        .filter(|n| redis_cli(n.port, &["DBSIZE"]).parse::<u64>().unwrap_or(0) > 0)
        .count();
    assert_eq!(holding, 3, "keys on every master");
}
