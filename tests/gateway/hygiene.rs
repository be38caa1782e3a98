//! Identity and forwarding headers a client sends never reach the origin; hop-by-hop headers
//! are dropped; the gateway's own forwarding headers are set.

use crate::common::{raw, Gateway, Origin};

fn public_app(origin: &Origin, extra: &str) -> String {
    format!(
        "{extra}
apps:
  - id: open
    host: open.test
    origin: {{url: '{}'}}
    default_action: public
",
        origin.url()
    )
}

const FORGED: [&str; 9] = [
    "X-Forwarded-User: admin",
    "x-forwarded-user: admin-again",
    "X_Forwarded_User: admin-underscore",
    "X-FORWARDED-EMAIL: boss@example.com",
    "X-Forwarded-Groups: admins",
    "Remote-User: admin",
    "Remote_User: admin",
    "X-Auth-Request-User: admin",
    "X-Authgate-Assertion: forged.jwt.value",
];

fn assert_clean(seen: &crate::common::Seen) {
    for (name, value) in &seen.headers {
        let lower = name.to_ascii_lowercase().replace('_', "-");
        assert!(
            !matches!(
                lower.as_str(),
                "x-forwarded-user"
                    | "x-forwarded-email"
                    | "x-forwarded-groups"
                    | "remote-user"
                    | "x-authgate-assertion"
            ) && !lower.starts_with("x-auth-request-"),
            "forged identity header reached the origin: {name}: {value}"
        );
        assert!(
            !value.contains("admin"),
            "forged value reached the origin: {name}: {value}"
        );
    }
}

#[tokio::test]
async fn forged_identity_headers_never_reach_the_origin() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&public_app(&origin, "")).await;
    for method in ["GET", "OPTIONS", "POST"] {
        let req = format!(
            "{method} /x HTTP/1.1\r\nHost: open.test\r\n{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            FORGED.join("\r\n")
        );
        let resp = raw(gw.addr, req.as_bytes()).await;
        assert_eq!(resp.status, 200, "{method}");
    }
    let seen = origin.seen();
    let methods: Vec<&str> = seen.iter().map(|s| s.method.as_str()).collect();
    assert_eq!(methods, ["GET", "OPTIONS", "POST"]);
    for s in &seen {
        assert_clean(s);
    }
}

#[tokio::test]
async fn connection_nominated_headers_are_dropped_or_refused() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&public_app(&origin, "")).await;
    // Nominating a managed header in `Connection` must not make it survive.
    let req = "GET /x HTTP/1.1\r\nHost: open.test\r\nConnection: close, X-Forwarded-User\r\nX-Forwarded-User: admin\r\nX-Custom-Hop: 1\r\n\r\n";
    let resp = raw(gw.addr, req.as_bytes()).await;
    assert!(resp.status == 200 || resp.status == 400, "{resp:?}");
    // A client naming a gateway-owned forwarding header there is refused or ignored.
    let req = "GET /y HTTP/1.1\r\nHost: open.test\r\nConnection: close, X-Forwarded-For\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n";
    let resp = raw(gw.addr, req.as_bytes()).await;
    assert!(resp.status == 200 || resp.status == 400, "{resp:?}");
    // Ordinary hop-by-hop headers and the ones the client nominates are removed.
    let req = "GET /z HTTP/1.1\r\nHost: open.test\r\nConnection: close, X-Custom-Hop\r\nX-Custom-Hop: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\r\n";
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 200);
    for s in origin.seen() {
        assert_clean(&s);
        assert!(
            !s.all("x-forwarded-for")
                .iter()
                .any(|v| v.contains("6.6.6.6")),
            "{s:?}"
        );
        if s.target == "/z" {
            for hop in ["x-custom-hop", "keep-alive", "te", "proxy-connection"] {
                assert!(s.header(hop).is_none(), "{hop} reached the origin: {s:?}");
            }
        }
    }
    assert!(origin.seen().iter().any(|s| s.target == "/z"));
}

#[tokio::test]
async fn forwarding_headers_come_from_the_connection_unless_the_peer_is_trusted() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&public_app(&origin, "")).await;
    let req = "GET /x HTTP/1.1\r\nHost: open.test:8080\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: evil.test\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Request-Id: forged\r\nConnection: close\r\n\r\n";
    let resp = raw(gw.addr, req.as_bytes()).await;
    let seen = origin.only();
    assert_eq!(seen.all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.all("x-forwarded-host"), ["open.test:8080"]);
    assert_eq!(seen.all("x-real-ip"), ["127.0.0.1"]);
    assert!(seen.header("forwarded").is_none());
    let id = seen.header("x-request-id").unwrap();
    assert_ne!(id, "forged");
    assert_eq!(
        resp.header("x-request-id"),
        Some(id),
        "the client sees the id the origin got"
    );
    assert_eq!(seen.header("host"), Some(origin.addr.to_string().as_str()));

    let origin = Origin::start().await;
    let gw = Gateway::start(&public_app(&origin, "trusted_proxies: [127.0.0.0/8]")).await;
    raw(gw.addr, req.as_bytes()).await;
    let seen = origin.only();
    assert_eq!(seen.all("x-forwarded-for"), ["6.6.6.6, 127.0.0.1"]);
    assert_eq!(seen.all("x-forwarded-proto"), ["https"]);
}

#[tokio::test]
async fn the_origin_can_receive_the_original_host() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}', host_header: original}}}}]",
        origin.url()
    ))
    .await;
    raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: A.test.:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    // The host the client asked for, in its canonical spelling (lower case, no trailing dot).
    assert_eq!(origin.only().header("host"), Some("a.test:8080"));
}
