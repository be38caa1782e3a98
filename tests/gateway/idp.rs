//! An OpenID Connect provider written for the tests: it signs users in without asking, and
//! can be told to misbehave in every way the negative tests need. It speaks real HTTP on
//! loopback: discovery, authorize, token (code with PKCE, refresh), JWKS, userinfo,
//! end-session.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::tokens::{b64, now, TestKey};

pub const CLIENT_ID: &str = "authgate-test";
pub const CLIENT_SECRET: &str = "test-client-secret";

/// How the provider should misbehave (all off by default).
#[derive(Default, Clone)]
pub struct Knobs {
    pub authorize_error: Option<(String, String)>,
    pub discovery_issuer: Option<String>,
    pub advertise_iss: bool,
    pub callback_iss: Option<String>,
    pub id_nonce: Option<String>,
    pub id_aud: Option<Value>,
    pub id_iss: Option<String>,
    pub id_exp_offset: Option<i64>,
    pub id_alg_none: bool,
    pub id_bad_signature: bool,
    pub userinfo_sub: Option<String>,
    pub expires_in: Option<u64>,
    pub refreshed_expires_in: Option<u64>,
    pub refresh_fails: bool,
    /// Claims left out of the ID tokens of a sign-in.
    pub id_drop: Vec<&'static str>,
    /// Claims set on (or, with `null`, removed from) refreshed ID tokens.
    pub refreshed_claims: Option<Value>,
    /// Claims only userinfo answers with.
    pub userinfo_extra: Option<Value>,
    /// The token endpoint discovery names (default: the provider's own).
    pub token_endpoint: Option<String>,
    /// JSON members written verbatim at the end of a sign-in's ID token payload (a repeated
    /// claim name, say).
    pub id_raw_members: Option<String>,
    /// The status and body the token endpoint answers refresh requests with (a 503 page, say).
    pub refresh_answer: Option<(u16, String)>,
    /// Accept every request and never answer.
    pub hang: bool,
    /// Answer every request 503, as a provider that is down behind its load balancer.
    pub unavailable: bool,
    /// The provider session (`sid`) ID tokens name.
    pub sid: Option<String>,
    /// The user ID tokens name (default `user-1`).
    pub sub: Option<String>,
}

struct Grant {
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct State {
    knobs: Knobs,
    grants: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, String>,
    token_calls: usize,
    refresh_calls: usize,
    end_session_calls: Vec<String>,
    issued_id_tokens: Vec<String>,
}

/// The provider.
#[derive(Clone)]
pub struct TestIdp {
    pub addr: SocketAddr,
    key: Arc<TestKey>,
    state: Arc<Mutex<State>>,
    started: u64,
}

impl TestIdp {
    pub async fn start() -> TestIdp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = TestIdp {
            addr: listener.local_addr().unwrap(),
            key: Arc::new(TestKey::rsa("idp-key")),
            state: Arc::new(Mutex::new(State::default())),
            started: now(),
        };
        let served = idp.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let idp = served.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let idp = idp.clone();
                        async move { Ok::<_, Infallible>(idp.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        idp
    }

    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.state.lock().unwrap().knobs);
    }

    pub fn token_calls(&self) -> usize {
        self.state.lock().unwrap().token_calls
    }

    pub fn refresh_calls(&self) -> usize {
        self.state.lock().unwrap().refresh_calls
    }

    /// Every ID token issued so far, in order.
    pub fn issued_id_tokens(&self) -> Vec<String> {
        self.state.lock().unwrap().issued_id_tokens.clone()
    }

    pub fn end_session_calls(&self) -> Vec<String> {
        self.state.lock().unwrap().end_session_calls.clone()
    }

