//! The book of custom domains: one document (`domains.json`) in the control store, held in
//! memory for lookups and changed by compare-and-swap, so replicas changing it at the same
//! moment never lose each other's change. Each change is announced on the control channel;
//! the other replicas re-read the book at once (and periodically, should an announcement go
//! missing).

use std::sync::Arc;
use std::time::Duration;

use super::{
    ownership_token, txt_name, unix_now, validate, CustomDomain, DnsRecord, DomainError,
    DomainSettings, DomainStatus,
};
use crate::store::{Changes, Documents};

/// The document the book is kept in (a JSON list).
pub const DOCUMENT: &str = "domains.json";

/// The announcement of a change to the book, on [`crate::registry::CHANNEL`].
pub const ANNOUNCEMENT: &str = "domains";

/// Tries of one change before giving up on a book that keeps changing under it.
const CHANGE_TRIES: usize = 8;

/// The book as last read or written.
struct Held {
    raw: Option<Vec<u8>>,
    entries: Arc<Vec<CustomDomain>>,
}

/// Every custom domain, in the control store.
pub struct DomainBook {
    documents: Arc<dyn Documents>,
    changes: Option<Arc<dyn Changes>>,
    held: std::sync::Mutex<Held>,
    /// One change at a time from this process (others are refused by the store's compare).
    writing: tokio::sync::Mutex<()>,
}

fn parse(raw: Option<&[u8]>) -> Result<Vec<CustomDomain>, String> {
    match raw {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("the stored {DOCUMENT} is not a domain list: {e}")),
    }
}

