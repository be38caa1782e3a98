//! Readiness: whether this gateway should receive traffic and, when it should not, which
//! dependency is why — each traffic listener, each OIDC provider (discovery and its ID token
//! keys), each JWT issuer's keys, and the session store.
//!
//! `/readyz` asks on every probe, but nothing here lets a flood of probes reach a provider: a
//! discovered provider is asked again at most once per few seconds, a JWKS is refreshed on its
//! own schedule, and every check is bounded by [`CHECK_TIMEOUT`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::config::Gateway;
use crate::session::SessionStore;

/// The longest one dependency check may take; a dependency that has not answered by then is
/// reported as failing.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness looks at.
pub struct Readiness {
    probe: Vec<SocketAddr>,
    listening: AtomicBool,
    draining: AtomicBool,
    sessions: Arc<dyn SessionStore>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("probe", &self.probe)
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

/// The answer to one readiness probe.
#[derive(Debug, Serialize)]
pub struct Report {
    /// True when every check passed and the gateway is not shutting down.
    pub ready: bool,
    /// `ready`, `not ready` or `draining`.
    pub status: &'static str,
    /// Every dependency looked at, failing ones first.
    pub checks: Vec<Check>,
    /// Stored apps and custom domains that are not served (they do not make the gateway
    /// unready: everything else is served).
    pub unserved: Vec<String>,
}

/// One dependency's state.
#[derive(Debug, Serialize)]
pub struct Check {
    /// `listener`, `provider`, `jwks` or `session_store`.
    pub kind: &'static str,
    /// The listener address, provider or issuer id, or the store's name.
    pub name: String,
    /// Whether it serves.
    pub ok: bool,
    /// What was found, or why it fails.
    pub detail: String,
}

impl Readiness {
    /// Readiness that connects to these traffic listener addresses and asks `sessions`.
    pub fn new(
        listeners: impl IntoIterator<Item = SocketAddr>,
        sessions: Arc<dyn SessionStore>,
    ) -> Readiness {
        let probe = listeners
            .into_iter()
            .map(|mut addr| {
                // A wildcard bind is reached through loopback.
                if addr.ip().is_unspecified() {
                    addr.set_ip(match addr {
                        SocketAddr::V4(_) => [127, 0, 0, 1].into(),
                        SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                    });
                }
                addr
            })
            .collect();
        Readiness {
            probe,
            listening: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            sessions,
        }
    }

    /// Marks the gateway as draining: readiness fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Checks every dependency of `gateway` at once.
    pub async fn report(&self, gateway: &Gateway, unserved: Vec<String>) -> Report {
        let draining = self.draining.load(Ordering::SeqCst);
        let listeners = self.listeners();
        let providers = futures_util::future::join_all(
            gateway
                .providers
                .iter()
                .map(|p| async { bounded("provider", p.id.to_string(), p.health()).await }),
        );
        let issuers = gateway.verifier.issuers().map(|issuer| async {
            bounded("jwks", issuer.id.to_string(), async {
                issuer.keys.health()
            })
            .await
        });
        let issuers = futures_util::future::join_all(issuers);
        let sessions = bounded("session_store", "sessions".into(), self.sessions.health());
        let (mut checks, providers, issuers, sessions) =
            tokio::join!(listeners, providers, issuers, sessions);
        checks.extend(providers);
        checks.extend(issuers);
        checks.push(sessions);
        // Failing checks first: a probe's log shows the reason on its first line.
        checks.sort_by_key(|c| c.ok);
        let all_ok = checks.iter().all(|c| c.ok);
        let (ready, status) = match (draining, all_ok) {
            (true, _) => (false, "draining"),
            (false, true) => (true, "ready"),
            (false, false) => (false, "not ready"),
        };
        Report {
            ready,
            status,
            checks,
            unserved,
        }
    }

    /// Each traffic listener accepts connections. Once all have, they are not probed again
    /// (they stay open until shutdown, which readiness reports as draining).
    async fn listeners(&self) -> Vec<Check> {
        let known = self.listening.load(Ordering::SeqCst);
        let mut checks = Vec::with_capacity(self.probe.len());
        for addr in &self.probe {
            let ok = known
                || matches!(
                    tokio::time::timeout(CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr)).await,
                    Ok(Ok(_))
                );
            checks.push(Check {
                kind: "listener",
                name: addr.to_string(),
                ok,
                detail: if ok { "accepting" } else { "not accepting yet" }.into(),
            });
        }
        if !known && checks.iter().all(|c| c.ok) {
            self.listening.store(true, Ordering::SeqCst);
        }
        checks
    }
}

async fn bounded(
    kind: &'static str,
    name: String,
    check: impl std::future::Future<Output = Result<String, String>>,
) -> Check {
    let (ok, detail) = match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(detail)) => (true, detail),
        Ok(Err(why)) => (false, why),
        Err(_) => (
            false,
            format!("no answer within {} s", CHECK_TIMEOUT.as_secs()),
        ),
    };
    Check {
        kind,
        name,
        ok,
        detail,
    }
}
