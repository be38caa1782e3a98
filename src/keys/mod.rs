//! The gateway's own signing keys and what they sign: the identity assertion an origin can
//! verify instead of trusting headers ([`assertion`]), and the JWKS that publishes the keys.
//!
//! Keys are generated into the store — the Redis store every replica shares, or a file under
//! `admin.data_dir` on a single node — sealed with the session cookie key when one is
//! configured, or read from PEM files the operator manages. The stored list ([`ring`]) is
//! changed by compare-and-swap only, so replicas racing to create or rotate keys agree on one
//! list; each replica re-reads it every few seconds and whenever a key's status is due to
//! change.

pub mod assertion;
pub mod material;
pub mod ring;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde::Serialize;

use crate::config::Gateway;
use crate::store::{Change, Changes, Documents};
use material::{KeyMaterial, SigningAlgorithm};
use ring::{KeyRing, KeyStatus, RotateError, RotationPolicy};

/// The document the key list is stored under.
const DOCUMENT: &str = "signing-keys";

/// Longest wait between two reads of the stored keys.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// The channel a replica that changed the key list tells the others on.
const CHANNEL: &str = "signing-keys";

/// Writers racing on the key list retry this often before giving up until the next refresh.
const ATTEMPTS: usize = 5;

/// The `signing` settings, compiled.
#[derive(Debug, Clone)]
pub struct SigningSettings {
    /// How generated keys rotate.
    pub policy: RotationPolicy,
    /// `Cache-Control: max-age` of the JWKS.
    pub jwks_max_age: Duration,
    /// PEM files that replace generated keys: the first signs, all are published.
    pub key_files: Vec<std::path::PathBuf>,
    /// An app signs assertions: keys are generated if there are none.
    pub wanted: bool,
}

/// A key as the admin API lists it (never the private half).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    /// The `kid`.
    pub id: String,
    /// `ES256` or `EdDSA`.
    pub algorithm: &'static str,
    /// `Next`, `Current`, `Previous` (or `Published`: a key file after the first).
    pub status: &'static str,
    /// When it was made (Unix seconds; absent for key files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<u64>,
    /// When it signs from (Unix seconds; absent for key files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_at: Option<u64>,
}

/// The keys as this replica last read them.
pub struct Loaded {
    /// The key that signs; none until keys exist (assertions are then refused).
    pub current: Option<Arc<KeyMaterial>>,
    /// `{"keys":[...]}`: every published key.
    pub jwks: Bytes,
    /// Every key, for the admin API.
    pub views: Vec<KeyView>,
    /// When a status changes next (Unix seconds).
    next_change: Option<u64>,
}

impl Loaded {
    fn empty() -> Loaded {
        Loaded {
            current: None,
            jwks: Bytes::from_static(b"{\"keys\":[]}"),
            views: Vec::new(),
            next_change: None,
        }
    }
}

/// Why a rotation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotateFailure {
    /// The keys are PEM files the operator manages.
    #[error("signing keys are given as files (signing.key_files); rotate them there")]
    FromFiles,
    /// A new key is already waiting, or none could be made.
    #[error(transparent)]
    Refused(#[from] RotateError),
    /// The store cannot be read or written.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
}

