//! The identity assertion: a short-lived JWT the gateway signs for an app's origin, saying
//! who the user is (`iss`, `aud`, `sub`, `email`, `name`, `groups`, `iat`, `exp`, `jti`), in
//! the spirit of Logto's `Logto-ID-Token`, Pomerium's `X-Pomerium-Jwt-Assertion` and
//! Cloudflare's `Cf-Access-Jwt-Assertion`. An origin that verifies it against the JWKS needs
//! to trust nothing else about the request.
//!
//! Signing costs tens of microseconds, so a signed assertion is kept in the session (or the
//! verified bearer token) it was made for, and reused until half its life has passed or the
//! signing key changes: a hot request signs nothing.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

use super::{unix_now, SigningKeys};
use crate::jwt::ClaimSet;

/// The claims copied from the identity into the assertion.
const COPIED_CLAIMS: [&str; 4] = ["sub", "email", "name", "groups"];

/// An app's assertion settings, compiled.
#[derive(Debug, Clone)]
pub struct AssertionSpec {
    /// The header it is sent in.
    pub header: HeaderName,
    /// `iss`.
    pub issuer: String,
    /// `aud`.
    pub audience: String,
    /// `exp - iat`.
    pub lifetime: Duration,
}

/// Where the assertion signed for one session or token is kept.
#[derive(Default)]
pub struct AssertionSlot(ArcSwapOption<Signed>);

impl std::fmt::Debug for AssertionSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AssertionSlot")
    }
}

struct Signed {
    /// The app (spec) it was signed for: a bearer token can be used on several apps.
    spec: Arc<AssertionSpec>,
    kid: Arc<str>,
    /// Reused until then (half its life).
    renew_at: u64,
    value: HeaderValue,
}

/// Why no assertion could be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// There is no signing key (the key store could not be read yet).
    #[error("no signing key is available")]
    NoKey,
    /// The key refused to sign.
    #[error("the assertion could not be signed")]
    Signing,
}

impl SigningKeys {
    /// The assertion for `claims` on the app of `spec`: the one kept in `slot` while it is
    /// fresh and signed by the current key, else a new one (then kept). It never outlives
    /// `not_after` (Unix seconds: the session's end, the token's `exp`).
    pub fn assertion(
        &self,
        spec: &Arc<AssertionSpec>,
        slot: &AssertionSlot,
        claims: &(impl ClaimSet + ?Sized),
        not_after: u64,
    ) -> Result<HeaderValue, AssertionError> {
        let loaded = self.loaded();
        let Some(key) = loaded.current.as_ref() else {
            self.missing.notify_one();
            return Err(AssertionError::NoKey);
        };
        let now = unix_now();
        if let Some(kept) = &*slot.0.load() {
            if Arc::ptr_eq(&kept.spec, spec) && *kept.kid == *key.kid && now < kept.renew_at {
                return Ok(kept.value.clone());
            }
        }
        let lifetime = spec
            .lifetime
            .as_secs()
            .min(not_after.saturating_sub(now))
            .max(1);
        let mut payload = Map::new();
        payload.insert("iss".into(), Value::from(spec.issuer.as_str()));
        payload.insert("aud".into(), Value::from(spec.audience.as_str()));
        for name in COPIED_CLAIMS {
            if let Some(value) = claims.claim(name) {
                if matches!(*value, Value::String(_) | Value::Array(_)) {
                    payload.insert(name.into(), value.into_owned());
                }
            }
        }
        payload.insert("iat".into(), Value::from(now));
        payload.insert("exp".into(), Value::from(now + lifetime));
        payload.insert("jti".into(), Value::from(crate::store::random_token()));
        let mut header = jsonwebtoken::Header::new(key.algorithm.jose());
        header.kid = Some(key.kid.clone());
        let token = jsonwebtoken::encode(&header, &payload, &key.signing)
            .map_err(|_| AssertionError::Signing)?;
        let value = HeaderValue::from_str(&token).map_err(|_| AssertionError::Signing)?;
        slot.0.store(Some(Arc::new(Signed {
            spec: spec.clone(),
            kid: Arc::from(key.kid.as_str()),
            renew_at: now + lifetime / 2,
            value: value.clone(),
        })));
        Ok(value)
    }
}
