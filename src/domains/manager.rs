//! Runs custom domains through their lifecycle every `domains.check_interval`: checks the DNS
//! records of pending ones, orders certificates for verified ones (and renewals), and rebuilds
//! the snapshot when a domain becomes active.
//!
//! With a shared control store every replica runs this, and a lease per domain makes one of
//! them do each piece of work: the holder renews its lease every third of `control.lease_ttl`
//! while it works and stops at once if the lease was lost (someone else may be doing it); a
//! holder that dies mid-order has its work taken over when the lease runs out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::certificates::Certificates;
use super::{unix_now, DomainBook, DomainStatus};
use crate::acme::{AcmeAccounts, Challenges};
use crate::config::Gateway;
use crate::registry::Registry;
use crate::store::Leases;

/// The lifecycle worker of custom domains.
pub struct DomainManager {
    /// The book of domains.
    pub book: Arc<DomainBook>,
    /// Rebuilt when a domain becomes active.
    pub registry: Arc<Registry>,
    /// The running configuration.
    pub config: Arc<ArcSwap<Gateway>>,
    /// Issued certificates (`None`: no TLS listener).
    pub certificates: Option<Arc<Certificates>>,
    /// Open HTTP-01 challenges.
    pub challenges: Arc<Challenges>,
    /// The ACME account.
    pub accounts: Arc<AcmeAccounts>,
    /// Per-domain leases, with replicas (`None`: a single node does all the work).
    pub leases: Option<Arc<dyn Leases>>,
}

/// The lease of the work on `domain`.
fn lease_name(domain: &str) -> String {
    format!("domain-work:{domain}")
}

impl DomainManager {
    /// Runs `work` while holding `domain`'s lease; skips it when another replica holds it.
    /// The work is dropped (stopped where it is) if the lease is lost meanwhile.
    async fn leased(&self, domain: &str, work: impl Future<Output = ()>) {
        let Some(leases) = &self.leases else {
            return work.await;
        };
        let ttl = self.config.load().control.lease_ttl;
        let lease = match leases.acquire(&lease_name(domain), ttl).await {
            Ok(Some(lease)) => lease,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(%domain, error = %e, "the custom domain's lease cannot be taken; tried again next round");
                return;
            }
        };
        let keep = async {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match leases.renew(&lease, ttl).await {
                    Ok(true) => {}
                    Ok(false) => return,
                    // Tried again at the next third; the lease lasts two more.
                    Err(e) => {
                        tracing::warn!(%domain, error = %e, "the custom domain's lease cannot be renewed")
                    }
                }
            }
        };
        tokio::select! {
            () = work => {}
            () = keep => {
                tracing::warn!(%domain, "the lease on the custom domain's work was lost; stopped, another replica takes it over");
            }
        }
        if let Err(e) = leases.release(&lease).await {
            tracing::warn!(%domain, error = %e, "the custom domain's lease is left to expire");
        }
    }

    /// Does what `domain` needs now, reading the book first: another replica may have done it
    /// just before this one took the lease.
    async fn work_on(&self, domain: &str, dns: Option<&super::Dns>) {
        if let Err(e) = self.book.refresh().await {
            tracing::error!(error = %e, "custom domains not worked on: the book cannot be read");
            return;
        }
        let Some(entry) = self.book.get(domain) else {
            return;
        };
        let gateway = self.config.load_full();
        if entry.status == DomainStatus::PendingVerification {
            let Some(dns) = dns else { return };
            let outcome = dns.check(&entry, &gateway.domains.public_name).await;
            if outcome.is_ok() {
                tracing::info!(%domain, app = %entry.app, "custom domain verified");
            }
            if let Err(e) = self.book.record_verification(domain, outcome).await {
                tracing::error!(%domain, error = %e, "custom domain status not stored");
            }
            return;
        }
        let Some(acme) = &gateway.acme else { return };
        if !entry.wants_certificate(unix_now(), acme.renew_after) {
            return;
        }
        if let Err(e) = self.book.record_order(domain).await {
            tracing::error!(%domain, error = %e, "custom domain status not stored");
            return;
        }
        let outcome = self.certify(&gateway, domain).await;
        match &outcome {
            Ok(_) => tracing::info!(%domain, "certificate issued"),
            Err(e) => tracing::warn!(%domain, error = %e, "certificate order failed"),
        }
        let activated = outcome.is_ok();
        if let Err(e) = self
            .book
            .record_certificate(domain, outcome, acme.retry_after)
            .await
        {
            tracing::error!(%domain, error = %e, "custom domain status not stored");
        }
        // Removed while its certificate was being ordered: the certificate goes too.
        if activated && self.book.get(domain).is_none() {
            if let Some(certificates) = &self.certificates {
                certificates.discard(domain).await;
            }
            return;
        }
        if activated {
            if let Err(e) = self.registry.resync().await {
                tracing::error!(error = %e, "an activated domain could not be served");
            }
        }
    }

    /// Orders a certificate for `domain` and keeps it; its issue time, or why not.
    async fn certify(&self, gateway: &Gateway, domain: &str) -> Result<u64, String> {
        let acme = gateway
            .acme
            .as_ref()
            .ok_or("no ACME CA is configured (acme.directory_url)")?;
        let certificates = self
            .certificates
            .as_ref()
            .ok_or("no TLS listener is configured to serve the domain")?;
        let cookie_keys = gateway.sessions.cookie_keys.as_deref();
        let (chain, key) =
            crate::acme::issue(acme, &self.challenges, &self.accounts, cookie_keys, domain).await?;
        let issued_at = unix_now();
        certificates
            .keep(domain, &chain, &key, issued_at, cookie_keys)
            .await?;
        Ok(issued_at)
    }

    async fn round(&self) {
        let gateway = self.config.load_full();
        let renew_after = gateway.acme.as_ref().map(|a| a.renew_after);
        let work = self.book.needing_work(renew_after);
        if work.is_empty() {
            return;
        }
        let dns = match super::Dns::new(&gateway.domains.nameservers) {
            Ok(dns) => Some(dns),
            Err(e) => {
                tracing::error!(error = %e, "no DNS resolver; custom domains are not verified");
                None
            }
        };
        for entry in work {
            self.leased(&entry.domain, self.work_on(&entry.domain, dns.as_ref()))
                .await;
        }
    }
}

#[async_trait]
impl BackgroundService for DomainManager {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        loop {
            self.round().await;
            let interval: Duration = self.config.load().domains.check_interval;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}
