//! One OpenID Connect provider: discovery, the authorization URL, the code and refresh-token
//! exchanges (via `openidconnect`), ID token validation (via the JWT issue's verifier and JWKS
//! cache), and userinfo.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClaimName, CoreClaimType,
    CoreClientAuthMethod, CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreResponseMode,
    CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse, CoreSubjectIdentifierType,
    CoreTokenIntrospectionResponse,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyAdditionalClaims, EndpointMaybeSet, EndpointNotSet, EndpointSet, HttpClientError, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl,
    RefreshToken, RequestTokenError, Scope, StandardErrorResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::token_response::RawTokenResponse;
use crate::config::Secret;
use crate::jwt::{Claims, Issuer, UniqueMembers};
use crate::session::UserRecord;

/// Metadata fields authgate reads beyond the core set.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RP-initiated logout endpoint.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
    /// RFC 9207: the provider sends `iss` with authorization responses.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// `openidconnect`'s core client, reading token responses with the ID token as text.
type Client = openidconnect::Client<
    EmptyAdditionalClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    RawTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What discovery found.
pub struct Discovered {
    client: Client,
    /// Where RP-initiated logout goes, if supported.
    pub end_session_endpoint: Option<String>,
    /// Whether the provider sends `iss` on the callback (RFC 9207).
    pub sends_iss: bool,
    userinfo_endpoint: Option<String>,
}

/// Why a provider interaction failed. Details go to logs; the browser gets a short page that
/// says which of these happened.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// No answer: connection refused, timeout, DNS, TLS, or a 5xx.
    #[error("identity provider unreachable: {0}")]
    Unreachable(String),
    /// The provider answers, but not as configured: discovery names another issuer, is not a
    /// discovery document, or is not found.
    #[error("identity provider does not match the configuration: {0}")]
    Misconfigured(String),
    /// The token endpoint refused the code or refresh token (`invalid_grant`, ...).
    #[error("token request refused: {0}")]
    Refused(String),
    /// The token endpoint answered something that is not a token response.
    #[error("token exchange failed: {0}")]
    Exchange(String),
    /// The ID token did not validate.
    #[error("invalid ID token: {0}")]
    IdToken(String),
    /// Userinfo failed or named another subject.
    #[error("userinfo failed: {0}")]
    UserInfo(String),
}

type TokenRequestError = RequestTokenError<
    HttpClientError<reqwest::Error>,
    StandardErrorResponse<CoreErrorResponseType>,
>;

impl From<TokenRequestError> for ProviderError {
    fn from(e: TokenRequestError) -> ProviderError {
        match &e {
            RequestTokenError::ServerResponse(answer) => {
                ProviderError::Refused(answer.error().as_ref().to_string())
            }
            RequestTokenError::Request(_) => ProviderError::Unreachable(error_chain(&e)),
            RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
                ProviderError::Exchange(error_chain(&e))
            }
        }
    }
}

/// Tokens after a code or refresh exchange, with the validated identity.
pub struct SignedIn {
    /// Validated claims (ID token, merged with userinfo when enabled), the raw ID token and
    /// the refresh token, packed for the session store.
    pub user: UserRecord,
    /// When the access token (or else the ID token) expires.
    pub expires_in: Duration,
}

fn record(
    claims: &Claims,
    id_token: &str,
    refresh_token: Option<&str>,
) -> Result<UserRecord, ProviderError> {
    UserRecord::new(claims, id_token, refresh_token)
        .map_err(|e| ProviderError::IdToken(e.to_string()))
}

