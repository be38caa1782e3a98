//! Secrets kept as documents (signing keys, the ACME account key): sealed under the current
//! session cookie key when one is configured — AES-GCM, bound to the document's purpose, so a
//! store dump reveals nothing and one document cannot stand in for another — else plain JSON
//! (a single node's file, readable by the gateway's user only). A shared store never accepts a
//! plain document: whoever planted it would know the secret.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::session::cookie::CookieKeys;

/// A sealed document starts with this byte (a plain one is JSON, `{`).
const SEALED: u8 = b'S';

/// `value` as the store keeps it, for `purpose` (the document's name).
pub fn seal<T: Serialize>(
    value: &T,
    purpose: &str,
    cookie_keys: Option<&CookieKeys>,
) -> Result<Vec<u8>, String> {
    let json = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    Ok(match cookie_keys {
        Some(keys) => {
            let mut out = vec![SEALED];
            out.extend(keys.seal_bytes("authgate", purpose, &json));
            out
        }
        None => json,
    })
}

/// The value in a stored document, or `None` when it cannot be opened (sealed under a key no
/// longer configured, tampered with, or plain where only sealed ones are accepted).
pub fn open<T: DeserializeOwned>(
    bytes: &[u8],
    purpose: &str,
    cookie_keys: Option<&CookieKeys>,
    sealed_only: bool,
) -> Option<T> {
    match bytes.split_first() {
        Some((&SEALED, sealed)) => {
            let json = cookie_keys?.open_bytes("authgate", purpose, sealed)?;
            serde_json::from_slice(&json).ok()
        }
        _ if sealed_only => None,
        _ => serde_json::from_slice(bytes).ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_this_gateway_sealed_for_this_purpose_opens() {
        let value = serde_json::json!({"secret": [1, 2, 3]});
        let keys = CookieKeys::new([&[7u8; 32][..]]);
        let sealed = seal(&value, "a", Some(&keys)).unwrap();
        assert_eq!(sealed[0], SEALED);
        assert!(!String::from_utf8_lossy(&sealed).contains("secret"));
        assert_eq!(open(&sealed, "a", Some(&keys), true), Some(value.clone()));
        assert_eq!(
            open::<serde_json::Value>(&sealed, "b", Some(&keys), true),
            None,
            "another purpose"
        );
        let other = CookieKeys::new([&[8u8; 32][..]]);
        assert_eq!(
            open::<serde_json::Value>(&sealed, "a", Some(&other), true),
            None,
            "another key"
        );
        let plain = seal(&value, "a", None).unwrap();
        assert_eq!(
            open::<serde_json::Value>(&plain, "a", Some(&keys), true),
            None,
            "planted in a shared store"
        );
        assert_eq!(
            open(&plain, "a", None, false),
            Some(value),
            "a single node's file"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(
            open::<serde_json::Value>(&tampered, "a", Some(&keys), true),
            None
        );
    }
}
