//! The signing keys as stored: a short list, newest first, each with the moment it starts
//! signing. A key's status follows from the clock alone, so every replica that reads the same
//! list agrees on it without talking to the others (Logto's Current / Next / Previous):
//!
//! - **Next**: published in the JWKS, not signing yet (its `effective_at` is ahead), so every
//!   verifier's cached key set has it before the first assertion it signs;
//! - **Current**: the newest key whose `effective_at` has passed; it signs;
//! - **Previous**: replaced, still published for `keep_previous`, so assertions it signed
//!   keep verifying; then dropped.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::material::{generate, KeyError, KeyMaterial, SigningAlgorithm};

/// Previous keys kept at most, however often keys are rotated (the JWKS stays small).
const MAX_PREVIOUS: usize = 2;

/// One stored key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredKey {
    /// The algorithm it signs with.
    pub algorithm: SigningAlgorithm,
    /// The private key, PKCS#8 DER in base64.
    pub pkcs8: String,
    /// When it was made, Unix seconds.
    pub created_at: u64,
    /// When it starts signing, Unix seconds.
    pub effective_at: u64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("algorithm", &self.algorithm)
            .field("effective_at", &self.effective_at)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    /// A new key of `algorithm`, signing from `effective_at`.
    pub fn generate(
        algorithm: SigningAlgorithm,
        now: u64,
        effective_at: u64,
    ) -> Result<StoredKey, KeyError> {
        Ok(StoredKey {
            algorithm,
            pkcs8: STANDARD.encode(generate(algorithm)?),
            created_at: now,
            effective_at,
        })
    }

    /// The key, ready to sign.
    pub fn material(&self) -> Result<KeyMaterial, KeyError> {
        let der = STANDARD
            .decode(&self.pkcs8)
            .map_err(|_| KeyError::Malformed(self.algorithm.name()))?;
        KeyMaterial::from_pkcs8(self.algorithm, &der)
    }
}

/// Where a key stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyStatus {
    /// Published, signing later.
    Next,
    /// Signing.
    Current,
    /// Replaced, still published.
    Previous,
}

/// How keys are rotated (from the `signing` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RotationPolicy {
    /// The algorithm of new keys.
    pub algorithm: SigningAlgorithm,
    /// A key is replaced once it has signed this long; zero: only on request.
    pub rotate_after: Duration,
    /// A new key is published this long before it signs.
    pub publish_before_use: Duration,
    /// A replaced key stays published this long.
    pub keep_previous: Duration,
}

/// Why a rotation was not scheduled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotateError {
    /// A new key is already published and waiting to sign.
    #[error("a new key is already scheduled to start signing at {0} (Unix time)")]
    AlreadyScheduled(u64),
    /// No key could be made.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The stored list of keys, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyRing {
    /// Newest first.
    pub keys: Vec<StoredKey>,
}

impl KeyRing {
    /// Each key with its status at `now`, newest first.
    pub fn statuses(&self, now: u64) -> Vec<(&StoredKey, KeyStatus)> {
        let mut seen_current = false;
        self.keys
            .iter()
            .map(|key| {
                let status = if key.effective_at > now {
                    KeyStatus::Next
                } else if !seen_current {
                    seen_current = true;
                    KeyStatus::Current
                } else {
                    KeyStatus::Previous
                };
                (key, status)
            })
            .collect()
    }

    /// The key that signs at `now`.
    pub fn current(&self, now: u64) -> Option<&StoredKey> {
        self.keys.iter().find(|k| k.effective_at <= now)
    }

    /// The key waiting to sign, if any.
    pub fn next(&self, now: u64) -> Option<&StoredKey> {
        self.keys.iter().rev().find(|k| k.effective_at > now)
    }

    /// Schedules a new key: published now, signing after `publish_before_use` (at once when
    /// there is no key yet: nothing can be verified before it anyway).
    pub fn rotate(
        &mut self,
        now: u64,
        algorithm: SigningAlgorithm,
        publish_before_use: Duration,
    ) -> Result<(), RotateError> {
        if let Some(next) = self.next(now) {
            return Err(RotateError::AlreadyScheduled(next.effective_at));
        }
        let effective_at = if self.keys.is_empty() {
            now
        } else {
            now + publish_before_use.as_secs()
        };
        self.keys
            .insert(0, StoredKey::generate(algorithm, now, effective_at)?);
        Ok(())
    }

