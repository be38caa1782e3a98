//! The admin API: apps created, changed and deleted without a restart, persisted across
//! restarts, with authentication and clear errors.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{json, Value};

use crate::common::{free_port, get, Gateway, Origin};

pub const TOKEN: &str = "an-admin-token-of-at-least-32-bytes!";

async fn start(origin: &Origin, data: &Path, port: u16) -> Gateway {
    let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
    Gateway::start_full(
        &listen,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(", api_token: '{TOKEN}', data_dir: '{}'", data.display()),
        &format!(
            "apps: [{{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}]",
            origin.url()
        ),
    )
    .await
}

pub async fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(
        method.parse().unwrap(),
        format!("http://{}{path}", gw.admin),
    );
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn shop(origin: &Origin) -> String {
    json!({
        "id": "shop", "host": "shop.test", "origin": {"url": origin.url()},
        "routes": [{"prefix": "/public", "action": "public"}]
    })
    .to_string()
}

#[tokio::test]
async fn apps_are_created_changed_and_deleted_live() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let gw = start(&origin, data.path(), free_port()).await;
    assert_eq!(
        get(gw.addr, "/public/x", "shop.test").await.unwrap().status,
        404
    );

    let (status, app) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&shop(&origin))).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["source"], "api");
    assert_eq!(
        get(gw.addr, "/public/x", "shop.test").await.unwrap().status,
        200
    );
    assert_eq!(
        get(gw.addr, "/private", "shop.test").await.unwrap().status,
        401
    );

    let (status, list) = call(&gw, "GET", "/api/apps", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let sources: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["source"].as_str().unwrap()))
        .collect();
    assert_eq!(sources, [("static", "config"), ("shop", "api")]);

    let patch = json!({"default_action": "public", "session_duration": 3600}).to_string();
    let (status, app) = call(&gw, "PATCH", "/api/apps/shop", Some(TOKEN), Some(&patch)).await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["session_duration"], 3600);
    assert_eq!(
        get(gw.addr, "/private", "shop.test").await.unwrap().status,
        200
    );

    let (status, _) = call(&gw, "DELETE", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!(status, 204);
    assert_eq!(
        get(gw.addr, "/public/x", "shop.test").await.unwrap().status,
        404
    );
    let (status, _) = call(&gw, "GET", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let gw = start(&origin, data.path(), free_port()).await;

    for token in [None, Some("wrong-token")] {
        let (status, body) = call(&gw, "GET", "/api/apps", token, None).await;
        assert_eq!(status, 401, "{body}");
    }
    let (status, body) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some("{not json")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("malformed_json"))
    );
    let unknown_field =
        json!({"id": "x", "host": "x.test", "origin": {"url": origin.url()}, "hots": 1})
            .to_string();
    let (status, body) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&unknown_field)).await;
    assert_eq!(status, 400);
    assert!(body["message"].as_str().unwrap().contains("hots"), "{body}");

    let invalid = json!({"id": "bad", "host": "bad.test", "origin": {"url": "gopher://x"},
                         "routes": [{"regex": "(", "action": "jwt"}]})
    .to_string();
    let (status, body) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&invalid)).await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"origin.url") && fields.contains(&"routes[0].regex"),
        "{fields:?}"
    );

    let taken_host =
        json!({"id": "copy", "host": "STATIC.test.", "origin": {"url": origin.url()}}).to_string();
    let (status, body) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&taken_host)).await;
    assert_eq!(status, 409, "{body}");
    let taken_id =
        json!({"id": "static", "host": "other.test", "origin": {"url": origin.url()}}).to_string();
    assert_eq!(
        call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&taken_id))
            .await
            .0,
        409
    );
    let (status, body) = call(&gw, "PATCH", "/api/apps/static", Some(TOKEN), Some("{}")).await;
    assert_eq!(
        status, 409,
        "config-file apps are changed in the file: {body}"
    );
    assert_eq!(
        call(&gw, "DELETE", "/api/apps/nobody", Some(TOKEN), None)
            .await
            .0,
        404
    );

    // Nothing above changed the running apps.
    assert_eq!(get(gw.addr, "/", "static.test").await.unwrap().status, 200);
    assert_eq!(get(gw.addr, "/", "bad.test").await.unwrap().status, 404);
}

