//! `authgate check`, `--version`, and `authgate demo`.

use std::process::Command;

use crate::browser::Browser;
use crate::common::get;

fn authgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_authgate"))
}

#[test]
fn check_names_every_bad_field_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    // Typos, wrong types and semantic mistakes together.
    std::fs::write(
        &path,
        "\
listen: [{address: 'not-an-address', h2cc: true}]
limits: {max_request_header_bytes: lots}
server: {drain_timeout: soon}
apps:
  - id: a
    host: 'a.test/path'
    origin: {url: 'gopher://x', verify_tls: maybe}
    rules: []
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
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for line in [
        format!("{file}:1: listen[0].h2cc: unknown key `h2cc`; did you mean `h2c`?"),
        format!("{file}:2: limits.max_request_header_bytes: expected a whole number, found the text \"lots\""),
        format!("{file}:3: server.drain_timeout: `soon` is not a duration"),
        format!("{file}:7: apps[0].origin.verify_tls: expected true or false, found the text \"maybe\""),
        format!("{file}:8: apps[0].rules: unknown key `rules`; did you mean `routes`?"),
        format!("{file}:12: apps[0].routes[2].action: `sometimes` is not one of `public`, `session`, `jwt`, `session_or_jwt`, `deny`"),
        format!("{file}:1: listen[0].address: `not-an-address` is not an IP:port"),
        format!("{file}:6: apps[0].host:"),
        format!("{file}:7: apps[0].origin.url:"),
        format!("{file}:10: apps[0].routes[0].prefix:"),
        format!("{file}:11: apps[0].routes[1].regex:"),
    ] {
        assert!(stderr.contains(&line), "{line}\nmissing from:\n{stderr}");
    }
    // Each problem once; no serde words, no field path said twice.
    assert!(stderr.ends_with("11 problem(s)\n"), "{stderr}");
    for serde_speak in [
        "expected u64",
        "expected usize",
        "struct ",
        "invalid type",
        "at line",
    ] {
        assert!(!stderr.contains(serde_speak), "{serde_speak} in:\n{stderr}");
    }
}

#[test]
fn check_warns_of_plain_http_identity_endpoints_off_this_machine() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("http.yaml");
    std::fs::write(
        &path,
        "oidc_providers:\n  - {id: corp, issuer: 'http://id.example.com', client_id: c}\n  - {id: dev, issuer: 'http://127.0.0.1:8082', client_id: c}\napps:\n  - {id: a, host: a.test, oidc_provider: corp, origin: {url: 'http://127.0.0.1:3000'}}\n",
    )
    .unwrap();
    let out = authgate()
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning is not a failure: {stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:2: warning: oidc_providers[0].issuer: plain http to id.example.com",
            path.display()
        )),
        "{stderr}"
    );
    assert_eq!(stderr.matches("warning").count(), 1, "{stderr}");
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("keys")).unwrap();
    std::fs::write(
        dir.path().join("keys/partner.json"),
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","alg":"HS256"}]}"#,
    )
    .unwrap();
    let path = dir.path().join("authgate.yaml");
    std::fs::write(
        &path,
        "listen: [{address: '127.0.0.1:18443', tls: true}]\ntls: {certs_dir: no-such-certs}\njwt_issuers:\n  - {id: p, issuer: 'https://p.test', jwks_file: keys/partner.json, audiences: [api]}\napps:\n  - {id: a, host: a.test, origin: {url: 'http://127.0.0.1:3000'}}\n",
    )
    .unwrap();
    // Run from elsewhere: the key file is found next to the config, and the missing
    // directory is named by its absolute path.
    let out = authgate()
        .args(["check", "-c"])
        .arg(&path)
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("jwks_file"), "{stderr}");
    assert!(
        stderr.contains(&dir.path().join("no-such-certs").display().to_string()),
        "{stderr}"
    );
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
    let (mut child, listen, idp) = crate::common::start_demo().await;
    let gw = std::net::SocketAddr::from(([127, 0, 0, 1], listen));
    let home = get(gw, "/?hello=1", "localhost").await.unwrap();
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

fn schema_validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/docs/authgate.schema.json"
        ))
        .unwrap(),
    )
    .unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn yaml_as_json(text: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(text).unwrap()
}

#[test]
fn the_published_schema_is_the_models_and_accepts_the_shipped_configs() {
    let out = authgate().arg("schema").output().unwrap();
    assert!(out.status.success());
    let published = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/authgate.schema.json"
    ))
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == published,
        "docs/authgate.schema.json is stale: run `authgate schema > docs/authgate.schema.json`"
    );
    let validator = schema_validator();
    let read = |path: &str| {
        std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    // The shipped configurations, and those the deployment files carry inside them.
    let mut shipped: Vec<(String, serde_json::Value)> = [
        "config/authgate.yaml",
        "config/demo.yaml",
        "docs/starter.yaml",
        "deploy/compose/authgate.yaml",
    ]
    .iter()
    .map(|path| (path.to_string(), yaml_as_json(&read(path))))
    .collect();
    let manifests = read("deploy/kubernetes/authgate.yaml");
    for document in manifests.split("\n---\n") {
        let resource = yaml_as_json(document);
        if let Some(config) = resource["data"]["authgate.yaml"].as_str() {
            shipped.push(("deploy/kubernetes ConfigMap".into(), yaml_as_json(config)));
        }
    }
    let values = yaml_as_json(&read("deploy/helm/authgate/values.yaml"));
    shipped.push((
        "deploy/helm values' config".into(),
        values["config"].clone(),
    ));
    assert_eq!(shipped.len(), 6);
    for (name, config) in &shipped {
        let errors: Vec<String> = validator
            .iter_errors(config)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    // What `check` refuses, the schema refuses too: an unknown key, a wrong type, a bad enum.
    for wrong in [
        "listen: [{address: '127.0.0.1:8080', h2cc: true}]",
        "limits: {max_request_header_bytes: lots}",
        "apps: [{id: a, host: a.test, origin: {url: 'http://x/'}, default_action: sometimes}]",
        "server: {drain_timeout: soon}",
    ] {
        assert!(!validator.is_valid(&yaml_as_json(wrong)), "{wrong}");
    }
}

#[test]
fn the_starter_config_passes_check_once_its_certificate_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("authgate.yaml");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/docs/starter.yaml"),
        &config,
    )
    .unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["app.example.com".into()]).unwrap();
    std::fs::write(certs.join("app.example.com.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        certs.join("app.example.com.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    let out = authgate()
        .args(["check", "-c"])
        .arg(&config)
        .current_dir(std::env::temp_dir())
        .env("AUTHGATE_OIDC_CLIENT_SECRET", "a-client-secret")
        .env(
            "AUTHGATE_COOKIE_KEY",
            "a-cookie-key-of-at-least-32-bytes-0123456789",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.is_empty(), "warnings for the starter: {stderr}");
}
