//! Metric families rendered at scrape time from state the request path keeps anyway: sessions
//! held, each issuer's and provider's keys (fetches, failures, keys held, their age), whether
//! each provider is discovered, the verified-token cache's hits and misses, and custom domains
//! by state. Nothing here costs the request path anything.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::config::Gateway;
use crate::domains::{DomainBook, DomainStatus};
use crate::jwt::jwks::IssuerKeys;
use crate::metrics::Metrics;
use crate::session::memory::MemoryStore;

/// Registers every family with `metrics`.
pub fn register(
    metrics: &Metrics,
    store: Option<Arc<MemoryStore>>,
    config: Arc<ArcSwap<Gateway>>,
    domains: Option<Arc<DomainBook>>,
) {
    if let Some(store) = store {
        metrics.add_source(Box::new(move |out| {
            family(out, "authgate_sessions", "gauge", "Sign-in sessions held.");
            let _ = writeln!(out, "authgate_sessions {}", store.len());
        }));
    }
    metrics.add_source(Box::new(move |out| identity(out, &config.load())));
    if let Some(domains) = domains {
        metrics.add_source(Box::new(move |out| custom_domains(out, &domains)));
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Keys per JWT issuer and per provider (`issuer="provider:ID"` for a provider's ID token
/// keys), providers' discovery, and the verified-token cache.
fn identity(out: &mut String, gateway: &Gateway) {
    let mut keys: Vec<(String, &Arc<IssuerKeys>)> = gateway
        .verifier
        .issuers()
        .map(|i| (i.id.to_string(), &i.keys))
        .chain(
            gateway
                .providers
                .iter()
                .map(|p| (format!("provider:{}", p.id), p.id_token_keys())),
        )
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    type Read = fn(&IssuerKeys) -> Option<f64>;
    let families: [(&str, &str, &str, Read); 4] = [
        (
            "authgate_jwks_fetches_total",
            "counter",
            "JWKS fetches attempted.",
            |k| Some(k.fetch_count() as f64),
        ),
        (
            "authgate_jwks_fetch_failures_total",
            "counter",
            "JWKS fetches that failed (the last good keys kept serving).",
            |k| Some(k.failure_count() as f64),
        ),
        ("authgate_jwks_keys", "gauge", "Usable keys held.", |k| {
            Some(k.key_count() as f64)
        }),
        (
            "authgate_jwks_key_age_seconds",
            "gauge",
            "Seconds since the keys in force were fetched (absent: never fetched).",
            |k| k.key_age().map(|age| age.as_secs_f64().round()),
        ),
    ];
    for (name, kind, help, read) in families {
        family(out, name, kind, help);
        for (id, issuer_keys) in &keys {
            if let Some(value) = read(issuer_keys) {
                let _ = writeln!(out, "{name}{{issuer=\"{}\"}} {value}", label(id));
            }
        }
    }
    family(
        out,
        "authgate_provider_discovered",
        "gauge",
        "1 when the provider's discovery document has been read, else 0.",
    );
    for provider in &gateway.providers {
        let _ = writeln!(
            out,
            "authgate_provider_discovered{{provider=\"{}\"}} {}",
            label(&provider.id),
            u8::from(provider.is_discovered())
        );
    }
    let stats = gateway.verifier.cache_stats();
    family(
        out,
        "authgate_token_cache_lookups_total",
        "counter",
        "Bearer tokens looked up in the verified-token cache: hit (no verification needed) or miss.",
    );
    let _ = writeln!(
        out,
        "authgate_token_cache_lookups_total{{result=\"hit\"}} {}\nauthgate_token_cache_lookups_total{{result=\"miss\"}} {}",
        stats.hits.load(Ordering::Relaxed),
        stats.misses.load(Ordering::Relaxed)
    );
}

fn custom_domains(out: &mut String, domains: &DomainBook) {
    let all = domains.all();
    family(
        out,
        "authgate_custom_domains",
        "gauge",
        "Custom domains by state.",
    );
    for (state, name) in [
        (DomainStatus::PendingVerification, "pending_verification"),
        (DomainStatus::PendingSsl, "pending_ssl"),
        (DomainStatus::Active, "active"),
        (DomainStatus::Error, "error"),
    ] {
        let count = all.iter().filter(|d| d.status == state).count();
        let _ = writeln!(out, "authgate_custom_domains{{state=\"{name}\"}} {count}");
    }
}
