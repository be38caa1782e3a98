//! Bearer JWT verification.
//!
//! Checks, in order, before any signature work: the size bound; three base64url parts; a
//! header whose `alg` is allowed for the token's issuer (so `none` in any casing and HS* are
//! refused unless a shared secret is configured); no `crit`; the required `typ`. Embedded key
//! headers (`jwk`, `jku`, `x5u`, `x5c`) are never read. The key comes from the issuer's own
//! set only, and must be made for the header's algorithm. Then `jsonwebtoken` (aws-lc backend)
//! checks the signature, `iss`, `aud`, `exp` (required) and `nbf`; `iat` in the future and
//! non-numeric time claims are refused here.
//!
//! A token that verified is cached under the SHA-256 of issuer and token until
//! `min(exp, cache_ttl)`, so a repeated token costs a hash and a map lookup.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::jwks::IssuerKeys;
use super::unique_members::UniqueMembers;

/// Claims of a verified token.
pub type Claims = Map<String, Value>;

/// Why a bearer token was refused. Each becomes 401 `invalid_token` with a short description.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than the issuer's `max_token_bytes`.
    #[error("token too large")]
    TooLarge,
    /// Not three base64url parts with JSON header and payload.
    #[error("malformed token")]
    Malformed,
    /// The payload's `iss` is not a configured issuer this app accepts.
    #[error("untrusted issuer")]
    UntrustedIssuer,
    /// The header's `alg` is not allowed for the issuer (`none`, HS* without a secret…).
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header has a `crit` parameter.
    #[error("critical header parameters are not supported")]
    CriticalHeader,
    /// The header's `typ` is not the required one.
    #[error("wrong token type")]
    WrongType,
    /// No key of the issuer has this `kid` (after a permitted refetch).
    #[error("unknown signing key")]
    UnknownKey,
    /// The token names no `kid` and several of the issuer's keys fit its algorithm.
    #[error("the token names no key and several fit")]
    AmbiguousKey,
    /// The issuer's keys are unavailable (never fetched, or too stale).
    #[error("signing keys unavailable")]
    KeysUnavailable,
    /// The signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `exp` is missing.
    #[error("token has no expiry")]
    MissingExpiry,
    /// A time claim is not a number, or another claim has the wrong shape.
    #[error("malformed claims")]
    BadClaims,
    /// `aud` does not name an accepted audience.
    #[error("wrong audience")]
    WrongAudience,
    /// `iss` does not match exactly.
    #[error("wrong issuer")]
    WrongIssuer,
}

/// One trusted issuer, compiled.
pub struct Issuer {
    /// Config id, used to scope apps to issuers.
    pub id: Arc<str>,
    /// The exact `iss` value.
    pub issuer: String,
    /// Algorithms accepted for this issuer.
    pub algorithms: Vec<Algorithm>,
    /// Accepted audiences; a token's `aud` must name one.
    pub audiences: Vec<String>,
    /// Clock skew allowed, in seconds.
    pub leeway: u64,
    /// Required `typ` (compared ignoring case and an `application/` prefix).
    pub required_typ: Option<String>,
    /// Tokens longer than this are refused unparsed.
    pub max_token_bytes: usize,
    /// Longest a verified token stays cached.
    pub cache_ttl: Duration,
    /// The issuer's keys.
    pub keys: Arc<IssuerKeys>,
}

/// A token that verified.
#[derive(Debug)]
pub struct Verified {
    /// The issuer's config id.
    pub issuer: Arc<str>,
    /// The token's claims.
    pub claims: Claims,
    cache_for: Duration,
    /// The identity assertion last signed for this token (reused while fresh).
    pub assertion: crate::keys::assertion::AssertionSlot,
}

struct CacheFor;

impl moka::Expiry<[u8; 32], Arc<Verified>> for CacheFor {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Verified>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.cache_for)
    }
}

/// Verifies bearer tokens against the configured issuers.
pub struct Verifier {
    by_iss: HashMap<String, Arc<Issuer>>,
    /// `None` when the configured capacity is 0: every token is verified in full.
    cache: Option<moka::sync::Cache<[u8; 32], Arc<Verified>>>,
    capacity: u64,
    /// Cache hits and misses since start (carried across rebuilds).
    stats: Arc<CacheStats>,
}

