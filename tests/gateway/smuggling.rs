//! Request-smuggling shapes are refused with 400 and nothing extra reaches the origin.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{raw_all, Gateway, Origin};

async fn setup() -> (Origin, Gateway) {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}]",
        origin.url()
    ))
    .await;
    (origin, gw)
}

/// Each request smuggles a second one (`GET /smuggled`) that a desynchronised origin would
/// see as its own request.
const SHAPES: [(&str, &str); 9] = [
    (
        "CL and TE",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "TE and CL",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "two different Content-Length",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "non-numeric Content-Length",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0x2c\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "signed Content-Length",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nContent-Length: +44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "chunked not last",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "unknown coding",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "obs-fold",
        "POST /a HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
    (
        "two Host headers",
        "GET /a HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a.test\r\n\r\n",
    ),
];

#[tokio::test]
async fn smuggling_shapes_get_400_and_reach_nothing() {
    let (origin, gw) = setup().await;
    for (name, bytes) in SHAPES {
        let responses = raw_all(gw.addr, bytes.as_bytes()).await.unwrap_or_default();
        assert!(!responses.is_empty(), "{name}: no answer");
        assert_eq!(responses[0].status, 400, "{name}: {responses:?}");
        assert_eq!(
            responses.len(),
            1,
            "{name}: the connection must close after the refusal"
        );
    }
    assert!(origin.seen().is_empty(), "origin saw {:#?}", origin.seen());
}

#[tokio::test]
async fn bytes_after_a_body_are_never_read_as_its_body_or_a_hidden_request() {
    let (origin, gw) = setup().await;
    // The gateway does not serve pipelined requests (pingora's default): it answers the
    // first, closes the connection, and the client retries the rest on a new one.
    let bytes = "POST /one HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhelloGET /two HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n";
    let responses = raw_all(gw.addr, bytes.as_bytes()).await.unwrap();
    assert_eq!(responses[0].status, 200);
    let seen = origin.seen();
    assert_eq!((seen[0].target.as_str(), seen[0].body_len), ("/one", 5));
    assert_eq!(
        seen.len(),
        responses.len(),
        "the origin served only what the client was answered"
    );
}

#[tokio::test]
async fn requests_pingora_refuses_unread_are_answered_logged_and_counted() {
    let (origin, gw) = setup().await;
    let cases = [
        (
            "two Content-Length",
            "GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            400,
        ),
        (
            "NUL in a header",
            "GET / HTTP/1.1\r\nHost: a.test\r\nX: a\0b\r\n\r\n",
            400,
        ),
        (
            "CONNECT",
            "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test\r\n\r\n",
            405,
        ),
    ];
    let mut ids = Vec::new();
    for (why, request, status) in cases {
        let all = raw_all(gw.addr, request.as_bytes()).await.unwrap();
        let resp = all.last().unwrap();
        assert_eq!(resp.status, status, "{why}: {all:?}");
        assert!(resp.header("server").is_none(), "{why}: {resp:?}");
        let id = resp.header("x-request-id").expect("a request id");
        assert_eq!(id.len(), 32, "{why}");
        ids.push(id.to_string());
        let body: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
        assert!(body["error"].is_string(), "{why}: {}", resp.body);
    }
    // On a kept-alive connection, after a request that was served.
    let mut conn = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = conn.read(&mut first).await.unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    conn.write_all(
        b"GET / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    )
    .await
    .unwrap();
    let mut second = Vec::new();
    conn.read_to_end(&mut second).await.unwrap();
    let second = String::from_utf8_lossy(&second);
    assert!(second.starts_with("HTTP/1.1 400"), "{second}");
    assert!(
        second.contains("malformed_request") && second.contains("x-request-id"),
        "{second}"
    );
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each refusal has its own id");
    assert_eq!(
        origin.seen().len(),
        1,
        "only the good request reached the origin"
    );
    let metrics = crate::common::get(gw.admin, "/metrics", "admin")
        .await
        .unwrap();
    assert!(
        metrics.body.contains(
            "authgate_requests_total{app=\"-\",decision=\"malformed_request\",route=\"-\",status=\"400\"} 3"
        ),
        "{}",
        metrics.body
    );
    assert!(metrics
        .body
        .contains("decision=\"method_not_allowed\",route=\"-\",status=\"405\"} 1"));
}
