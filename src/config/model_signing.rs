//! The file model of the gateway's signing keys, the identity assertion an app may send its
//! origin, and forward-auth listeners (see [`super::model`] for the conventions).

use serde::{Deserialize, Serialize};

use super::duration::Seconds;

/// The keys the gateway signs identity assertions with, and the JWKS publishing them at
/// `{auth_prefix}/jwks.json` on every app host and `/jwks.json` on the admin listener.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SigningFile {
    /// Algorithm of generated keys: `ES256` (P-256) or `EdDSA` (Ed25519). Default: `ES256`.
    pub algorithm: SigningAlgorithmFile,
    /// A key is replaced once it has signed this long; `0s` rotates only on request
    /// (`POST /api/keys/rotate`). Default: 30 days.
    pub rotate_after: Seconds,
    /// A new key is published in the JWKS this long before it signs, so verifiers' cached
    /// key sets have it first. At least `jwks_max_age`. Default: 1 hour.
    pub publish_before_use: Seconds,
    /// A replaced key stays published this long, so assertions it signed keep verifying. At
    /// least every app's `assertion.lifetime`. Default: 1 day.
    pub keep_previous: Seconds,
    /// `Cache-Control: max-age` of the JWKS. Default: 5 minutes.
    pub jwks_max_age: Seconds,
    /// PEM files (PKCS#8 P-256 or Ed25519 private keys) used instead of generated keys: the
    /// first signs, every one is published; rotate by editing the list and reloading.
    /// Default: none (keys are generated into the session store — Redis, shared by every
    /// replica — or `admin.data_dir` on a single node).
    pub key_files: Vec<String>,
    /// `iss` of every assertion. Default: per app, `https://{host}{auth_prefix}`.
    pub issuer: Option<String>,
}

impl Default for SigningFile {
    fn default() -> SigningFile {
        SigningFile {
            algorithm: SigningAlgorithmFile::ES256,
            rotate_after: Seconds(30 * 24 * 3600),
            publish_before_use: Seconds(3600),
            keep_previous: Seconds(24 * 3600),
            jwks_max_age: Seconds(300),
            key_files: Vec::new(),
            issuer: None,
        }
    }
}

/// A signing algorithm.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum SigningAlgorithmFile {
    /// ECDSA over P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

/// An app's signed identity assertion: a short-lived JWT the origin can verify against the
/// gateway's JWKS instead of trusting headers.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AssertionFile {
    /// The header it is sent in; it must be one of `identity_headers.strip` (so a client's
    /// own is removed). Default: `X-Authgate-Assertion`.
    pub header: String,
    /// Its lifetime (`exp - iat`), 10s to 1h. The gateway re-signs once half of it has
    /// passed. Default: 60s.
    pub lifetime: Seconds,
    /// `aud`. Default: the app's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
}

impl Default for AssertionFile {
    fn default() -> AssertionFile {
        AssertionFile {
            header: "X-Authgate-Assertion".into(),
            lifetime: Seconds(60),
            audience: None,
        }
    }
}

/// How a forward-auth answer sends a browser without a session to sign in.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ForwardAuthModeFile {
    /// 401 with the sign-in URL in `X-Authgate-Login` (nginx `auth_request`, whose
    /// `error_page 401` redirects there).
    Status,
    /// 302 to the provider, as the proxy path does (Traefik `forwardAuth`, Caddy
    /// `forward_auth`, which hand a non-2xx answer to the client).
    Redirect,
}