    /// The claims of a valid logout token (Back-Channel Logout 1.0) for `sub` and/or `sid`,
    /// with a fresh `jti`.
    pub fn logout_claims(&self, sub: Option<&str>, sid: Option<&str>) -> Value {
        let mut claims = json!({
            "iss": self.issuer(), "aud": CLIENT_ID, "iat": now(), "exp": now() + 120,
            "jti": format!("jti-{}", crate::tokens::now_nanos()),
            "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        if let Some(sub) = sub {
            claims["sub"] = json!(sub);
        }
        if let Some(sid) = sid {
            claims["sid"] = json!(sid);
        }
        claims
    }

    /// `claims` signed with the provider's key, under a logout token's header.
    pub fn logout_token(&self, claims: &Value) -> String {
        self.key.token_with_header(
            &json!({"alg": "RS256", "typ": "logout+jwt", "kid": "idp-key"}),
            claims,
        )
    }

    /// `claims` signed with the provider's key under `header`.
    pub fn signed(&self, header: &Value, claims: &Value) -> String {
        self.key.token_with_header(header, claims)
    }

    /// The YAML of an `oidc_providers` entry for this provider.
    pub fn provider_yaml(&self, extra: &str) -> String {
        format!(
            "  - {{id: test-idp, issuer: '{}', client_id: {CLIENT_ID}, client_secret: {CLIENT_SECRET}{extra}}}\n",
            self.issuer()
        )
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        if self.state.lock().unwrap().knobs.hang {
            tokio::time::sleep(std::time::Duration::from_secs(120)).await;
        }
        if self.state.lock().unwrap().knobs.unavailable {
            let mut resp = Response::new(Full::new(Bytes::from_static(b"down for maintenance")));
            *resp.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
            return resp;
        }
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
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
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
            "/authorize" => self.authorize(&query),
            "/token" => self.token(&form, &auth),
            "/jwks" => json_response(200, json!({"keys": [self.key.jwk()]})),
            "/userinfo" => self.userinfo(),
            "/end_session" => {
                self.state.lock().unwrap().end_session_calls.push(
                    url::form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(query.iter())
                        .finish(),
                );
                json_response(200, json!({"signed_out": true}))
            }
            _ => json_response(404, json!({"error": "not_found"})),
        }
    }

    fn discovery(&self) -> Response<Full<Bytes>> {
        let knobs = self.state.lock().unwrap().knobs.clone();
        let iss = self.issuer();
        json_response(
            200,
            json!({
                "issuer": knobs.discovery_issuer.unwrap_or_else(|| iss.clone()),
                "authorization_endpoint": format!("{iss}/authorize"),
                "token_endpoint": knobs.token_endpoint.clone().unwrap_or_else(|| format!("{iss}/token")),
                "jwks_uri": format!("{iss}/jwks"),
                "userinfo_endpoint": format!("{iss}/userinfo"),
                "end_session_endpoint": format!("{iss}/end_session"),
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "authorization_response_iss_parameter_supported": knobs.advertise_iss,
            }),
        )
    }

