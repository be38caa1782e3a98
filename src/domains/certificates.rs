//! Certificates issued for custom domains: where they are kept, and which this replica serves.
//!
//! On a single node they are files in the certificate directory (`<domain>.crt`,
//! `<domain>.key`), as an operator would place them. With a shared control store they are
//! records in Redis, sealed under the session cookie keys (a store dump reveals no private
//! key) and kept until the certificate expires; every replica loads a domain's certificate
//! when the book says a new one was issued, and lets it go when the domain is removed — one
//! domain at a time, never re-reading the others.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{CustomDomain, DomainStatus};
use crate::session::cookie::CookieKeys;
use crate::store::Records;
use crate::tls::{certified_key, CertStore};

/// Where issued certificates are kept.
pub enum Vault {
    /// Files in the certificate directory (a single node).
    Directory(PathBuf),
    /// Sealed records in the shared control store.
    Shared(Arc<dyn Records>),
}

/// An issued certificate as the shared store keeps it.
#[derive(Serialize, Deserialize)]
struct Stored {
    chain: String,
    key: String,
    issued_at: u64,
}

/// How many certificates a replica loads from the shared store at once (a cold start).
const LOADS_AT_ONCE: usize = 64;

/// The store key (and sealing purpose) of `domain`'s certificate.
fn record(domain: &str) -> String {
    format!("certificate:{domain}")
}