/// The signing keys of this gateway (shared by every replica through the store).
pub struct SigningKeys {
    documents: Arc<dyn Documents>,
    /// The store is shared (Redis): a document that is not sealed was not written by a
    /// gateway and is refused, since whoever planted it would know the key. Replicas are
    /// told of each change here.
    shared: Option<Arc<dyn Changes>>,
    loaded: ArcSwap<Loaded>,
    writing: tokio::sync::Mutex<()>,
    /// Rung when an assertion found no key (a reload just turned assertions on): the keeper
    /// reads (and makes) keys at once instead of at its next turn.
    missing: tokio::sync::Notify,
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl SigningKeys {
    /// Keys stored in `documents`; `shared`: the store is shared by replicas (Redis), who are
    /// told of changes there.
    pub fn new(documents: Arc<dyn Documents>, shared: Option<Arc<dyn Changes>>) -> SigningKeys {
        SigningKeys {
            documents,
            shared,
            loaded: ArcSwap::from_pointee(Loaded::empty()),
            writing: tokio::sync::Mutex::new(()),
            missing: tokio::sync::Notify::new(),
        }
    }

    /// The keys as last read.
    pub fn loaded(&self) -> arc_swap::Guard<Arc<Loaded>> {
        self.loaded.load()
    }

    /// Resolves when a request needed a key and found none.
    pub async fn key_missing(&self) {
        self.missing.notified().await
    }

    /// Reads the keys again (files, or the store), creating, rotating and dropping stored
    /// keys as the policy says. Returns how long until it should run again.
    pub async fn refresh(&self, gw: &Gateway) -> Duration {
        if let Err(e) = self.read_keys(gw).await {
            tracing::error!(error = %e, "the signing keys cannot be read; the last ones read stay in use");
        }
        let loaded = self.loaded.load();
        // An app wants assertions and there is no key yet (a reload just turned them on, or
        // the store was away): try again soon, not in ten seconds.
        if gw.signing.wanted && loaded.current.is_none() {
            return Duration::from_millis(500);
        }
        let now = unix_now();
        let due = loaded.next_change.map_or(REFRESH_EVERY, |at| {
            Duration::from_secs(at.saturating_sub(now)).max(Duration::from_millis(200))
        });
        due.min(REFRESH_EVERY)
    }

    /// Reads the keys (and brings the stored ones up to date), or says why not. At start, a
    /// gateway whose apps want assertions does not serve without a key.
    pub async fn read_keys(&self, gw: &Gateway) -> Result<(), String> {
        let settings = &gw.signing;
        if settings.key_files.is_empty() {
            self.refresh_stored(gw).await
        } else {
            from_files(&settings.key_files).map(|loaded| self.loaded.store(Arc::new(loaded)))
        }
    }

    async fn refresh_stored(&self, gw: &Gateway) -> Result<(), String> {
        let settings = &gw.signing;
        let _one_writer = self.writing.lock().await;
        for _ in 0..ATTEMPTS {
            let (raw, mut ring) = self.read(gw).await?;
            let now = unix_now();
            let changed = ring
                .maintain(now, &settings.policy, settings.wanted)
                .map_err(|e| e.to_string())?;
            if changed && !self.write(gw, raw.as_deref(), &ring).await? {
                continue;
            }
            self.loaded
                .store(Arc::new(load_ring(&ring, now, &settings.policy)));
            return Ok(());
        }
        Err("other replicas kept changing the keys; trying again later".into())
    }

    /// Schedules a new key (published now, signing after `publish_before_use`, the
    /// configured lead when `None`), and returns every key.
    pub async fn rotate(
        &self,
        gw: &Gateway,
        algorithm: Option<SigningAlgorithm>,
        publish_before_use: Option<Duration>,
    ) -> Result<Vec<KeyView>, RotateFailure> {
        let settings = &gw.signing;
        if !settings.key_files.is_empty() {
            return Err(RotateFailure::FromFiles);
        }
        let _one_writer = self.writing.lock().await;
        for _ in 0..ATTEMPTS {
            let (raw, mut ring) = self.read(gw).await.map_err(RotateFailure::Unavailable)?;
            let now = unix_now();
            ring.rotate(
                now,
                algorithm.unwrap_or(settings.policy.algorithm),
                publish_before_use.unwrap_or(settings.policy.publish_before_use),
            )?;
            if !self
                .write(gw, raw.as_deref(), &ring)
                .await
                .map_err(RotateFailure::Unavailable)?
            {
                continue;
            }
            let loaded = load_ring(&ring, now, &settings.policy);
            let views = loaded.views.clone();
            self.loaded.store(Arc::new(loaded));
            tracing::info!(
                kid = views.first().map_or("", |v| v.id.as_str()),
                "a new signing key is published"
            );
            return Ok(views);
        }
        Err(RotateFailure::Unavailable(
            "other replicas kept changing the keys".into(),
        ))
    }

    /// The stored document as read (for the compare-and-swap) and the list in it. A
    /// document that cannot be opened reads as no keys (it is then replaced, and logged).
    async fn read(&self, gw: &Gateway) -> Result<(Option<Vec<u8>>, KeyRing), String> {
        let raw = self
            .documents
            .read(DOCUMENT)
            .await
            .map_err(|e| e.to_string())?;
        let Some(bytes) = raw.as_deref() else {
            return Ok((None, KeyRing::default()));
        };
        match crate::store::sealed::open(
            bytes,
            DOCUMENT,
            gw.sessions.cookie_keys.as_deref(),
            self.shared.is_some(),
        ) {
            Some(ring) => Ok((raw, ring)),
            None => {
                tracing::error!(
                    "the stored signing keys cannot be opened (sealed under a cookie key no longer configured, or not written by a gateway); new keys replace them"
                );
                Ok((raw, KeyRing::default()))
            }
        }
    }

    async fn write(
        &self,
        gw: &Gateway,
        expected: Option<&[u8]>,
        ring: &KeyRing,
    ) -> Result<bool, String> {
        let bytes = crate::store::sealed::seal(ring, DOCUMENT, gw.sessions.cookie_keys.as_deref())?;
        let written = self
            .documents
            .replace(DOCUMENT, expected, &bytes)
            .await
            .map_err(|e| e.to_string())?;
        if written {
            if let Some(changes) = &self.shared {
                // The others would see it at their next read anyway (REFRESH_EVERY).
                if let Err(e) = changes.publish(CHANNEL, "changed").await {
                    tracing::warn!(error = %e, "other replicas could not be told of new signing keys");
                }
            }
        }
        Ok(written)
    }

    /// Word of key changes made by other replicas (`None` on a single node, or when the
    /// store cannot subscribe now: reads every [`REFRESH_EVERY`] still follow them).
    pub async fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        let changes = self.shared.as_ref()?;
        match changes.subscribe(CHANNEL).await {
            Ok(receiver) => Some(receiver),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hear of other replicas' key changes; reading them every 10 s");
                None
            }
        }
    }
}