    fn authorize(&self, q: &HashMap<String, String>) -> Response<Full<Bytes>> {
        let mut state = self.state.lock().unwrap();
        let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
        let st = q.get("state").cloned().unwrap_or_default();
        let mut target = url::Url::parse(&redirect_uri).unwrap();
        if let Some((error, description)) = &state.knobs.authorize_error {
            target
                .query_pairs_mut()
                .append_pair("error", error)
                .append_pair("error_description", description)
                .append_pair("state", &st);
            return redirect(target.as_str());
        }
        assert_eq!(q.get("response_type").map(String::as_str), Some("code"));
        assert_eq!(
            q.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        assert!(q
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|x| x == "openid")));
        let code = format!("code-{}", crate::tokens::now_nanos());
        state.grants.insert(
            code.clone(),
            Grant {
                nonce: q.get("nonce").cloned().unwrap_or_default(),
                challenge: q.get("code_challenge").cloned().unwrap_or_default(),
                redirect_uri: redirect_uri.clone(),
            },
        );
        let mut pairs = target.query_pairs_mut();
        pairs.append_pair("code", &code).append_pair("state", &st);
        if let Some(iss) = &state.knobs.callback_iss {
            pairs.append_pair("iss", iss);
        } else if state.knobs.advertise_iss {
            pairs.append_pair("iss", &self.issuer());
        }
        drop(pairs);
        redirect(target.as_str())
    }

    fn token(&self, form: &HashMap<String, String>, auth: &str) -> Response<Full<Bytes>> {
        let expected = format!(
            "Basic {}",
            STANDARD.encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if auth != expected {
            return json_response(401, json!({"error": "invalid_client"}));
        }
        let mut state = self.state.lock().unwrap();
        state.token_calls += 1;
        let knobs = state.knobs.clone();
        match form.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = form.get("code").cloned().unwrap_or_default();
                let Some(grant) = state.grants.remove(&code) else {
                    return json_response(400, json!({"error": "invalid_grant"}));
                };
                let verifier = form.get("code_verifier").cloned().unwrap_or_default();
                let digest =
                    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
                if URL_SAFE_NO_PAD.encode(digest.as_ref()) != grant.challenge
                    || form.get("redirect_uri") != Some(&grant.redirect_uri)
                {
                    return json_response(400, json!({"error": "invalid_grant"}));
                }
                let refresh = format!("refresh-{}", crate::tokens::now_nanos());
                state
                    .refresh_tokens
                    .insert(refresh.clone(), "user-1".into());
                let nonce = knobs.id_nonce.clone().unwrap_or(grant.nonce);
                let id_token = self.id_token(&knobs, Some(&nonce));
                state.issued_id_tokens.push(id_token.clone());
                json_response(
                    200,
                    json!({"access_token": "access-1", "token_type": "Bearer",
                           "expires_in": knobs.expires_in.unwrap_or(3600),
                           "id_token": id_token, "refresh_token": refresh}),
                )
            }
            Some("refresh_token") => {
                state.refresh_calls += 1;
                if let Some((status, body)) = &knobs.refresh_answer {
                    let mut resp = Response::new(Full::new(Bytes::from(body.clone())));
                    *resp.status_mut() = hyper::StatusCode::from_u16(*status).unwrap();
                    return resp;
                }
                let given = form.get("refresh_token").cloned().unwrap_or_default();
                if knobs.refresh_fails || state.refresh_tokens.remove(&given).is_none() {
                    return json_response(400, json!({"error": "invalid_grant"}));
                }
                let rotated = format!("refresh-{}", crate::tokens::now_nanos());
                state
                    .refresh_tokens
                    .insert(rotated.clone(), "user-1".into());
                let mut id_token = self.id_token(&Knobs::default(), None);
                if let Some(changes) = &knobs.refreshed_claims {
                    let mut claims = self.claims(&Knobs::default(), None);
                    for (k, v) in changes.as_object().unwrap() {
                        if v.is_null() {
                            claims.as_object_mut().unwrap().remove(k);
                        } else {
                            claims[k] = v.clone();
                        }
                    }
                    id_token = self.key.token(&claims);
                }
                state.issued_id_tokens.push(id_token.clone());
                json_response(
                    200,
                    json!({"access_token": "access-2", "token_type": "Bearer",
                           "expires_in": knobs.refreshed_expires_in.unwrap_or(3600),
                           "id_token": id_token,
                           "refresh_token": rotated}),
                )
            }
            _ => json_response(400, json!({"error": "unsupported_grant_type"})),
        }
    }

    /// The claims of an ID token (`auth_time` is the provider's start, like one sign-in).
    fn claims(&self, knobs: &Knobs, nonce: Option<&str>) -> Value {
        let exp = (now() as i64 + knobs.id_exp_offset.unwrap_or(600)) as u64;
        let mut claims = json!({
            "iss": knobs.id_iss.clone().unwrap_or_else(|| self.issuer()),
            "aud": knobs.id_aud.clone().unwrap_or(json!(CLIENT_ID)),
            "sub": knobs.sub.clone().unwrap_or_else(|| "user-1".into()),
            "email": "user@example.com", "groups": ["staff"],
            "iat": now(), "exp": exp, "auth_time": self.started,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(sid) = &knobs.sid {
            claims["sid"] = json!(sid);
        }
        for name in &knobs.id_drop {
            claims.as_object_mut().unwrap().remove(*name);
        }
        claims
    }

    fn id_token(&self, knobs: &Knobs, nonce: Option<&str>) -> String {
        let claims = self.claims(knobs, nonce);
        if knobs.id_alg_none {
            let header = b64(json!({"alg": "none"}).to_string().as_bytes());
            return format!("{header}.{}.", b64(claims.to_string().as_bytes()));
        }
        if let Some(members) = &knobs.id_raw_members {
            let text = claims.to_string();
            let payload = format!("{}{members}}}", &text[..text.len() - 1]);
            let header = json!({"alg": "RS256", "typ": "JWT", "kid": "idp-key"}).to_string();
            return self.key.sign_texts(&header, &payload);
        }
        let token = self.key.token(&claims);
        if knobs.id_bad_signature {
            let other = TestKey::rsa("idp-key");
            let forged = other.token(&claims);
            return forged;
        }
        token
    }

    fn userinfo(&self) -> Response<Full<Bytes>> {
        let knobs = self.state.lock().unwrap().knobs.clone();
        let mut info = json!({"sub": knobs.userinfo_sub.unwrap_or_else(|| "user-1".into()),
                              "email": "user@example.com", "name": "Test User"});
        if let Some(extra) = knobs.userinfo_extra {
            for (k, v) in extra.as_object().unwrap() {
                info[k] = v.clone();
            }
        }
        json_response(200, info)
    }
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    resp
}

fn redirect(location: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = hyper::StatusCode::FOUND;
    resp.headers_mut()
        .insert("location", location.parse().unwrap());
    resp
}
