//! The identity headers the origin receives, built from verified claims.

use http::{HeaderName, HeaderValue};

use crate::jwt::{ClaimSet, Shape};

/// Header ← claim mappings, compiled.
#[derive(Debug, Clone, Default)]
pub struct IdentityHeaders {
    mappings: Vec<(HeaderName, String)>,
    max_value_bytes: usize,
}

/// Why a claim cannot be passed to the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an identity claim cannot be sent as a header")]
pub struct UnsafeClaim;

impl IdentityHeaders {
    /// Mappings from header names to claim names.
    pub fn new(mappings: Vec<(HeaderName, String)>, max_value_bytes: usize) -> IdentityHeaders {
        IdentityHeaders {
            mappings,
            max_value_bytes,
        }
    }

    /// The header names this mapping may set.
    pub fn header_names(&self) -> impl Iterator<Item = &HeaderName> {
        self.mappings.iter().map(|(name, _)| name)
    }

    /// The headers for these claims. A claim that is absent (or an object) gives no header;
    /// one that is too long or holds CR, LF, NUL or another control byte refuses the identity.
    pub fn render(
        &self,
        claims: &(impl ClaimSet + ?Sized),
    ) -> Result<Vec<(HeaderName, HeaderValue)>, UnsafeClaim> {
        let mut out = Vec::with_capacity(self.mappings.len());
        for (header, claim) in &self.mappings {
            // A list's values are joined with commas.
            let (mut text, mut first) = (String::new(), true);
            let shape = claims.claim_texts(claim, &mut |t| {
                if !std::mem::take(&mut first) {
                    text.push(',');
                }
                text.push_str(t);
            });
            if !matches!(shape, Some(Shape::Scalar | Shape::List)) {
                continue;
            }
            if text.len() > self.max_value_bytes {
                return Err(UnsafeClaim);
            }
            let value = HeaderValue::from_str(&text).map_err(|_| UnsafeClaim)?;
            if text.bytes().any(|b| b.is_ascii_control()) {
                return Err(UnsafeClaim);
            }
            out.push((header.clone(), value));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::Claims;

    fn headers() -> IdentityHeaders {
        IdentityHeaders::new(
            vec![
                (HeaderName::from_static("x-auth-request-user"), "sub".into()),
                (
                    HeaderName::from_static("x-auth-request-groups"),
                    "groups".into(),
                ),
            ],
            64,
        )
    }

    fn claims(v: serde_json::Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn renders_strings_and_arrays() {
        let out = headers()
            .render(&claims(
                serde_json::json!({"sub": "u1", "groups": ["a", "b"]}),
            ))
            .unwrap();
        assert_eq!(out[0].1, "u1");
        assert_eq!(out[1].1, "a,b");
        let out = headers()
            .render(&claims(serde_json::json!({"sub": "u1"})))
            .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn refuses_header_injection_and_oversize() {
        for bad in ["a\r\nX-Evil: 1", "a\nb", "a\0b", &"x".repeat(65)] {
            assert!(
                headers()
                    .render(&claims(serde_json::json!({"sub": bad})))
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}
