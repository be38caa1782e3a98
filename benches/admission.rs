//! The per-request decision cost: path normalisation, route matching, and the whole
//! admission of a request head (framing checks, host lookup, normalisation, rule match).
//!
//! Run: `cargo bench --bench admission`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Method;
use pingora::http::RequestHeader;

use authgate::config::{from_yaml, PathOptionsFile};
use authgate::proxy::admission::admit;
use authgate::route::path::normalize;

const CONFIG: &str = "
apps:
  - id: shop
    host: shop.example.com
    origin: {url: 'http://127.0.0.1:9/'}
    routes:
      - {name: assets, glob: '/static/**', action: public}
      - {name: health, exact: /health, methods: [GET, HEAD], action: public}
      - {name: admin, prefix: /admin, action: session}
      - {name: api, regex: '/api/v[0-9]+/.*', action: jwt}
      - {name: export, prefix: /export, action: deny}
      - {name: public, prefix: /public, action: public}
";

fn request(path: &str) -> RequestHeader {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("host", "shop.example.com").unwrap();
    req.insert_header("user-agent", "criterion").unwrap();
    req.insert_header("accept", "*/*").unwrap();
    req
}

fn benches(c: &mut Criterion) {
    let gw = from_yaml(CONFIG).unwrap();
    let opts = PathOptionsFile::default();

    c.bench_function("normalize clean path", |b| {
        b.iter(|| normalize(black_box("/public/assets/app.js"), opts))
    });
    c.bench_function("normalize dotted path", |b| {
        b.iter(|| normalize(black_box("/public/./a//b/%2e%2e/c/%7euser"), opts))
    });

    let app = gw.hosts.lookup("shop.example.com").unwrap().clone();
    c.bench_function("route match (6 rules, regex hit)", |b| {
        b.iter(|| {
            app.routes
                .decide(&Method::GET, black_box("/api/v2/orders"))
                .action
        })
    });
    c.bench_function("route match (6 rules, default)", |b| {
        b.iter(|| {
            app.routes
                .decide(&Method::GET, black_box("/somewhere/else"))
                .action
        })
    });

    let public = request("/public/index.html?x=1");
    c.bench_function("admit public request", |b| {
        b.iter(|| admit(&gw, black_box(&public)).map(|a| a.action).ok())
    });
    let protected = request("/admin/users");
    c.bench_function("admit protected request", |b| {
        b.iter(|| admit(&gw, black_box(&protected)).map(|a| a.action).ok())
    });
}

criterion_group!(admission, benches);
criterion_main!(admission);
