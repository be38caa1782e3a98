//! Test identity provider parts: keys generated in the test (RSA, EC P-256, Ed25519), tokens
//! signed by hand (so malformed and malicious ones can be made too), and a JWKS server over
//! HTTP that counts its fetches and can be switched off.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A signing key of one of the three families, with its `kid`.
pub enum Signer {
    Rsa(aws_lc_rs::rsa::KeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct TestKey {
    pub kid: String,
    pub signer: Signer,
}

impl TestKey {
    pub fn rsa(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Rsa(aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).unwrap()),
        }
    }

    pub fn ec(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
        }
    }

    pub fn ed(kid: &str) -> TestKey {
        TestKey {
            kid: kid.into(),
            signer: Signer::Ed(Ed25519KeyPair::generate().unwrap()),
        }
    }

    pub fn alg(&self) -> &'static str {
        match self.signer {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        match &self.signer {
            Signer::Rsa(k) => {
                let public = k.public_key();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig",
                       "n": b64(public.modulus().big_endian_without_leading_zero()),
                       "e": b64(public.exponent().big_endian_without_leading_zero())})
            }
            Signer::Ec(k) => {
                let point = k.public_key().as_ref();
                json!({"kty": "EC", "kid": self.kid, "crv": "P-256",
                       "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            Signer::Ed(k) => {
                json!({"kty": "OKP", "kid": self.kid, "crv": "Ed25519",
                       "x": b64(k.public_key().as_ref())})
            }
        }
    }

    /// The raw public key bytes (what an HS256 confusion attack would use as the secret).
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
            Signer::Ec(k) => k.public_key().as_ref().to_vec(),
            Signer::Ed(k) => k.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `claims` with a standard header for this key.
    pub fn token(&self, claims: &Value) -> String {
        self.token_with_header(
            &json!({"alg": self.alg(), "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }

    /// Signs `claims` under an arbitrary header (the signature uses this key whatever the
    /// header says).
    pub fn token_with_header(&self, header: &Value, claims: &Value) -> String {
        self.sign_texts(&header.to_string(), &claims.to_string())
    }

    /// Signs a header and payload given as JSON texts, exactly as written (repeated member
    /// names included).
    pub fn sign_texts(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let sig = match &self.signer {
            Signer::Rsa(k) => {
                let mut sig = vec![0u8; k.public_modulus_len()];
                k.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    input.as_bytes(),
                    &mut sig,
                )
                .unwrap();
                sig
            }
            Signer::Ec(k) => k
                .sign(&SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// An HMAC-SHA256 token over `header` and `claims` with `secret`.
pub fn hs256(header: &Value, claims: &Value, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// Claims that pass for issuer `iss` and audience `api`, valid for ten minutes.
pub fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "api", "sub": "user-1", "email": "user@example.com",
           "groups": ["staff", "ops"], "scope": "orders.read profile",
           "iat": now(), "exp": now() + 600})
}

/// A JWKS (and discovery) server on loopback.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    jwks: Arc<Mutex<Value>>,
    pub fetches: Arc<AtomicUsize>,
    pub down: Arc<AtomicBool>,
    /// Accept requests and never answer them.
    pub hang: Arc<AtomicBool>,
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey]) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = JwksServer {
            addr,
            jwks: Arc::new(Mutex::new(
                json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}),
            )),
            fetches: Arc::new(AtomicUsize::new(0)),
            down: Arc::new(AtomicBool::new(false)),
            hang: Arc::new(AtomicBool::new(false)),
        };
        let state = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let state = state.clone();
                            async move {
                                if state.hang.load(Ordering::SeqCst) {
                                    if req.uri().path() == "/jwks" {
                                        state.fetches.fetch_add(1, Ordering::SeqCst);
                                    }
                                    // Accepts, never answers (within any test's patience).
                                    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
                                }
                                Ok::<_, Infallible>(state.answer(req.uri().path()))
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        server
    }

    fn answer(&self, path: &str) -> Response<Full<Bytes>> {
        let (status, body) = if self.down.load(Ordering::SeqCst) {
            (500, "down".to_string())
        } else if path.ends_with("/.well-known/openid-configuration") {
            (
                200,
                json!({"issuer": self.issuer(), "jwks_uri": self.jwks_uri()}).to_string(),
            )
        } else if path == "/jwks" {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            (200, self.jwks.lock().unwrap().to_string())
        } else {
            (404, String::new())
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
        resp
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn jwks_uri(&self) -> String {
        format!("http://{}/jwks", self.addr)
    }

    pub fn fetch_count(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Serves this JWKS document as written.
    pub fn set_jwks(&self, jwks: Value) {
        *self.jwks.lock().unwrap() = jwks;
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        *self.jwks.lock().unwrap() =
            json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()});
    }
}

/// A value unique per call (codes, refresh tokens).
pub fn now_nanos() -> u128 {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        + COUNTER.fetch_add(1, Ordering::SeqCst) as u128
}
