//! What a fleet's control plane costs as it grows, with 1,000 and 10,000 protected apps (each
//! with a host, a custom domain, an origin and a few route rules):
//!
//! - `compile apps`: parsing and compiling them from a config file, the whole snapshot;
//! - `registry open`: a replica starting with them stored as admin API apps, each with an
//!   active custom domain in the domain book — reading both documents and building the
//!   snapshot, as at a cold start (certificates aside: they load one domain at a time);
//! - `registry change one app`: a PATCH to one app through the registry, as the admin API
//!   makes it — compiling, storing (compare-and-swap of the apps document) and swapping in the
//!   new snapshot — where every other app is taken over compiled.
//!
//! Run: `cargo bench --bench control`.

use std::sync::Arc;

use arc_swap::ArcSwap;
use authgate::domains::DomainBook;
use authgate::registry::{ControlStore, Registry};
use authgate::store::memory::MemoryStore;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

#[path = "support/fleet.rs"]
mod fleet;

/// A configuration with `apps` apps.
fn config(apps: usize) -> String {
    let mut text = String::with_capacity(apps * 320);
    text.push_str("apps:\n");
    for i in 0..apps {
        text.push_str(&format!(
            "  - id: app-{i}\n    host: app-{i}.example.com\n    custom_domains: [www.customer-{i}.test]\n    \
             origin: {{url: 'http://10.0.{}.{}:8080/'}}\n    routes:\n      \
             - {{prefix: /static, action: public}}\n      - {{prefix: /admin, action: session, require: {{groups: [admins]}}}}\n      \
             - {{glob: '/api/**', action: jwt}}\n",
            (i / 250) % 250,
            i % 250 + 1
        ));
    }
    text
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile apps");
    group.sample_size(10);
    for apps in [1_000usize, 10_000] {
        let text = config(apps);
        // Checked once: the configuration is valid.
        let gw = authgate::config::from_yaml(&text).unwrap();
        assert_eq!(gw.hosts.apps().len(), apps);
        group.bench_with_input(BenchmarkId::from_parameter(apps), &text, |b, text| {
            b.iter(|| authgate::config::from_yaml(text).unwrap())
        });
    }
    group.finish();
}

/// The admin API form of app `i`.
fn api_app(i: usize) -> serde_json::Value {
    serde_json::json!({
        "id": format!("app-{i}"), "host": format!("app-{i}.example.com"),
        "origin": {"url": format!("http://10.0.{}.{}:8080/", (i / 250) % 250, i % 250 + 1)},
        "routes": [
            {"prefix": "/static", "action": "public"},
            {"prefix": "/admin", "action": "session", "require": {"groups": ["admins"]}},
            {"glob": "/api/**", "action": "jwt"}
        ]
    })
}

/// A control store holding `apps` admin API apps, each with one active custom domain.
async fn stored_fleet(apps: usize) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new());
    let list: Vec<serde_json::Value> = (0..apps).map(api_app).collect();
    fleet::store(&*store, &list, &fleet::active_domains(apps)).await;
    store
}

const CONFIG_FILE: &str = "listen: [{address: '127.0.0.1:8080'}]\n\
admin: {api_token: 'a-token-of-at-least-thirty-two-bytes'}\n\
domains: {public_name: gw.example.net}\n\
jwt_issuers: [{id: idp, issuer: 'https://idp.example.com', jwks_uri: 'https://idp.example.com/jwks', audiences: [api]}]\n\
apps: []\n";

async fn open(store: &Arc<MemoryStore>, path: &std::path::Path) -> Registry {
    let book = Arc::new(DomainBook::open(store.clone(), None).await.unwrap());
    let snapshot = Arc::new(ArcSwap::from_pointee(
        authgate::config::from_yaml(CONFIG_FILE).unwrap(),
    ));
    let control = ControlStore {
        documents: store.clone(),
        changes: None,
    };
    Registry::open(path, control, book, snapshot, None)
        .await
        .unwrap()
}

fn registry(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("authgate.yaml");
    std::fs::write(&path, CONFIG_FILE).unwrap();
    let mut group = c.benchmark_group("registry");
    group.sample_size(10);
    for apps in [1_000usize, 10_000] {
        let store = rt.block_on(stored_fleet(apps));
        // Checked once: every app and domain is served.
        let opened = rt.block_on(open(&store, &path));
        assert!(opened.unserved().is_empty());
        group.bench_with_input(BenchmarkId::new("open", apps), &apps, |b, _| {
            b.iter(|| rt.block_on(open(&store, &path)))
        });
        let mut turn = 0u64;
        group.bench_with_input(BenchmarkId::new("change one app", apps), &apps, |b, _| {
            b.iter(|| {
                turn += 1;
                let patch = serde_json::json!({"session_duration": 3600 + turn});
                rt.block_on(opened.patch("app-7", patch)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(control, benches, registry);
criterion_main!(control);
