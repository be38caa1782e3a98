//! Bearer token cost: signature verification per algorithm with the verified-token cache off
//! (every call does the full work), a cache hit, and a whole protected-route admission plus
//! cached verification.
//!
//! Run: `cargo bench --bench jwt`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora::http::RequestHeader;
use serde_json::json;

use authgate::config::{from_yaml, Gateway};
use authgate::proxy::admission::admit;

#[path = "../tests/gateway/tokens.rs"]
#[allow(dead_code)]
mod tokens;

use tokens::{claims, TestKey};

const ISSUER: &str = "https://id.example.com";

fn gateway(jwks_path: &std::path::Path, cache_entries: u64) -> Gateway {
    from_yaml(&format!(
        "
limits: {{verified_token_cache_entries: {cache_entries}}}
jwt_issuers:
  - id: main
    issuer: '{ISSUER}'
    jwks_file: '{}'
    audiences: [api]
apps:
  - id: api
    host: api.example.com
    origin: {{url: 'http://127.0.0.1:9/'}}
    routes:
      - {{prefix: /api, action: jwt}}
      - {{prefix: /public, action: public}}
",
        jwks_path.display()
    ))
    .unwrap()
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = [TestKey::rsa("r1"), TestKey::ec("e1"), TestKey::ed("d1")];
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    let jwks = json!({"keys": keys.iter().map(TestKey::jwk).collect::<Vec<_>>()});
    std::fs::write(&jwks_path, jwks.to_string()).unwrap();
    let ids: Vec<Arc<str>> = vec![Arc::from("main")];

    let uncached = gateway(&jwks_path, 0);
    for key in &keys {
        let token = key.token(&claims(ISSUER));
        c.bench_function(&format!("verify {} uncached", key.alg()), |b| {
            b.to_async(&runtime)
                .iter(|| async { uncached.verifier.verify(&token, &ids).await.unwrap() })
        });
    }

    let cached = gateway(&jwks_path, 10_000);
    let token = keys[0].token(&claims(ISSUER));
    runtime
        .block_on(cached.verifier.verify(&token, &ids))
        .unwrap();
    c.bench_function("verify cached hit", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.verifier.verify(&token, &ids).await.unwrap() })
    });

    // The whole decision for a protected request with a cached token, and for a public one:
    // the difference is what a repeated bearer token adds per request.
    let request = |path: &str, auth: Option<&str>| {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        req.insert_header("host", "api.example.com").unwrap();
        req.insert_header("accept", "application/json").unwrap();
        if let Some(token) = auth {
            req.insert_header("authorization", format!("Bearer {token}"))
                .unwrap();
        }
        req
    };
    let protected = request("/api/orders", Some(&token));
    let public = request("/public/orders", Some(&token));
    c.bench_function("public route: admit", |b| {
        b.iter(|| admit(&cached, &public).is_ok())
    });
    c.bench_function("jwt route: admit + cached token + identity headers", |b| {
        b.to_async(&runtime).iter(|| async {
            let admitted = admit(&cached, &protected).unwrap();
            authgate::authn::by_bearer(&cached, &protected, &admitted)
                .await
                .unwrap()
        })
    });
}

criterion_group!(jwt, benches);
criterion_main!(jwt);
