//! The store layer: everything shared between requests or between replicas goes through these
//! few traits, each with an in-process backend ([`memory`], one node) and a Redis backend
//! ([`redis`], standalone, Sentinel or Cluster), and one conformance suite ([`conformance`])
//! that every backend must pass.
//!
//! - [`Records`]: opaque values with an expiry — sessions (sealed by the caller, so a store
//!   dump leaks nothing), and small indexes (a user's sessions).
//! - [`SingleUse`]: a key that can be claimed once within its lifetime — sign-in states,
//!   logout tokens' `jti`.
//! - [`Leases`]: a named lease with an expiry and a fencing token — one replica refreshes a
//!   session, one replica orders a certificate.
//! - [`Changes`]: messages to every replica — "session X ended".
//! - [`Documents`]: small values that live until replaced, written by compare-and-swap so
//!   replicas racing to change one never lose each other's write — the signing keys.
//!
//! Every call can fail with [`StoreError::Unavailable`]: the caller decides what that means
//! (a 503, never a sign-in loop).

pub mod conformance;
pub mod file;
pub mod memory;
pub mod redis;
pub mod sealed;

use std::time::Duration;

use async_trait::async_trait;

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backend cannot be reached or refused the command; the detail is for logs.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// A store call's result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Values with an expiry, and sets of members with an expiry.
#[async_trait]
pub trait Records: Send + Sync {
    /// The value under `key`, if it has not expired.
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `value` under `key` for `ttl`, replacing any value.
    async fn put(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()>;
    /// The value under `key`, its remaining life set to `ttl` in the same step (one round
    /// trip: a cold session lookup that slides the idle timeout).
    async fn get_touch(&self, key: &str, ttl: Duration) -> StoreResult<Option<Vec<u8>>>;
    /// Sets `key`'s remaining life to `ttl`; false when there is no such key.
    async fn touch(&self, key: &str, ttl: Duration) -> StoreResult<bool>;
    /// Removes `key`; false when there was none.
    async fn delete(&self, key: &str) -> StoreResult<bool>;
    /// Adds `member` to the set `index`, which then lives at least `ttl` more.
    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> StoreResult<()>;
    /// The members of the set `index` (empty when there is none).
    async fn index_members(&self, index: &str) -> StoreResult<Vec<String>>;
    /// Removes `member` from the set `index`.
    async fn index_remove(&self, index: &str, member: &str) -> StoreResult<()>;
}

/// Keys that can each be claimed once.
#[async_trait]
pub trait SingleUse: Send + Sync {
    /// True for the first claim of `key` within `ttl`; false for every other.
    async fn claim(&self, key: &str, ttl: Duration) -> StoreResult<bool>;
    /// Gives a claim back (the work it guarded could not be done), so the key can be claimed
    /// again.
    async fn release_claim(&self, key: &str) -> StoreResult<()>;
}

/// A held lease: its name and the token that proves it is this holder's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// What the lease is on.
    pub name: String,
    /// Unique to this acquisition (a later holder of the same name has another).
    pub token: String,
}

/// Named leases with an expiry, so a dead holder's work is taken over.
#[async_trait]
pub trait Leases: Send + Sync {
    /// The lease on `name` for `ttl`, or `None` while someone else holds it.
    async fn acquire(&self, name: &str, ttl: Duration) -> StoreResult<Option<Lease>>;
    /// Gives the lease up; false when it had expired or was taken over meanwhile.
    async fn release(&self, lease: &Lease) -> StoreResult<bool>;
    /// Extends a held lease to `ttl` from now; false when it had expired or was taken over
    /// (the holder must stop its work: someone else may be doing it).
    async fn renew(&self, lease: &Lease, ttl: Duration) -> StoreResult<bool>;
}

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A message published on the channel.
    Message(String),
    /// The subscription was interrupted: messages may go missing until [`Change::Resumed`].
    Lost,
    /// The subscription is back after [`Change::Lost`]; what was published in between is
    /// unknown.
    Resumed,
}

/// Messages to every replica (this one included).
#[async_trait]
pub trait Changes: Send + Sync {
    /// Sends `message` on `channel`.
    async fn publish(&self, channel: &str, message: &str) -> StoreResult<()>;
    /// Messages on `channel` from now on, and word of the subscription's interruptions. A
    /// receiver that falls behind loses the oldest (`Lagged`); callers that must not miss any
    /// resynchronise then, and after [`Change::Resumed`].
    async fn subscribe(
        &self,
        channel: &str,
    ) -> StoreResult<tokio::sync::broadcast::Receiver<Change>>;
}

/// Small values without an expiry, replaced whole by compare-and-swap: a writer reads, builds
/// the next value, and writes it only if nobody wrote in between (else it reads again).
#[async_trait]
pub trait Documents: Send + Sync {
    /// The document under `key`, if there is one.
    async fn read(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Stores `new` under `key` if the document is still `expected` (`None`: there is none);
    /// false, and nothing written, when it is not.
    async fn replace(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool>;
}

/// A fresh random token (leases, test namespaces).
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A lifetime in whole milliseconds, at least 1 (a zero lifetime is no lifetime in Redis).
fn millis(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}