#[tokio::test]
async fn api_apps_survive_a_restart() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    {
        let gw = start(&origin, data.path(), port).await;
        let (status, _) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&shop(&origin))).await;
        assert_eq!(status, 201);
    }
    let gw = start(&origin, data.path(), port).await;
    assert_eq!(
        get(gw.addr, "/public/x", "shop.test").await.unwrap().status,
        200
    );
    let (status, app) = call(&gw, "GET", "/api/apps/shop", Some(TOKEN), None).await;
    assert_eq!((status, app["host"].as_str()), (200, Some("shop.test")));
}

#[tokio::test]
async fn a_config_edit_that_clashes_with_an_api_app_does_not_stop_the_next_start() {
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let clashing = format!(
        "apps:\n  - {{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}\n  - {{id: owner, host: shop.test, default_action: public, origin: {{url: '{}'}}}}\n",
        origin.url(),
        origin.url()
    );
    {
        let gw = start(&origin, data.path(), port).await;
        let (status, _) = call(&gw, "POST", "/api/apps", Some(TOKEN), Some(&shop(&origin))).await;
        assert_eq!(status, 201);
        // The operator gives shop.test to a config-file app: the reload is refused...
        let text = std::fs::read_to_string(&gw.config_path).unwrap();
        let head = text.split("apps:").next().unwrap().to_string();
        std::fs::write(&gw.config_path, format!("{head}{clashing}")).unwrap();
        crate::common::sighup(gw.pid());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(
            get(gw.addr, "/public/x", "shop.test").await.unwrap().status,
            200,
            "the API app still serves"
        );
    }
    // ...and the next start (the edited file) serves what compiles and names the rest.
    let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
    let gw = Gateway::start_full(
        &listen,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(
            ", api_token: '{TOKEN}', data_dir: '{}'",
            data.path().display()
        ),
        &clashing,
    )
    .await;
    assert_eq!(get(gw.addr, "/x", "shop.test").await.unwrap().status, 200);
    let ready = get(gw.admin, "/readyz", "admin").await.unwrap();
    assert!(
        ready.body.contains("stored app `shop` is not served"),
        "{}",
        ready.body
    );
    let (status, unserved) = call(&gw, "GET", "/api/unserved", Some(TOKEN), None).await;
    assert_eq!((status, unserved[0]["app"].as_str()), (200, Some("shop")));
}

#[tokio::test]
async fn the_api_is_off_without_a_token() {
    let origin = Origin::start().await;
    let gw = Gateway::start(&format!(
        "apps: [{{id: a, host: a.test, origin: {{url: '{}'}}}}]",
        origin.url()
    ))
    .await;
    let (status, body) = call(&gw, "GET", "/api/apps", Some(TOKEN), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("api_disabled"))
    );
}

/// pebble-challtestsrv (Debian's `pebble`) as the DNS server records are published in.
pub struct TestDns {
    child: std::process::Child,
    pub dns: u16,
    mgmt: u16,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestDns {
    pub async fn start() -> TestDns {
        let (dns, mgmt) = (free_port(), free_port());
        let child = std::process::Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns}"),
                "-management",
                &format!("127.0.0.1:{mgmt}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is installed (scripts/install-deps installs pebble)");
        let test_dns = TestDns { child, dns, mgmt };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", mgmt))
                .await
                .is_ok()
            {
                return test_dns;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("pebble-challtestsrv did not start");
    }

    pub async fn set(&self, what: &str, body: Value) {
        let resp = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}/{what}", self.mgmt))
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{what}: {}", resp.status());
    }
}

pub async fn wait_for_status(gw: &Gateway, app: &str, domain: &str, status: &str) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        let (_, list) = call(
            gw,
            "GET",
            &format!("/api/apps/{app}/custom-domains"),
            Some(TOKEN),
            None,
        )
        .await;
        if let Some(entry) = list
            .as_array()
            .and_then(|l| l.iter().find(|d| d["domain"] == domain))
        {
            if entry["status"] == status {
                return entry.clone();
            }
            last = entry.clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{domain} never reached {status}: {last}");
}

