//! What the gateway writes to its log when it is a file: no colour codes, one start-up line
//! naming what runs, the user in access events, rounded durations, and never a query string.

use crate::common::{raw, Gateway, Origin};
use crate::tokens::{claims, JwksServer, TestKey};

#[tokio::test]
async fn a_log_file_reads_plainly_and_keeps_secrets_out() {
    let key = TestKey::rsa("r1");
    let idp = JwksServer::start(&[&key]).await;
    let origin = Origin::start().await;
    let (gw, log) = Gateway::start_logged(&format!(
        "jwt_issuers:\n  - {{id: main, issuer: '{}', jwks_uri: '{}', audiences: [api]}}\napps:\n  - {{id: api, host: api.test, default_action: jwt, origin: {{url: '{}'}}}}\n  - {{id: down, host: down.test, default_action: public, origin: {{url: 'http://127.0.0.1:9'}}}}\n",
        idp.issuer(),
        idp.jwks_uri(),
        origin.url()
    ))
    .await;
    let token = key.token(&claims(&idp.issuer()));
    let req = format!(
        "GET /x?api_key=s3cret-in-the-query HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 200);
    // An origin that cannot be reached: pingora logs the failure itself.
    let req = "GET /y?api_key=s3cret-in-the-query HTTP/1.1\r\nHost: down.test\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 502);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
    assert!(
        !text.contains("s3cret"),
        "a query string was logged:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.contains("INFO pingora")),
        "pingora's narration in the log:\n{text}"
    );
    let start = text
        .lines()
        .find(|l| l.contains("authgate starting"))
        .unwrap_or_else(|| panic!("no start-up line:\n{text}"));
    for part in [
        env!("CARGO_PKG_VERSION"),
        "api down",
        "127.0.0.1:",
        "authgate.yaml",
    ] {
        assert!(start.contains(part), "{part} missing from: {start}");
    }
    let access = text
        .lines()
        .find(|l| l.contains("authgate::access") && l.contains("app=\"api\""))
        .unwrap_or_else(|| panic!("no access event:\n{text}"));
    assert!(access.contains("user=\"user-1\""), "{access}");
    assert!(access.contains("auth=\"bearer\""), "{access}");
    let duration = access
        .split("duration_ms=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap();
    let decimals = duration.split('.').nth(1).map_or(0, str::len);
    assert!(decimals <= 3, "duration_ms={duration}");
}

#[tokio::test]
async fn client_mistakes_are_not_errors_in_the_log() {
    use tokio::io::AsyncWriteExt;
    let origin = Origin::start().await;
    let (gw, log) = Gateway::start_logged(&format!(
        "apps:\n  - {{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}\n",
        origin.url()
    ))
    .await;
    // Half a request head, then gone; a body cut short; a malformed head.
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Half: ")
        .await
        .unwrap();
    drop(conn);
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(
        b"POST /upload HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\nonly a little",
    )
    .await
    .unwrap();
    drop(conn);
    let bad = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nBad Header\r\n\r\n",
    )
    .await;
    assert_eq!(bad.status, 400);
    // The gateway still serves.
    let ok = raw(
        gw.addr,
        b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(ok.status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        !text.lines().any(|l| l.contains("ERROR")),
        "a client's mistake logged as an error:\n{text}"
    );
}
