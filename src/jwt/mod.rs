//! JWT bearer tokens: issuers' keys ([`jwks`], [`keys`]) and verification with a
//! verified-token cache ([`verify`]).

mod claim_set;
pub mod jwks;
pub mod keys;
mod unique_members;
pub mod verify;

pub use verify::{Claims, Issuer, TokenError, Verified, Verifier};

pub use claim_set::{ClaimSet, Shape};
pub use unique_members::UniqueMembers;
