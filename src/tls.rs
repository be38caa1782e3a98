//! TLS termination: certificates chosen by SNI from a directory, reloadable without a restart,
//! and the SNI of each connection recorded so requests can be checked against it.
//!
//! The certificate directory holds one PEM chain and key per name: `<host>.crt` + `<host>.key`,
//! or `_wildcard.<domain>.crt` + `.key` for `*.<domain>`. Certificates issued for custom domains
//! are held beside them and changed one at a time (a new certificate does not re-read the
//! others). A handshake without SNI, or for a name with no certificate, fails: the gateway
//! never guesses which app a client meant.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::protocols::tls::TlsRef;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, ResolvesServerCert};

const WILDCARD_PREFIX: &str = "_wildcard.";

type ByName = HashMap<String, Arc<CertifiedKey>>;

/// The certificates in force, by lower-case name (`*.example.com` for wildcards): the
/// directory's, and the ones issued for custom domains.
pub struct CertStore {
    dir: PathBuf,
    by_name: ArcSwap<ByName>,
    issued: ArcSwap<ByName>,
    /// One change of `issued` at a time (each copies the map and swaps it in).
    changing: std::sync::Mutex<()>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<String> = self.by_name.load().keys().cloned().collect();
        names.sort();
        f.debug_struct("CertStore")
            .field("dir", &self.dir)
            .field("names", &names)
            .finish()
    }
}

impl CertStore {
    /// Loads every certificate in `dir`; an unreadable directory or pair is an error naming it.
    pub fn load(dir: &Path) -> Result<CertStore, String> {
        let store = CertStore {
            dir: dir.to_path_buf(),
            by_name: ArcSwap::from_pointee(HashMap::new()),
            issued: ArcSwap::from_pointee(HashMap::new()),
            changing: std::sync::Mutex::new(()),
        };
        store.reload()?;
        Ok(store)
    }

    /// The directory certificates are read from (and ACME certificates written to).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads the directory and swaps the new set in atomically; on error the running set
    /// is kept.
    pub fn reload(&self) -> Result<usize, String> {
        let loaded = load_dir(&self.dir)?;
        let count = loaded.len();
        self.by_name.store(Arc::new(loaded));
        Ok(count)
    }

    /// The names certificates are held for.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.load().keys().cloned().collect();
        for name in self.issued.load().keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Whether the directory holds a certificate for exactly `name`.
    pub fn in_directory(&self, name: &str) -> bool {
        self.by_name.load().contains_key(name)
    }

    /// Serves `certificate` for the custom domain `name` from now on (`None`: no longer),
    /// before any the directory held for the same name when it was read (a renewal on a
    /// single node replaces the file and is served at once).
    pub fn set_issued(&self, name: &str, certificate: Option<Arc<CertifiedKey>>) {
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&self.issued.load());
        match certificate {
            Some(key) => next.insert(name.to_string(), key),
            None => next.remove(name),
        };
        self.issued.store(Arc::new(next));
    }

    /// Stops serving `name` at once: its issued certificate and the directory's (whose files
    /// the caller has removed).
    pub fn withdraw(&self, name: &str) {
        self.set_issued(name, None);
        let _one = self.changing.lock().unwrap_or_else(|e| e.into_inner());
        if self.by_name.load().contains_key(name) {
            let mut next = HashMap::clone(&self.by_name.load());
            next.remove(name);
            self.by_name.store(Arc::new(next));
        }
    }

    fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(key) = self.issued.load().get(&name) {
            return Some(key.clone());
        }
        let by_name = self.by_name.load();
        if let Some(key) = by_name.get(&name) {
            return Some(key.clone());
        }
        // A wildcard covers exactly one label.
        let (_, parent) = name.split_once('.')?;
        by_name.get(&format!("*.{parent}")).cloned()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.find(client_hello.server_name()?)
    }
}

fn crypto_provider() -> Result<Arc<pingora::tls::CryptoProvider>, String> {
    pingora::tls::install_default_crypto_provider();
    Ok(pingora::tls::CryptoProvider::get_default()
        .ok_or("no TLS crypto provider is installed")?
        .clone())
}

/// A certificate to serve from a PEM chain and PEM private key, or why not.
pub fn certified_key(chain: &str, key: &str) -> Result<Arc<CertifiedKey>, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("the certificate chain is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("the certificate chain holds no certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| format!("the private key is not PEM: {e}"))?;
    let signing = crypto_provider()?
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("the private key cannot sign: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(certs, signing)))
}

fn load_dir(dir: &Path) -> Result<HashMap<String, Arc<CertifiedKey>>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut out = HashMap::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("crt") {
            continue;
        }
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let name = match stem.strip_prefix(WILDCARD_PREFIX) {
            Some(domain) => format!("*.{}", domain.to_ascii_lowercase()),
            None => stem.to_ascii_lowercase(),
        };
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
        };
        let key_path = path.with_extension("key");
        let key = certified_key(&read(&path)?, &read(&key_path)?)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        out.insert(name, key);
    }
    Ok(out)
}

/// The SNI a TLS connection was opened with, attached to the connection's TLS digest.
#[derive(Debug, Clone)]
pub struct Sni(pub String);

/// Records each connection's SNI after the handshake.
pub struct SniRecorder;

#[async_trait]
impl TlsAccept for SniRecorder {
    async fn handshake_complete_callback(
        &self,
        tls: &TlsRef,
    ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        tls.server_name().map(|name| {
            Arc::new(Sni(name.to_ascii_lowercase())) as Arc<dyn std::any::Any + Send + Sync>
        })
    }
}
