//! The signed identity assertion, checked the way an origin would: with PyJWT against the
//! JWKS the gateway publishes, before and after a key rotation.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{Gateway, Origin};
use crate::tokens::{claims, TestKey};

const ISSUER: &str = "https://id.example.com";

/// Verifies `token` as an origin would (tests/assertion/verify.py, PyJWT): the claims, or why
/// it was refused.
pub fn verify_with_pyjwt(
    jwks_url: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    // Debian's python3 has PyJWT (python3-jwt, installed by scripts/install-deps).
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/assertion/verify.py");
    verdict(
        Command::new(python)
            .args([script, jwks_url, issuer, audience, token])
            .output()
            .expect("python3 runs"),
    )
}

/// A verifier's verdict: the claims it printed, or why it refused.
fn verdict(out: std::process::Output) -> Result<Value, String> {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if out.status.success() {
        Ok(serde_json::from_str(&stdout).unwrap())
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Verifies `token` the way docs/forward-auth.md shows for Node.js (`jose`).
pub fn verify_with_jose(
    jwks_url: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");
    verdict(
        Command::new("node")
            .args(["verify-assertion.mjs", jwks_url, issuer, audience, token])
            .current_dir(dir)
            .output()
            .expect("node runs"),
    )
}

/// Verifies `token` the way docs/forward-auth.md shows for Go (golang-jwt + keyfunc), with
/// the verifier scripts/test builds from tests/assertion/go.
pub fn verify_with_go(
    jwks_url: &str,
    issuer: &str,
    audience: &str,
    token: &str,
) -> Result<Value, String> {
    let verifier = concat!(env!("CARGO_MANIFEST_DIR"), "/target/verify-assertion-go");
    assert!(
        std::path::Path::new(verifier).exists(),
        "run scripts/test (it builds {verifier} from tests/assertion/go)"
    );
    verdict(
        Command::new(verifier)
            .args([jwks_url, issuer, audience, token])
            .output()
            .expect("the Go verifier runs"),
    )
}

async fn bearer_get(
    gw: &Gateway,
    path: &str,
    token: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .get(format!("http://{}{path}", gw.addr))
        .header("host", "api.test")
        .header("authorization", format!("Bearer {token}"));
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn admin_json(
    gw: &Gateway,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{}{path}", gw.admin))
        .header("authorization", "Bearer admin-token-of-at-least-32-bytes-x");
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

fn jwks_kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

async fn start(
    origin: &Origin,
    issuer_key: &TestKey,
    dir: &std::path::Path,
    signing: &str,
) -> Gateway {
    start_in(origin, issuer_key, dir, signing, "").await
}

/// Like [`start`], with more `admin` keys (`, data_dir: ...`).
async fn start_in(
    origin: &Origin,
    issuer_key: &TestKey,
    dir: &std::path::Path,
    signing: &str,
    admin_extra: &str,
) -> Gateway {
    // `signing` may start with `no-assertion` to leave the app without one.
    let (assertion, signing) = match signing.strip_prefix("no-assertion") {
        Some(rest) => ("", rest),
        None => ("    assertion: {lifetime: 10s}", signing),
    };
    let jwks_path = dir.join("jwks.json");
    std::fs::write(&jwks_path, json!({"keys": [issuer_key.jwk()]}).to_string()).unwrap();
    let port = crate::common::free_port();
    Gateway::start_full(
        &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        &format!(", api_token: admin-token-of-at-least-32-bytes-x{admin_extra}"),
        &format!(
            "
jwt_issuers:
  - {{id: main, issuer: '{ISSUER}', jwks_file: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    routes:
      - {{prefix: /api, action: jwt}}
      - {{prefix: /public, action: public}}
{assertion}
  - id: plain
    host: plain.test
    origin: {{url: '{}'}}
    routes: [{{prefix: /, action: jwt}}]
{signing}
",
            jwks_path.display(),
            origin.url(),
            origin.url()
        ),
    )
    .await
}

/// The last request the origin received, and the assertion on it.
fn last_assertion(origin: &Origin) -> Option<String> {
    origin
        .seen()
        .last()
        .and_then(|s| s.header("x-authgate-assertion").map(str::to_string))
}

#[tokio::test]
async fn origins_verify_the_assertion_with_pyjwt_before_and_after_a_rotation() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let gw = start(
        &origin,
        &issuer_key,
        dir.path(),
        "signing: {publish_before_use: 1s, jwks_max_age: 1s, keep_previous: 12s}",
    )
    .await;
    let jwks_url = format!("http://{}/jwks.json", gw.admin);
    let app_issuer = "https://api.test/_auth";
    let token = issuer_key.token(&claims(ISSUER));

    // A forged assertion from the client never reaches the origin; the gateway's own does.
    let resp = bearer_get(
        &gw,
        "/api/orders",
        &token,
        &[("x-authgate-assertion", "forged.by.client")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    let first = last_assertion(&origin).expect("the origin received an assertion");
    assert_ne!(first, "forged.by.client");
    let verified = verify_with_pyjwt(&jwks_url, app_issuer, "api", &first).unwrap();
    assert_eq!(verified["sub"], "user-1");
    assert_eq!(verified["email"], "user@example.com");
    assert_eq!(verified["groups"], json!(["staff", "ops"]));
    assert_eq!(
        verified["exp"].as_u64().unwrap() - verified["iat"].as_u64().unwrap(),
        10
    );
    assert!(verified["jti"].as_str().is_some_and(|j| j.len() >= 16));
    // A Node.js origin with `jose` agrees.
    assert_eq!(
        verify_with_jose(&jwks_url, app_issuer, "api", &first).unwrap()["sub"],
        "user-1"
    );
    assert!(verify_with_jose(&jwks_url, app_issuer, "other-app", &first).is_err());
    // And so does a Go origin with golang-jwt and keyfunc.
    assert_eq!(
        verify_with_go(&jwks_url, app_issuer, "api", &first).unwrap()["sub"],
        "user-1"
    );
    assert!(verify_with_go(&jwks_url, app_issuer, "other-app", &first).is_err());
    // Another audience or issuer is refused by the verifier: the checks are real.
    assert!(verify_with_pyjwt(&jwks_url, app_issuer, "other-app", &first).is_err());
    assert!(verify_with_pyjwt(&jwks_url, "https://evil.test/_auth", "api", &first).is_err());
    // A tampered assertion does not verify.
    let mut tampered = first.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    assert!(verify_with_pyjwt(&jwks_url, app_issuer, "api", &tampered).is_err());

    // The same token again: the kept assertion is reused (nothing signed on the hot path).
    bearer_get(&gw, "/api/orders", &token, &[]).await;
    assert_eq!(last_assertion(&origin).as_deref(), Some(first.as_str()));
    // Public routes and apps without assertions send none (and strip the client's).
    bearer_get(
        &gw,
        "/public/x",
        &token,
        &[("x-authgate-assertion", "forged")],
    )
    .await;
    assert_eq!(last_assertion(&origin), None);
    let resp = reqwest::Client::new()
        .get(format!("http://{}/x", gw.addr))
        .header("host", "plain.test")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(last_assertion(&origin), None);

    // The JWKS is on every app host too, cacheable for jwks_max_age.
    let resp = reqwest::Client::new()
        .get(format!("http://{}/_auth/jwks.json", gw.addr))
        .header("host", "api.test")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["cache-control"], "public, max-age=1");
    let jwks: Value = resp.json().await.unwrap();
    assert_eq!(jwks_kids(&jwks), [kid_of(&first)]);
    assert!(
        jwks["keys"][0].get("d").is_none(),
        "no private key material"
    );

    // Rotate to an Ed25519 key: it is published at once and signs a second later.
    let (status, listed) = admin_json(&gw, reqwest::Method::GET, "/api/keys", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["keys"][0]["status"], "Current");
    let (status, rotated) = admin_json(
        &gw,
        reqwest::Method::POST,
        "/api/keys/rotate",
        Some(json!({"algorithm": "EdDSA"})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let statuses: Vec<&str> = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["Next", "Current"]);
    let new_kid = rotated["keys"][0]["id"].as_str().unwrap().to_string();
    let (status, again) = admin_json(&gw, reqwest::Method::POST, "/api/keys/rotate", None).await;
    assert_eq!(status, 409, "one rotation at a time: {again}");
    let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
    assert_eq!(
        jwks_kids(&jwks),
        [new_kid.clone(), kid_of(&first)],
        "published before it signs"
    );

    // Once the new key signs, a new token's assertion carries it; both verify.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last_by_old_key = first.clone();
    let second = loop {
        let fresh = issuer_key.token(&claims(ISSUER));
        bearer_get(&gw, "/api/orders", &fresh, &[]).await;
        let assertion = last_assertion(&origin).unwrap();
        if kid_of(&assertion) == new_kid {
            break assertion;
        }
        last_by_old_key = assertion;
        assert!(
            Instant::now() < deadline,
            "the new key never started signing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        jsonwebtoken::decode_header(&second).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    verify_with_pyjwt(&jwks_url, app_issuer, "api", &second).unwrap();
    verify_with_jose(&jwks_url, app_issuer, "api", &second).unwrap();
    verify_with_go(&jwks_url, app_issuer, "api", &second).unwrap();
    // The first token's kept assertion was signed by the old key: it is re-signed.
    bearer_get(&gw, "/api/orders", &token, &[]).await;
    assert_eq!(kid_of(&last_assertion(&origin).unwrap()), new_kid);
    // The old key stays published for keep_previous: what it signed last still verifies.
    verify_with_pyjwt(&jwks_url, app_issuer, "api", &last_by_old_key).unwrap();

    // After the overlap the old key is withdrawn.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
        if jwks_kids(&jwks) == [new_kid.clone()] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old key was never withdrawn: {jwks}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let refused = verify_with_pyjwt(&jwks_url, app_issuer, "api", &last_by_old_key).unwrap_err();
    // Refused for its key, which is gone (not for its age: the key is looked up first).
    assert!(
        refused.contains("Unable to find a signing key"),
        "{refused}"
    );
}

#[tokio::test]
async fn keys_survive_a_restart_and_key_files_replace_generated_keys() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let token = issuer_key.token(&claims(ISSUER));
    let data_dir = dir.path().join("data");
    let admin_extra = format!(", data_dir: '{}'", data_dir.display());
    let gw = start_in(&origin, &issuer_key, dir.path(), "", &admin_extra).await;
    bearer_get(&gw, "/api/orders", &token, &[]).await;
    let kid = kid_of(&last_assertion(&origin).unwrap());
    let stored = std::fs::read(data_dir.join("signing-keys")).unwrap();
    assert_eq!(
        stored[0], b'{',
        "no cookie key configured: the file is the gateway user's alone"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("signing-keys"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(gw);
    // Restarted on the same data directory, the key is the same.
    let again = start_in(&origin, &issuer_key, dir.path(), "", &admin_extra).await;
    bearer_get(&again, "/api/orders", &token, &[]).await;
    assert_eq!(
        kid_of(&last_assertion(&origin).unwrap()),
        kid,
        "the key survived the restart"
    );
    drop(again);

    // PEM key files: the first signs, every one is published; rotation is refused.
    let first = dir.path().join("first.pem");
    let second = dir.path().join("second.pem");
    for (path, algorithm) in [(&first, "ED25519"), (&second, "EC")] {
        let mut cmd = Command::new("openssl");
        cmd.args(["genpkey", "-algorithm", algorithm]);
        if algorithm == "EC" {
            cmd.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        let out = cmd.arg("-out").arg(path).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let files = start(
        &origin,
        &issuer_key,
        dir.path(),
        &format!(
            "signing: {{key_files: ['{}', '{}']}}",
            first.display(),
            second.display()
        ),
    )
    .await;
    let fresh = issuer_key.token(&claims(ISSUER));
    bearer_get(&files, "/api/orders", &fresh, &[]).await;
    let assertion = last_assertion(&origin).unwrap();
    assert_eq!(
        jsonwebtoken::decode_header(&assertion).unwrap().alg,
        jsonwebtoken::Algorithm::EdDSA
    );
    let jwks_url = format!("http://{}/jwks.json", files.admin);
    let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
    assert_eq!(jwks_kids(&jwks).len(), 2);
    verify_with_pyjwt(&jwks_url, "https://api.test/_auth", "api", &assertion).unwrap();
    let (status, _) = admin_json(&files, reqwest::Method::POST, "/api/keys/rotate", None).await;
    assert_eq!(status, 409);
}

/// Two replicas on one Redis, an app sending assertions, bearer routes (no sign-in needed).
fn replica_config(redis_port: u16, origin: &Origin, jwks_path: &std::path::Path) -> String {
    format!(
        "
sessions:
  cookie_keys: ['a-cookie-key-shared-by-the-replicas-0123456789']
  store: redis
  redis: {{url: 'redis://127.0.0.1:{redis_port}/', key_prefix: 'assertion-test:'}}
signing: {{publish_before_use: 2s, jwks_max_age: 1s, keep_previous: 20s}}
jwt_issuers:
  - {{id: main, issuer: '{ISSUER}', jwks_file: '{}', audiences: [api]}}
apps:
  - id: api
    host: api.test
    origin: {{url: '{}'}}
    routes: [{{prefix: /, action: jwt}}]
    assertion: {{lifetime: 10s}}
",
        jwks_path.display(),
        origin.url()
    )
}

#[tokio::test]
async fn replicas_on_redis_share_one_key_list_and_follow_a_rotation_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let redis = crate::store_redis::start(dir.path(), &[]);
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, json!({"keys": [issuer_key.jwk()]}).to_string()).unwrap();
    let config = replica_config(redis.port, &origin, &jwks_path);
    let port_a = crate::common::free_port();
    let port_b = crate::common::free_port();
    let start = |port: u16| {
        let config = config.clone();
        async move {
            Gateway::start_full(
                &format!("listen: [{{address: '127.0.0.1:{port}'}}]"),
                std::net::SocketAddr::from(([127, 0, 0, 1], port)),
                ", api_token: admin-token-of-at-least-32-bytes-x",
                &config,
            )
            .await
        }
    };
    // Started at once: both find no keys, both try to make the first; one list results.
    let (a, b) = tokio::join!(start(port_a), start(port_b));
    let token = issuer_key.token(&claims(ISSUER));
    bearer_get(&a, "/x", &token, &[]).await;
    let from_a = last_assertion(&origin).unwrap();
    bearer_get(&b, "/x", &token, &[]).await;
    let from_b = last_assertion(&origin).unwrap();
    assert_eq!(
        kid_of(&from_a),
        kid_of(&from_b),
        "one key for every replica"
    );
    // What B signed verifies against A's JWKS, and the stored list is sealed.
    let jwks_a = format!("http://{}/jwks.json", a.admin);
    verify_with_pyjwt(&jwks_a, "https://api.test/_auth", "api", &from_b).unwrap();
    let stored = Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--no-raw",
            "GET",
            "assertion-test:signing-keys",
        ])
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&stored.stdout);
    assert!(stored.starts_with("\"S"), "sealed: {stored}");
    assert!(!stored.contains("pkcs8"), "no key material in the clear");

    // A rotation on A is on B's list within a second (the change is announced).
    let (status, rotated) = admin_json(&a, reqwest::Method::POST, "/api/keys/rotate", None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_kid = rotated["keys"][0]["id"].as_str().unwrap().to_string();
    let asked = Instant::now();
    loop {
        let jwks: Value = reqwest::get(format!("http://{}/jwks.json", b.admin))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if jwks_kids(&jwks).contains(&new_kid) {
            break;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "B did not hear of the new key: {jwks}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And when its time comes, B signs with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        bearer_get(&b, "/x", &issuer_key.token(&claims(ISSUER)), &[]).await;
        if kid_of(&last_assertion(&origin).unwrap()) == new_kid {
            break;
        }
        assert!(Instant::now() < deadline, "B never signed with the new key");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keys_rotate_on_their_own_at_the_configured_age() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    let gw = start(
        &origin,
        &issuer_key,
        dir.path(),
        "signing: {rotate_after: 3s, publish_before_use: 1s, jwks_max_age: 1s, keep_previous: 12s}",
    )
    .await;
    let (_, listed) = admin_json(&gw, reqwest::Method::GET, "/api/keys", None).await;
    let first = listed["keys"][0]["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, listed) = admin_json(&gw, reqwest::Method::GET, "/api/keys", None).await;
        let keys = listed["keys"].as_array().unwrap();
        if keys[0]["status"] == "Current" && keys[0]["id"] != first.as_str() {
            assert_eq!(keys[1]["id"], first.as_str());
            assert_eq!(keys[1]["status"], "Previous");
            // Published a second before it signed, three seconds after the first.
            let published = keys[0]["created_at"].as_u64().unwrap();
            let effective = keys[0]["effective_at"].as_u64().unwrap();
            assert_eq!(effective - published, 1);
            assert_eq!(effective - keys[1]["effective_at"].as_u64().unwrap(), 3);
            break;
        }
        assert!(Instant::now() < deadline, "no automatic rotation: {listed}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_reload_that_turns_assertions_on_makes_a_key_at_once() {
    let origin = Origin::start().await;
    let issuer_key = TestKey::ec("issuer-1");
    let dir = tempfile::tempdir().unwrap();
    // No app sends assertions: no key is made.
    let gw = start(&origin, &issuer_key, dir.path(), "no-assertion").await;
    let (_, listed) = admin_json(&gw, reqwest::Method::GET, "/api/keys", None).await;
    assert_eq!(listed["keys"], json!([]));
    let token = issuer_key.token(&claims(ISSUER));
    bearer_get(&gw, "/api/orders", &token, &[]).await;
    assert_eq!(last_assertion(&origin), None);
    // Turned on by a reload: the first request that finds no key has one made at once.
    let config = std::fs::read_to_string(&gw.config_path).unwrap();
    let with = config.replace(
        "  - id: plain",
        "    assertion: {lifetime: 10s}\n  - id: plain",
    );
    assert_ne!(config, with);
    std::fs::write(&gw.config_path, &with).unwrap();
    crate::common::sighup(gw.pid());
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let status = bearer_get(&gw, "/api/orders", &token, &[]).await.status();
        assert!(status == 200 || status == 503, "{status}");
        if status == 200 && last_assertion(&origin).is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no assertion after the reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
