//! The custom-domain lifecycle end to end with Debian's `pebble` (ACME test CA) and
//! `pebble-challtestsrv` (test DNS): add a domain through the admin API, publish its records,
//! watch PendingVerification → PendingSsl → Active, then reach the app over TLS with that SNI
//! on a certificate that chains to pebble's root. An unreachable CA leaves the domain in Error
//! with a message; a restart keeps the domain serving.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use serde_json::{json, Value};

use crate::admin_api::{call, wait_for_status, TestDns, TOKEN};
use crate::common::{free_port, Gateway, Origin};

pub struct Pebble {
    child: Child,
    pub acme: u16,
    management: u16,
    log: std::path::PathBuf,
}

impl Pebble {
    /// How many orders pebble has been asked for, by its own log.
    pub fn orders(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("Added order")
            .count()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA for pebble's own HTTPS, and pebble itself, validating HTTP-01 on `http_port` and
/// resolving names through `dns`.
pub async fn start_pebble(dir: &Path, http_port: u16, dns: u16) -> (Pebble, std::path::PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (ca_path, cert_path, key_path) = (
        dir.join("ca.pem"),
        dir.join("pebble.pem"),
        dir.join("pebble.key"),
    );
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let (acme, management, tls) = (free_port(), free_port(), free_port());
    let config = json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{acme}"),
        "managementListenAddress": format!("127.0.0.1:{management}"),
        "certificate": cert_path, "privateKey": key_path,
        "httpPort": http_port, "tlsPort": tls,
        "ocspResponderURL": "", "externalAccountBindingRequired": false
    }});
    let config_path = dir.join("pebble.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let log = dir.join("pebble.log");
    let child = Command::new("pebble")
        .arg("-config")
        .arg(&config_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble is installed (scripts/install-deps installs it)");
    let pebble = Pebble {
        child,
        acme,
        management,
        log,
    };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", acme))
            .await
            .is_ok()
        {
            return (pebble, ca_path);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("pebble did not start");
}

/// A certificate for `static.test`, so the TLS listener has something to serve at start.
pub fn seed_certificate(certs: &Path) {
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["static.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(certs.join("static.test.crt"), cert.pem()).unwrap();
    std::fs::write(certs.join("static.test.key"), key.serialize_pem()).unwrap();
}

pub struct Ports {
    pub plain: u16,
    pub tls: u16,
}

async fn gateway(
    ports: &Ports,
    data: &Path,
    certs: &Path,
    dns: u16,
    acme: &str,
    origin: &Origin,
) -> Gateway {
    gateway_with(ports, data, certs, dns, acme, origin, "").await
}

/// Like [`gateway`], with more top-level keys.
pub async fn gateway_with(
    ports: &Ports,
    data: &Path,
    certs: &Path,
    dns: u16,
    acme: &str,
    origin: &Origin,
    extra: &str,
) -> Gateway {
    // pebble may reach the domain over IPv6 (the test DNS answers AAAA with ::1).
    let listen = format!(
        "listen:\n  - {{address: '127.0.0.1:{p}'}}\n  - {{address: '[::1]:{p}'}}\n  - {{address: '127.0.0.1:{}', tls: true}}",
        ports.tls,
        p = ports.plain
    );
    Gateway::start_full(
        &listen,
        SocketAddr::from(([127, 0, 0, 1], ports.plain)),
        &format!(", api_token: '{TOKEN}', data_dir: '{}'", data.display()),
        &format!(
            "
tls: {{certs_dir: '{}'}}
domains: {{public_name: gw.example.net, nameservers: ['127.0.0.1:{dns}'], check_interval: 1s}}
acme: {acme}
apps: [{{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}]
{extra}
",
            certs.display(),
            origin.url()
        ),
    )
    .await
}

pub async fn publish(dns: &TestDns, domain: &str, entry: &Value) {
    let token = entry["dns_records"][1]["value"].as_str().unwrap();
    dns.set(
        "set-cname",
        json!({"host": format!("{domain}."), "target": "gw.example.net."}),
    )
    .await;
    dns.set(
        "set-txt",
        json!({"host": format!("_authgate.{domain}."), "value": token}),
    )
    .await;
}

/// Adds `domain` to the app `static` through `gw`, publishes its records, and waits until it
/// is Active.
async fn add_until_active(gw: &Gateway, dns: &TestDns, domain: &str) {
    let (status, entry) = call(
        gw,
        "POST",
        "/api/apps/static/custom-domains",
        Some(TOKEN),
        Some(&json!({"domain": domain}).to_string()),
    )
    .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["status"], "PendingVerification");
    publish(dns, domain, &entry).await;
    wait_for_status(gw, "static", domain, "Active").await;
}

#[tokio::test]
async fn a_custom_domain_goes_from_pending_to_active_with_a_pebble_certificate() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let (data, certs, work) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    seed_certificate(certs.path());
    let ports = Ports {
        plain: free_port(),
        tls: free_port(),
    };
    let (pebble, ca_root) = start_pebble(work.path(), ports.plain, dns.dns).await;
    let acme = format!(
        "{{directory_url: 'https://localhost:{}/dir', ca_root: '{}', retry_after: 1s}}",
        pebble.acme,
        ca_root.display()
    );
    let gw = gateway(&ports, data.path(), certs.path(), dns.dns, &acme, &origin).await;

    add_until_active(&gw, &dns, "app.customer.test").await;

    // The app answers on the new domain over TLS, with a certificate from pebble's root.
    let client = pebble_client(&pebble, &ca_root, ports.tls).await;
    let resp = client
        .get(format!("https://app.customer.test:{}/hello", ports.tls))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(origin.seen().iter().any(|s| s.target == "/hello"));

    // A restart keeps the domain active and serving.
    drop(gw);
    let gw = gateway(&ports, data.path(), certs.path(), dns.dns, &acme, &origin).await;
    let (_, list) = call(
        &gw,
        "GET",
        "/api/apps/static/custom-domains",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(list[0]["status"], "Active", "{list}");
    let resp = client
        .get(format!("https://app.customer.test:{}/again", ports.tls))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn pebble_client(pebble: &Pebble, ca_root: &Path, tls_port: u16) -> reqwest::Client {
    pebble_client_for(pebble, ca_root, "app.customer.test", tls_port).await
}

/// A client trusting only pebble's issuing root, reaching `host` at the TLS port.
pub async fn pebble_client_for(
    pebble: &Pebble,
    ca_root: &Path,
    host: &str,
    tls_port: u16,
) -> reqwest::Client {
    let management = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca_root).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let root = management
        .get(format!("https://localhost:{}/roots/0", pebble.management))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes()).unwrap())
        .resolve(host, SocketAddr::from(([127, 0, 0, 1], tls_port)))
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_unreachable_ca_leaves_the_domain_in_error_with_a_message() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let (data, certs) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    seed_certificate(certs.path());
    let ports = Ports {
        plain: free_port(),
        tls: free_port(),
    };
    let acme = format!(
        "{{directory_url: 'https://127.0.0.1:{}/dir', retry_after: 60s}}",
        free_port()
    );
    let gw = gateway(&ports, data.path(), certs.path(), dns.dns, &acme, &origin).await;
    let (_, entry) = call(
        &gw,
        "POST",
        "/api/apps/static/custom-domains",
        Some(TOKEN),
        Some(&json!({"domain": "down.customer.test"}).to_string()),
    )
    .await;
    publish(&dns, "down.customer.test", &entry).await;
    let failed = wait_for_status(&gw, "static", "down.customer.test", "Error").await;
    assert!(
        failed["error_message"].as_str().unwrap().contains("ACME"),
        "{failed}"
    );
}

#[tokio::test]
async fn replicas_answer_each_others_challenges_and_share_one_acme_account() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let work = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(work.path(), &[]);
    let control = format!(
        "sessions: {{cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']}}\n\
         control: {{store: redis, redis: {{url: 'redis://127.0.0.1:{}/', key_prefix: 'acme-test:'}}}}",
        redis.port
    );
    let (data_a, certs_a, data_b, certs_b) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    seed_certificate(certs_a.path());
    seed_certificate(certs_b.path());
    let (ports_a, ports_b) = (
        Ports {
            plain: free_port(),
            tls: free_port(),
        },
        Ports {
            plain: free_port(),
            tls: free_port(),
        },
    );
    // pebble validates on B's port; the domain is added (and ordered) on A.
    let (pebble, ca_root) = start_pebble(work.path(), ports_b.plain, dns.dns).await;
    let acme = format!(
        "{{directory_url: 'https://localhost:{}/dir', ca_root: '{}', retry_after: 1s}}",
        pebble.acme,
        ca_root.display()
    );
    let a = gateway_with(
        &ports_a,
        data_a.path(),
        certs_a.path(),
        dns.dns,
        &acme,
        &origin,
        &control,
    )
    .await;
    let b = gateway_with(
        &ports_b,
        data_b.path(),
        certs_b.path(),
        dns.dns,
        &acme,
        &origin,
        &control,
    )
    .await;
    add_until_active(&a, &dns, "shared.customer.test").await;
    // The CA's validation reached B, which had placed no order, and B answered it.
    let answered = b
        .metrics()
        .await
        .lines()
        .any(|l| l.contains("decision=\"acme_challenge\"") && l.contains("status=\"200\""));
    assert!(answered, "B answered no challenge");
    // One ACME account, stored sealed; B orders its own domain with the same account.
    let account = || {
        let out = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &redis.port.to_string(),
                "--no-raw",
                "KEYS",
                "acme-test:acme-account-*",
            ])
            .output()
            .unwrap();
        let keys = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(keys.lines().count(), 1, "one account document: {keys}");
        let key = keys.trim_start_matches("1) ").trim_matches('"').to_string();
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "--no-raw", "GET", &key])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let first = account();
    assert!(first.starts_with("\"S"), "sealed: {first}");
    add_until_active(&b, &dns, "second.customer.test").await;
    assert_eq!(account(), first, "the account was reused, not made again");

    // A serves the certificate B's answer won, chained to pebble's root.
    let client = pebble_client_for(&pebble, &ca_root, "shared.customer.test", ports_a.tls).await;
    let resp = client
        .get(format!(
            "https://shared.customer.test:{}/hello",
            ports_a.tls
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}
