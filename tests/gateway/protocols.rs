//! h2c, WebSocket, streamed bodies, size limits, and a broken origin.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{free_port, get, raw, Gateway, Origin};

fn open_app(origin_url: &str, extra: &str) -> String {
    format!(
        "{extra}
apps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{origin_url}', connect_timeout: 2s, read_timeout: 2s}}}}]"
    )
}

#[tokio::test]
async fn h2c_requests_are_proxied() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&open_app(&origin.url(), "")).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve("a.test", gw.addr)
        .build()
        .unwrap();
    let resp = client
        .get(format!("http://a.test:{}/h2/x", gw.addr.port()))
        .header("x-forwarded-user", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let seen = origin.only();
    assert_eq!(seen.target, "/h2/x");
    assert!(seen.header("x-forwarded-user").is_none());

    // A `host` header that disagrees with `:authority` is ambiguous.
    let resp = client
        .get(format!("http://a.test:{}/h2/y", gw.addr.port()))
        .header("host", "other.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(origin.seen().len(), 1);
}

/// A WebSocket origin that echoes every message back.
async fn websocket_origin() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        let _ = ws.send(msg).await;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_upgrade_is_tunnelled_after_the_origins_101() {
    let ws_origin = websocket_origin().await;
    let gw = Gateway::start(&open_app(&format!("http://{ws_origin}"), "")).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://a.test/socket", stream)
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for text in ["hello", "through", "authgate"] {
        ws.send(Message::text(text)).await.unwrap();
        let echoed = ws.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
}

#[tokio::test]
async fn an_origin_refusing_the_upgrade_is_not_tunnelled() {
    // The recording origin answers an upgrade request with a plain 200.
    let origin = Origin::start().await;
    let gw = Gateway::start(&open_app(&origin.url(), "")).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let result = tokio_tungstenite::client_async("ws://a.test/socket", stream).await;
    assert!(result.is_err(), "no 101 from the origin, no WebSocket");
}

#[tokio::test]
async fn bodies_stream_both_ways_within_limits() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&open_app(
        &origin.url(),
        "limits: {max_request_body_bytes: 1048576, max_request_header_bytes: 4096}",
    ))
    .await;
    // A chunked upload of 1 MiB arrives whole.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..16 {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    stream.write_all(b"0\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(origin.only().body_len, 1024 * 1024);

    // Declared too large: 413 before anything is forwarded.
    let req = "POST /big HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1048577\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 413);

    // Streamed too large: 413 once the limit is crossed.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /big-chunked HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..17 {
        let head = format!("{:x}\r\n", chunk.len());
        if stream.write_all(head.as_bytes()).await.is_err()
            || stream.write_all(&chunk).await.is_err()
            || stream.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(
        origin
            .seen()
            .iter()
            .all(|s| s.target != "/big-chunked" || s.body_len <= 1024 * 1024),
        "the origin never receives more than the limit"
    );

    // Headers over the limit: 431.
    let big = "v".repeat(5000);
    let req =
        format!("GET /h HTTP/1.1\r\nHost: a.test\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    assert_eq!(raw(gw.addr, req.as_bytes()).await.status, 431);
}

#[tokio::test]
async fn a_broken_origin_gives_502_at_once() {
    let dead = free_port();
    let gw = Gateway::start(&open_app(&format!("http://127.0.0.1:{dead}"), "")).await;
    let started = Instant::now();
    let resp = get(gw.addr, "/x", "a.test").await.unwrap();
    assert_eq!(resp.status, 502, "{resp:?}");
    assert!(resp.body.contains("origin_unavailable"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a refused connection is not retried"
    );

    // An origin that accepts and hangs up without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let gw = Gateway::start(&open_app(&format!("http://{addr}"), "")).await;
    let resp = get(gw.addr, "/x", "a.test").await.unwrap();
    assert_eq!(resp.status, 502, "{resp:?}");
}

#[tokio::test]
async fn an_origin_that_never_answers_gives_504() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let gw = Gateway::start(&open_app(&format!("http://{addr}"), "")).await;
    let resp = get(gw.addr, "/x", "a.test").await.unwrap();
    assert_eq!(resp.status, 504, "{resp:?}");
}

#[tokio::test]
async fn an_origin_response_over_the_limit_gives_502() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&open_app(
        &origin.url(),
        "limits: {max_response_body_bytes: 16}",
    ))
    .await;
    // The recording origin answers `origin saw /short` (17 bytes) or longer.
    let resp = get(gw.addr, "/this-is-long", "a.test").await.unwrap();
    assert_eq!(resp.status, 502, "{resp:?}");
    assert!(
        !resp.body.contains("origin saw"),
        "no part of the body is passed on"
    );
    let resp = get(gw.addr, "/s", "a.test").await.unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
}

#[tokio::test]
async fn an_open_websocket_is_told_when_the_gateway_shuts_down() {
    let ws_origin = websocket_origin().await;
    let gw = Gateway::start(&open_app(&format!("http://{ws_origin}"), "")).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async("ws://a.test/socket", stream)
        .await
        .unwrap();
    ws.send(Message::text("hello")).await.unwrap();
    assert!(ws.next().await.unwrap().unwrap().is_text());
    let term = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // The tunnel stays open through the drain, then closes with 1001 "going away".
    let closing = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
        .await
        .expect("the connection ends within the drain");
    match closing {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1001, "{frame:?}")
        }
        other => panic!("no close frame: {other:?}"),
    }
}
