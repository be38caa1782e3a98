//! A fleet of three replicas sharing one control plane in real Redis, with real pebble and
//! pebble-challtestsrv: an app made on one replica is served by all; a custom domain added on
//! one goes Active with exactly one ACME order whichever replica the CA's validation reaches;
//! every replica serves its certificate; killing the replica that holds a domain's lease
//! mid-order lets another finish it; a restart of every replica keeps everything; removing a
//! domain or its app withdraws it everywhere within a second.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::acme::{
    gateway_with, pebble_client_for, publish, seed_certificate, start_pebble, Ports,
};
use crate::admin_api::{call, TestDns, TOKEN};
use crate::common::{free_port, get, Gateway, Origin};

/// Where pebble's HTTP-01 validations arrive: held until the test routes them to a replica.
struct Validations {
    port: u16,
    route: Arc<Mutex<Option<u16>>>,
    arrived: Arc<AtomicUsize>,
}

impl Validations {
    async fn start() -> Validations {
        let port = free_port();
        let route: Arc<Mutex<Option<u16>>> = Arc::default();
        let arrived = Arc::new(AtomicUsize::new(0));
        for host in ["127.0.0.1", "::1"] {
            let listener = tokio::net::TcpListener::bind((host, port)).await.unwrap();
            let (route, arrived) = (route.clone(), arrived.clone());
            tokio::spawn(async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    arrived.fetch_add(1, Ordering::SeqCst);
                    let route = route.clone();
                    tokio::spawn(async move {
                        let to = loop {
                            if let Some(port) = *route.lock().unwrap() {
                                break port;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        };
                        if let Ok(mut outbound) =
                            tokio::net::TcpStream::connect(("127.0.0.1", to)).await
                        {
                            let _ =
                                tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
            });
        }
        Validations {
            port,
            route,
            arrived,
        }
    }

    fn hold(&self) {
        *self.route.lock().unwrap() = None;
    }

    fn send_to(&self, port: u16) {
        *self.route.lock().unwrap() = Some(port);
    }

    /// Waits until more than `seen` validations have arrived.
    async fn wait_beyond(&self, seen: usize) {
        let started = Instant::now();
        while self.arrived.load(Ordering::SeqCst) <= seen {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "pebble never came to validate"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Fleet {
    redis: u16,
    dns: u16,
    acme: String,
    dirs: Vec<tempfile::TempDir>,
}

impl Fleet {
    /// A replica of the fleet: its own ports, data and certificate directories; everything
    /// else shared through Redis.
    async fn replica(&mut self, origin: &Origin) -> (Gateway, Ports) {
        let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        seed_certificate(certs.path());
        let ports = Ports {
            plain: free_port(),
            tls: free_port(),
        };
        let control = format!(
            "sessions: {{cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']}}\n\
             control: {{store: redis, lease_ttl: 3s, redis: {{url: 'redis://127.0.0.1:{}/', key_prefix: 'fleet:'}}}}",
            self.redis
        );
        let gw = gateway_with(
            &ports,
            data.path(),
            certs.path(),
            self.dns,
            &self.acme,
            origin,
            &control,
        )
        .await;
        self.dirs.push(data);
        self.dirs.push(certs);
        (gw, ports)
    }
}

/// Polls `check` until it holds, for at most `within`; how long it took.
async fn until<F, Fut>(within: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

/// The domain's entry as `gw`'s admin API shows it.
async fn entry(gw: &Gateway, domain: &str) -> Option<Value> {
    let (_, list) = call(
        gw,
        "GET",
        "/api/apps/shop/custom-domains",
        Some(TOKEN),
        None,
    )
    .await;
    list.as_array()?
        .iter()
        .find(|d| d["domain"] == domain)
        .cloned()
}

/// The process id of the replica that last started an order for `domain`, by its history.
fn ordered_by(entry: &Value) -> Option<u32> {
    entry["history"]
        .as_array()?
        .iter()
        .rev()
        .find(|e| e["message"] == "ordering a certificate")
        .and_then(|e| e["replica"].as_str()?.rsplit('/').next()?.parse().ok())
}

/// The process id of the replica ordering `domain` now, as soon as a replica's API shows it.
async fn placer_of(replicas: &[Option<(Gateway, Ports)>], domain: &str) -> u32 {
    let started = Instant::now();
    loop {
        for (replica, _) in replicas.iter().flatten() {
            if let Some(pid) = entry(replica, domain).await.as_ref().and_then(ordered_by) {
                return pid;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no replica shows who orders {domain}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Adds `domain` to `shop` through `gw` and publishes its records.
async fn add(gw: &Gateway, dns: &TestDns, domain: &str) {
    let (status, entry) = call(
        gw,
        "POST",
        "/api/apps/shop/custom-domains",
        Some(TOKEN),
        Some(&json!({"domain": domain}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{entry}");
    publish(dns, domain, &entry).await;
}

/// Waits, at most a second from now in all, until no replica completes a TLS handshake for
/// `domain` (each through its own client in `clients`) and none serves `host`.
async fn withdrawn_within_a_second(
    replicas: &[Option<(Gateway, Ports)>],
    clients: &[reqwest::Client],
    domain: &str,
    host: &str,
) {
    let started = Instant::now();
    for ((replica, ports), client) in replicas.iter().flatten().zip(clients) {
        let left = Duration::from_secs(1).saturating_sub(started.elapsed());
        until(left, &format!("{domain} and {host} withdrawn"), || async {
            !serves_tls(client, domain, ports.tls).await
                && get(replica.addr, "/", host).await.unwrap().status == 404
        })
        .await;
    }
}

/// Whether `host` is served over TLS at `tls_port` with a certificate from pebble's root.
async fn serves_tls(client: &reqwest::Client, host: &str, tls_port: u16) -> bool {
    client
        .get(format!("https://{host}:{tls_port}/"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn three_replicas_share_apps_domains_certificates_and_the_work() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let work = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(work.path(), &[]);
    let validations = Validations::start().await;
    let (pebble, ca_root) = start_pebble(work.path(), validations.port, dns.dns).await;
    let mut fleet = Fleet {
        redis: redis.port,
        dns: dns.dns,
        acme: format!(
            "{{directory_url: 'https://localhost:{}/dir', ca_root: '{}', retry_after: 1s}}",
            pebble.acme,
            ca_root.display()
        ),
        dirs: Vec::new(),
    };
    let mut replicas: Vec<Option<(Gateway, Ports)>> = Vec::new();
    for _ in 0..3 {
        replicas.push(Some(fleet.replica(&origin).await));
    }

    // An app made on A is served by B and C.
    let shop = json!({"id": "shop", "host": "shop.test", "origin": {"url": origin.url()},
                      "default_action": "public"})
    .to_string();
    let (a, _) = replicas[0].as_ref().unwrap();
    let (status, body) = call(a, "POST", "/api/apps", Some(TOKEN), Some(&shop)).await;
    assert_eq!(status, 201, "{body}");
    for (replica, _) in replicas.iter().flatten() {
        until(Duration::from_secs(1), "shop.test served", || async {
            get(replica.addr, "/", "shop.test").await.unwrap().status == 200
        })
        .await;
    }

    // A domain added on B: one replica orders it; the CA's validation is sent to another,
    // which answers it from the shared challenges.
    let (b, _) = replicas[1].as_ref().unwrap();
    validations.hold();
    add(b, &dns, "one.customer.test").await;
    validations.wait_beyond(0).await;
    let placer = placer_of(&replicas, "one.customer.test").await;
    let answering = replicas
        .iter()
        .flatten()
        .position(|(g, _)| g.pid() != placer)
        .unwrap();
    validations.send_to(replicas[answering].as_ref().unwrap().1.plain);
    let c = &replicas[2].as_ref().unwrap().0;
    until(
        Duration::from_secs(20),
        "one.customer.test Active",
        || async {
            entry(c, "one.customer.test")
                .await
                .is_some_and(|e| e["status"] == "Active")
        },
    )
    .await;
    assert_eq!(pebble.orders(), 1, "exactly one ACME order for the domain");
    let answered = replicas[answering]
        .as_ref()
        .unwrap()
        .0
        .metrics()
        .await
        .lines()
        .any(|l| l.contains("decision=\"acme_challenge\"") && l.contains("status=\"200\""));
    assert!(answered, "the replica that placed no order answered the CA");
    // Every replica serves the certificate within seconds of its issue.
    for (_, ports) in replicas.iter().flatten() {
        let client = pebble_client_for(&pebble, &ca_root, "one.customer.test", ports.tls).await;
        until(Duration::from_secs(3), "one.customer.test over TLS", || {
            serves_tls(&client, "one.customer.test", ports.tls)
        })
        .await;
    }

    // The replica holding the next domain's lease dies mid-order; another finishes it.
    let orders_before = pebble.orders();
    let arrived = validations.arrived.load(Ordering::SeqCst);
    validations.hold();
    add(&replicas[2].as_ref().unwrap().0, &dns, "two.customer.test").await;
    validations.wait_beyond(arrived).await;
    let placer = placer_of(&replicas, "two.customer.test").await;
    let dead = replicas
        .iter()
        .position(|r| r.as_ref().is_some_and(|(g, _)| g.pid() == placer))
        .unwrap();
    replicas[dead] = None; // SIGKILL, mid-order
    let living: Vec<usize> = (0..3).filter(|i| *i != dead).collect();
    validations.send_to(replicas[living[0]].as_ref().unwrap().1.plain);
    let survivor = &replicas[living[1]].as_ref().unwrap().0;
    until(
        Duration::from_secs(30),
        "two.customer.test Active after the kill",
        || async {
            entry(survivor, "two.customer.test")
                .await
                .is_some_and(|e| e["status"] == "Active")
        },
    )
    .await;
    let finished = entry(survivor, "two.customer.test").await.unwrap();
    let issued_by = finished["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["message"] == "certificate issued")
        .and_then(|e| e["replica"].as_str())
        .unwrap()
        .to_string();
    assert!(
        !issued_by.ends_with(&format!("/{placer}")),
        "a living replica finished the order: {finished}"
    );
    assert_eq!(
        pebble.orders() - orders_before,
        2,
        "the dead replica's order and the one that finished"
    );
    for i in &living {
        let ports = &replicas[*i].as_ref().unwrap().1;
        let client = pebble_client_for(&pebble, &ca_root, "two.customer.test", ports.tls).await;
        until(Duration::from_secs(3), "two.customer.test over TLS", || {
            serves_tls(&client, "two.customer.test", ports.tls)
        })
        .await;
    }

    // Every replica restarts (new processes, new local directories): everything is kept.
    replicas.clear();
    for _ in 0..3 {
        replicas.push(Some(fleet.replica(&origin).await));
    }
    // Every replica holds the same apps and the same domain book.
    let mut views = Vec::new();
    for (replica, _) in replicas.iter().flatten() {
        let (_, apps) = call(replica, "GET", "/api/apps", Some(TOKEN), None).await;
        let (_, domains) = call(
            replica,
            "GET",
            "/api/apps/shop/custom-domains",
            Some(TOKEN),
            None,
        )
        .await;
        views.push((apps, domains));
    }
    assert!(views.windows(2).all(|w| w[0] == w[1]), "{views:?}");
    for (replica, ports) in replicas.iter().flatten() {
        assert_eq!(
            get(replica.addr, "/", "shop.test").await.unwrap().status,
            200
        );
        for domain in ["one.customer.test", "two.customer.test"] {
            let client = pebble_client_for(&pebble, &ca_root, domain, ports.tls).await;
            assert!(
                serves_tls(&client, domain, ports.tls).await,
                "{domain} after a restart"
            );
        }
    }

    // A domain removed on one replica is withdrawn by every replica within a second.
    let clients_for = |domain: &'static str| {
        let (pebble, ca_root, replicas) = (&pebble, &ca_root, &replicas);
        async move {
            let mut clients = Vec::new();
            for (_, ports) in replicas.iter().flatten() {
                clients.push(pebble_client_for(pebble, ca_root, domain, ports.tls).await);
            }
            clients
        }
    };
    let (one, two) = (
        clients_for("one.customer.test").await,
        clients_for("two.customer.test").await,
    );
    let (status, _) = call(
        &replicas[0].as_ref().unwrap().0,
        "DELETE",
        "/api/apps/shop/custom-domains/one.customer.test",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    withdrawn_within_a_second(&replicas, &one, "one.customer.test", "one.customer.test").await;

    // The app deleted on another replica takes its last domain with it, everywhere.
    let (status, _) = call(
        &replicas[1].as_ref().unwrap().0,
        "DELETE",
        "/api/apps/shop",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    withdrawn_within_a_second(&replicas, &two, "two.customer.test", "shop.test").await;
    // Nothing is left behind in the store: no domain, no certificate.
    let keys = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--raw",
            "KEYS",
            "fleet:certificate:*",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&keys.stdout).trim(), "");
}

#[tokio::test]
async fn two_replicas_renew_each_certificate_once_per_period() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let work = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(work.path(), &[]);
    let validations = Validations::start().await;
    let (pebble, ca_root) = start_pebble(work.path(), validations.port, dns.dns).await;
    // Certificates due for renewal 3 s after their issue: several renewals in the test.
    let mut fleet = Fleet {
        redis: redis.port,
        dns: dns.dns,
        acme: format!(
            "{{directory_url: 'https://localhost:{}/dir', ca_root: '{}', retry_after: 1s, renew_after: 3s}}",
            pebble.acme,
            ca_root.display()
        ),
        dirs: Vec::new(),
    };
    let (a, a_ports) = fleet.replica(&origin).await;
    let (b, _) = fleet.replica(&origin).await;
    validations.send_to(a_ports.plain);
    let shop = json!({"id": "shop", "host": "shop.test", "origin": {"url": origin.url()},
                      "default_action": "public"})
    .to_string();
    assert_eq!(
        call(&a, "POST", "/api/apps", Some(TOKEN), Some(&shop))
            .await
            .0,
        201
    );
    until(Duration::from_secs(1), "shop on B", || async {
        get(b.addr, "/", "shop.test").await.unwrap().status == 200
    })
    .await;
    add(&b, &dns, "renewed.customer.test").await;
    until(
        Duration::from_secs(20),
        "renewed.customer.test Active",
        || async {
            entry(&a, "renewed.customer.test")
                .await
                .is_some_and(|e| e["status"] == "Active")
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let entry = entry(&a, "renewed.customer.test").await.unwrap();
    let history = entry["history"].as_array().unwrap();
    let issued: Vec<u64> = history
        .iter()
        .filter(|e| e["message"] == "certificate issued")
        .map(|e| e["at"].as_u64().unwrap())
        .collect();
    let orders = history
        .iter()
        .filter(|e| {
            e["message"] == "ordering a certificate" || e["message"] == "renewing the certificate"
        })
        .count();
    assert!(issued.len() >= 3, "renewed at least twice: {entry}");
    assert_eq!(
        pebble.orders(),
        orders,
        "every order the CA saw is one the book recorded: {entry}"
    );
    assert_eq!(
        orders,
        issued.len(),
        "no order failed or was made twice: {entry}"
    );
    for pair in issued.windows(2) {
        // 3 s apart, give or take the second the book noted each in.
        assert!(
            pair[1] - pair[0] >= 2,
            "no renewal before its time (one replica renewed, the other saw it): {entry}"
        );
    }
}