/// How often the verified-token cache answered.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Tokens found verified in the cache.
    pub hits: std::sync::atomic::AtomicU64,
    /// Tokens verified in full (not cached, or expired from the cache).
    pub misses: std::sync::atomic::AtomicU64,
}

#[derive(serde::Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<Value>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut issuers: Vec<&str> = self.by_iss.values().map(|i| &*i.id).collect();
        issuers.sort_unstable();
        f.debug_struct("Verifier")
            .field("issuers", &issuers)
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Verifier {
    /// A verifier over these issuers with a verified-token cache of `cache_capacity` entries.
    pub fn new(issuers: Vec<Arc<Issuer>>, cache_capacity: u64) -> Verifier {
        Verifier {
            by_iss: issuers.into_iter().map(|i| (i.issuer.clone(), i)).collect(),
            cache: (cache_capacity > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(cache_capacity)
                    .expire_after(CacheFor)
                    .build()
            }),
            capacity: cache_capacity,
            stats: Arc::default(),
        }
    }

    /// The verified-token cache's hits and misses.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Like [`Verifier::new`], replacing `running`: when every issuer is the running one
    /// (carried over unchanged) and the capacity is the same, the verified-token cache is kept
    /// too, so a configuration change costs no token its verification.
    pub fn after(
        issuers: Vec<Arc<Issuer>>,
        cache_capacity: u64,
        running: Option<&Verifier>,
    ) -> Verifier {
        let same_issuers = |r: &Verifier| {
            r.by_iss.len() == issuers.len()
                && issuers.iter().all(|i| {
                    r.by_iss
                        .get(&i.issuer)
                        .is_some_and(|old| Arc::ptr_eq(old, i))
                })
        };
        match running {
            Some(r) if same_issuers(r) && r.capacity == cache_capacity => Verifier {
                by_iss: issuers.into_iter().map(|i| (i.issuer.clone(), i)).collect(),
                cache: r.cache.clone(),
                capacity: cache_capacity,
                stats: r.stats.clone(),
            },
            Some(r) => Verifier {
                stats: r.stats.clone(),
                ..Verifier::new(issuers, cache_capacity)
            },
            None => Verifier::new(issuers, cache_capacity),
        }
    }

    /// Every issuer (for warm-up).
    pub fn issuers(&self) -> impl Iterator<Item = &Arc<Issuer>> {
        self.by_iss.values()
    }

    /// Verifies `token` for an app accepting the issuers whose ids are in `accepted`.
    pub async fn verify(
        &self,
        token: &str,
        accepted: &[Arc<str>],
    ) -> Result<Arc<Verified>, TokenError> {
        let Some(cache) = &self.cache else {
            return self.verify_uncached(token, accepted).await.map(Arc::new);
        };
        let cache_key = digest(token);
        if let Some(hit) = cache.get(&cache_key) {
            // Expiry is also enforced here: the cache's clock is coarse.
            let exp = hit.claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
            if exp > now() && accepted.contains(&hit.issuer) {
                self.stats
                    .hits
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Ok(hit);
            }
        }
        self.stats
            .misses
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let verified = Arc::new(self.verify_uncached(token, accepted).await?);
        if !verified.cache_for.is_zero() {
            cache.insert(cache_key, verified.clone());
        }
        Ok(verified)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        accepted: &[Arc<str>],
    ) -> Result<Verified, TokenError> {
        // The largest `max_token_bytes` bounds the work before the issuer is known.
        let bound = self
            .by_iss
            .values()
            .map(|i| i.max_token_bytes)
            .max()
            .unwrap_or(0);
        if token.len() > bound {
            return Err(TokenError::TooLarge);
        }
        let parts = Parts::split(token)?;
        let iss = parts
            .payload
            .get("iss")
            .and_then(Value::as_str)
            .ok_or(TokenError::UntrustedIssuer)?;
        let issuer = self.by_iss.get(iss).ok_or(TokenError::UntrustedIssuer)?;
        if !accepted.contains(&issuer.id) {
            return Err(TokenError::UntrustedIssuer);
        }
        let claims = issuer.verify_parts(token, parts).await?;
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or(TokenError::BadClaims)?;
        let left = Duration::from_secs(exp.saturating_sub(now()));
        Ok(Verified {
            issuer: issuer.id.clone(),
            claims,
            cache_for: left.min(issuer.cache_ttl),
            assertion: Default::default(),
        })
    }
}

