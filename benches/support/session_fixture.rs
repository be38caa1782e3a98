//! A realistic session for the benchmarks: the claims of an ID token from a typical
//! provider, an RS256 ID token of typical length, and a refresh token.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use authgate::session::Session;

pub fn session(now: SystemTime) -> Session {
    let claims = serde_json::json!({
        "iss": "https://id.example.com", "aud": "app", "sub": "2b8f1c7e-5d3a-4c1e-9f2b-7a6d5e4c3b2a",
        "email": "jane.doe@example.com", "email_verified": true, "name": "Jane Doe",
        "preferred_username": "jane", "groups": ["staff", "reports"],
        "iat": 1_795_000_000u64, "exp": 1_795_003_600u64, "nonce": "q8Zs0vJ1mYb3kT6wR2pXnA",
        "sid": "c1a2b3d4-e5f6-7a8b-9c0d-e1f2a3b4c5d6"
    });
    Session {
        app: Arc::from("app"),
        provider: Arc::from("idp"),
        claims: claims.as_object().unwrap().clone().into(),
        // A typical RS256 ID token is 800-1000 characters.
        id_token: "e".repeat(900).into(),
        refresh_token: Some("r".repeat(43).into()),
        tokens_expire_at: now + Duration::from_secs(3600),
        expires_at: now + Duration::from_secs(14 * 86400),
    }
}
