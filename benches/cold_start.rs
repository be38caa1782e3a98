//! How long a replica of a large fleet takes from a cold start to serving: Redis holds 10,000
//! admin API apps, each with an active custom domain and its certificate (sealed, as replicas
//! store them); the release gateway binary is started against it and timed until `/readyz`
//! says ready, until the last app answers on its host, and until the last custom domain
//! completes a TLS handshake with its own certificate. Its memory after start is read from
//! /proc.
//!
//! Run: `cargo bench --bench cold_start` (needs `redis-server`; `scripts/install-deps`
//! installs it). `COLD_START_APPS=1000` for a smaller fleet. The test suite runs it with 100.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use authgate::domains::certificates::{Certificates, Vault};

#[path = "support/fleet.rs"]
mod fleet;

const COOKIE_KEY: &str = "a-cookie-key-shared-by-the-replicas-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An origin that answers every request with 200.
fn origin() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf) {
                    if n == 0
                        || stream
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn config(redis: u16, plain: u16, tls: u16, admin: u16, dirs: &std::path::Path) -> String {
    format!(
        "listen: [{{address: '127.0.0.1:{plain}'}}, {{address: '127.0.0.1:{tls}', tls: true}}]\n\
         admin: {{listen: '127.0.0.1:{admin}', api_token: 'a-token-of-at-least-thirty-two-bytes', data_dir: '{data}'}}\n\
         tls: {{certs_dir: '{certs}'}}\n\
         acme: {{directory_url: 'https://127.0.0.1:9/dir'}}\n\
         domains: {{public_name: gw.example.net, check_interval: 1h}}\n\
         sessions: {{cookie_keys: ['{COOKIE_KEY}']}}\n\
         control: {{store: redis, redis: {{url: 'redis://127.0.0.1:{redis}/', key_prefix: 'cold:'}}}}\n\
         log: {{level: warn}}\n\
         apps: []\n",
        data = dirs.join("data").display(),
        certs = dirs.join("certs").display(),
    )
}

fn app(i: usize, origin: u16) -> serde_json::Value {
    serde_json::json!({
        "id": format!("app-{i}"), "host": format!("app-{i}.example.com"),
        "origin": {"url": format!("http://127.0.0.1:{origin}/")},
        "default_action": "public",
        "routes": [
            {"prefix": "/admin", "action": "session", "require": {"groups": ["admins"]}},
            {"glob": "/api/**", "action": "jwt"}
        ]
    })
}

/// Fills the control store the way a fleet leaves it.
async fn populate(gateway: &authgate::config::Gateway, apps: usize, origin: u16) {
    let store = Arc::new(
        authgate::store::redis::RedisStore::connect(gateway.control.redis.clone().unwrap())
            .await
            .unwrap(),
    );
    let list: Vec<serde_json::Value> = (0..apps).map(|i| app(i, origin)).collect();
    let domains = fleet::active_domains(apps);
    fleet::store(&*store, &list, &domains).await;
    let scratch = tempfile::tempdir().unwrap();
    let serving = Arc::new(authgate::tls::CertStore::load(scratch.path()).unwrap());
    let vault = Certificates::new(serving, Vault::Shared(store.clone()));
    let keys = gateway.sessions.cookie_keys.as_deref();
    for d in &domains {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![d.domain.clone()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        vault
            .keep(
                &d.domain,
                &cert.pem(),
                &key.serialize_pem(),
                1_700_000_000,
                keys,
            )
            .await
            .unwrap();
    }
}

/// Whether a TLS handshake for `name` gets a certificate for `name`.
fn handshake(tls: u16, name: &str) -> bool {
    #[derive(Debug)]
    struct AnyCertificate;
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::aws_lc_rs::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    let Ok(server) = rustls::pki_types::ServerName::try_from(name.to_string()) else {
        return false;
    };
    let Ok(mut conn) = rustls::ClientConnection::new(Arc::new(config), server) else {
        return false;
    };
    let Ok(mut sock) = TcpStream::connect(("127.0.0.1", tls)) else {
        return false;
    };
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    conn.peer_certificates()
        .and_then(|c| c.first())
        .and_then(|der| x509_parser::parse_x509_certificate(der).ok())
        .and_then(|(_, cert)| {
            cert.subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| format!("{:?}", san.value).contains(name))
        })
        .unwrap_or(false)
}

/// The status of `GET path` with `host` at `port`, if one came.
fn status(port: u16, path: &str, host: &str) -> Option<u16> {
    let mut sock = TcpStream::connect(("127.0.0.1", port)).ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        sock,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    sock.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` (the test suite) does not,
    // and gets a 100-app smoke run so the harness cannot rot.
    let measuring = std::env::args().any(|a| a == "--bench");
    let apps: usize = std::env::var("COLD_START_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if measuring { 10_000 } else { 100 });
    let dirs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dirs.path().join("certs")).unwrap();
    let redis = free_port();
    let _redis = Killed(
        Command::new("redis-server")
            .args([
                "--port",
                &redis.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed"),
    );
    while TcpStream::connect(("127.0.0.1", redis)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let origin = origin();
    let (plain, tls, admin) = (free_port(), free_port(), free_port());
    let text = config(redis, plain, tls, admin, dirs.path());
    let gateway = authgate::config::from_yaml(&text).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let filled = Instant::now();
    rt.block_on(populate(&gateway, apps, origin));
    eprintln!(
        "stored {apps} apps, domains and certificates in {:.1} s",
        filled.elapsed().as_secs_f64()
    );
    let path = dirs.path().join("authgate.yaml");
    std::fs::write(&path, &text).unwrap();

    let started = Instant::now();
    let child = Killed(
        Command::new(env!("CARGO_BIN_EXE_authgate"))
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let last = apps - 1;
    let (mut ready, mut app_served, mut tls_served) = (None, None, None);
    while (ready.is_none() || app_served.is_none() || tls_served.is_none())
        && started.elapsed() < Duration::from_secs(120)
    {
        if ready.is_none() && status(admin, "/readyz", "admin") == Some(200) {
            ready = Some(started.elapsed());
        }
        if app_served.is_none()
            && status(plain, "/", &format!("app-{last}.example.com")) == Some(200)
        {
            app_served = Some(started.elapsed());
        }
        if tls_served.is_none() && handshake(tls, &format!("www.customer-{last}.test")) {
            tls_served = Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let ms = |d: Option<Duration>| d.map_or("never".into(), |d| format!("{} ms", d.as_millis()));
    println!(
        "cold start with {apps} apps, {apps} active custom domains and certificates in Redis:"
    );
    println!("  /readyz 200 after                 {}", ms(ready));
    println!("  last app answering on its host    {}", ms(app_served));
    println!("  last domain's certificate served  {}", ms(tls_served));
    println!(
        "  resident memory after start       {} MiB",
        rss_kib(child.0.id()) / 1024
    );
    assert!(
        ready.is_some() && app_served.is_some() && tls_served.is_some(),
        "the replica did not come up"
    );
}
