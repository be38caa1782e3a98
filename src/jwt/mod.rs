//! JWT bearer tokens: issuers' keys ([`jwks`], [`keys`]) and verification with a
//! verified-token cache ([`verify`]).

pub mod jwks;
pub mod keys;
pub mod verify;

pub use verify::{Claims, Issuer, TokenError, Verified, Verifier};

/// Read access to an identity's claims, whether a verified token's map or a session's
/// compact copy.
pub trait ClaimSet {
    /// The value of a claim, if present.
    fn claim(&self, name: &str) -> Option<&serde_json::Value>;
}

impl ClaimSet for Claims {
    fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.get(name)
    }
}
