//! Bearer token cost: signature verification per algorithm with the verified-token cache off
//! (every call does the full work), a cache hit, and a whole protected-route admission plus
//! cached verification — without and with a signed identity assertion (kept with the token,
//! so a repeated token signs nothing), and the signing itself per algorithm.
//!
//! Run: `cargo bench --bench jwt`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora::http::RequestHeader;
use serde_json::json;

use authgate::config::{from_yaml, Gateway};
use authgate::keys::assertion::AssertionSlot;
use authgate::keys::SigningKeys;
use authgate::proxy::admission::admit;
use authgate::store::memory::MemoryStore;

#[path = "../tests/gateway/tokens.rs"]
#[allow(dead_code)]
mod tokens;

use tokens::{claims, TestKey};

const ISSUER: &str = "https://id.example.com";

fn gateway(jwks_path: &std::path::Path, cache_entries: u64) -> Gateway {
    gateway_with(jwks_path, cache_entries, "")
}

fn gateway_with(jwks_path: &std::path::Path, cache_entries: u64, app_extra: &str) -> Gateway {
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
{app_extra}",
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
    let no_keys = SigningKeys::new(Arc::new(MemoryStore::new()), None);
    c.bench_function("jwt route: admit + cached token + identity headers", |b| {
        b.to_async(&runtime).iter(|| async {
            let admitted = admit(&cached, &protected).unwrap();
            authgate::authn::by_bearer(&cached, &no_keys, &protected, &admitted)
                .await
                .unwrap()
        })
    });

    // The same with the app sending a signed assertion: a repeated token reuses the one it
    // was given (the hot path), and the signing on its own per algorithm.
    for algorithm in ["ES256", "EdDSA"] {
        let asserting = gateway_with(
            &jwks_path,
            10_000,
            &format!("    assertion: {{}}\nsigning: {{algorithm: {algorithm}}}\n"),
        );
        let signing = SigningKeys::new(Arc::new(MemoryStore::new()), None);
        runtime.block_on(signing.read_keys(&asserting)).unwrap();
        runtime
            .block_on(asserting.verifier.verify(&token, &ids))
            .unwrap();
        if algorithm == "ES256" {
            c.bench_function(
                "jwt route: admit + cached token + identity headers + kept assertion",
                |b| {
                    b.to_async(&runtime).iter(|| async {
                        let admitted = admit(&asserting, &protected).unwrap();
                        authgate::authn::by_bearer(&asserting, &signing, &protected, &admitted)
                            .await
                            .unwrap()
                    })
                },
            );
        }
        let app = asserting.hosts.lookup("api.example.com").unwrap().clone();
        let spec = app.assertion.clone().unwrap();
        let claims = claims(ISSUER);
        let claims = claims.as_object().unwrap().clone();
        c.bench_function(&format!("assertion: sign {algorithm}"), |b| {
            b.iter(|| {
                // A fresh slot each time: nothing is reused.
                let slot = AssertionSlot::default();
                signing.assertion(&spec, &slot, &claims, u64::MAX).unwrap()
            })
        });
    }
}

criterion_group!(jwt, benches);
criterion_main!(jwt);
