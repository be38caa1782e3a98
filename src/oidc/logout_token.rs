//! Logout tokens (OpenID Connect Back-Channel Logout 1.0, section 2.4): the JWT a provider
//! POSTs to say a user's session there ended. It is checked like an ID token of the same
//! provider — signature with the provider's keys, `iss`, `aud` (the client id), `exp`, `iat` —
//! and then for what makes it a logout token and nothing else: an `events` member with the
//! back-channel logout event, a `jti`, a `sid` and/or `sub`, no `nonce` (so an ID token can
//! never pass as one), and `typ` `logout+jwt` when the header names a type.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::provider::Provider;

/// The event a logout token carries.
pub const LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// Longest `jti`, `sid` or `sub` read (each goes into a store key or an index name).
const MAX_CLAIM_BYTES: usize = 255;

/// A logout token that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The user, when named.
    pub sub: Option<String>,
    /// The provider's session, when named.
    pub sid: Option<String>,
    /// The token's unique id (used once).
    pub jti: String,
    /// Its expiry, in seconds since the Unix epoch: the `jti` is remembered until then.
    pub exp: u64,
}

impl Provider {
    /// Verifies a logout token sent by this provider; the error says why it was refused (for
    /// the log and the 400's description).
    pub async fn verify_logout_token(&self, token: &str) -> Result<LogoutToken, String> {
        check_type(token)?;
        let claims = self
            .id_token_issuer()
            .verify(token)
            .await
            .map_err(|e| e.to_string())?;
        read_claims(&claims, self.client_id())
    }
}

/// `typ`, when the header has one, is `logout+jwt` (RFC 8725 explicit typing).
fn check_type(token: &str) -> Result<(), String> {
    let header = token.split('.').next().unwrap_or("");
    let header: Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or("malformed token")?;
    match header.get("typ") {
        None => Ok(()),
        Some(Value::String(typ)) => {
            let typ = typ.strip_prefix("application/").unwrap_or(typ);
            if typ.eq_ignore_ascii_case("logout+jwt") {
                Ok(())
            } else {
                Err(format!("typ is {typ:?}, not logout+jwt"))
            }
        }
        Some(_) => Err("typ is not a string".into()),
    }
}

/// The checks after the signature and the standard claims verified.
fn read_claims(
    claims: &serde_json::Map<String, Value>,
    client_id: &str,
) -> Result<LogoutToken, String> {
    let text = |name: &str| -> Result<Option<String>, String> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_CLAIM_BYTES => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(format!(
                "{name} is not a string of 1 to {MAX_CLAIM_BYTES} bytes"
            )),
        }
    };
    if claims.get("iat").and_then(Value::as_u64).is_none() {
        return Err("no iat".into());
    }
    if claims.contains_key("nonce") {
        return Err("a logout token has no nonce".into());
    }
    let event = claims
        .get("events")
        .and_then(Value::as_object)
        .and_then(|events| events.get(LOGOUT_EVENT));
    if !event.is_some_and(Value::is_object) {
        return Err("no back-channel logout event".into());
    }
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(client_id) {
            return Err("azp names another client".into());
        }
    }
    let jti = text("jti")?.ok_or("no jti")?;
    let (sub, sid) = (text("sub")?, text("sid")?);
    if sub.is_none() && sid.is_none() {
        return Err("neither sid nor sub".into());
    }
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or("no exp")?;
    Ok(LogoutToken { sub, sid, jti, exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Value {
        json!({
            "iss": "https://idp", "aud": "client", "iat": 1, "exp": 2, "jti": "j1",
            "sub": "u1", "sid": "s1", "events": {LOGOUT_EVENT: {}}
        })
    }

    #[test]
    fn a_logout_token_names_its_event_a_jti_and_whom() {
        let token = read_claims(&claims(good()), "client").unwrap();
        assert_eq!(token.sid.as_deref(), Some("s1"));
        assert_eq!(token.sub.as_deref(), Some("u1"));
        assert_eq!(token.jti, "j1");
        let refuse = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
            let mut c = claims(good());
            edit(&mut c);
            read_claims(&c, "client").unwrap_err()
        };
        assert_eq!(
            refuse(&|c| {
                c.insert("nonce".into(), json!("n"));
            }),
            "a logout token has no nonce"
        );
        assert_eq!(
            refuse(&|c| {
                c.remove("events");
            }),
            "no back-channel logout event"
        );
        assert_eq!(
            refuse(&|c| {
                c.insert("events".into(), json!({LOGOUT_EVENT: "yes"}));
            }),
            "no back-channel logout event"
        );
        assert_eq!(
            refuse(&|c| {
                c.insert("events".into(), json!({"http://other/event": {}}));
            }),
            "no back-channel logout event"
        );
        assert_eq!(
            refuse(&|c| {
                c.remove("jti");
            }),
            "no jti"
        );
        assert_eq!(
            refuse(&|c| {
                c.remove("iat");
            }),
            "no iat"
        );
        assert_eq!(
            refuse(&|c| {
                c.remove("sub");
                c.remove("sid");
            }),
            "neither sid nor sub"
        );
        assert!(refuse(&|c| {
            c.insert("sid".into(), json!(7));
        })
        .starts_with("sid is not a string"));
        assert!(refuse(&|c| {
            c.insert("sub".into(), json!("x".repeat(256)));
        })
        .starts_with("sub is not a string"));
        assert_eq!(
            refuse(&|c| {
                c.insert("azp".into(), json!("other"));
            }),
            "azp names another client"
        );
        // One of sid and sub is enough.
        let mut only_sid = claims(good());
        only_sid.remove("sub");
        assert!(read_claims(&only_sid, "client").is_ok());
    }

    #[test]
    fn a_typed_token_must_be_typed_as_a_logout_token() {
        let token = |header: Value| {
            format!(
                "{}.e30.sig",
                URL_SAFE_NO_PAD.encode(header.to_string().as_bytes())
            )
        };
        assert!(check_type(&token(json!({"alg": "RS256"}))).is_ok());
        assert!(check_type(&token(json!({"alg": "RS256", "typ": "logout+jwt"}))).is_ok());
        assert!(check_type(&token(json!({"typ": "application/logout+JWT"}))).is_ok());
        assert!(check_type(&token(json!({"typ": "JWT"}))).is_err());
        assert!(check_type(&token(json!({"typ": 1}))).is_err());
        assert!(check_type("not-base64!.e30.sig").is_err());
    }
}
