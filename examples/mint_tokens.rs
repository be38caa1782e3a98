//! Writes a JWKS and signed RS256 bearer tokens for the load harness (`benches/load/run.sh`):
//! `mint_tokens DIR COUNT` → `DIR/jwks.json` and `DIR/tokens.txt` (one distinct token a line,
//! issuer `https://bench.authgate.test`, audience `bench-api`, valid for a day).

#[path = "../tests/gateway/tokens.rs"]
#[allow(dead_code)]
mod tokens;

use serde_json::json;
use tokens::{now, TestKey};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().expect("usage: mint_tokens DIR COUNT"));
    let count: usize = args.next().and_then(|c| c.parse().ok()).unwrap_or(10_000);
    let key = TestKey::rsa("bench");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        json!({"keys": [key.jwk()]}).to_string(),
    )
    .unwrap();
    let mut out = String::new();
    for i in 0..count {
        let claims = json!({"iss": "https://bench.authgate.test", "aud": "bench-api", "sub": format!("user-{i}"),
                            "email": format!("user-{i}@example.com"), "groups": ["staff"],
                            "iat": now(), "exp": now() + 86400, "jti": i});
        out.push_str(&key.token(&claims));
        out.push('\n');
    }
    std::fs::write(dir.join("tokens.txt"), out).unwrap();
}
