//! A session as bytes for a shared store, sealed (AES-256-GCM under the cookie keys, bound to
//! the session id), so a dump of the store shows no token, claim or user.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::cookie::CookieKeys;
use super::{Session, SessionId, StoredTimes, UserRecord};

/// The record's layout version: a record of another version is no session.
const VERSION: u8 = 1;

#[derive(Serialize, Deserialize)]
struct Packed {
    v: u8,
    app: String,
    provider: String,
    claims: super::super::jwt::Claims,
    id_token: String,
    refresh_token: Option<String>,
    times: StoredTimes,
}

/// What the seal is bound to: a record moved to another id does not open.
fn seal_name(id: &SessionId) -> String {
    format!("session-record:{}", super::id_hex(id))
}

/// The sealed bytes of `session`.
pub fn seal(keys: &CookieKeys, id: &SessionId, session: &Session) -> Vec<u8> {
    let packed = Packed {
        v: VERSION,
        app: session.app.to_string(),
        provider: session.provider.to_string(),
        claims: session.user.claims(),
        id_token: session.user.id_token(),
        refresh_token: session.user.refresh_token().map(str::to_string),
        times: session.stored_times(),
    };
    let plain = serde_json::to_vec(&packed).expect("a session serialises");
    keys.seal_bytes("", &seal_name(id), &plain)
}

/// The session sealed in `bytes` for `id`; `None` when it does not open under any cookie key,
/// was made for another id, or is not a session.
pub fn open(keys: &CookieKeys, id: &SessionId, bytes: &[u8]) -> Option<Session> {
    let plain = keys.open_bytes("", &seal_name(id), bytes)?;
    let packed: Packed = serde_json::from_slice(&plain).ok()?;
    if packed.v != VERSION {
        return None;
    }
    let user = UserRecord::new(
        &packed.claims,
        &packed.id_token,
        packed.refresh_token.as_deref(),
    )
    .ok()?;
    Some(Session::restore(
        Arc::from(packed.app),
        Arc::from(packed.provider),
        user,
        packed.times,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn keys(secret: &str) -> CookieKeys {
        CookieKeys::new([secret.as_bytes()])
    }

    #[test]
    fn a_sealed_session_opens_whole_and_shows_nothing() {
        let claims = serde_json::json!({"sub": "user-1", "email": "secret-user@example.com"});
        let user = UserRecord::new(
            claims.as_object().unwrap(),
            "aGVhZA.eyJzdWIiOiJ1c2VyLTEifQ.c2ln",
            Some("the-refresh-token"),
        )
        .unwrap();
        let now = SystemTime::now();
        let session = Session::new(
            "app".into(),
            "idp".into(),
            user,
            now + Duration::from_secs(300),
            now + Duration::from_secs(3600),
        );
        let keys = keys("a-cookie-key-for-the-tests-0123456789");
        let id = [7u8; 16];
        let sealed = seal(&keys, &id, &session);
        let text = String::from_utf8_lossy(&sealed);
        for secret in ["secret-user", "the-refresh-token", "user-1", "app"] {
            assert!(!text.contains(secret), "{secret} readable in the record");
        }
        let opened = open(&keys, &id, &sealed).expect("opens");
        assert_eq!(&*opened.app, "app");
        assert_eq!(opened.user.refresh_token(), Some("the-refresh-token"));
        assert_eq!(opened.user.claims()["email"], "secret-user@example.com");
        assert_eq!(opened.stored_times(), session.stored_times());
        // Another id, another key, or a flipped byte: no session.
        assert!(open(&keys, &[8u8; 16], &sealed).is_none());
        assert!(open(
            &super::tests::keys("another-cookie-key-0123456789abcdef"),
            &id,
            &sealed
        )
        .is_none());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(open(&keys, &id, &flipped).is_none());
    }
}
