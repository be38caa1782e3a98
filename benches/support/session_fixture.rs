//! A realistic session for the benchmarks: the claims of an ID token from a typical
//! provider, an RS256 ID token carrying exactly those claims (header with `kid`, 256-byte
//! signature: 857 characters, as providers issue them), and a refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authgate::session::{Session, UserRecord};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

pub fn session(now: SystemTime) -> Session {
    let claims = serde_json::json!({
        "iss": "https://id.example.com", "aud": "app", "sub": "2b8f1c7e-5d3a-4c1e-9f2b-7a6d5e4c3b2a",
        "email": "jane.doe@example.com", "email_verified": true, "name": "Jane Doe",
        "preferred_username": "jane", "groups": ["staff", "reports"],
        "iat": 1_795_000_000u64, "exp": 1_795_003_600u64, "nonce": "q8Zs0vJ1mYb3kT6wR2pXnA",
        "sid": "c1a2b3d4-e5f6-7a8b-9c0d-e1f2a3b4c5d6"
    });
    let id_token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"2026-11-signing-key","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([0x5a; 256])
    );
    let user = UserRecord::new(
        claims.as_object().unwrap(),
        &id_token,
        Some(&"r".repeat(43)),
    )
    .expect("the fixture packs");
    Session::new(
        Arc::from("app"),
        Arc::from("idp"),
        user,
        now + Duration::from_secs(3600),
        now + Duration::from_secs(14 * 86400),
    )
}
