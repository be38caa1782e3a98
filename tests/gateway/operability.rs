//! Health, readiness, metrics, request ids, and graceful shutdown.

use std::process::Command;
use std::time::Duration;

use crate::common::{get, Gateway, Origin};

fn app(origin: &Origin, extra: &str) -> String {
    format!(
        "{extra}
apps:
  - id: shop
    host: shop.test
    origin: {{url: '{}'}}
    routes:
      - {{name: public, prefix: /public, action: public}}
",
        origin.url()
    )
}

#[tokio::test]
async fn health_readiness_and_metrics_on_the_admin_listener() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&app(&origin, "")).await;
    assert_eq!(get(gw.admin, "/healthz", "x").await.unwrap().status, 200);
    assert_eq!(get(gw.admin, "/readyz", "x").await.unwrap().status, 200);
    assert_eq!(
        get(gw.addr, "/public/a", "shop.test").await.unwrap().status,
        200
    );
    assert_eq!(
        get(gw.addr, "/private", "shop.test").await.unwrap().status,
        401
    );
    assert_eq!(get(gw.addr, "/", "nobody.test").await.unwrap().status, 404);

    let metrics = get(gw.admin, "/metrics", "x").await.unwrap().body;
    for line in [
        r#"authgate_requests_total{app="shop",decision="allow",route="public",status="200"} 1"#,
        r#"authgate_requests_total{app="shop",decision="unauthenticated",route="default",status="401"} 1"#,
        r#"authgate_requests_total{app="-",decision="unknown_host",route="-",status="404"} 1"#,
        r#"authgate_upstream_duration_seconds_count{app="shop"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in:\n{metrics}");
    }
    // The admin endpoints are not reachable through an app's host.
    assert_eq!(
        get(gw.addr, "/metrics", "shop.test").await.unwrap().status,
        401
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let origin = Origin::start().await;
    let port = crate::common::free_port();
    let admin = crate::common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: [{{address: '127.0.0.1:{port}'}}]\nadmin: {{listen: '127.0.0.1:{admin}', metrics_token: '${{AUTHGATE_TEST_METRICS_TOKEN}}'}}\n{}",
            app(&origin, "")
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&path)
        .env("AUTHGATE_TEST_METRICS_TOKEN", "s3cret-metrics")
        .spawn()
        .unwrap();
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    let mut ready = false;
    for _ in 0..200 {
        if get(admin_addr, "/readyz", "x")
            .await
            .is_ok_and(|r| r.status == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);
    assert_eq!(get(admin_addr, "/metrics", "x").await.unwrap().status, 401);
    let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-metrics\r\nConnection: close\r\n\r\n";
    assert_eq!(
        crate::common::raw(admin_addr, req.as_bytes()).await.status,
        200
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    let origin = Origin::start().await;
    let mut gw = Gateway::start(&app(&origin, "")).await;
    let addr = gw.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/public/slow", "shop.test").await });
    // Let the slow request reach the origin before signalling.
    for _ in 0..100 {
        if !origin.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(gw.admin, "/readyz", "x").await.unwrap().status,
        503,
        "draining is not ready"
    );
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status, 200, "the in-flight request finished: {resp:?}");
    let exited = tokio::task::spawn_blocking(move || gw.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(
        exited,
        Some(true),
        "the gateway exits cleanly after draining"
    );
}

#[tokio::test]
async fn sighup_reloads_and_a_broken_file_keeps_the_running_config() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&app(&origin, "")).await;
    assert_eq!(
        get(gw.addr, "/open/x", "shop.test").await.unwrap().status,
        401
    );
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    let opened = text.replace("prefix: /public", "prefix: /open");
    std::fs::write(&gw.config_path, &opened).unwrap();
    hup(gw.pid());
    let mut status = 0;
    for _ in 0..100 {
        status = get(gw.addr, "/open/x", "shop.test").await.unwrap().status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 200, "the reloaded rule applies");

    std::fs::write(
        &gw.config_path,
        opened.replace("action: public", "action: sometimes"),
    )
    .unwrap();
    hup(gw.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        get(gw.addr, "/open/x", "shop.test").await.unwrap().status,
        200
    );
}

#[tokio::test]
async fn a_file_cut_short_does_not_take_every_app_away() {
    let origin = Origin::start().await;
    let port = crate::common::free_port();
    let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
    let data = tempfile::tempdir().unwrap();
    let gw = Gateway::start_full(
        &listen,
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(
            ", api_token: '{}', data_dir: '{}'",
            crate::admin_api::TOKEN,
            data.path().display()
        ),
        &format!(
            "apps: [{{id: shop, host: shop.test, default_action: public, origin: {{url: '{}'}}}}]\n",
            origin.url()
        ),
    )
    .await;
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    // An editor caught halfway: everything up to the apps is written.
    let head = text.split("apps:").next().unwrap().to_string();
    std::fs::write(&gw.config_path, &head).unwrap();
    crate::common::sighup(gw.pid());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(gw.addr, "/", "shop.test").await.unwrap().status, 200);
    // Said on purpose, every app goes.
    std::fs::write(&gw.config_path, format!("{head}apps: []\n")).unwrap();
    crate::common::sighup(gw.pid());
    let mut status = 0;
    for _ in 0..100 {
        status = get(gw.addr, "/", "shop.test").await.unwrap().status;
        if status == 404 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 404, "`apps: []` removes them");
}

