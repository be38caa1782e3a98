//! `authgate check`, `--version`, and `authgate demo`.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::browser::Browser;
use crate::common::{free_port, get};

fn authgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
}

#[test]
fn check_names_every_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "
listen: [{address: 'not-an-address'}]
apps:
  - id: a
    host: 'a.test/path'
    origin: {url: 'gopher://x'}
    routes:
      - {prefix: '/a/../b', action: public}
      - {regex: '(', action: jwt}
      - {exact: /x, action: sometimes}
",
    )
    .unwrap();
    let out = authgate()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    // `action: sometimes` is a parse error; it is reported alone, with its field.
    assert!(stderr.contains("apps[0].routes[2].action"), "{stderr}");

    std::fs::write(
        &path,
        "
listen: [{address: 'not-an-address'}]
apps:
  - id: a
    host: 'a.test/path'
    origin: {url: 'gopher://x'}
    routes:
      - {prefix: '/a/../b', action: public}
      - {regex: '(', action: jwt}
",
    )
    .unwrap();
    let out = authgate()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for field in [
        "listen[0].address",
        "apps[0].host",
        "apps[0].origin.url",
        "apps[0].routes[0].prefix",
        "apps[0].routes[1].regex",
    ] {
        assert!(stderr.contains(field), "{field} missing from:\n{stderr}");
    }
}

#[test]
fn check_accepts_the_shipped_reference_config() {
    let out = authgate()
        .args([
            "check",
            "-c",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/authgate.yaml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_never_prints_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "admin: {metrics_token: 'hunter2-literal', bogus: 1}\n",
    )
    .unwrap();
    let out = authgate()
        .args(["check", "-c"])
        .arg(&path)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(all.contains("admin"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[test]
fn version_is_printed() {
    let out = authgate().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn demo_answers_on_loopback_and_signs_in_with_its_own_provider() {
    let (listen, admin, origin, idp) = (free_port(), free_port(), free_port(), free_port());
    let mut child = authgate()
        .args([
            "demo",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--origin",
            &format!("127.0.0.1:{origin}"),
            "--idp",
            &format!("127.0.0.1:{idp}"),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let gw = std::net::SocketAddr::from(([127, 0, 0, 1], listen));
    let mut home = None;
    for _ in 0..200 {
        if let Ok(resp) = get(gw, "/?hello=1", "localhost").await {
            home = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let home = home.expect("demo did not answer");
    assert_eq!(home.status, 200);
    assert!(home.body.contains("authgate demo origin"), "{}", home.body);
    assert!(home.body.contains("/?hello=1"));
    assert_eq!(get(gw, "/admin", "localhost").await.unwrap().status, 403);
    assert_eq!(get(gw, "/account", "localhost").await.unwrap().status, 401);

    // Sign in as alice through the development provider, as a browser would.
    let base = format!("http://localhost:{listen}");
    let mut b = Browser::new("localhost", gw);
    let to_idp = b.get(&format!("{base}/account")).await;
    assert_eq!(to_idp.status, 302);
    let authorize = to_idp.location.unwrap();
    assert!(authorize.starts_with(&format!("http://127.0.0.1:{idp}/authorize?")));
    let page = b.get(&authorize).await;
    assert!(page.body.contains("Sign in as Alice"), "{}", page.body);
    let approve = authorize.replace("/authorize?", "/approve?user=alice&");
    let hops = b.follow(&approve).await;
    let landed = hops.last().unwrap();
    assert_eq!(landed.status, 200, "{}", landed.body);
    assert!(
        landed
            .body
            .contains("\"x-auth-request-user\",\n      \"alice\""),
        "{}",
        landed.body
    );
    assert_eq!(
        b.get(&format!("{base}/admins/panel")).await.status,
        200,
        "alice is in admins"
    );

    let _ = child.kill();
    let _ = child.wait();

    let refused = authgate()
        .args(["demo", "--listen", "0.0.0.0:18080"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback"));
}