fn load_ring(ring: &KeyRing, now: u64, policy: &RotationPolicy) -> Loaded {
    let mut loaded = Loaded::empty();
    let mut jwks = Vec::new();
    for (key, status) in ring.statuses(now) {
        let material = match key.material() {
            Ok(material) => material,
            Err(e) => {
                tracing::error!(error = %e, "a stored signing key cannot be used; skipped");
                continue;
            }
        };
        loaded.views.push(KeyView {
            id: material.kid.clone(),
            algorithm: material.algorithm.name(),
            status: match status {
                KeyStatus::Next => "Next",
                KeyStatus::Current => "Current",
                KeyStatus::Previous => "Previous",
            },
            created_at: Some(key.created_at),
            effective_at: Some(key.effective_at),
        });
        jwks.push(material.jwk.clone());
        if status == KeyStatus::Current {
            loaded.current = Some(Arc::new(material));
        }
    }
    loaded.jwks = jwks_bytes(&jwks);
    loaded.next_change = ring.next_change(now, policy);
    loaded
}

fn from_files(files: &[std::path::PathBuf]) -> Result<Loaded, String> {
    let mut loaded = Loaded::empty();
    let mut jwks = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let material =
            KeyMaterial::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
        loaded.views.push(KeyView {
            id: material.kid.clone(),
            algorithm: material.algorithm.name(),
            status: if i == 0 { "Current" } else { "Published" },
            created_at: None,
            effective_at: None,
        });
        jwks.push(material.jwk.clone());
        if i == 0 {
            loaded.current = Some(Arc::new(material));
        }
    }
    loaded.jwks = jwks_bytes(&jwks);
    Ok(loaded)
}

fn jwks_bytes(keys: &[jsonwebtoken::jwk::Jwk]) -> Bytes {
    Bytes::from(serde_json::to_vec(&serde_json::json!({ "keys": keys })).unwrap_or_default())
}

/// Reads a key file's PEM and checks it, for the config check (a problem names the field).
pub fn check_key_file(path: &std::path::Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    KeyMaterial::from_pem(&pem)
        .map(|_| ())
        .map_err(|e| format!("{}: {e}", path.display()))
}