#[test]
fn check_refuses_a_file_that_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["", "listen: [{address: '127.0.0.1:8080'}]\n", "apps: []\n"] {
        let path = dir.path().join("authgate.yaml");
        std::fs::write(&path, text).unwrap();
        let (passed, stderr) = crate::common::check(&path);
        assert!(!passed, "{text:?} passed: {stderr}");
        assert!(
            stderr.contains("apps") && stderr.contains("no apps"),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn a_sighup_before_the_gateway_is_up_does_not_end_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("authgate.yaml");
    // The config comes through a pipe, so the process waits, early in its start, until the
    // test writes it: a SIGHUP lands at a known moment.
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&fifo)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::common::sighup(child.id());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = child.try_wait().unwrap().is_none();
    let (port, admin) = (crate::common::free_port(), crate::common::free_port());
    let origin = Origin::start().await;
    if alive {
        std::fs::write(
            &fifo,
            format!(
                "listen: [{{address: '127.0.0.1:{port}'}}]\nadmin: {{listen: '127.0.0.1:{admin}'}}\napps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}]\n",
                origin.url()
            ),
        )
        .unwrap();
    }
    let mut ready = false;
    for _ in 0..200 {
        let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
        if get(admin_addr, "/readyz", "admin")
            .await
            .is_ok_and(|r| r.status == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let status = child.wait().unwrap();
    assert!(alive, "the SIGHUP ended the process: {status:?}");
    assert!(ready, "the gateway came up after the signal");
}

#[tokio::test]
async fn a_taken_traffic_port_is_a_clean_start_up_failure() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authgate.yaml");
    std::fs::write(
        &path,
        format!(
            "listen: [{{address: '127.0.0.1:{port}'}}]\nadmin: {{listen: '127.0.0.1:{}'}}\napps: [{{id: a, host: a.test, origin: {{url: 'http://127.0.0.1:9'}}}}]\n",
            crate::common::free_port()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&path)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut exited = None;
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let Some(status) = exited else {
        let _ = child.kill();
        panic!("the gateway kept running without its listener");
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains(&format!("cannot bind the listener on 127.0.0.1:{port}")),
        "{stderr}"
    );
    drop(taken);
}
/// Starts the gateway with a 20 s drain_timeout, outside the test helper (whose drain is 2 s).
async fn start_with_long_drain(
    origin: &Origin,
) -> (std::process::Child, std::net::SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authgate.yaml");
    let (port, admin) = (crate::common::free_port(), crate::common::free_port());
    std::fs::write(
        &path,
        format!(
            "listen: [{{address: '127.0.0.1:{port}'}}]\nadmin: {{listen: '127.0.0.1:{admin}'}}\nserver: {{drain_timeout: 20s}}\napps: [{{id: a, host: a.test, default_action: public, origin: {{url: '{}'}}}}]\n",
            origin.url()
        ),
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_authgate"))
        .args(["run", "-c"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let admin_addr = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
    for _ in 0..200 {
        if get(admin_addr, "/readyz", "admin")
            .await
            .is_ok_and(|r| r.status == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (child, addr, dir)
}

/// Sends SIGTERM and returns the exit status and how long the process took to end.
async fn terminate(child: &mut std::process::Child) -> (std::process::ExitStatus, Duration) {
    let started = std::time::Instant::now();
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    for _ in 0..300 {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    panic!("still running 15 s after SIGTERM");
}

#[tokio::test]
async fn sigterm_with_nothing_in_flight_stops_at_once() {
    let origin = Origin::start().await;
    let (mut child, addr, _dir) = start_with_long_drain(&origin).await;
    // A request that finished, and an idle kept-alive connection: nothing in flight.
    assert_eq!(get(addr, "/", "a.test").await.unwrap().status, 200);
    let _idle = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (status, took) = terminate(&mut child).await;
    assert!(status.success());
    // Far from the 20 s drain_timeout.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn sigterm_waits_for_the_request_in_flight_and_no_longer() {
    let origin = Origin::start().await;
    let (mut child, addr, _dir) = start_with_long_drain(&origin).await;
    let in_flight = tokio::spawn(async move { get(addr, "/slow3", "a.test").await });
    for _ in 0..100 {
        if !origin.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (status, took) = terminate(&mut child).await;
    assert!(status.success());
    let resp = in_flight.await.unwrap().unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    // The origin took 3 s; the drain ended with it, not at the 20 s drain_timeout.
    assert!(took >= Duration::from_millis(2500), "{took:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
}