/// A configured provider.
pub struct Provider {
    /// Config id.
    pub id: Arc<str>,
    /// Exact issuer.
    pub issuer: String,
    client_id: String,
    client_secret: Option<Secret>,
    post_body_auth: bool,
    scopes: Vec<String>,
    extra_params: Vec<(String, String)>,
    userinfo: bool,
    /// Path on the app's host where the browser lands after sign-out (default: the app's
    /// signed-out page).
    pub post_logout_redirect: Option<String>,
    http: reqwest::Client,
    /// ID token verification: audience = client id, keys from the provider's JWKS.
    id_tokens: Arc<Issuer>,
    discovered: ArcSwapOption<Discovered>,
    /// The last failed discovery: when, and why (repeated to callers until the next try).
    discovering: tokio::sync::Mutex<Option<(Instant, ProviderError)>>,
    /// The last readiness probe of an already discovered provider: when, and its outcome.
    probed: tokio::sync::Mutex<Option<(Instant, Result<(), ProviderError>)>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Settings a [`Provider`] is built from.
pub struct ProviderSettings {
    /// Config id.
    pub id: Arc<str>,
    /// Exact issuer.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Option<Secret>,
    /// Send the secret in the body instead of HTTP Basic.
    pub post_body_auth: bool,
    /// Scopes (without `openid`, which is always sent).
    pub scopes: Vec<String>,
    /// Extra authorization parameters.
    pub extra_params: Vec<(String, String)>,
    /// Fetch userinfo.
    pub userinfo: bool,
    /// Landing path after sign-out.
    pub post_logout_redirect: Option<String>,
    /// HTTP client (no redirects).
    pub http: reqwest::Client,
    /// ID token verification.
    pub id_tokens: Arc<Issuer>,
}

/// A retry of failed discovery waits at least this long.
const REDISCOVER_AFTER: Duration = Duration::from_secs(5);

impl Provider {
    /// A provider that discovers its metadata on first use.
    pub fn new(s: ProviderSettings) -> Provider {
        Provider {
            id: s.id,
            issuer: s.issuer,
            client_id: s.client_id,
            client_secret: s.client_secret,
            post_body_auth: s.post_body_auth,
            scopes: s.scopes,
            extra_params: s.extra_params,
            userinfo: s.userinfo,
            post_logout_redirect: s.post_logout_redirect,
            http: s.http,
            id_tokens: s.id_tokens,
            discovered: ArcSwapOption::empty(),
            discovering: tokio::sync::Mutex::new(None),
            probed: tokio::sync::Mutex::new(None),
        }
    }

    /// The keys the provider's ID tokens are checked with.
    pub fn id_token_keys(&self) -> &Arc<crate::jwt::jwks::IssuerKeys> {
        &self.id_tokens.keys
    }

    /// How this provider's ID tokens (and logout tokens) are verified.
    pub(super) fn id_token_issuer(&self) -> &Issuer {
        &self.id_tokens
    }

    /// The client id the provider knows this gateway by.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// True once discovery succeeded.
    pub fn is_discovered(&self) -> bool {
        self.discovered.load().is_some()
    }

    /// The discovered metadata, discovering now if needed (at most one attempt per few
    /// seconds while the provider is down).
    pub async fn discovered(&self) -> Result<Arc<Discovered>, ProviderError> {
        if let Some(d) = self.discovered.load_full() {
            return Ok(d);
        }
        let mut last = self.discovering.lock().await;
        if let Some(d) = self.discovered.load_full() {
            return Ok(d);
        }
        if let Some((at, why)) = last.as_ref() {
            if at.elapsed() < REDISCOVER_AFTER {
                return Err(why.clone());
            }
        }
        let discovered = match self.discover().await {
            Ok(d) => Arc::new(d),
            Err(e) => {
                tracing::warn!(provider = %self.id, error = %e, "OIDC discovery failed");
                *last = Some((Instant::now(), e.clone()));
                return Err(e);
            }
        };
        *last = None;
        self.discovered.store(Some(discovered.clone()));
        // Warm the ID token keys too.
        self.id_tokens.keys.refresh().await;
        Ok(discovered)
    }

    /// Whether sign-ins can start and finish now: the provider discovered (discovering now if
    /// needed), its discovery document still answering as configured — asked again at most
    /// once per few seconds, however often readiness is probed — and its ID token keys held.
    pub async fn health(&self) -> Result<String, String> {
        if self.is_discovered() {
            let mut probed = self.probed.lock().await;
            if probed
                .as_ref()
                .is_none_or(|(at, _)| at.elapsed() >= REDISCOVER_AFTER)
            {
                let outcome = self.discover().await.map(|_| ());
                *probed = Some((Instant::now(), outcome));
            }
            if let Some((_, Err(e))) = probed.as_ref() {
                return Err(e.to_string());
            }
        } else {
            self.discovered().await.map_err(|e| e.to_string())?;
        }
        self.id_tokens
            .keys
            .health()
            .map(|keys| format!("discovered, ID token keys: {keys}"))
            .map_err(|e| format!("ID token keys: {e}"))
    }

