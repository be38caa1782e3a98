//! Custom domains added through the admin API, and their lifecycle (Logto's protected-app
//! custom domains): `PendingVerification` until the DNS records the gateway asked for are
//! published, then `PendingSsl` until a certificate is issued, then `Active` — or `Error` with a
//! readable message. A domain serves its app only once `Active`.
//!
//! Verification needs two records: a TXT record `_authgate.<domain>` holding the domain's
//! ownership token (proof of control), and a CNAME from the domain to the gateway's public name
//! (so traffic reaches the gateway). The verifier resolves them with `hickory-resolver` against
//! the configured name servers.
//!
//! The book of domains ([`book`]) lives in the control store — a file on a single node, Redis
//! shared by every replica — and so do the certificates issued for them ([`certificates`]).
//! With replicas, one at a time works on a domain: [`manager`] holds a lease on it while it
//! checks the records or orders the certificate, so nothing is done twice and a replica that
//! dies mid-order has its work taken over when the lease runs out.

pub mod book;
pub mod certificates;
pub mod dns;
pub mod manager;

use std::net::SocketAddr;
use std::time::Duration;

pub use book::DomainBook;
pub use dns::Dns;

use serde::{Deserialize, Serialize};

/// Where a custom domain is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomainStatus {
    /// Waiting for the DNS records to appear.
    PendingVerification,
    /// Verified; waiting for a certificate.
    PendingSsl,
    /// Serving.
    Active,
    /// Failed; see `error_message`.
    Error,
}

/// A DNS record the operator must publish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Record name.
    pub name: String,
    /// Record type (`CNAME`, `TXT`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Record value.
    pub value: String,
}

/// One custom domain of one app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomDomain {
    /// The app it serves.
    pub app: String,
    /// The domain (lower-case, no trailing dot).
    pub domain: String,
    /// Lifecycle status.
    pub status: DomainStatus,
    /// Why it is not active yet, or why it failed.
    pub error_message: Option<String>,
    /// The records to publish.
    pub dns_records: Vec<DnsRecord>,
    /// When the current certificate was issued (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<u64>,
    /// Failed certificate orders in a row.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// No new certificate order before this (unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<u64>,
    /// What happened to the domain, oldest first (the last [`HISTORY_KEPT`] events).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<DomainEvent>,
}

/// One step in a domain's life, and the replica that took it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEvent {
    /// When (unix seconds).
    pub at: u64,
    /// The status after it.
    pub status: DomainStatus,
    /// What happened.
    pub message: String,
    /// The replica that did it ([`replica_name`]).
    pub replica: String,
}

/// Events kept per domain.
pub const HISTORY_KEPT: usize = 20;

impl CustomDomain {
    /// Sets the status and message, and notes it in the history when either changed.
    fn note(&mut self, status: DomainStatus, message: impl Into<String>) {
        let message = message.into();
        let changed =
            self.status != status || self.error_message.as_deref() != Some(message.as_str());
        self.record(status, message, changed);
    }

    /// Sets the status and message, and notes it in the history when `noted`.
    fn record(&mut self, status: DomainStatus, message: String, noted: bool) {
        self.status = status;
        self.error_message = Some(message.clone());
        if noted {
            self.history.push(DomainEvent {
                at: unix_now(),
                status,
                message,
                replica: replica_name().to_string(),
            });
            let excess = self.history.len().saturating_sub(HISTORY_KEPT);
            self.history.drain(..excess);
        }
    }

    /// When its certificate is due for renewal: `renew_after` after it was issued, plus a
    /// spread of up to a tenth of `renew_after` drawn from the name, so domains issued
    /// together (a fleet's first day) are not all renewed in the same minute.
    pub fn renewal_at(&self, renew_after: Duration) -> Option<u64> {
        let issued = self.issued_at?;
        let window = renew_after.as_secs() / 10;
        let spread = if window == 0 {
            0
        } else {
            let digest =
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, self.domain.as_bytes());
            let mut first = [0u8; 8];
            first.copy_from_slice(&digest.as_ref()[..8]);
            u64::from_be_bytes(first) % window
        };
        Some(issued + renew_after.as_secs() + spread)
    }

    /// Whether a certificate should be ordered now: verified, failed with its retry time
    /// come, or active and due for renewal.
    pub fn wants_certificate(&self, now: u64, renew_after: Duration) -> bool {
        match self.status {
            DomainStatus::PendingSsl => self.retry_at.is_none_or(|t| t <= now),
            DomainStatus::Error => self.retry_at.is_some_and(|t| t <= now),
            DomainStatus::Active => {
                self.retry_at.is_none_or(|t| t <= now)
                    && self.renewal_at(renew_after).is_some_and(|t| t <= now)
            }
            DomainStatus::PendingVerification => false,
        }
    }
}

