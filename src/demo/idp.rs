//! The development identity provider of `authgate demo`: a small OpenID Connect issuer with
//! two fixed users, so the demo shows the whole sign-in in a browser without an account
//! anywhere. Loopback only, never part of `authgate run`.
//!
//! It implements what the demo needs and no more: discovery, an authorize page with one
//! button per user, the token endpoint (authorization code with PKCE S256, refresh tokens),
//! JWKS (an Ed25519 key made at start), userinfo, and end-session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The demo's client id at the development provider.
pub const CLIENT_ID: &str = "authgate-demo";
/// The audience of the access tokens it issues (accepted on the demo's `/api`).
pub const API_AUDIENCE: &str = "authgate-demo-api";

/// The fixed users: (sub, name, email, groups).
const USERS: [(&str, &str, &str, &[&str]); 2] = [
    (
        "alice",
        "Alice Admin",
        "alice@example.test",
        &["staff", "admins"],
    ),
    ("bob", "Bob Builder", "bob@example.test", &["staff"]),
];

struct Grant {
    user: &'static str,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

/// The provider's state.
pub struct DevIdp {
    issuer: String,
    signing: EncodingKey,
    public_x: String,
    grants: Mutex<HashMap<String, Grant>>,
    refresh: Mutex<HashMap<String, &'static str>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random source is available");
    URL_SAFE_NO_PAD.encode(bytes)
}

impl DevIdp {
    /// A provider whose issuer is `http://{address}`, with a fresh signing key.
    pub fn new(address: SocketAddr) -> DevIdp {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new())
            .expect("key generation succeeds");
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a fresh key parses");
        DevIdp {
            issuer: format!("http://{address}"),
            signing: EncodingKey::from_ed_der(pkcs8.as_ref()),
            public_x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            grants: Mutex::new(HashMap::new()),
            refresh: Mutex::new(HashMap::new()),
        }
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serves the provider on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let idp = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let idp = idp.clone();
                    async move { Ok::<_, Infallible>(idp.answer(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_string();
        let query: HashMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        match path.as_str() {
            "/.well-known/openid-configuration" => self.discovery(),
            "/authorize" => self.authorize_page(&query),
            "/approve" => self.approve(&query),
            "/token" => self.token(&form),
            "/jwks" => json_response(
                200,
                json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": "demo", "x": self.public_x}]}),
            ),
            "/userinfo" => json_response(401, json!({"error": "invalid_token"})),
            "/end_session" => {
                let to = query
                    .get("post_logout_redirect_uri")
                    .filter(|u| {
                        u.starts_with("http://localhost") || u.starts_with("http://127.0.0.1")
                    })
                    .cloned()
                    .unwrap_or_else(|| "/".into());
                redirect(&to)
            }
            _ => json_response(404, json!({"error": "not_found"})),
        }
    }

    fn discovery(&self) -> Response<Full<Bytes>> {
        let iss = &self.issuer;
        json_response(
            200,
            json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/authorize"),
                "token_endpoint": format!("{iss}/token"),
                "jwks_uri": format!("{iss}/jwks"),
                "end_session_endpoint": format!("{iss}/end_session"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["EdDSA"],
                "code_challenge_methods_supported": ["S256"],
                "authorization_response_iss_parameter_supported": true,
            }),
        )
    }

    fn authorize_page(&self, q: &HashMap<String, String>) -> Response<Full<Bytes>> {
        if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
            || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        {
            return html_response(400, "<p>Unknown client or no PKCE.</p>");
        }
        let hidden: String = q
            .iter()
            .map(|(k, v)| {
                format!(
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    escape(k),
                    escape(v)
                )
            })
            .collect();
        let buttons: String = USERS
            .iter()
            .map(|(sub, name, _, groups)| {
                format!(
                    "<button name=\"user\" value=\"{sub}\">Sign in as {name} ({})</button><br>",
                    groups.join(", ")
                )
            })
            .collect();
        html_response(
            200,
            &format!(
                "<h1>authgate demo identity provider</h1><p>Development only. Choose a user:</p>\
                 <form method=\"get\" action=\"/approve\">{hidden}{buttons}</form>"
            ),
        )
    }

    fn approve(&self, q: &HashMap<String, String>) -> Response<Full<Bytes>> {
        let Some(user) = USERS
            .iter()
            .find(|u| Some(u.0) == q.get("user").map(String::as_str))
        else {
            return html_response(400, "<p>Unknown user.</p>");
        };
        let Some(redirect_uri) = q.get("redirect_uri").and_then(|u| url::Url::parse(u).ok()) else {
            return html_response(400, "<p>No redirect URI.</p>");
        };
        let code = random_token();
        if let Ok(mut grants) = self.grants.lock() {
            grants.insert(
                code.clone(),
                Grant {
                    user: user.0,
                    nonce: q.get("nonce").cloned().unwrap_or_default(),
                    challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                    redirect_uri: redirect_uri.to_string(),
                },
            );
        }
        let mut target = redirect_uri;
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", q.get("state").map_or("", String::as_str))
            .append_pair("iss", &self.issuer);
        redirect(target.as_str())
    }

    fn token(&self, form: &HashMap<String, String>) -> Response<Full<Bytes>> {
        let invalid = || json_response(400, json!({"error": "invalid_grant"}));
        let (user, nonce) = match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let grant = self
                    .grants
                    .lock()
                    .ok()
                    .and_then(|mut g| g.remove(form.get("code").map_or("", String::as_str)));
                let Some(grant) = grant else { return invalid() };
                let verifier = form.get("code_verifier").map_or("", String::as_str);
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge
                    || form.get("redirect_uri") != Some(&grant.redirect_uri)
                {
                    return invalid();
                }
                (grant.user, Some(grant.nonce))
            }
            Some("refresh_token") => {
                let user = self.refresh.lock().ok().and_then(|mut r| {
                    r.remove(form.get("refresh_token").map_or("", String::as_str))
                });
                let Some(user) = user else { return invalid() };
                (user, None)
            }
            _ => return json_response(400, json!({"error": "unsupported_grant_type"})),
        };
        let Some(&(sub, name, email, groups)) = USERS.iter().find(|u| u.0 == user) else {
            return invalid();
        };
        let refresh = random_token();
        if let Ok(mut r) = self.refresh.lock() {
            r.insert(refresh.clone(), user);
        }
        let mut id_claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "sub": sub, "name": name, "email": email,
            "groups": groups, "iat": now(), "exp": now() + 900,
        });
        if let Some(nonce) = nonce {
            id_claims["nonce"] = json!(nonce);
        }
        let access_claims = json!({
            "iss": self.issuer, "aud": API_AUDIENCE, "sub": sub, "email": email, "groups": groups,
            "scope": "demo.read", "iat": now(), "exp": now() + 900,
        });
        let (Some(id_token), Some(access_token)) =
            (self.sign(&id_claims), self.sign(&access_claims))
        else {
            return json_response(503, json!({"error": "temporarily_unavailable"}));
        };
        json_response(
            200,
            json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 900,
                   "id_token": id_token, "refresh_token": refresh}),
        )
    }

    fn sign(&self, claims: &Value) -> Option<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("demo".into());
        jsonwebtoken::encode(&header, claims, &self.signing).ok()
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn html_response(status: u16, body: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>authgate demo sign-in</title></head><body>{body}</body></html>"
    ))));
    *resp.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::BAD_REQUEST);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = hyper::StatusCode::FOUND;
    if let Ok(value) = http::HeaderValue::from_str(location) {
        resp.headers_mut().insert(http::header::LOCATION, value);
    }
    resp
}