#[tokio::test]
async fn custom_domains_are_verified_by_their_dns_records() {
    let dns = TestDns::start().await;
    let origin = Origin::start().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("listen: [{{address: '127.0.0.1:{port}'}}]");
    let gw = Gateway::start_full(
        &listen,
        SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(
            ", api_token: '{TOKEN}', data_dir: '{}'",
            data.path().display()
        ),
        &format!(
            "
domains:
  public_name: gw.example.net
  nameservers: ['127.0.0.1:{}']
  check_interval: 1s
  blocklist: ['*.blocked.test']
apps: [{{id: static, host: static.test, default_action: public, origin: {{url: '{}'}}}}]
",
            dns.dns,
            origin.url()
        ),
    )
    .await;

    let add = |domain: &str| json!({"domain": domain}).to_string();
    let (status, entry) = call(
        &gw,
        "POST",
        "/api/apps/static/custom-domains",
        Some(TOKEN),
        Some(&add("App.Customer.test.")),
    )
    .await;
    assert_eq!(status, 201, "{entry}");
    assert_eq!(entry["domain"], "app.customer.test");
    assert_eq!(entry["status"], "PendingVerification");
    let records = entry["dns_records"].as_array().unwrap();
    assert_eq!(
        records[0],
        json!({"name": "app.customer.test", "type": "CNAME", "value": "gw.example.net"})
    );
    assert_eq!(records[1]["name"], "_authgate.app.customer.test");
    let token = records[1]["value"].as_str().unwrap().to_string();

    for bad in [
        "127.0.0.1",
        "*.customer.test",
        "x.blocked.test",
        "nodot",
        "a_b.test",
    ] {
        let (status, body) = call(
            &gw,
            "POST",
            "/api/apps/static/custom-domains",
            Some(TOKEN),
            Some(&add(bad)),
        )
        .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    for taken in ["app.customer.test", "static.test"] {
        let (status, _) = call(
            &gw,
            "POST",
            "/api/apps/static/custom-domains",
            Some(TOKEN),
            Some(&add(taken)),
        )
        .await;
        assert_eq!(status, 409, "{taken}");
    }
    assert_eq!(
        call(
            &gw,
            "POST",
            "/api/apps/nobody/custom-domains",
            Some(TOKEN),
            Some(&add("x.test"))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(
            &gw,
            "POST",
            "/api/apps/static/custom-domains",
            Some(TOKEN),
            Some("[]")
        )
        .await
        .0,
        400
    );

    // A wrong TXT value keeps it pending, with a message saying why.
    dns.set(
        "set-cname",
        json!({"host": "app.customer.test.", "target": "gw.example.net."}),
    )
    .await;
    dns.set(
        "set-txt",
        json!({"host": "_authgate.app.customer.test.", "value": "not-the-token"}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let pending = wait_for_status(&gw, "static", "app.customer.test", "PendingVerification").await;
    assert!(
        pending["error_message"].as_str().unwrap().contains("token"),
        "{pending}"
    );

    // The right one verifies it.
    dns.set("clear-txt", json!({"host": "_authgate.app.customer.test."}))
        .await;
    dns.set(
        "set-txt",
        json!({"host": "_authgate.app.customer.test.", "value": token}),
    )
    .await;
    let verified = wait_for_status(&gw, "static", "app.customer.test", "PendingSsl").await;
    assert!(verified["error_message"]
        .as_str()
        .unwrap()
        .contains("certificate"));
    // Not active yet: the domain does not serve the app.
    assert_eq!(
        get(gw.addr, "/", "app.customer.test").await.unwrap().status,
        404
    );

    let (status, _) = call(
        &gw,
        "DELETE",
        "/api/apps/static/custom-domains/app.customer.test",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, list) = call(
        &gw,
        "GET",
        "/api/apps/static/custom-domains",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(list, json!([]));
}
