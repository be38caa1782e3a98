//! TLS termination: certificates chosen by SNI (exact and wildcard) from a directory, HTTP/2
//! by ALPN, 421 when SNI and Host name different apps, the HTTP → HTTPS redirect listener, and
//! certificates reloaded on SIGHUP. Certificates come from a CA generated in the test.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

use crate::common::{free_port, raw, Gateway, Origin};

pub(crate) fn test_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "authgate test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

pub(crate) fn write_cert(
    dir: &Path,
    stem: &str,
    names: &[&str],
    ca: &CertifiedIssuer<'static, KeyPair>,
) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
}

pub(crate) fn client(
    ca: &CertifiedIssuer<'static, KeyPair>,
    hosts: &[&str],
    addr: SocketAddr,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none());
    for host in hosts {
        builder = builder.resolve(host, addr);
    }
    builder.build().unwrap()
}

struct Setup {
    ca: CertifiedIssuer<'static, KeyPair>,
    certs: tempfile::TempDir,
    origin: Origin,
    gw: Gateway,
    tls: SocketAddr,
    plain: SocketAddr,
}

async fn setup() -> Setup {
    let ca = test_ca();
    let certs = tempfile::tempdir().unwrap();
    write_cert(certs.path(), "a.test", &["a.test"], &ca);
    write_cert(certs.path(), "_wildcard.b.test", &["*.b.test"], &ca);
    let origin = Origin::start().await;
    let (tls_port, plain_port) = (free_port(), free_port());
    let listen = format!(
        "listen:\n  - {{address: '127.0.0.1:{tls_port}', tls: true}}\n  - {{address: '127.0.0.1:{plain_port}', redirect_to_https: 8443}}"
    );
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let gw = Gateway::start_with(
        &listen,
        tls,
        &format!(
            "
tls: {{certs_dir: '{}'}}
apps:
  - {{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}
  - {{id: b, host: x.b.test, custom_domains: [y.b.test], default_action: public, origin: {{url: '{}'}}}}
",
            certs.path().display(),
            origin.url(),
            origin.url()
        ),
    )
    .await;
    Setup {
        ca,
        certs,
        origin,
        gw,
        tls,
        plain: SocketAddr::from(([127, 0, 0, 1], plain_port)),
    }
}

#[tokio::test]
async fn certificates_are_chosen_by_sni_and_h2_is_negotiated() {
    let s = setup().await;
    let port = s.tls.port();
    let c = client(
        &s.ca,
        &["a.test", "x.b.test", "y.b.test", "z.c.test"],
        s.tls,
    );
    for host in ["a.test", "x.b.test", "y.b.test"] {
        let resp = c
            .get(format!("https://{host}:{port}/p"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{host}");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2, "{host}: ALPN h2");
    }
    let seen = s.origin.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen
        .iter()
        .all(|r| r.header("x-forwarded-proto") == Some("https")));
    // No certificate for the name: the handshake fails, nothing is served.
    assert!(c
        .get(format!("https://z.c.test:{port}/p"))
        .send()
        .await
        .is_err());
    assert_eq!(s.origin.seen().len(), 3);
}

#[tokio::test]
async fn sni_and_host_of_different_apps_get_421() {
    let s = setup().await;
    let port = s.tls.port();
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(s.ca.pem().as_bytes()).unwrap())
        .resolve("a.test", s.tls)
        .http1_only()
        .build()
        .unwrap();
    let resp = c
        .get(format!("https://a.test:{port}/p"))
        .header("host", "x.b.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 421);
    assert!(s.origin.seen().is_empty());
}

#[tokio::test]
async fn the_plain_listener_redirects_to_https() {
    let s = setup().await;
    let resp = raw(
        s.plain,
        b"GET /a/../docs?x=1 HTTP/1.1\r\nHost: A.test:80\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 308);
    assert_eq!(
        resp.header("location"),
        Some("https://a.test:8443/docs?x=1")
    );
    let resp = raw(
        s.plain,
        b"GET / HTTP/1.1\r\nHost: unknown.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        resp.status, 404,
        "only the gateway's own hosts are redirected"
    );
    assert!(s.origin.seen().is_empty());
}

#[tokio::test]
async fn certificates_reload_on_sighup() {
    let s = setup().await;
    let port = s.tls.port();
    let c = client(&s.ca, &["new.test"], s.tls);
    assert!(c
        .get(format!("https://new.test:{port}/"))
        .send()
        .await
        .is_err());
    write_cert(s.certs.path(), "new.test", &["new.test"], &s.ca);
    let text = std::fs::read_to_string(&s.gw.config_path).unwrap();
    let with_app = text.replace(
        "apps:\n",
        &format!(
            "apps:\n  - {{id: n, host: new.test, default_action: public, origin: {{url: '{}'}}}}\n",
            s.origin.url()
        ),
    );
    std::fs::write(&s.gw.config_path, with_app).unwrap();
    let ok = Command::new("kill")
        .args(["-HUP", &s.gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    // The certificates are read first, then the configuration: in between, the new host's
    // handshake succeeds and the host is not served yet (404).
    let mut status = None;
    for _ in 0..100 {
        if let Ok(resp) = c.get(format!("https://new.test:{port}/")).send().await {
            status = Some(resp.status().as_u16());
            if status == Some(200) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(status, Some(200));
}
