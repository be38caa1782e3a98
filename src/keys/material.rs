//! One signing key: generated (P-256 for ES256, Ed25519 for EdDSA) or read from a PEM file,
//! its public JWK, and its `kid` — the key's RFC 7638 thumbprint, so the same key has the
//! same id on every replica and across restarts.

use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey};

/// The algorithms assertions are signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    /// ECDSA over P-256 with SHA-256.
    ES256,
    /// Ed25519.
    EdDSA,
}

impl SigningAlgorithm {
    /// The JOSE algorithm.
    pub fn jose(self) -> Algorithm {
        match self {
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }

    /// The name as JOSE writes it.
    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::ES256 => "ES256",
            SigningAlgorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm named `name` (`ES256`, `EdDSA`).
    pub fn parse(name: &str) -> Option<SigningAlgorithm> {
        match name {
            "ES256" => Some(SigningAlgorithm::ES256),
            "EdDSA" => Some(SigningAlgorithm::EdDSA),
            _ => None,
        }
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The system could not generate a key.
    #[error("a key could not be generated")]
    Generate,
    /// The bytes are not a PKCS#8 key of the algorithm.
    #[error("not a PKCS#8 {0} private key")]
    Malformed(&'static str),
}

/// A private key ready to sign, with its public JWK.
pub struct KeyMaterial {
    /// `kid`: the public key's SHA-256 thumbprint.
    pub kid: String,
    /// The algorithm.
    pub algorithm: SigningAlgorithm,
    /// The public key as a JWK (with `kid`, `alg` and `use`).
    pub jwk: Jwk,
    /// The private key.
    pub signing: EncodingKey,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private half is never printed.
        write!(f, "KeyMaterial({} {})", self.algorithm.name(), self.kid)
    }
}

/// A new private key for `algorithm`, as PKCS#8 DER.
pub fn generate(algorithm: SigningAlgorithm) -> Result<Vec<u8>, KeyError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let document = match algorithm {
        SigningAlgorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .map_err(|_| KeyError::Generate)?,
        // PKCS#8 v1, the form the JWT library reads Ed25519 keys in (and openssl writes).
        SigningAlgorithm::EdDSA => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(|_| KeyError::Generate)?,
    };
    Ok(document.as_ref().to_vec())
}

impl KeyMaterial {
    /// The key in `pkcs8` (DER) for `algorithm`.
    pub fn from_pkcs8(algorithm: SigningAlgorithm, pkcs8: &[u8]) -> Result<KeyMaterial, KeyError> {
        let signing = match algorithm {
            SigningAlgorithm::ES256 => EncodingKey::from_ec_der(pkcs8),
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_der(pkcs8),
        };
        KeyMaterial::complete(algorithm, signing)
    }

    /// The key in a PEM file's text (`-----BEGIN PRIVATE KEY-----`, PKCS#8): a P-256 key
    /// signs ES256, an Ed25519 key EdDSA.
    pub fn from_pem(pem: &[u8]) -> Result<KeyMaterial, KeyError> {
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| KeyError::Malformed("P-256 or Ed25519"))?;
        KeyMaterial::from_pkcs8(SigningAlgorithm::ES256, der.secret_pkcs8_der())
            .or_else(|_| KeyMaterial::from_pkcs8(SigningAlgorithm::EdDSA, der.secret_pkcs8_der()))
            .map_err(|_| KeyError::Malformed("P-256 or Ed25519"))
    }

    fn complete(
        algorithm: SigningAlgorithm,
        signing: EncodingKey,
    ) -> Result<KeyMaterial, KeyError> {
        let malformed = || KeyError::Malformed(algorithm.name());
        let mut jwk =
            Jwk::from_encoding_key(&signing, algorithm.jose()).map_err(|_| malformed())?;
        // A key that cannot sign (a P-384 key given for ES256) is found out now, not on a
        // request.
        jsonwebtoken::crypto::sign(b"probe", &signing, algorithm.jose())
            .map_err(|_| malformed())?;
        let kid = jwk
            .thumbprint(ThumbprintHash::SHA256)
            .map_err(|_| malformed())?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(match algorithm {
            SigningAlgorithm::ES256 => KeyAlgorithm::ES256,
            SigningAlgorithm::EdDSA => KeyAlgorithm::EdDSA,
        });
        Ok(KeyMaterial {
            kid,
            algorithm,
            jwk,
            signing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_publish_their_public_half() {
        for algorithm in [SigningAlgorithm::ES256, SigningAlgorithm::EdDSA] {
            let pkcs8 = generate(algorithm).unwrap();
            let key = KeyMaterial::from_pkcs8(algorithm, &pkcs8).unwrap();
            let again = KeyMaterial::from_pkcs8(algorithm, &pkcs8).unwrap();
            assert_eq!(key.kid, again.kid, "the kid is the key's thumbprint");
            let json = serde_json::to_value(&key.jwk).unwrap();
            assert_eq!(json["kid"], key.kid.as_str());
            assert_eq!(json["alg"], algorithm.name());
            assert_eq!(json["use"], "sig");
            assert!(json.get("d").is_none(), "no private part in {json}");
            // What the JWK publishes verifies what the key signs.
            let mut header = jsonwebtoken::Header::new(algorithm.jose());
            header.kid = Some(key.kid.clone());
            let token =
                jsonwebtoken::encode(&header, &serde_json::json!({"sub": "u"}), &key.signing)
                    .unwrap();
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&key.jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(algorithm.jose());
            validation.required_spec_claims.clear();
            validation.validate_exp = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &validation).unwrap();
        }
    }

    #[test]
    fn keys_of_the_wrong_kind_are_refused() {
        let ed = generate(SigningAlgorithm::EdDSA).unwrap();
        assert!(KeyMaterial::from_pkcs8(SigningAlgorithm::ES256, &ed).is_err());
        assert!(KeyMaterial::from_pkcs8(SigningAlgorithm::EdDSA, b"garbage").is_err());
        assert!(KeyMaterial::from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        )
        .is_err());
    }
}
