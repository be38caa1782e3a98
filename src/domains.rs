//! Custom domains added through the admin API, and their lifecycle (Logto's protected-app
//! custom domains): `PendingVerification` until the DNS records the gateway asked for are
//! published, then `PendingSsl` until a certificate is issued, then `Active` — or `Error` with a
//! readable message. A domain serves its app only once `Active`.
//!
//! Verification needs two records: a TXT record `_authgate.<domain>` holding the domain's
//! ownership token (proof of control), and a CNAME from the domain to the gateway's public name
//! (so traffic reaches the gateway). The verifier resolves them with `hickory-resolver` against
//! the configured name servers.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn unix_now() -> u64 {
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

fn ownership_token() -> String {
    let mut bytes = [0u8; 18];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of the ownership TXT record of `domain`.
pub fn txt_name(domain: &str) -> String {
    format!("_authgate.{domain}")
}

/// Every custom domain, stored in `{data_dir}/domains.json`.
pub struct DomainBook {
    path: PathBuf,
    entries: std::sync::Mutex<Vec<CustomDomain>>,
}

impl DomainBook {
    /// Opens (or starts) the book under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<DomainBook, String> {
        let path = data_dir.join("domains.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a domain list: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(DomainBook {
            path,
            entries: std::sync::Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CustomDomain>> {
        // A panic while holding the lock cannot leave the list half-written (every change is
        // whole), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `(app, domain)` of every active domain.
    pub fn active(&self) -> Vec<(String, String)> {
        self.lock()
            .iter()
            .filter(|d| d.status == DomainStatus::Active)
            .map(|d| (d.app.clone(), d.domain.clone()))
            .collect()
    }

    /// Domains that need a certificate now: verified ones, failed ones whose retry time has
    /// come, and active ones due for renewal.
    pub fn due_for_certificate(&self, renew_after: Duration) -> Vec<CustomDomain> {
        let now = unix_now();
        self.lock()
            .iter()
            .filter(|d| match d.status {
                DomainStatus::PendingSsl => d.retry_at.is_none_or(|t| t <= now),
                DomainStatus::Error => d.retry_at.is_some_and(|t| t <= now),
                DomainStatus::Active => d
                    .issued_at
                    .is_some_and(|t| t + renew_after.as_secs() <= now),
                DomainStatus::PendingVerification => false,
            })
            .cloned()
            .collect()
    }

    /// Records the outcome of a certificate order for `domain`.
    pub fn record_certificate(
        &self,
        domain: &str,
        outcome: Result<(), String>,
        retry_base: Duration,
    ) {
        let now = unix_now();
        let mut entries = self.lock();
        let Some(entry) = entries.iter_mut().find(|d| d.domain == domain) else {
            return;
        };
        match outcome {
            Ok(()) => {
                entry.status = DomainStatus::Active;
                entry.error_message = None;
                entry.issued_at = Some(now);
                entry.failures = 0;
                entry.retry_at = None;
            }
            Err(why) => {
                entry.failures = entry.failures.saturating_add(1);
                let backoff = retry_base
                    .as_secs()
                    .saturating_mul(1 << entry.failures.min(6))
                    .min(3600);
                entry.retry_at = Some(now + backoff);
                // A renewal failure keeps serving the current certificate.
                if entry.status != DomainStatus::Active {
                    entry.status = DomainStatus::Error;
                }
                entry.error_message = Some(why);
            }
        }
        let snapshot = entries.clone();
        drop(entries);
        if let Err(e) = self.persist(&snapshot) {
            tracing::error!(error = %e, "custom domain status not stored");
        }
    }

    /// The domains of `app`.
    pub fn of_app(&self, app: &str) -> Vec<CustomDomain> {
        self.lock()
            .iter()
            .filter(|d| d.app == app)
            .cloned()
            .collect()
    }

    /// Adds `domain` to `app`; `taken` says whether a host name is served already.
    pub fn add(
        &self,
        app: &str,
        domain: &str,
        settings: &DomainSettings,
        taken: impl Fn(&str) -> bool,
    ) -> Result<CustomDomain, DomainError> {
        let domain = validate(domain, &settings.blocklist)?;
        let mut entries = self.lock();
        if taken(&domain) || entries.iter().any(|d| d.domain == domain) {
            return Err(DomainError::InUse(domain));
        }
        let count = entries.iter().filter(|d| d.app == app).count();
        if count >= settings.max_per_app {
            return Err(DomainError::LimitReached(settings.max_per_app));
        }
        let entry = CustomDomain {
            app: app.to_string(),
            domain: domain.clone(),
            status: DomainStatus::PendingVerification,
            error_message: Some("waiting for the DNS records".into()),
            dns_records: vec![
                DnsRecord {
                    name: domain.clone(),
                    kind: "CNAME".into(),
                    value: settings.public_name.clone(),
                },
                DnsRecord {
                    name: txt_name(&domain),
                    kind: "TXT".into(),
                    value: ownership_token(),
                },
            ],
            issued_at: None,
            failures: 0,
            retry_at: None,
        };
        let mut next = entries.clone();
        next.push(entry.clone());
        self.persist(&next).map_err(DomainError::Storage)?;
        *entries = next;
        Ok(entry)
    }

    /// Every domain, in every state.
    pub fn all(&self) -> Vec<CustomDomain> {
        self.lock().clone()
    }

    /// Removes `domain` from `app`; returns what was removed.
    pub fn remove(&self, app: &str, domain: &str) -> Result<CustomDomain, DomainError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let removed = self.remove_where(|d| d.app == app && d.domain == domain);
        removed.into_iter().next().ok_or(DomainError::NotFound)
    }

    /// Removes every domain `doomed` picks; returns them. Nothing is removed when the book
    /// cannot be stored.
    pub fn remove_where(&self, doomed: impl Fn(&CustomDomain) -> bool) -> Vec<CustomDomain> {
        let mut entries = self.lock();
        let (removed, kept): (Vec<CustomDomain>, Vec<CustomDomain>) =
            entries.iter().cloned().partition(|d| doomed(d));
        if removed.is_empty() {
            return removed;
        }
        if let Err(e) = self.persist(&kept) {
            tracing::error!(error = %e, "custom domains not removed: the book cannot be stored");
            return Vec::new();
        }
        *entries = kept;
        removed
    }

    /// Checks every domain waiting for verification once; returns how many moved on.
    pub async fn verify_pending(&self, dns: &Dns, settings: &DomainSettings) -> usize {
        let pending: Vec<CustomDomain> = self
            .lock()
            .iter()
            .filter(|d| d.status == DomainStatus::PendingVerification)
            .cloned()
            .collect();
        let mut moved = 0;
        for entry in pending {
            let outcome = dns.check(&entry, &settings.public_name).await;
            let snapshot = {
                let mut entries = self.lock();
                let Some(current) = entries
                    .iter_mut()
                    .find(|d| d.domain == entry.domain && d.app == entry.app)
                else {
                    continue;
                };
                match outcome {
                    Ok(()) => {
                        current.status = DomainStatus::PendingSsl;
                        current.error_message = Some("verified; waiting for a certificate".into());
                        moved += 1;
                        tracing::info!(domain = %entry.domain, app = %entry.app, "custom domain verified");
                    }
                    Err(why) => current.error_message = Some(why),
                }
                entries.clone()
            };
            if let Err(e) = self.persist(&snapshot) {
                tracing::error!(error = %e, "custom domain status not stored");
            }
        }
        moved
    }

    fn persist(&self, entries: &[CustomDomain]) -> Result<(), String> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(entries).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| format!("{}: {e}", self.path.display()))
    }
}