/// This replica's name in domain histories: the host name and process id.
pub fn replica_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "authgate".into());
        format!("{host}/{}", std::process::id())
    })
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Settings of custom domains.
#[derive(Debug, Clone)]
pub struct DomainSettings {
    /// The name customer domains point their CNAME at.
    pub public_name: String,
    /// Name servers the verifier asks (empty: the system's).
    pub nameservers: Vec<SocketAddr>,
    /// Custom domains per app.
    pub max_per_app: usize,
    /// Domains that may never be added (`example.com` or `*.example.com`).
    pub blocklist: Vec<String>,
    /// How often pending domains are checked.
    pub check_interval: Duration,
}

/// Why a domain cannot be added.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DomainError {
    /// Not a valid domain name for this purpose (422).
    #[error("{0}")]
    Invalid(String),
    /// The app already has the most domains allowed (422).
    #[error("the app already has {0} custom domains, the most allowed")]
    LimitReached(usize),
    /// Another app or entry already uses it (409).
    #[error("`{0}` is already in use")]
    InUse(String),
    /// No such domain for the app (404).
    #[error("no such custom domain")]
    NotFound,
    /// The change could not be stored (503).
    #[error("cannot store the change: {0}")]
    Storage(String),
}

/// The canonical form of a domain an operator may add, or why not: no IP addresses, no
/// wildcards, 1–63-character labels of letters, digits and inner hyphens, at least two labels,
/// at most 253 characters, nothing on the blocklist.
pub fn validate(domain: &str, blocklist: &[String]) -> Result<String, DomainError> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let invalid = |why: &str| Err(DomainError::Invalid(format!("`{domain}`: {why}")));
    if d.is_empty() || d.len() > 253 {
        return invalid("must be 1 to 253 characters");
    }
    if d.contains('*') {
        return invalid("wildcard domains cannot be added");
    }
    if d.parse::<std::net::IpAddr>().is_ok()
        || d.trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok()
    {
        return invalid("IP addresses cannot be added");
    }
    let labels: Vec<&str> = d.split('.').collect();
    if labels.len() < 2 {
        return invalid("needs at least two labels");
    }
    for label in &labels {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return invalid("each label is 1-63 letters, digits or inner hyphens");
        }
    }
    if labels
        .last()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return invalid("the last label cannot be numeric");
    }
    for blocked in blocklist {
        let blocked = blocked.to_ascii_lowercase();
        let hit = match blocked.strip_prefix("*.") {
            Some(suffix) => d.ends_with(&format!(".{suffix}")),
            None => d == blocked,
        };
        if hit {
            return invalid("is on the blocklist");
        }
    }
    Ok(d)
}

pub(crate) fn ownership_token() -> String {
    let mut bytes = [0u8; 18];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the ownership TXT record of `domain`.
pub fn txt_name(domain: &str) -> String {
    format!("_authgate.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_domain_names_are_accepted() {
        let block = vec!["*.internal.test".to_string(), "blocked.test".to_string()];
        assert_eq!(
            validate("App.Customer.COM.", &block).unwrap(),
            "app.customer.com"
        );
        for bad in [
            "127.0.0.1",
            "[::1]",
            "*.customer.com",
            "localhost",
            "-bad.com",
            "bad-.com",
            "a..com",
            "under_score.com",
            "x.internal.test",
            "blocked.test",
            "example.123",
            &format!("{}.com", "a".repeat(64)),
            &format!("{}com", "a.".repeat(130)),
            "",
        ] {
            assert!(
                matches!(validate(bad, &block), Err(DomainError::Invalid(_))),
                "{bad}"
            );
        }
    }
}
