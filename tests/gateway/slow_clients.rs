//! Idle and slow clients through the real gateway: a kept-alive connection that goes quiet, a
//! head sent a byte at a time, a connection that never speaks (h2c preface wait included),
//! and the connection cap — while slow origins, long requests and HTTP/2 are left alone.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{get, Gateway, Origin};

async fn gateway(origin: &Origin, limits: &str) -> Gateway {
    Gateway::start(&format!(
        "limits: {{{limits}}}\napps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}', read_timeout: 10s}}}}]\n",
        origin.url()
    ))
    .await
}

/// Reads until the server closes the connection; returns what came and how long it took.
async fn until_closed(conn: &mut TcpStream, patience: Duration) -> Option<(Vec<u8>, Duration)> {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + patience).into(), conn.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some((got, started.elapsed())),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_quiet_kept_alive_connection_is_closed() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "keepalive_timeout: 1s").await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    conn.write_all(b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    // A second request within the timeout is served on the same connection.
    tokio::time::sleep(Duration::from_millis(400)).await;
    conn.write_all(b"GET /two HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await
        .unwrap();
    let n = conn.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    let (rest, took) = until_closed(&mut conn, Duration::from_secs(5))
        .await
        .expect("the idle connection is closed");
    assert!(rest.is_empty());
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    assert_eq!(origin.seen().len(), 2);
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_cut_off() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "request_header_timeout: 1s").await;
    let mut conn = TcpStream::connect(gw.addr).await.unwrap();
    let head = b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let started = Instant::now();
    let mut cut = false;
    for byte in head {
        if conn.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let closed = until_closed(&mut conn, Duration::from_secs(3)).await;
    assert!(cut || closed.is_some(), "the slow head was not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(origin.seen().is_empty());
    let metrics = get(gw.admin, "/metrics", "admin").await.unwrap();
    assert!(
        metrics.body.contains("decision=\"request_header_timeout\""),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn a_connection_that_never_speaks_is_closed_h2c_preface_wait_included() {
    let origin = Origin::start().await;
    for listen_extra in ["", ", h2c: true"] {
        let port = crate::common::free_port();
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let gw = Gateway::start_with(
            &format!("listen: [{{address: '127.0.0.1:{port}'{listen_extra}}}]"),
            addr,
            &format!(
                "limits: {{request_header_timeout: 1s}}\napps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}]\n",
                origin.url()
            ),
        )
        .await;
        let mut conn = TcpStream::connect(gw.addr).await.unwrap();
        let (got, took) = until_closed(&mut conn, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("never closed ({listen_extra:?})"));
        assert!(got.is_empty());
        assert!(took >= Duration::from_millis(800), "{took:?}");
    }
}

#[tokio::test]
async fn slow_origins_and_http2_are_not_cut() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "request_header_timeout: 1s, keepalive_timeout: 1s").await;
    // The origin takes 3 s: the request is being served, no client deadline applies.
    let resp = get(gw.addr, "/slow3", "a.test").await.unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "origin saw /slow3");
    // HTTP/2 (prior knowledge): one connection, requests 1.5 s apart.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .resolve("a.test", gw.addr)
        .build()
        .unwrap();
    let url = format!("http://a.test:{}/h2", gw.addr.port());
    assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = client.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
}

#[tokio::test]
async fn connections_past_the_cap_are_closed_on_arrival() {
    let origin = Origin::start().await;
    let gw = gateway(&origin, "max_connections: 3, request_header_timeout: 30s").await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = TcpStream::connect(gw.addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    let (got, _) = until_closed(&mut fourth, Duration::from_secs(3))
        .await
        .expect("closed at once");
    assert!(got.is_empty(), "{}", String::from_utf8_lossy(&got));
    // One leaves: there is room again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(get(gw.addr, "/", "a.test").await.unwrap().status, 200);
    let metrics = get(gw.admin, "/metrics", "admin").await.unwrap();
    assert!(
        metrics
            .body
            .contains("authgate_connections_refused_total 1"),
        "{}",
        metrics.body
    );
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A crowd of slow clients costs memory while it stays; an idle gateway gives that memory back
/// once the crowd has gone, without waiting for traffic. (800 clients keep this test and the
/// gateway within a 1,024-descriptor limit.)
#[tokio::test]
async fn an_idle_gateway_gives_a_departed_crowds_memory_back() {
    let origin = Origin::start().await;
    let gw = gateway(
        &origin,
        "request_header_timeout: 60s, max_connections: 1000",
    )
    .await;
    let before = resident_kib(gw.pid());
    let mut crowd = Vec::new();
    for _ in 0..800 {
        let mut conn = TcpStream::connect(gw.addr).await.unwrap();
        conn.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Half: ")
            .await
            .unwrap();
        crowd.push(conn);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_crowd = resident_kib(gw.pid());
    let grew = with_crowd.saturating_sub(before);
    assert!(
        grew > 8 * 1024,
        "800 waiting clients should hold several MiB: {before} → {with_crowd} KiB"
    );
    drop(crowd);
    // No request reaches the gateway from here on.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut now = resident_kib(gw.pid());
    while now > before + grew / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        now = resident_kib(gw.pid());
    }
    assert!(
        now <= before + grew / 3,
        "memory not given back while idle: {before} KiB before, {with_crowd} with the crowd, {now} 15 s after it left"
    );
}
