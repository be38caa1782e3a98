//! Long-lived state carried across configuration rebuilds.
//!
//! Every change — SIGHUP, an admin API call, a custom domain activated — builds a whole new
//! snapshot. An app whose settings (and what it is compiled against) did not change is taken
//! over compiled, so a change to one app of thousands compiles that one. An issuer's keys, a provider's discovery result and their refresh timers are not
//! configuration, though: rebuilding them empty would make every bearer request wait for a
//! JWKS fetch after each change, and refuse them all when the identity provider happens to be
//! down at that moment. So an issuer or provider whose settings did not change is taken over
//! from the running snapshot as it is, and with it the verified-token cache when no issuer
//! changed at all.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use super::model::AppFile;
use super::App;
use super::Secret;
use crate::jwt::Issuer;
use crate::oidc::Provider;

/// A digest of an entry's settings: its `Debug` form (every field; secrets redacted) plus the
/// secrets themselves, so a changed secret is a changed entry.
pub fn fingerprint(settings: &impl Debug, secrets: &[Option<&Secret>]) -> [u8; 32] {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(format!("{settings:?}").as_bytes());
    for secret in secrets {
        ctx.update(&[0]);
        if let Some(secret) = secret {
            ctx.update(secret.expose().as_bytes());
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A compiled app and what it was compiled from.
pub struct CarriedApp {
    /// The fingerprint of what every app is compiled against.
    pub context: [u8; 32],
    /// Its settings, without custom domains.
    pub settings: AppFile,
    /// The compiled app.
    pub app: Arc<App>,
}

/// What a snapshot can hand to the next one, by config id.
#[derive(Default)]
pub struct Carried {
    /// JWT issuers (those with a `jwks_file` are re-read on every rebuild and not listed).
    pub issuers: HashMap<String, ([u8; 32], Arc<Issuer>)>,
    /// OIDC providers.
    pub providers: HashMap<String, ([u8; 32], Arc<Provider>)>,
    /// Compiled apps, with the fingerprint of what they were compiled against and their own
    /// settings (custom domains aside: they are host names, claimed on every build).
    pub apps: HashMap<String, CarriedApp>,
}

impl std::fmt::Debug for Carried {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Carried")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl Carried {
    /// The running issuer `id`, if its settings are still `fingerprint`.
    pub fn issuer(&self, id: &str, fingerprint: &[u8; 32]) -> Option<Arc<Issuer>> {
        self.issuers
            .get(id)
            .filter(|(fp, _)| fp == fingerprint)
            .map(|(_, issuer)| issuer.clone())
    }

    /// The running app compiled from exactly `settings` against `context`, if there is one.
    pub fn app(&self, settings: &AppFile, context: &[u8; 32]) -> Option<Arc<App>> {
        self.apps
            .get(&settings.id)
            .filter(|carried| carried.context == *context && carried.settings == *settings)
            .map(|carried| carried.app.clone())
    }

    /// The running provider `id`, if its settings are still `fingerprint`.
    pub fn provider(&self, id: &str, fingerprint: &[u8; 32]) -> Option<Arc<Provider>> {
        self.providers
            .get(id)
            .filter(|(fp, _)| fp == fingerprint)
            .map(|(_, provider)| provider.clone())
    }
}