    /// Brings the list up to date at `now`: the first key when there is none (`wanted`), a
    /// new key scheduled so that it takes over when the current one reaches `rotate_after`,
    /// replaced keys dropped once `keep_previous` has passed. True when anything changed.
    pub fn maintain(
        &mut self,
        now: u64,
        policy: &RotationPolicy,
        wanted: bool,
    ) -> Result<bool, RotateError> {
        let before = self.keys.len();
        self.drop_retired(now, policy.keep_previous);
        let mut changed = self.keys.len() != before;
        if self.keys.is_empty() {
            if wanted {
                self.rotate(now, policy.algorithm, Duration::ZERO)?;
                changed = true;
            }
            return Ok(changed);
        }
        let rotate_after = policy.rotate_after.as_secs();
        if rotate_after > 0 && self.next(now).is_none() {
            let due = self.current(now).map_or(0, |k| k.effective_at) + rotate_after;
            if now + policy.publish_before_use.as_secs() >= due {
                // Published now, signing at `due` (or after the full lead, when late).
                let lead = due
                    .saturating_sub(now)
                    .max(policy.publish_before_use.as_secs());
                self.rotate(now, policy.algorithm, Duration::from_secs(lead))?;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Drops replaced keys whose overlap has passed, and all but the newest few.
    fn drop_retired(&mut self, now: u64, keep_previous: Duration) {
        // A key is replaced when the next newer key started signing.
        let mut replaced_at = None;
        let mut previous = 0;
        let mut kept = Vec::with_capacity(self.keys.len());
        let mut seen_current = false;
        for key in std::mem::take(&mut self.keys) {
            let keep = if key.effective_at > now {
                true
            } else if !seen_current {
                seen_current = true;
                true
            } else {
                previous += 1;
                let retired_for = now.saturating_sub(replaced_at.unwrap_or(now));
                previous <= MAX_PREVIOUS && retired_for < keep_previous.as_secs()
            };
            if key.effective_at <= now {
                replaced_at = Some(key.effective_at);
            }
            if keep {
                kept.push(key);
            }
        }
        self.keys = kept;
    }

    /// The earliest moment after `now` when something is due (a Next key starts signing, a
    /// Previous key is dropped, the next automatic rotation), to wake up for.
    pub fn next_change(&self, now: u64, policy: &RotationPolicy) -> Option<u64> {
        let starts = self.keys.iter().map(|k| k.effective_at);
        // A key is dropped `keep_previous` after the one above it took over.
        let drops = self
            .keys
            .windows(2)
            .map(|pair| pair[0].effective_at + policy.keep_previous.as_secs());
        // A new key is published `publish_before_use` before the current one is due.
        let rotation = match (self.current(now), self.next(now)) {
            (Some(current), None) if !policy.rotate_after.is_zero() => Some(
                (current.effective_at + policy.rotate_after.as_secs())
                    .saturating_sub(policy.publish_before_use.as_secs()),
            ),
            _ => None,
        };
        starts
            .chain(drops)
            .chain(rotation)
            .filter(|t| *t > now)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RotationPolicy {
        RotationPolicy {
            algorithm: SigningAlgorithm::ES256,
            rotate_after: Duration::from_secs(1000),
            publish_before_use: Duration::from_secs(100),
            keep_previous: Duration::from_secs(50),
        }
    }

    fn statuses(ring: &KeyRing, now: u64) -> Vec<KeyStatus> {
        ring.statuses(now).into_iter().map(|(_, s)| s).collect()
    }

    #[test]
    fn the_first_key_signs_at_once_and_only_when_wanted() {
        let mut ring = KeyRing::default();
        assert!(!ring.maintain(10, &policy(), false).unwrap());
        assert!(ring.keys.is_empty());
        assert!(ring.maintain(10, &policy(), true).unwrap());
        assert_eq!(statuses(&ring, 10), [KeyStatus::Current]);
        assert!(
            !ring.maintain(11, &policy(), true).unwrap(),
            "nothing more to do"
        );
    }

    #[test]
    fn a_rotation_publishes_before_signing_and_keeps_the_previous_key_for_the_overlap() {
        let mut ring = KeyRing::default();
        ring.maintain(0, &policy(), true).unwrap();
        let first = ring.keys[0].clone();
        ring.rotate(10, SigningAlgorithm::EdDSA, Duration::from_secs(100))
            .unwrap();
        assert_eq!(statuses(&ring, 10), [KeyStatus::Next, KeyStatus::Current]);
        assert_eq!(
            ring.current(109),
            Some(&first),
            "the old key signs until 110"
        );
        assert_eq!(
            ring.rotate(20, SigningAlgorithm::ES256, Duration::ZERO),
            Err(RotateError::AlreadyScheduled(110)),
            "one scheduled key at a time"
        );
        assert_eq!(
            statuses(&ring, 110),
            [KeyStatus::Current, KeyStatus::Previous]
        );
        assert_eq!(ring.keys[0].algorithm, SigningAlgorithm::EdDSA);
        assert_eq!(
            ring.next_change(110, &policy()),
            Some(160),
            "the old key's drop"
        );
        assert!(
            !ring.maintain(159, &policy(), true).unwrap(),
            "still in its overlap"
        );
        assert_eq!(ring.keys.len(), 2);
        assert!(ring.maintain(160, &policy(), true).unwrap());
        assert_eq!(statuses(&ring, 160), [KeyStatus::Current]);
        assert_eq!(
            ring.next_change(160, &policy()),
            Some(1010),
            "the next rotation: published at 110 + 1000 - 100"
        );
    }

    #[test]
    fn automatic_rotation_hands_over_at_the_configured_age() {
        let mut ring = KeyRing::default();
        ring.maintain(0, &policy(), true).unwrap();
        assert!(!ring.maintain(899, &policy(), true).unwrap(), "not due yet");
        assert!(ring.maintain(900, &policy(), true).unwrap());
        assert_eq!(
            ring.keys[0].effective_at, 1000,
            "takes over at the age of 1000 s"
        );
        // A replica that was down past the due time still publishes for the full lead.
        let mut late = KeyRing::default();
        late.maintain(0, &policy(), true).unwrap();
        late.maintain(5000, &policy(), true).unwrap();
        assert_eq!(late.keys[0].effective_at, 5100);
        // Zero turns automatic rotation off.
        let manual = RotationPolicy {
            rotate_after: Duration::ZERO,
            ..policy()
        };
        let mut ring = KeyRing::default();
        ring.maintain(0, &manual, true).unwrap();
        assert!(!ring.maintain(1_000_000, &manual, true).unwrap());
    }

    #[test]
    fn rotating_often_keeps_the_list_short() {
        let mut ring = KeyRing::default();
        ring.maintain(0, &policy(), true).unwrap();
        for i in 1..10 {
            ring.rotate(i * 10, SigningAlgorithm::ES256, Duration::ZERO)
                .unwrap();
            ring.maintain(i * 10, &policy(), true).unwrap();
        }
        assert_eq!(
            statuses(&ring, 90),
            [KeyStatus::Current, KeyStatus::Previous, KeyStatus::Previous]
        );
    }
}
