//! An issuer's verification keys, parsed from a JWKS document.
//!
//! A key set is tolerant of what it cannot use — a key of an unknown type, an encryption key
//! (`use: enc`), a symmetric key, or one that does not parse is skipped with a log line, never
//! fatal — and strict about what it keeps: each key remembers its algorithm family, and its
//! `alg` and curve when the JWKS states them, so a token can only be checked with the algorithm
//! its key was made for.

use std::collections::HashMap;

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    /// The JWKS `kid`, if any.
    pub kid: Option<String>,
    /// The algorithms this key may verify.
    pub algorithms: Vec<Algorithm>,
    /// The key material.
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish()
    }
}

/// The usable keys of one issuer.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Vec<Key>>,
    without_kid: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`). Fails only when the document itself is not
    /// a JWKS; unusable keys inside it are skipped.
    pub fn from_jwks(document: &[u8]) -> Result<KeySet, String> {
        let value: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| format!("not JSON: {e}"))?;
        let keys = value
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("no `keys` array")?;
        let mut set = KeySet::default();
        for (i, raw) in keys.iter().enumerate() {
            match parse_key(raw) {
                Ok(key) => set.insert(key),
                Err(why) => tracing::warn!(index = i, why, "skipping a JWKS key"),
            }
        }
        Ok(set)
    }

    fn insert(&mut self, key: Key) {
        match &key.kid {
            Some(kid) => self.by_kid.entry(kid.clone()).or_default().push(key),
            None => self.without_kid.push(key),
        }
    }

    /// Adds a shared-secret key for the HMAC algorithms in `algorithms`.
    pub fn add_secret(&mut self, secret: &[u8], algorithms: Vec<Algorithm>) {
        self.insert(Key {
            kid: None,
            algorithms,
            decoding: DecodingKey::from_secret(secret),
        });
    }

    /// Keys that may verify a token with this `kid` and this algorithm. A token without a
    /// `kid` may use the one key of the set that fits its algorithm; when several fit, which
    /// one was meant is ambiguous and none is offered.
    pub fn candidates<'s>(
        &'s self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'s Key> + 's {
        let named: &[Key] = kid.map_or(&[], |kid| self.by_kid.get(kid).map_or(&[], Vec::as_slice));
        let sole = kid.is_none().then(|| self.sole_key_for(alg)).flatten();
        named
            .iter()
            .filter(move |k| k.algorithms.contains(&alg))
            .chain(sole)
    }

    /// The only key of the set that fits `alg`, if exactly one does.
    fn sole_key_for(&self, alg: Algorithm) -> Option<&Key> {
        let mut fitting = self
            .without_kid
            .iter()
            .chain(self.by_kid.values().flatten())
            .filter(|k| k.algorithms.contains(&alg));
        let first = fitting.next()?;
        fitting.next().is_none().then_some(first)
    }

    /// True when a token without a `kid` finds no key because several fit `alg`.
    pub fn is_ambiguous(&self, alg: Algorithm) -> bool {
        self.without_kid
            .iter()
            .chain(self.by_kid.values().flatten())
            .filter(|k| k.algorithms.contains(&alg))
            .nth(1)
            .is_some()
    }

    /// True when a `kid` is known.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.by_kid.values().map(Vec::len).sum::<usize>() + self.without_kid.len()
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn parse_key(raw: &serde_json::Value) -> Result<Key, String> {
    let jwk: Jwk = serde_json::from_value(raw.clone()).map_err(|e| format!("unparseable: {e}"))?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return Err("an encryption key (use: enc)".into());
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("its `key_ops` do not include `verify`".into());
        }
    }
    let family_algorithms: Vec<Algorithm> = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return Err("unsupported elliptic curve".into()),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => vec![Algorithm::EdDSA],
            _ => return Err("unsupported octet key pair curve".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err("a symmetric key; shared secrets come from the config only".into())
        }
        _ => return Err("unsupported key type".into()),
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family_algorithms,
        Some(stated) => {
            let alg = key_algorithm(stated).ok_or("its `alg` is not a signature algorithm")?;
            if !family_algorithms.contains(&alg) {
                return Err("its `alg` does not fit its key type".into());
            }
            vec![alg]
        }
    };
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithms,
        decoding,
    })
}

fn key_algorithm(stated: KeyAlgorithm) -> Option<Algorithm> {
    Some(match stated {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "good", "n": N, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": N, "e": "AQAB"},
            {"kty": "oct", "kid": "secret", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "mismatch", "alg": "ES256", "n": N, "e": "AQAB"},
            {"kty": "banana"},
            "not an object",
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.has_kid("good"));
        assert_eq!(set.candidates(Some("good"), Algorithm::RS256).count(), 1);
        assert_eq!(set.candidates(Some("good"), Algorithm::ES256).count(), 0);
        assert_eq!(set.candidates(Some("enc"), Algorithm::RS256).count(), 0);
    }

    #[test]
    fn a_stated_alg_narrows_the_key() {
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "k", "alg": "PS256", "n": N, "e": "AQAB"},
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.candidates(Some("k"), Algorithm::RS256).count(), 0);
        assert_eq!(set.candidates(Some("k"), Algorithm::PS256).count(), 1);
    }

    #[test]
    fn junk_documents_are_errors() {
        assert!(KeySet::from_jwks(b"<html>").is_err());
        assert!(KeySet::from_jwks(b"{\"nokeys\": 1}").is_err());
    }
}
