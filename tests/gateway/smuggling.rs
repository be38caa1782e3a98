//! Request-smuggling shapes are refused with 400 and nothing extra reaches the origin.

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