/// A token's decoded (not yet trusted) header and payload.
struct Parts {
    header: RawHeader,
    payload: Value,
}

impl Parts {
    fn split(token: &str) -> Result<Parts, TokenError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(_sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header = decode_json(header_b64)?;
        Ok(Parts {
            header: serde_json::from_value(header).map_err(|_| TokenError::Malformed)?,
            payload: decode_json(payload_b64)?,
        })
    }
}

impl Issuer {
    /// Verifies a token of this issuer (not cached): the checks of the module doc, in order.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let parts = Parts::split(token)?;
        self.verify_parts(token, parts).await
    }

    async fn verify_parts(&self, token: &str, parts: Parts) -> Result<Claims, TokenError> {
        let Parts { header, payload } = parts;
        if token.len() > self.max_token_bytes {
            return Err(TokenError::TooLarge);
        }
        let alg = self
            .algorithms
            .iter()
            .copied()
            .find(|a| algorithm_name(*a) == header.alg)
            .ok_or(TokenError::AlgorithmNotAllowed)?;
        if header.crit.is_some() {
            return Err(TokenError::CriticalHeader);
        }
        if let Some(required) = &self.required_typ {
            let given = header.typ.as_deref().unwrap_or("");
            let given = given.strip_prefix("application/").unwrap_or(given);
            if !given.eq_ignore_ascii_case(required) {
                return Err(TokenError::WrongType);
            }
        }
        check_time_claims(&payload, self.leeway)?;

        let mut state = self.keys.current();
        let kid = header.kid.as_deref();
        if state.keys.candidates(kid, alg).next().is_none() {
            if state.keys.is_empty() || kid.is_some_and(|k| !state.keys.has_kid(k)) {
                state = self.keys.refresh_for_unknown_kid(kid).await;
            }
            if state.keys.is_empty() {
                return Err(TokenError::KeysUnavailable);
            }
            if kid.is_none() && state.keys.is_ambiguous(alg) {
                return Err(TokenError::AmbiguousKey);
            }
        }
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let mut outcome = Err(TokenError::UnknownKey);
        for key in state.keys.candidates(kid, alg) {
            match jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation) {
                Ok(data) => {
                    outcome = Ok(data.claims);
                    break;
                }
                Err(e) => {
                    outcome = Err(map_error(e.kind()));
                    if outcome != Err(TokenError::BadSignature) {
                        break;
                    }
                }
            }
        }
        outcome
    }
}

/// `exp` must be a number; `nbf` and `iat`, when present, too; `iat` may not be in the
/// future (beyond the leeway). `exp`/`nbf` values are checked by `jsonwebtoken`.
fn check_time_claims(payload: &Value, leeway: u64) -> Result<(), TokenError> {
    match payload.get("exp") {
        None => return Err(TokenError::MissingExpiry),
        Some(v) if !v.is_u64() => return Err(TokenError::BadClaims),
        Some(_) => {}
    }
    if payload.get("nbf").is_some_and(|v| !v.is_u64()) {
        return Err(TokenError::BadClaims);
    }
    match payload.get("iat") {
        Some(v) => match v.as_u64() {
            Some(iat) if iat > now() + leeway => Err(TokenError::IssuedInFuture),
            Some(_) => Ok(()),
            None => Err(TokenError::BadClaims),
        },
        None => Ok(()),
    }
}

/// A base64url part as JSON. A member name given twice, at any depth, makes the token
/// malformed: readers disagree on which copy wins (`"scope":"read","scope":"admin"`).
fn decode_json(part: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice::<UniqueMembers>(&bytes)
        .map(|v| v.0)
        .map_err(|_| TokenError::Malformed)
}

fn map_error(kind: &ErrorKind) -> TokenError {
    match kind {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::MissingExpiry,
        ErrorKind::MissingRequiredClaim(c) if c == "aud" => TokenError::WrongAudience,
        ErrorKind::InvalidAlgorithm => TokenError::AlgorithmNotAllowed,
        ErrorKind::InvalidClaimFormat(_) => TokenError::BadClaims,
        _ => TokenError::BadSignature,
    }
}

/// The JOSE name of an algorithm.
pub fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        // A variant added by a future jsonwebtoken: never configurable, never matched.
        _ => "",
    }
}

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}