/// DNS lookups for verification.
pub struct Dns {
    resolver: hickory_resolver::TokioResolver,
}

impl Dns {
    /// A resolver asking `nameservers` (UDP), or the system's when empty.
    pub fn new(nameservers: &[SocketAddr]) -> Result<Dns, String> {
        use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
        use hickory_resolver::name_server::TokioConnectionProvider;
        use hickory_resolver::proto::xfer::Protocol;
        let builder = if nameservers.is_empty() {
            hickory_resolver::TokioResolver::builder_tokio().map_err(|e| e.to_string())?
        } else {
            let mut config = ResolverConfig::new();
            for ns in nameservers {
                config.add_name_server(NameServerConfig::new(*ns, Protocol::Udp));
            }
            hickory_resolver::TokioResolver::builder_with_config(
                config,
                TokioConnectionProvider::default(),
            )
        };
        let mut opts = ResolverOpts::default();
        // Records are being published while the verifier polls: never cache an answer.
        opts.cache_size = 0;
        opts.timeout = Duration::from_secs(3);
        opts.attempts = 1;
        Ok(Dns {
            resolver: builder.with_options(opts).build(),
        })
    }

    /// Whether the domain's TXT record holds its token and it points at `public_name`.
    async fn check(&self, entry: &CustomDomain, public_name: &str) -> Result<(), String> {
        let token = entry
            .dns_records
            .iter()
            .find(|r| r.kind == "TXT")
            .map(|r| r.value.clone())
            .unwrap_or_default();
        let txt = self
            .resolver
            .txt_lookup(format!("{}.", txt_name(&entry.domain)))
            .await
            .map_err(|_| format!("no TXT record at {} yet", txt_name(&entry.domain)))?;
        let found = txt.iter().any(|record| {
            record
                .txt_data()
                .iter()
                .any(|part| part.as_ref() == token.as_bytes())
        });
        if !found {
            return Err(format!(
                "the TXT record at {} does not hold the token",
                txt_name(&entry.domain)
            ));
        }
        let cname = self
            .resolver
            .lookup(
                format!("{}.", entry.domain),
                hickory_resolver::proto::rr::RecordType::CNAME,
            )
            .await
            .map_err(|_| format!("no CNAME record at {} yet", entry.domain))?;
        let target = format!(
            "{}.",
            public_name.trim_end_matches('.').to_ascii_lowercase()
        );
        let points = cname
            .iter()
            .filter_map(|r| r.as_cname())
            .any(|name| name.to_ascii().to_ascii_lowercase() == target);
        if !points {
            return Err(format!("{} does not point at {public_name}", entry.domain));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_per_app: usize) -> DomainSettings {
        DomainSettings {
            public_name: "gw.example.net".into(),
            nameservers: Vec::new(),
            max_per_app,
            blocklist: Vec::new(),
            check_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_per_app_limit_and_uniqueness_hold_and_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let book = DomainBook::open(dir.path()).unwrap();
        let s = settings(2);
        book.add("a", "one.test", &s, |_| false).unwrap();
        book.add("a", "two.test", &s, |_| false).unwrap();
        assert_eq!(
            book.add("a", "three.test", &s, |_| false),
            Err(DomainError::LimitReached(2))
        );
        assert!(matches!(
            book.add("b", "ONE.test", &s, |_| false),
            Err(DomainError::InUse(_))
        ));
        assert!(matches!(
            book.add("b", "served.test", &s, |d| d == "served.test"),
            Err(DomainError::InUse(_))
        ));
        assert_eq!(book.remove("a", "two.test").unwrap().domain, "two.test");
        assert_eq!(book.remove("a", "two.test"), Err(DomainError::NotFound));
        let reopened = DomainBook::open(dir.path()).unwrap();
        let domains: Vec<String> = reopened.of_app("a").into_iter().map(|d| d.domain).collect();
        assert_eq!(domains, ["one.test"]);
    }

    #[test]
    fn failed_orders_back_off_and_renewals_keep_serving() {
        let dir = tempfile::tempdir().unwrap();
        let book = DomainBook::open(dir.path()).unwrap();
        book.add("a", "one.test", &settings(5), |_| false).unwrap();
        book.lock()[0].status = DomainStatus::PendingSsl;
        assert_eq!(book.due_for_certificate(Duration::from_secs(60)).len(), 1);
        book.record_certificate("one.test", Err("CA down".into()), Duration::from_secs(60));
        let entry = book.of_app("a").remove(0);
        assert_eq!(entry.status, DomainStatus::Error);
        assert_eq!(entry.error_message.as_deref(), Some("CA down"));
        assert!(
            entry.retry_at.unwrap() >= unix_now() + 120,
            "backoff doubles"
        );
        assert!(
            book.due_for_certificate(Duration::from_secs(60)).is_empty(),
            "not before retry_at"
        );
        book.record_certificate("one.test", Ok(()), Duration::from_secs(60));
        assert_eq!(book.active(), [("a".to_string(), "one.test".to_string())]);
        assert!(book
            .due_for_certificate(Duration::from_secs(3600))
            .is_empty());
        assert_eq!(
            book.due_for_certificate(Duration::ZERO).len(),
            1,
            "due for renewal"
        );
        book.record_certificate(
            "one.test",
            Err("renewal failed".into()),
            Duration::from_secs(60),
        );
        assert_eq!(
            book.of_app("a")[0].status,
            DomainStatus::Active,
            "still serving"
        );
    }

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
