//! What a fleet's control plane costs as it grows: parsing and compiling a configuration of
//! 1,000 and 10,000 protected apps (each with a host, a custom domain, an origin and a few
//! route rules) into the snapshot the proxy serves — what a replica does at start and, today,
//! on every change to any app.
//!
//! Run: `cargo bench --bench control`.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

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

criterion_group!(control, benches);
criterion_main!(control);
