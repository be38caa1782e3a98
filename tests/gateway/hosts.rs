//! Host values read once and strictly: other spellings of an app's host are refused, and
//! every URL and forwarded header the gateway builds uses the canonical host and the port.

use std::net::SocketAddr;

use crate::common::{free_port, raw, Gateway, Origin, Resp};
use crate::signin::setup;

async fn with_host(addr: SocketAddr, host: &str, path: &str, accept: &str) -> Resp {
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: {accept}\r\nConnection: close\r\n\r\n"
    );
    raw(addr, req.as_bytes()).await
}

#[tokio::test]
async fn other_spellings_of_a_host_are_refused() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}, default_action: public}}\n",
        origin.url()
    ))
    .await;
    for host in [
        "app.test..",
        "app.test:1:2",
        "app.test:",
        "app.test:0",
        "app.test:99999",
        ".app.test",
        "app..test",
        "app.test:80:80",
    ] {
        let resp = with_host(gw.addr, host, "/", "*/*").await;
        assert_eq!(resp.status, 400, "{host}: {resp:?}");
    }
    assert!(origin.seen().is_empty());
    // One trailing dot, upper case and a port are the same host, forwarded canonically.
    let resp = with_host(gw.addr, "APP.Test.:08080", "/", "*/*").await;
    assert_eq!(resp.status, 200);
    assert_eq!(origin.only().all("x-forwarded-host"), ["app.test:8080"]);
}

#[tokio::test]
async fn sign_in_urls_use_the_canonical_host() {
    let s = setup("", "", "").await;
    let port = s.gw.addr.port();
    let resp = with_host(
        s.gw.addr,
        &format!("App.TEST.:{port}"),
        "/private",
        "text/html",
    )
    .await;
    assert_eq!(resp.status, 302);
    let authorize = url::Url::parse(resp.header("location").unwrap()).unwrap();
    let redirect_uri = authorize
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .unwrap()
        .1
        .into_owned();
    assert_eq!(
        redirect_uri,
        format!("http://app.test:{port}/_auth/callback")
    );
    let api = with_host(s.gw.addr, "APP.test.", "/private", "application/json").await;
    assert_eq!(api.status, 401);
    assert!(
        api.body
            .contains("\"login_url\":\"http://app.test/_auth/login"),
        "{}",
        api.body
    );
}

#[tokio::test]
async fn the_redirect_to_https_uses_the_canonical_host() {
    let origin = Origin::start().await;
    let plain = free_port();
    let listen = format!("listen:\n  - {{address: '127.0.0.1:{plain}', redirect_to_https: 8443}}");
    let addr = SocketAddr::from(([127, 0, 0, 1], plain));
    let gw = Gateway::start_with(
        &listen,
        addr,
        &format!(
            "apps:\n  - {{id: app, host: app.test, origin: {{url: '{}'}}, default_action: public}}\n",
            origin.url()
        ),
    )
    .await;
    let resp = with_host(gw.addr, "APP.test.:80", "/a?b=1", "*/*").await;
    assert_eq!(resp.status, 308);
    assert_eq!(resp.header("location"), Some("https://app.test:8443/a?b=1"));
    assert_eq!(
        with_host(gw.addr, "app.test:1:2", "/", "*/*").await.status,
        400
    );
}