impl DomainBook {
    /// Reads the book from `documents`; `changes` hears of every change this replica makes.
    pub async fn open(
        documents: Arc<dyn Documents>,
        changes: Option<Arc<dyn Changes>>,
    ) -> Result<DomainBook, String> {
        let raw = documents
            .read(DOCUMENT)
            .await
            .map_err(|e| format!("cannot read the custom domains: {e}"))?;
        let entries = Arc::new(parse(raw.as_deref())?);
        Ok(DomainBook {
            documents,
            changes,
            held: std::sync::Mutex::new(Held { raw, entries }),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every change to `Held` is whole, so a poisoned lock is still consistent.
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every domain, in every state, as last read.
    pub fn all(&self) -> Arc<Vec<CustomDomain>> {
        self.held().entries.clone()
    }

    /// One domain.
    pub fn get(&self, domain: &str) -> Option<CustomDomain> {
        self.all().iter().find(|d| d.domain == domain).cloned()
    }

    /// `(app, domain)` of every active domain.
    pub fn active(&self) -> Vec<(String, String)> {
        self.all()
            .iter()
            .filter(|d| d.status == DomainStatus::Active)
            .map(|d| (d.app.clone(), d.domain.clone()))
            .collect()
    }

    /// The domains of `app`.
    pub fn of_app(&self, app: &str) -> Vec<CustomDomain> {
        self.all()
            .iter()
            .filter(|d| d.app == app)
            .cloned()
            .collect()
    }

    /// Domains with work to do now: records to check, or a certificate to order (`renew_after`
    /// `None`: no CA is configured, so none).
    pub fn needing_work(&self, renew_after: Option<Duration>) -> Vec<CustomDomain> {
        let now = unix_now();
        self.all()
            .iter()
            .filter(|d| {
                d.status == DomainStatus::PendingVerification
                    || renew_after.is_some_and(|r| d.wants_certificate(now, r))
            })
            .cloned()
            .collect()
    }

    /// Reads the stored book again; true when it changed since it was last read or written.
    pub async fn refresh(&self) -> Result<bool, String> {
        let raw = self
            .documents
            .read(DOCUMENT)
            .await
            .map_err(|e| format!("cannot read the custom domains: {e}"))?;
        if raw == self.held().raw {
            return Ok(false);
        }
        let entries = Arc::new(parse(raw.as_deref())?);
        *self.held() = Held { raw, entries };
        Ok(true)
    }

    /// Applies `edit` to the book and stores the result; when another replica wrote first,
    /// reads theirs and applies `edit` to it again. An edit that changes nothing writes
    /// nothing.
    async fn change<T>(
        &self,
        mut edit: impl FnMut(&mut Vec<CustomDomain>) -> Result<T, DomainError>,
    ) -> Result<T, DomainError> {
        let _one_writer = self.writing.lock().await;
        for _ in 0..CHANGE_TRIES {
            let (raw, entries) = {
                let held = self.held();
                (held.raw.clone(), held.entries.clone())
            };
            let mut next = (*entries).clone();
            let outcome = edit(&mut next)?;
            if next == *entries {
                return Ok(outcome);
            }
            let bytes = serde_json::to_vec_pretty(&next)
                .map_err(|e| DomainError::Storage(e.to_string()))?;
            let written = self
                .documents
                .replace(DOCUMENT, raw.as_deref(), &bytes)
                .await
                .map_err(|e| DomainError::Storage(e.to_string()))?;
            if written {
                *self.held() = Held {
                    raw: Some(bytes),
                    entries: Arc::new(next),
                };
                self.announce().await;
                return Ok(outcome);
            }
            self.refresh().await.map_err(DomainError::Storage)?;
        }
        Err(DomainError::Storage(
            "the custom domains kept changing under this change; try again".into(),
        ))
    }

    async fn announce(&self) {
        if let Some(changes) = &self.changes {
            if let Err(e) = changes
                .publish(crate::registry::CHANNEL, ANNOUNCEMENT)
                .await
            {
                tracing::warn!(error = %e, "other replicas could not be told of a custom domain change; they re-read the book within their resync interval");
            }
        }
    }

    /// Adds `domain` to `app`; `taken` says whether a host name is served already.
    pub async fn add(
        &self,
        app: &str,
        domain: &str,
        settings: &DomainSettings,
        taken: impl Fn(&str) -> bool,
    ) -> Result<CustomDomain, DomainError> {
        let domain = validate(domain, &settings.blocklist)?;
        if taken(&domain) {
            return Err(DomainError::InUse(domain));
        }
        let mut entry = CustomDomain {
            app: app.to_string(),
            domain: domain.clone(),
            status: DomainStatus::PendingVerification,
            error_message: None,
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
            history: Vec::new(),
        };
        entry.note(
            DomainStatus::PendingVerification,
            "waiting for the DNS records",
        );
        self.change(|entries| {
            if entries.iter().any(|d| d.domain == domain) {
                return Err(DomainError::InUse(domain.clone()));
            }
            if entries.iter().filter(|d| d.app == app).count() >= settings.max_per_app {
                return Err(DomainError::LimitReached(settings.max_per_app));
            }
            entries.push(entry.clone());
            Ok(entry.clone())
        })
        .await
    }

    /// Removes `domain` from `app`; returns what was removed.
    pub async fn remove(&self, app: &str, domain: &str) -> Result<CustomDomain, DomainError> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let removed = self
            .remove_where(|d| d.app == app && d.domain == domain)
            .await?;
        removed.into_iter().next().ok_or(DomainError::NotFound)
    }

    /// Removes every domain `doomed` picks; returns them.
    pub async fn remove_where(
        &self,
        doomed: impl Fn(&CustomDomain) -> bool,
    ) -> Result<Vec<CustomDomain>, DomainError> {
        self.change(|entries| {
            let (removed, kept): (Vec<CustomDomain>, Vec<CustomDomain>) =
                entries.drain(..).partition(|d| doomed(d));
            *entries = kept;
            Ok(removed)
        })
        .await
    }

    /// Applies `step` to the entry of `domain` (if it is still there) and stores the result.
    async fn update(
        &self,
        domain: &str,
        mut step: impl FnMut(&mut CustomDomain),
    ) -> Result<(), DomainError> {
        self.change(|entries| {
            if let Some(entry) = entries.iter_mut().find(|d| d.domain == domain) {
                step(entry);
            }
            Ok(())
        })
        .await
    }

    /// Records a check of `domain`'s DNS records.
    pub async fn record_verification(
        &self,
        domain: &str,
        outcome: Result<(), String>,
    ) -> Result<(), DomainError> {
        self.update(domain, |entry| {
            if entry.status != DomainStatus::PendingVerification {
                return;
            }
            match &outcome {
                Ok(()) => entry.note(
                    DomainStatus::PendingSsl,
                    "verified; waiting for a certificate",
                ),
                Err(why) => entry.note(DomainStatus::PendingVerification, why.clone()),
            }
        })
        .await
    }

    /// Records that a certificate order for `domain` starts: always in its history (who,
    /// when), so a replica taking over another's order shows.
    pub async fn record_order(&self, domain: &str) -> Result<(), DomainError> {
        self.update(domain, |entry| {
            let message = if entry.status == DomainStatus::Active {
                "renewing the certificate"
            } else {
                "ordering a certificate"
            };
            let status = entry.status;
            entry.record(status, message.into(), true);
        })
        .await
    }

    /// Records the outcome of a certificate order for `domain`; `issued_at` is the new
    /// certificate's (it names the stored certificate every replica loads).
    pub async fn record_certificate(
        &self,
        domain: &str,
        outcome: Result<u64, String>,
        retry_base: Duration,
    ) -> Result<(), DomainError> {
        let now = unix_now();
        self.update(domain, |entry| match &outcome {
            Ok(issued_at) => {
                entry.issued_at = Some(*issued_at);
                entry.failures = 0;
                entry.retry_at = None;
                entry.note(DomainStatus::Active, "certificate issued");
            }
            Err(why) => {
                entry.failures = entry.failures.saturating_add(1);
                let backoff = retry_base
                    .as_secs()
                    .saturating_mul(1 << entry.failures.min(6))
                    .min(3600);
                entry.retry_at = Some(now + backoff);
                // A renewal failure keeps serving the current certificate.
                let status = match entry.status {
                    DomainStatus::Active => DomainStatus::Active,
                    _ => DomainStatus::Error,
                };
                entry.note(status, why.clone());
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    fn settings(max_per_app: usize) -> DomainSettings {
        DomainSettings {
            public_name: "gw.example.net".into(),
            nameservers: Vec::new(),
            max_per_app,
            blocklist: Vec::new(),
            check_interval: Duration::from_secs(30),
        }
    }

    async fn book_on(store: &Arc<MemoryStore>) -> DomainBook {
        DomainBook::open(store.clone(), Some(store.clone()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn the_per_app_limit_and_uniqueness_hold_and_are_stored() {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(crate::store::file::FileDocuments::new(dir.path()));
        let book = DomainBook::open(files.clone(), None).await.unwrap();
        let s = settings(2);
        book.add("a", "one.test", &s, |_| false).await.unwrap();
        book.add("a", "two.test", &s, |_| false).await.unwrap();
        assert_eq!(
            book.add("a", "three.test", &s, |_| false).await,
            Err(DomainError::LimitReached(2))
        );
        assert!(matches!(
            book.add("b", "ONE.test", &s, |_| false).await,
            Err(DomainError::InUse(_))
        ));
        assert!(matches!(
            book.add("b", "served.test", &s, |d| d == "served.test")
                .await,
            Err(DomainError::InUse(_))
        ));
        assert_eq!(
            book.remove("a", "two.test").await.unwrap().domain,
            "two.test"
        );
        assert_eq!(
            book.remove("a", "two.test").await,
            Err(DomainError::NotFound)
        );
        let reopened = DomainBook::open(files, None).await.unwrap();
        let domains: Vec<String> = reopened.of_app("a").into_iter().map(|d| d.domain).collect();
        assert_eq!(domains, ["one.test"]);
        assert!(
            std::fs::read_to_string(dir.path().join(DOCUMENT))
                .unwrap()
                .contains("one.test"),
            "a single node keeps today's file"
        );
    }

    #[tokio::test]
    async fn failed_orders_back_off_and_renewals_keep_serving() {
        let store = Arc::new(MemoryStore::new());
        let book = book_on(&store).await;
        book.add("a", "one.test", &settings(5), |_| false)
            .await
            .unwrap();
        let hour = Duration::from_secs(3600);
        assert!(book.needing_work(Some(hour))[0].status == DomainStatus::PendingVerification);
        book.record_verification("one.test", Ok(())).await.unwrap();
        assert_eq!(
            book.needing_work(Some(hour)).len(),
            1,
            "wants a certificate"
        );
        assert!(book.needing_work(None).is_empty(), "not without a CA");
        book.record_certificate("one.test", Err("CA down".into()), Duration::from_secs(60))
            .await
            .unwrap();
        let entry = book.get("one.test").unwrap();
        assert_eq!(entry.status, DomainStatus::Error);
        assert_eq!(entry.error_message.as_deref(), Some("CA down"));
        assert!(
            entry.retry_at.unwrap() >= unix_now() + 120,
            "backoff doubles"
        );
        assert!(
            book.needing_work(Some(hour)).is_empty(),
            "not before retry_at"
        );
        book.record_certificate("one.test", Ok(unix_now()), Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(book.active(), [("a".to_string(), "one.test".to_string())]);
        assert!(book.needing_work(Some(hour)).is_empty());
        assert_eq!(
            book.needing_work(Some(Duration::ZERO)).len(),
            1,
            "due for renewal"
        );
        book.record_certificate(
            "one.test",
            Err("renewal failed".into()),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        let entry = book.get("one.test").unwrap();
        assert_eq!(entry.status, DomainStatus::Active, "still serving");
        let steps: Vec<(DomainStatus, &str)> = entry
            .history
            .iter()
            .map(|e| (e.status, e.message.as_str()))
            .collect();
        assert_eq!(
            steps,
            [
                (
                    DomainStatus::PendingVerification,
                    "waiting for the DNS records"
                ),
                (
                    DomainStatus::PendingSsl,
                    "verified; waiting for a certificate"
                ),
                (DomainStatus::Error, "CA down"),
                (DomainStatus::Active, "certificate issued"),
                (DomainStatus::Active, "renewal failed"),
            ]
        );
        assert!(entry
            .history
            .iter()
            .all(|e| e.replica == crate::domains::replica_name()));
    }

    #[tokio::test]
    async fn replicas_changing_the_book_at_once_lose_nothing_and_see_each_other() {
        let store = Arc::new(MemoryStore::new());
        let (a, b) = (book_on(&store).await, book_on(&store).await);
        let s = settings(100);
        let adds = (0..10).map(|i| {
            let (book, s) = (if i % 2 == 0 { &a } else { &b }, &s);
            async move { book.add("app", &format!("d{i}.test"), s, |_| false).await }
        });
        for added in futures_util::future::join_all(adds).await {
            added.unwrap();
        }
        assert!(a.refresh().await.unwrap() || a.all().len() == 10);
        b.refresh().await.unwrap();
        assert_eq!(a.all().len(), 10, "every add landed");
        assert_eq!(b.all().len(), 10);
        // Both take the same name: one wins, the other is told it is in use.
        let (x, y) = tokio::join!(
            a.add("app", "same.test", &s, |_| false),
            b.add("other", "same.test", &s, |_| false)
        );
        assert!(x.is_ok() != y.is_ok(), "{x:?} {y:?}");
    }

    #[tokio::test]
    async fn renewals_are_spread_and_the_history_is_bounded() {
        let store = Arc::new(MemoryStore::new());
        let book = book_on(&store).await;
        let at: std::collections::HashSet<u64> = (0..50)
            .map(|i| CustomDomain {
                issued_at: Some(1_000),
                ..book_entry(&format!("d{i}.test"))
            })
            .filter_map(|d| d.renewal_at(Duration::from_secs(86_400 * 60)))
            .collect();
        assert!(
            at.len() > 40,
            "50 domains issued together renew at {} times",
            at.len()
        );
        assert!(at
            .iter()
            .all(|t| (1_000 + 86_400 * 60..1_000 + 86_400 * 66).contains(t)));
        book.add("a", "flaky.test", &settings(5), |_| false)
            .await
            .unwrap();
        for i in 0..30 {
            book.record_verification("flaky.test", Err(format!("try {i}")))
                .await
                .unwrap();
        }
        let entry = book.get("flaky.test").unwrap();
        assert_eq!(entry.history.len(), crate::domains::HISTORY_KEPT);
        assert_eq!(entry.history.last().unwrap().message, "try 29");
    }

    fn book_entry(domain: &str) -> CustomDomain {
        CustomDomain {
            app: "a".into(),
            domain: domain.into(),
            status: DomainStatus::Active,
            error_message: None,
            dns_records: Vec::new(),
            issued_at: None,
            failures: 0,
            retry_at: None,
            history: Vec::new(),
        }
    }
}
