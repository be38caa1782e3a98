//! The cost of a signed-in request: admission plus the session cookie's MAC check, the store
//! lookup, the route's requirements and the identity headers — next to a public request.
//!
//! Run: `cargo bench --bench session`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use pingora::http::RequestHeader;

use authgate::config::from_yaml;
use authgate::keys::SigningKeys;
use authgate::oidc::flow::SignIn;
use authgate::proxy::admission::admit;
use authgate::proxy::gate::{decide, Verdict};
use authgate::session::memory::MemoryStore;
use authgate::session::{new_id, SessionStore};

#[path = "support/session_fixture.rs"]
mod session_fixture;

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let gw = from_yaml(
        "
sessions: {cookie_keys: ['a-cookie-key-for-the-benchmarks-0123456789']}
oidc_providers:
  - {id: idp, issuer: 'https://id.example.com', client_id: app}
apps:
  - id: app
    host: app.example.com
    origin: {url: 'http://127.0.0.1:9/'}
    routes:
      - {prefix: /public, action: public}
      - {prefix: /reports, action: session, require: {groups: [staff]}}
",
    )
    .unwrap();
    let store = Arc::new(MemoryStore::new(100_000, Duration::from_secs(7200)));
    let sign_in = SignIn::new(store.clone(), Arc::new(authgate::metrics::Metrics::new()));
    let keys = SigningKeys::new(Arc::new(authgate::store::memory::MemoryStore::new()), None);
    let id = new_id();
    runtime
        .block_on(store.put(id, Arc::new(session_fixture::session(SystemTime::now()))))
        .expect("the memory store stores");
    let cookie = gw
        .sessions
        .cookie_keys
        .as_ref()
        .unwrap()
        .sign_session("app", &id);

    let request = |path: &str| {
        let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        req.insert_header("host", "app.example.com").unwrap();
        req.insert_header("accept", "text/html").unwrap();
        req.insert_header("cookie", format!("theme=dark; authgate={cookie}"))
            .unwrap();
        req
    };
    let public = request("/public/report.css");
    let signed_in = request("/reports/2026");

    c.bench_function("public route: admit + gate", |b| {
        b.to_async(&runtime).iter(|| async {
            let admitted = admit(&gw, &public).unwrap();
            matches!(
                decide(&sign_in, &keys, &gw, &public, &admitted, false, "bench").await,
                Verdict::Forward(_)
            )
        })
    });
    c.bench_function(
        "session route: admit + gate (cookie MAC, store, requirements, headers)",
        |b| {
            b.to_async(&runtime).iter(|| async {
                let admitted = admit(&gw, &signed_in).unwrap();
                let verdict =
                    decide(&sign_in, &keys, &gw, &signed_in, &admitted, false, "bench").await;
                assert!(matches!(verdict, Verdict::Forward(Some(_))));
            })
        },
    );
}

criterion_group!(session, benches);
criterion_main!(session);