    async fn discover(&self) -> Result<Discovered, ProviderError> {
        let unreachable = |e: String| ProviderError::Unreachable(e);
        let mismatch = |e: String| ProviderError::Misconfigured(e);
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(unreachable(format!("discovery answered {status}")));
        }
        if !status.is_success() {
            return Err(mismatch(format!("discovery answered {status}")));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(error_chain(&e)))?;
        let metadata: Metadata = serde_json::from_slice(&body)
            .map_err(|e| mismatch(format!("discovery document: {e}")))?;
        if metadata.issuer().as_str() != self.issuer {
            return Err(mismatch(format!(
                "discovery names issuer `{}`, not the configured `{}`",
                metadata.issuer().as_str(),
                self.issuer
            )));
        }
        let extra = metadata.additional_metadata().clone();
        let userinfo_endpoint = metadata.userinfo_endpoint().map(|u| u.url().to_string());
        let mut client: Client = openidconnect::Client::from_provider_metadata(
            metadata,
            ClientId::new(self.client_id.clone()),
            self.client_secret
                .as_ref()
                .map(|s| ClientSecret::new(s.expose().to_string())),
        );
        client = client.set_auth_type(if self.post_body_auth {
            AuthType::RequestBody
        } else {
            AuthType::BasicAuth
        });
        Ok(Discovered {
            client,
            end_session_endpoint: extra.end_session_endpoint,
            sends_iss: extra.authorization_response_iss_parameter_supported,
            userinfo_endpoint,
        })
    }

    /// The authorization URL for a new sign-in, with its state, nonce and PKCE verifier.
    /// With `fresh_login`, the provider is asked to authenticate the user again
    /// (`prompt=login`) rather than reuse its session: signing in as someone else.
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        fresh_login: bool,
    ) -> Result<(String, String, String, String), ProviderError> {
        let d = self.discovered().await?;
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| ProviderError::Misconfigured(format!("redirect URI: {e}")))?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = d
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_redirect_uri(Cow::Owned(redirect))
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        for (name, value) in &self.extra_params {
            if fresh_login && name == "prompt" {
                continue;
            }
            request = request.add_extra_param(name.clone(), value.clone());
        }
        if fresh_login {
            request = request.add_prompt(openidconnect::core::CoreAuthPrompt::Login);
        }
        let (url, state, nonce) = request.url();
        Ok((
            url.to_string(),
            state.secret().clone(),
            nonce.secret().clone(),
            verifier.secret().clone(),
        ))
    }

    /// Exchanges an authorization code and validates the result.
    pub async fn exchange_code(
        &self,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
        nonce: &str,
    ) -> Result<SignedIn, ProviderError> {
        let d = self.discovered().await?;
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| ProviderError::Exchange(format!("redirect URI: {e}")))?;
        let response = d
            .client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| ProviderError::Exchange(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&self.http)
            .await?;
        let id_token = response
            .raw_id_token()
            .ok_or_else(|| ProviderError::IdToken("no id_token in the token response".into()))?;
        let claims = self.validate_id_token(id_token, Some(nonce)).await?;
        let claims = if self.userinfo {
            self.merge_userinfo(&d, response.access_token().secret(), claims)
                .await?
        } else {
            claims
        };
        let refresh_token = response.refresh_token().map(|t| t.secret().as_str());
        Ok(SignedIn {
            expires_in: expires_in(response.expires_in(), &claims),
            user: record(&claims, id_token, refresh_token)?,
        })
    }

    /// Uses the refresh token of a signed-in user. A new ID token must describe the same
    /// sign-in (OIDC Core 12.2: `iss`, `sub`, `aud`, `azp`, `auth_time`); claims it lacks
    /// (those that came from userinfo, say) are kept from the session, and with `userinfo`
    /// they are read again with the new access token.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        previous_user: &UserRecord,
    ) -> Result<SignedIn, ProviderError> {
        let previous = previous_user.claims();
        let d = self.discovered().await?;
        let token = RefreshToken::new(refresh_token.to_string());
        let response = d
            .client
            .exchange_refresh_token(&token)
            .map_err(|e| ProviderError::Exchange(e.to_string()))?
            .request_async(&self.http)
            .await?;
        let (mut claims, id_token) = match response.raw_id_token() {
            Some(raw) => {
                let mut claims = self.validate_id_token(raw, None).await?;
                same_sign_in(&previous, &claims)?;
                for (name, value) in &previous {
                    if !claims.contains_key(name) && !TOKEN_BOUND.contains(&name.as_str()) {
                        claims.insert(name.clone(), value.clone());
                    }
                }
                (claims, raw.to_string())
            }
            None => (previous, previous_user.id_token()),
        };
        if self.userinfo {
            let access_token = response.access_token().secret();
            match self.merge_userinfo(&d, access_token, claims.clone()).await {
                Ok(merged) => claims = merged,
                // Another subject is an attack or a broken provider: the session ends.
                Err(e @ ProviderError::IdToken(_)) => return Err(e),
                // Unreachable for a moment: the claims read at the last success stay.
                Err(e) => {
                    tracing::warn!(provider = %self.id, error = %e, "userinfo failed at refresh; keeping the session's claims")
                }
            }
        }
        // Rotating refresh tokens: keep the new one; otherwise the old one stays valid.
        let refresh_token = response
            .refresh_token()
            .map_or(refresh_token, |t| t.secret().as_str());
        Ok(SignedIn {
            expires_in: expires_in(response.expires_in(), &claims),
            user: record(&claims, &id_token, Some(refresh_token))?,
        })
    }

    /// Signature, `iss`, `aud` (the client id), `exp`, `iat`, `azp`, and `nonce` when given.
    async fn validate_id_token(
        &self,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<Claims, ProviderError> {
        let bad = |why: &str| ProviderError::IdToken(why.to_string());
        let claims = self
            .id_tokens
            .verify(token)
            .await
            .map_err(|e| ProviderError::IdToken(e.to_string()))?;
        if claims.get("iat").and_then(Value::as_u64).is_none() {
            return Err(bad("no iat"));
        }
        if claims
            .get("sub")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(bad("no sub"));
        }
        let several_audiences = claims
            .get("aud")
            .and_then(Value::as_array)
            .is_some_and(|a| a.len() > 1);
        match claims.get("azp").and_then(Value::as_str) {
            Some(azp) if azp != self.client_id => return Err(bad("azp names another client")),
            None if several_audiences => return Err(bad("several audiences and no azp")),
            _ => {}
        }
        if let Some(expected) = nonce {
            let given = claims.get("nonce").and_then(Value::as_str).unwrap_or("");
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(
                given.as_bytes(),
                expected.as_bytes(),
            )
            .is_ok();
            if !same {
                return Err(bad("nonce mismatch"));
            }
        }
        Ok(claims)
    }

    async fn merge_userinfo(
        &self,
        d: &Discovered,
        access_token: &str,
        mut claims: Claims,
    ) -> Result<Claims, ProviderError> {
        let failed = |e: String| ProviderError::UserInfo(e);
        let url = d
            .userinfo_endpoint
            .as_ref()
            .ok_or_else(|| failed("the provider has no userinfo endpoint".into()))?;
        let resp = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(failed(format!("status {}", resp.status())));
        }
        // Read like a token's payload: a claim named twice is refused, not guessed.
        let body = resp.bytes().await.map_err(|e| failed(e.to_string()))?;
        let info: Claims = match serde_json::from_slice::<UniqueMembers>(&body) {
            Ok(UniqueMembers(Value::Object(info))) => info,
            Ok(_) => return Err(failed("userinfo is not a JSON object".into())),
            Err(e) => return Err(failed(e.to_string())),
        };
        if info.get("sub") != claims.get("sub") {
            return Err(ProviderError::IdToken(
                "userinfo names another subject".into(),
            ));
        }
        for (k, v) in info {
            // Claims that bind the ID token, or describe how the user signed in, stay as the
            // ID token stated them.
            if !TOKEN_BOUND.contains(&k.as_str()) && !SIGN_IN_FACTS.contains(&k.as_str()) {
                claims.insert(k, v);
            }
        }
        Ok(claims)
    }
}