/// How long the shared store keeps a certificate: until a day after it expires (a week when
/// its expiry cannot be read, which a certificate that loaded never has).
fn keep_for(chain: &str) -> Duration {
    let expires = rustls_pki_types::pem::PemObject::pem_slice_iter(chain.as_bytes())
        .next()
        .and_then(|der: Result<rustls_pki_types::CertificateDer<'static>, _>| der.ok())
        .and_then(|der| {
            x509_parser::parse_x509_certificate(&der)
                .ok()
                .map(|(_, cert)| cert.validity().not_after.timestamp())
        });
    let now = super::unix_now() as i64;
    match expires {
        Some(at) => Duration::from_secs((at - now).max(0) as u64 + 86_400),
        None => Duration::from_secs(7 * 86_400),
    }
}

/// The issued certificates this replica serves, and where they are kept.
pub struct Certificates {
    serving: Arc<CertStore>,
    vault: Vault,
    /// The `issued_at` of each domain's certificate in force here.
    loaded: tokio::sync::Mutex<HashMap<String, u64>>,
}

impl Certificates {
    /// Issued certificates kept in `vault`, served by `serving`.
    pub fn new(serving: Arc<CertStore>, vault: Vault) -> Certificates {
        Certificates {
            serving,
            vault,
            loaded: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The certificates in force.
    pub fn serving(&self) -> &Arc<CertStore> {
        &self.serving
    }

    /// Keeps a newly issued certificate for `domain` and serves it here at once (the other
    /// replicas load it when the book says it was issued).
    pub async fn keep(
        &self,
        domain: &str,
        chain: &str,
        key: &str,
        issued_at: u64,
        cookie_keys: Option<&CookieKeys>,
    ) -> Result<(), String> {
        let certificate = certified_key(chain, key)?;
        match &self.vault {
            Vault::Directory(dir) => {
                for (ext, pem) in [("key", key), ("crt", chain)] {
                    crate::store::file::write_file(
                        &dir.join(format!("{domain}.{ext}")),
                        pem.as_bytes(),
                    )
                    .map_err(|e| format!("cannot store the certificate: {e}"))?;
                }
            }
            Vault::Shared(records) => {
                let stored = Stored {
                    chain: chain.to_string(),
                    key: key.to_string(),
                    issued_at,
                };
                let sealed = crate::store::sealed::seal(&stored, &record(domain), cookie_keys)?;
                records
                    .put(&record(domain), &sealed, keep_for(chain))
                    .await
                    .map_err(|e| format!("cannot store the certificate: {e}"))?;
            }
        }
        self.serving.set_issued(domain, Some(certificate));
        self.loaded
            .lock()
            .await
            .insert(domain.to_string(), issued_at);
        Ok(())
    }

    /// Deletes `domain`'s certificate from the vault and stops serving it here.
    pub async fn discard(&self, domain: &str) {
        match &self.vault {
            Vault::Directory(dir) => {
                for ext in ["crt", "key"] {
                    let path = dir.join(format!("{domain}.{ext}"));
                    if let Err(e) = std::fs::remove_file(&path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            tracing::error!(path = %path.display(), error = %e, "certificate of a removed domain not deleted");
                        }
                    }
                }
            }
            Vault::Shared(records) => {
                if let Err(e) = records.delete(&record(domain)).await {
                    // Not served anywhere (the book no longer has it); it expires on its own.
                    tracing::warn!(%domain, error = %e, "certificate of a removed domain left in the store until it expires");
                }
            }
        }
        self.serving.withdraw(domain);
        self.loaded.lock().await.remove(domain);
    }

    /// Serves exactly the certificates of `entries`' active domains: loads the ones issued
    /// since they were last loaded, lets go of the ones no longer active. Returns how many
    /// were loaded.
    pub async fn sync(&self, entries: &[CustomDomain], cookie_keys: Option<&CookieKeys>) -> usize {
        let mut loaded = self.loaded.lock().await;
        let active: HashMap<&str, u64> = entries
            .iter()
            .filter(|d| d.status == DomainStatus::Active)
            .filter_map(|d| Some((d.domain.as_str(), d.issued_at?)))
            .collect();
        let gone: Vec<String> = loaded
            .keys()
            .filter(|d| !active.contains_key(d.as_str()))
            .cloned()
            .collect();
        for domain in gone {
            self.serving.set_issued(&domain, None);
            loaded.remove(&domain);
            tracing::info!(%domain, "certificate of a removed domain no longer served");
        }
        let mut wanted = Vec::new();
        for (domain, issued_at) in active {
            if loaded.get(domain) == Some(&issued_at) {
                continue;
            }
            // A single node's directory was read at start: its files are served already.
            if matches!(self.vault, Vault::Directory(_))
                && !loaded.contains_key(domain)
                && self.serving.in_directory(domain)
            {
                loaded.insert(domain.to_string(), issued_at);
                continue;
            }
            wanted.push((domain.to_string(), issued_at));
        }
        let loads = futures_util::stream::iter(wanted)
            .map(|(domain, issued_at)| async move {
                let found = self.load(&domain, cookie_keys).await;
                (domain, issued_at, found)
            })
            .buffer_unordered(LOADS_AT_ONCE)
            .collect::<Vec<_>>()
            .await;
        let mut count = 0;
        for (domain, issued_at, found) in loads {
            match found {
                Ok(certificate) => {
                    self.serving.set_issued(&domain, Some(certificate));
                    loaded.insert(domain, issued_at);
                    count += 1;
                }
                Err(e) => {
                    tracing::error!(%domain, error = %e, "the certificate of an active domain cannot be loaded; tried again at the next sync")
                }
            }
        }
        count
    }

    async fn load(
        &self,
        domain: &str,
        cookie_keys: Option<&CookieKeys>,
    ) -> Result<Arc<pingora::tls::sign::CertifiedKey>, String> {
        match &self.vault {
            Vault::Directory(dir) => {
                let read = |ext: &str| {
                    let path = dir.join(format!("{domain}.{ext}"));
                    std::fs::read_to_string(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))
                };
                certified_key(&read("crt")?, &read("key")?)
            }
            Vault::Shared(records) => {
                let sealed = records
                    .get(&record(domain))
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("the shared store holds no certificate for it")?;
                let stored: Stored =
                    crate::store::sealed::open(&sealed, &record(domain), cookie_keys, true)
                        .ok_or("the stored certificate cannot be opened with the configured sessions.cookie_keys")?;
                certified_key(&stored.chain, &stored.key)
            }
        }
    }
}