/// Claims that describe one ID token rather than the user: never taken from userinfo, never
/// carried from an old ID token into a new one.
const TOKEN_BOUND: [&str; 11] = [
    "iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "at_hash", "c_hash", "jti",
];

/// Claims that describe the sign-in itself: only an ID token states them, and they are carried
/// across refreshes like the user's other claims.
const SIGN_IN_FACTS: [&str; 4] = ["auth_time", "acr", "amr", "sid"];

/// OIDC Core 12.2: a refreshed ID token names the same issuer, subject, audience and
/// authorized party as the sign-in's, and the same `auth_time` when it has one.
fn same_sign_in(previous: &Claims, renewed: &Claims) -> Result<(), ProviderError> {
    // `aud` may be written as one string or a list of one.
    let audiences = |c: &Claims| -> Vec<Value> {
        match c.get("aud") {
            Some(Value::Array(list)) => list.clone(),
            Some(one) => vec![one.clone()],
            None => Vec::new(),
        }
    };
    if audiences(previous) != audiences(renewed) {
        return Err(ProviderError::IdToken(
            "the refreshed ID token has another `aud`".into(),
        ));
    }
    for name in ["iss", "sub", "azp"] {
        if previous.get(name) != renewed.get(name) {
            return Err(ProviderError::IdToken(format!(
                "the refreshed ID token has another `{name}`"
            )));
        }
    }
    if renewed.contains_key("auth_time") && previous.get("auth_time") != renewed.get("auth_time") {
        return Err(ProviderError::IdToken(
            "the refreshed ID token has another `auth_time`".into(),
        ));
    }
    Ok(())
}

fn expires_in(access: Option<Duration>, claims: &Claims) -> Duration {
    access.unwrap_or_else(|| {
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Duration::from_secs(exp.saturating_sub(now))
    })
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
