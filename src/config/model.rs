//! The configuration *file model*: exactly what `authgate.yaml` may contain.
//!
//! Every struct denies unknown fields, because a misspelt key in an auth rule is a security
//! hole, not a typo. Defaults are written on each field's doc comment and mirrored in the
//! commented reference file `config/authgate.yaml`. Nothing here is used on the request path:
//! [`crate::config::compile`] turns this model into the runtime snapshot.

use serde::{Deserialize, Serialize};

use super::duration::Seconds;
use super::secret::Secret;

/// The whole configuration file.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Where the gateway accepts traffic. Default: one plain listener on `127.0.0.1:8080`.
    #[serde(default = "default_listeners")]
    pub listen: Vec<ListenerFile>,
    /// Custom domains added through the admin API.
    #[serde(default)]
    pub domains: DomainsFile,
    /// The ACME CA that issues custom domains' certificates.
    #[serde(default)]
    pub acme: AcmeFile,
    /// TLS termination (certificates by SNI).
    #[serde(default)]
    pub tls: TlsFile,
    /// Process settings (worker threads, shutdown).
    #[serde(default)]
    pub server: ServerFile,
    /// The admin listener: health, readiness and metrics.
    #[serde(default)]
    pub admin: AdminFile,
    /// Log format and level.
    #[serde(default)]
    pub log: LogFile,
    /// Request and response size limits, shared by every app.
    #[serde(default)]
    pub limits: LimitsFile,
    /// Peers (CIDRs or addresses) whose `X-Forwarded-*` headers are believed and extended.
    /// Default: none — the gateway sets those headers from the connection alone.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Identity headers the gateway owns: they are removed from every client request.
    #[serde(default)]
    pub identity_headers: IdentityHeadersFile,
    /// Headers that ask an origin to serve another path, host or method than the one the
    /// gateway decided on: they are removed from every client request.
    #[serde(default)]
    pub rewrite_headers: RewriteHeadersFile,
    /// OpenID Connect providers apps sign users in with. Default: none.
    #[serde(default)]
    pub oidc_providers: Vec<OidcProviderFile>,
    /// Sign-in sessions: cookie keys, idle timeout, capacity.
    #[serde(default)]
    pub sessions: SessionsFile,
    /// Issuers whose JWT bearer tokens apps accept. Default: none.
    #[serde(default)]
    pub jwt_issuers: Vec<JwtIssuerFile>,
    /// The protected apps, each reached by its host name.
    #[serde(default)]
    pub apps: Vec<AppFile>,
    /// The gateway's own pages (refusals, sign-out): templates and branding.
    #[serde(default)]
    pub pages: PagesFile,
    /// The keys identity assertions are signed with, and their rotation.
    #[serde(default)]
    pub signing: super::model_signing::SigningFile,
    /// Where the admin API's apps are kept: this node's files, or Redis shared by replicas.
    #[serde(default)]
    pub control: super::model_control::ControlFile,
}

/// The gateway's own pages, shown to browsers (API clients get JSON).
#[derive(schemars::JsonSchema, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PagesFile {
    /// A directory of templates (minijinja, HTML auto-escaped) that replace the built-in
    /// ones of the same name: `layout.html`, `refusal.html`, `signout.html`,
    /// `signed_out.html`. Default: none (the built-in pages).
    pub templates_dir: Option<String>,
    /// How every app's pages look, unless the app has its own `branding`.
    #[serde(default)]
    pub branding: BrandingFile,
}

/// How pages look. Each key left out keeps the wider setting (the app's falls back to
/// `pages.branding`, that to the built-in look).
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BrandingFile {
    /// Shown in the page header and window title. Default: `authgate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A logo: an `https:` URL or a `data:image/...` URL. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_url: Option<String>,
    /// The accent colour, `#rgb` or `#rrggbb`. Default: `#3b5bdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<String>,
}

/// An OpenID Connect provider (authorization code flow with PKCE).
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderFile {
    /// Name apps refer to it by. Required.
    pub id: String,
    /// The issuer URL; its discovery document must name exactly this issuer. Required.
    pub issuer: String,
    /// The client id registered at the provider. Required.
    pub client_id: String,
    /// The client secret (secret). Default: none (a public client, PKCE only).
    pub client_secret: Option<Secret>,
    /// How the secret is sent: `client_secret_basic` or `client_secret_post`.
    /// Default: `client_secret_basic`.
    #[serde(default)]
    pub client_auth: ClientAuthFile,
    /// Scopes requested; `openid` is always added. Default: `openid profile email`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Extra authorization request parameters (e.g. `prompt: login`). Default: none.
    #[serde(default)]
    pub extra_authorize_params: std::collections::BTreeMap<String, String>,
    /// Fetch userinfo after sign-in and merge its claims (its `sub` must match). Default: false.
    #[serde(default)]
    pub userinfo: bool,
    /// ID token signature algorithms accepted. Default: RS256, ES256, EdDSA.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Allowed clock skew for ID token times. Default: 60s.
    #[serde(default = "sixty_seconds")]
    pub leeway: Seconds,
    /// Timeout of each request to the provider. Default: 5s.
    #[serde(default = "five_seconds")]
    pub fetch_timeout: Seconds,
    /// Where the browser lands after sign-out: a path on the app's host. Default: the app's
    /// signed-out page, `{auth_prefix}/signed-out` (register that URL as a post-logout
    /// redirect URI at the provider).
    pub post_logout_redirect: Option<String>,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

/// Client authentication at the token endpoint.
#[derive(schemars::JsonSchema, Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthFile {
    /// HTTP Basic with the client id and secret.
    #[default]
    ClientSecretBasic,
    /// Client id and secret in the request body.
    ClientSecretPost,
}

/// Sign-in sessions.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionsFile {
    /// Keys (secrets, at least 32 bytes each) that sign session cookies and seal login
    /// cookies; the first is current, the others still open existing cookies (rotation).
    /// Default: a random key per process — sessions do not survive a restart.
    pub cookie_keys: Vec<Secret>,
    /// A session unused this long ends. Default: 2h.
    pub idle_timeout: Seconds,
    /// Sessions held in memory; the least recently used beyond this end. Default: 100000.
    /// Read at start-up.
    pub max_sessions: u64,
    /// Tokens are refreshed this long before they expire. Default: 60s.
    pub refresh_before_expiry: Seconds,
    /// A sign-in must come back from the provider within this. Default: 10m.
    pub login_timeout: Seconds,
    /// Sign-ins in progress per browser (parallel tabs); older ones are dropped. Default: 3.
    pub max_pending_logins: usize,
    /// Where sessions live: `memory` (this process; one replica) or `redis` (shared by every
    /// replica; needs `sessions.redis` and `cookie_keys`). Default: `memory`. Read at start-up.
    pub store: SessionStoreFile,
    /// The Redis (or Valkey) server(s) for `store: redis`.
    pub redis: Option<RedisFile>,
}

/// Where sessions live.
#[derive(schemars::JsonSchema, Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SessionStoreFile {
    /// In this process's memory.
    #[default]
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// How Redis is deployed.
#[derive(schemars::JsonSchema, Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisModeFile {
    /// One server (`url`).
    #[default]
    Standalone,
    /// Sentinels (`nodes`) that know the master `sentinel_master`.
    Sentinel,
    /// A Redis Cluster reached through seed nodes (`nodes`).
    Cluster,
}

/// A Redis connection.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisFile {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` for TLS (secret: it may hold a
    /// password; write `${REDIS_URL}`). Standalone: the server. Sentinel and Cluster: the
    /// user, password and TLS every node is reached with (its host is not used).
    pub url: Secret,
    /// `standalone`, `sentinel` or `cluster`. Default: `standalone`.
    #[serde(default)]
    pub mode: RedisModeFile,
    /// Sentinel mode: the name the sentinels monitor the master under.
    pub sentinel_master: Option<String>,
    /// Sentinel mode: the sentinels; cluster mode: seed nodes. `host:port` each.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Written before every key, so one Redis can serve several gateways. Default:
    /// `authgate:`.
    #[serde(default = "redis_key_prefix")]
    pub key_prefix: String,
    /// Longest wait for a connection. Default: 2s.
    #[serde(default = "two_seconds")]
    pub connect_timeout: Seconds,
    /// Longest wait for an answer. Default: 1s.
    #[serde(default = "one_second")]
    pub response_timeout: Seconds,
    /// Sessions each replica keeps near (in its memory) so a signed-in request costs no round
    /// trip; 0 reads Redis on every request. Default: `sessions.max_sessions`.
    pub near_cache_entries: Option<u64>,
    /// Connections each replica keeps to Redis (to each node in cluster mode), used in turn;
    /// each is multiplexed, so one carries many calls at once. 1 to 64. Default: 1.
    #[serde(default = "one_connection")]
    pub pool_size: u32,
}

fn one_connection() -> u32 {
    1
}

fn redis_key_prefix() -> String {
    "authgate:".into()
}

fn two_seconds() -> Seconds {
    Seconds(2)
}

fn one_second() -> Seconds {
    Seconds(1)
}

impl Default for SessionsFile {
    fn default() -> Self {
        Self {
            cookie_keys: Vec::new(),
            idle_timeout: Seconds(2 * 3600),
            max_sessions: 100_000,
            refresh_before_expiry: Seconds(60),
            login_timeout: Seconds(600),
            max_pending_logins: 3,
            store: SessionStoreFile::Memory,
            redis: None,
        }
    }
}

/// One trusted JWT issuer.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtIssuerFile {
    /// Name apps refer to it by. Required.
    pub id: String,
    /// The exact `iss` value of its tokens. Required.
    pub issuer: String,
    /// Where its JWKS is. Default: the `jwks_uri` of its discovery document
    /// (`{issuer}/.well-known/openid-configuration`), whose `issuer` must equal `issuer`.
    pub jwks_uri: Option<String>,
    /// A local JWKS file instead of fetching one (re-read on reload).
    pub jwks_file: Option<String>,
    /// Accepted algorithms. Default: RS256, ES256, EdDSA. `none` is never accepted; HS256/384/512
    /// only with `shared_secret`.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Shared secret (secret) for HS* algorithms. Default: none.
    pub shared_secret: Option<Secret>,
    /// Accepted audiences: a token's `aud` must name one. Required (at least one).
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed clock skew for `exp`, `nbf`, `iat`. Default: 60s.
    #[serde(default = "sixty_seconds")]
    pub leeway: Seconds,
    /// Required `typ` header, e.g. `at+jwt`. Default: not checked.
    pub required_typ: Option<String>,
    /// Tokens longer than this are refused before parsing. Default: 16384.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// At most one JWKS fetch per this interval for unknown `kid`s. Default: 30s.
    #[serde(default = "thirty_seconds")]
    pub unknown_kid_cooldown: Seconds,
    /// Shortest JWKS refresh interval, whatever `Cache-Control: max-age` says. Default: 5m.
    #[serde(default = "five_minutes")]
    pub min_refresh: Seconds,
    /// Longest JWKS refresh interval. Default: 1h.
    #[serde(default = "one_hour")]
    pub max_refresh: Seconds,
    /// While the JWKS endpoint fails, the last good keys serve until this old. Default: 24h.
    #[serde(default = "one_day")]
    pub stale_max_age: Seconds,
    /// Timeout of each request to the issuer. Default: 5s.
    #[serde(default = "five_seconds")]
    pub fetch_timeout: Seconds,
    /// Longest a verified token stays cached (never past its `exp`). Default: 5m.
    #[serde(default = "five_minutes")]
    pub cache_ttl: Seconds,
}

fn default_algorithms() -> Vec<String> {
    ["RS256", "ES256", "EdDSA"].map(String::from).to_vec()
}

fn default_max_token_bytes() -> usize {
    16 * 1024
}

fn thirty_seconds() -> Seconds {
    Seconds(30)
}

fn five_minutes() -> Seconds {
    Seconds(300)
}

fn one_hour() -> Seconds {
    Seconds(3600)
}

fn one_day() -> Seconds {
    Seconds(86400)
}

/// How an app accepts bearer tokens.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AppJwtFile {
    /// Ids of the `jwt_issuers` this app accepts. Default: all of them.
    pub issuers: Option<Vec<String>>,
    /// Pass the client's `Authorization` header on to the origin after a token verified.
    /// Default: true.
    pub forward_authorization: bool,
}

impl Default for AppJwtFile {
    fn default() -> Self {
        Self {
            issuers: None,
            forward_authorization: true,
        }
    }
}

fn default_listeners() -> Vec<ListenerFile> {
    vec![ListenerFile {
        address: "127.0.0.1:8080".into(),
        h2c: true,
        tls: false,
        redirect_to_https: None,
        forward_auth_only: false,
        forward_auth_mode: None,
    }]
}

/// One traffic listener.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    /// `IP:port` to bind, e.g. `0.0.0.0:8080` or `[::]:8080`.
    pub address: String,
    /// Accept cleartext HTTP/2 (prior knowledge) beside HTTP/1.1. Default: true.
    #[serde(default = "yes")]
    pub h2c: bool,
    /// Terminate TLS here (TLS 1.2+, HTTP/2 by ALPN), with the certificate for the SNI name
    /// from `tls.certs_dir`. Default: false.
    #[serde(default)]
    pub tls: bool,
    /// Answer every request on this plain listener with a 308 to `https://` on this port
    /// (443 is left out of the URL). Default: none (serve normally).
    pub redirect_to_https: Option<u16>,
    /// Every request on this listener is a forward-auth check (as if sent to
    /// `{auth_prefix}/verify`), whatever its path. Default: false (the traffic listener
    /// answers `{auth_prefix}/verify` beside proxying).
    #[serde(default)]
    pub forward_auth_only: bool,
    /// How forward-auth answers on this listener send a browser to sign in: `status` or
    /// `redirect`; `?mode=` on the verify URL overrides it. Default: `status` when the
    /// proxy describes the request in `X-Original-URL` (nginx), else `redirect`.
    pub forward_auth_mode: Option<super::model_signing::ForwardAuthModeFile>,
}

/// Custom domains added through the admin API: verification settings.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DomainsFile {
    /// The gateway's public name, which customer domains point a CNAME at. Required before
    /// custom domains can be added. Default: none.
    pub public_name: Option<String>,
    /// Name servers (`IP:port`) the verifier asks. Default: the system's.
    pub nameservers: Vec<String>,
    /// Custom domains per app. Default: 10.
    pub max_per_app: usize,
    /// Domains never accepted (`example.com`, or `*.example.com` for everything below it).
    /// Default: none.
    pub blocklist: Vec<String>,
    /// How often pending domains are checked. Default: 30s.
    pub check_interval: Seconds,
}

impl Default for DomainsFile {
    fn default() -> Self {
        Self {
            public_name: None,
            nameservers: Vec::new(),
            max_per_app: 10,
            blocklist: Vec::new(),
            check_interval: Seconds(30),
        }
    }
}

/// The ACME CA for custom domains.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeFile {
    /// The CA's directory URL, e.g. `https://acme-v02.api.letsencrypt.org/directory`. Default:
    /// none — verified custom domains wait in `PendingSsl`.
    pub directory_url: Option<String>,
    /// A PEM root certificate to trust for the CA's own HTTPS (private or test CAs). Default:
    /// the system's roots.
    pub ca_root: Option<String>,
    /// Renew a certificate this long after issuance. Default: 60d.
    pub renew_after: Seconds,
    /// First retry after a failed order; doubles per failure, at most 1h. Default: 1m.
    pub retry_after: Seconds,
}

impl Default for AcmeFile {
    fn default() -> Self {
        Self {
            directory_url: None,
            ca_root: None,
            renew_after: Seconds(60 * 86400),
            retry_after: Seconds(60),
        }
    }
}

/// TLS termination settings.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsFile {
    /// Directory of `<host>.crt` + `<host>.key` PEM pairs (`_wildcard.<domain>.crt` for
    /// `*.<domain>`); re-read on SIGHUP. Default: `certs`.
    pub certs_dir: String,
}

impl Default for TlsFile {
    fn default() -> Self {
        Self {
            certs_dir: "certs".into(),
        }
    }
}

/// Process-wide settings.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerFile {
    /// Worker threads for the proxy. Default: the number of CPUs.
    pub threads: Option<usize>,
    /// After SIGTERM or SIGINT the listeners close at once, `/readyz` turns 503, and the
    /// process exits as soon as the requests in flight are done, or after this long at the
    /// latest. Default: 10s.
    pub drain_timeout: Seconds,
    /// Idle keep-alive connections kept to origins, across all apps. Default: 128.
    pub upstream_keepalive_pool_size: usize,
}

impl Default for ServerFile {
    fn default() -> Self {
        Self {
            threads: None,
            drain_timeout: Seconds(10),
            upstream_keepalive_pool_size: 128,
        }
    }
}

/// The admin listener.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminFile {
    /// `IP:port` of the admin listener. Default: `127.0.0.1:9090` (loopback only).
    pub listen: String,
    /// `IP:port` of a listener that answers `/healthz` and `/readyz` only, for probes from
    /// outside the machine (a Kubernetes kubelet) that must not reach `/metrics` or `/api/`.
    /// Default: none.
    pub health_listen: Option<String>,
    /// Bearer token required on `/metrics` (`${ENV_VAR}`, `file:/path` or a literal).
    /// Default: none — metrics are open to whoever can reach the admin listener.
    pub metrics_token: Option<Secret>,
    /// Bearer token (secret, at least 32 bytes) of the admin API under `/api/`. Default: none
    /// — the admin API is off.
    pub api_token: Option<Secret>,
    /// Where apps created through the admin API are kept (`apps.json`). Default: `data`.
    pub data_dir: String,
}

impl Default for AdminFile {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9090".into(),
            health_listen: None,
            metrics_token: None,
            api_token: None,
            data_dir: "data".into(),
        }
    }
}

/// Log output.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogFile {
    /// `text` or `json`. Default: `text`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `authgate=debug,pingora=warn`. Default: `info`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
}

impl Default for LogFile {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Log line format.
#[derive(schemars::JsonSchema, Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Size limits. Requests over a limit are refused before anything reaches the origin.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsFile {
    /// Total bytes of request header names and values; over it → 431. Default: 32768.
    pub max_request_header_bytes: usize,
    /// Request body bytes; over it → 413. Default: 10485760 (10 MiB).
    pub max_request_body_bytes: u64,
    /// Response body bytes from the origin; over it → 502 (or the stream is cut once started).
    /// Default: none.
    pub max_response_body_bytes: Option<u64>,
    /// Verified bearer tokens kept in memory; 0 turns the cache off. Default: 100000.
    pub verified_token_cache_entries: u64,
    /// A kept-alive HTTP/1 connection with no new request for this long is closed.
    /// Default: 60s.
    pub keepalive_timeout: Seconds,
    /// A request head must arrive whole within this, counted from its first byte (and a new
    /// connection's first request, or the HTTP/2 preface, from the connection's start);
    /// otherwise the connection is closed. Default: 15s.
    pub request_header_timeout: Seconds,
    /// Client connections open at once, per listener; more are closed as they arrive.
    /// Default: three quarters of the process's open-file limit.
    pub max_connections: Option<usize>,
}

impl Default for LimitsFile {
    fn default() -> Self {
        Self {
            max_request_header_bytes: 32 * 1024,
            max_request_body_bytes: 10 * 1024 * 1024,
            max_response_body_bytes: None,
            verified_token_cache_entries: 100_000,
            keepalive_timeout: Seconds(60),
            request_header_timeout: Seconds(15),
            max_connections: None,
        }
    }
}

/// The names of identity headers the gateway manages.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityHeadersFile {
    /// Header names stripped from every client request; a trailing `*` makes a prefix.
    /// Matching ignores case and treats `_` like `-`. Default: the gateway's own
    /// (`X-Auth-Request-*`, `X-Authgate-Assertion`) and those other authentication products
    /// send, which a legacy app moved behind authgate may still trust: oauth2-proxy
    /// (`X-Forwarded-User`, `-Email`, `-Groups`, `-Preferred-Username`, `-Access-Token`,
    /// `GAP-Auth`), Authelia and Authentik (`Remote-*`, `X-Authentik-*`), Apache and
    /// Grafana (`X-Remote-*`, `X-WebAuth-*`), mod_auth_openidc (`OIDC-*`), Pomerium
    /// (`X-Pomerium-*`), Cloudflare Access (`Cf-Access-*`), Google IAP
    /// (`X-Goog-Authenticated-User-*`, `X-Goog-Iap-Jwt-Assertion`), AWS ALB (`X-Amzn-Oidc-*`),
    /// Azure App Service (`X-MS-Client-Principal*`, `X-MS-Token-*`), Vouch (`X-Vouch-*`),
    /// Keycloak Gatekeeper (`X-Auth-Userid`, `-Username`, `-Email`, `-Subject`, `-Roles`,
    /// `-Groups`, `-Audience`, `-Expires-In`).
    pub strip: Vec<String>,
    /// Headers the origin receives for a verified identity, each from a claim (arrays are
    /// joined with `,`). Every name must be covered by `strip`, so a client can never supply
    /// it. Default: `X-Auth-Request-User: sub`, `X-Auth-Request-Email: email`,
    /// `X-Auth-Request-Groups: groups`.
    pub from_claims: std::collections::BTreeMap<String, String>,
    /// A claim value longer than this, or with CR, LF or NUL, refuses the request (401).
    /// Default: 4096.
    pub max_value_bytes: usize,
}

/// The identity headers stripped by default (see [`IdentityHeadersFile::strip`]).
pub const DEFAULT_IDENTITY_STRIP: [&str; 32] = [
    "X-Auth-Request-*",
    "X-Authgate-Assertion",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "GAP-Auth",
    "Remote-*",
    "X-Authentik-*",
    "X-Remote-*",
    "X-WebAuth-*",
    "OIDC-*",
    "X-Pomerium-*",
    "Cf-Access-*",
    "X-Goog-Authenticated-User-*",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Amzn-Oidc-*",
    "X-MS-Client-Principal*",
    "X-MS-Token-*",
    "X-Vouch-*",
    "X-Auth-Userid",
    "X-Auth-Username",
    "X-Auth-Email",
    "X-Auth-Subject",
    "X-Auth-Roles",
    "X-Auth-Groups",
    "X-Auth-Audience",
    "X-Auth-Expires-In",
    "X-Forwarded-Login",
    "X-Authenticated-User",
    "X-Authenticated-Userid",
];

impl Default for IdentityHeadersFile {
    fn default() -> Self {
        Self {
            from_claims: [
                ("X-Auth-Request-User", "sub"),
                ("X-Auth-Request-Email", "email"),
                ("X-Auth-Request-Groups", "groups"),
            ]
            .map(|(h, c)| (h.to_string(), c.to_string()))
            .into_iter()
            .collect(),
            max_value_bytes: 4096,
            strip: DEFAULT_IDENTITY_STRIP.map(String::from).to_vec(),
        }
    }
}

/// Request-rewrite headers the gateway removes.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RewriteHeadersFile {
    /// Header names stripped from every client request, public routes included; a trailing
    /// `*` makes a prefix, matching ignores case and treats `_` like `-`. An origin that
    /// honours one of these (Symfony and Laminas read `X-Original-URL` / `X-Rewrite-URL`, IIS
    /// URL Rewrite too, frameworks read method overrides) would serve another path or method
    /// than the one the gateway's rules decided on. Default: `X-Original-URL`,
    /// `X-Original-URI`, `X-Rewrite-URL`, `X-Forwarded-Uri`, `X-Forwarded-Url`,
    /// `X-Forwarded-Path`, `X-Forwarded-Prefix`, `X-Original-Path`, `X-Envoy-Original-Path`,
    /// `X-Envoy-Original-Url`, `X-Script-Name`, `X-Forwarded-Script-Name`, `X-Original-Host`,
    /// `X-Forwarded-Server`, `X-Host`, `X-HTTP-Host-Override`, `X-Forwarded-Port`,
    /// `X-Forwarded-Scheme`, `X-Forwarded-Ssl`, `X-Url-Scheme`, `Front-End-Https`,
    /// `X-HTTP-Method-Override`, `X-HTTP-Method`, `X-Method-Override`. Set `[]` only for an
    /// origin that ignores them all.
    pub strip: Vec<String>,
}

/// The rewrite headers stripped by default (see [`RewriteHeadersFile::strip`]).
pub const DEFAULT_REWRITE_STRIP: [&str; 24] = [
    "X-Original-URL",
    "X-Original-URI",
    "X-Rewrite-URL",
    "X-Forwarded-Uri",
    "X-Forwarded-Url",
    "X-Forwarded-Path",
    "X-Forwarded-Prefix",
    "X-Original-Path",
    "X-Envoy-Original-Path",
    "X-Envoy-Original-Url",
    "X-Script-Name",
    "X-Forwarded-Script-Name",
    "X-Original-Host",
    "X-Forwarded-Server",
    "X-Host",
    "X-HTTP-Host-Override",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "X-Url-Scheme",
    "Front-End-Https",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
];

impl Default for RewriteHeadersFile {
    fn default() -> Self {
        Self {
            strip: DEFAULT_REWRITE_STRIP.map(String::from).to_vec(),
        }
    }
}

/// One protected app (Logto's "protected app": host, origin, session duration, page rules).
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppFile {
    /// Stable identifier used in logs and metrics. Required.
    pub id: String,
    /// The host name the app is served on. Required.
    pub host: String,
    /// More host names serving the same app. Default: none.
    #[serde(default)]
    pub custom_domains: Vec<String>,
    /// Where requests are forwarded. Required.
    pub origin: OriginFile,
    /// Absolute lifetime of a sign-in session. Default: 14 days (Logto's default).
    #[serde(default = "fourteen_days")]
    pub session_duration: Seconds,
    /// What happens on a path no route matches. Default: `session` (protect everything).
    #[serde(default = "default_action")]
    pub default_action: ActionFile,
    /// Route rules; the most specific match wins, ties go to the first declared.
    #[serde(default)]
    pub routes: Vec<RouteFile>,
    /// Opt-ins for unusual request paths. Default: all off (such paths get 400).
    #[serde(default)]
    pub paths: PathOptionsFile,
    /// Bearer token settings.
    #[serde(default)]
    pub jwt: AppJwtFile,
    /// Id of the `oidc_providers` entry that signs users in to this app. Default: the only
    /// provider when exactly one is configured, else none (session routes answer 401).
    pub oidc_provider: Option<String>,
    /// This app's identity headers (header ← claim), replacing `identity_headers.from_claims`
    /// for it. Each header must be covered by `identity_headers.strip`. Default: the global
    /// mapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_headers: Option<std::collections::BTreeMap<String, String>>,
    /// Where the gateway's own endpoints live on the app's host (`/login`, `/callback`,
    /// `/logout`, `/me` under it). Default: `/_auth`.
    #[serde(default = "auth_prefix")]
    pub auth_prefix: String,
    /// This app's look on the gateway's pages. Default: `pages.branding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branding: Option<BrandingFile>,
    /// Send the origin a signed identity assertion (a JWT) with every authenticated request;
    /// `{}` for the defaults. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assertion: Option<super::model_signing::AssertionFile>,
}

fn auth_prefix() -> String {
    "/_auth".into()
}

fn fourteen_days() -> Seconds {
    Seconds(14 * 24 * 3600)
}

fn default_action() -> ActionFile {
    ActionFile::Session
}

fn yes() -> bool {
    true
}

/// The app's origin.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OriginFile {
    /// `http://` or `https://` URL, optionally with a path prefix prepended to every request.
    pub url: String,
    /// `Host` sent to the origin: `origin` (the URL's host) or `original` (the client's, in
    /// canonical form: lower case, no trailing dot, with the port it named).
    /// Default: `origin`.
    #[serde(default)]
    pub host_header: HostHeaderFile,
    /// TCP (and TLS) connect timeout. Default: 5s.
    #[serde(default = "five_seconds")]
    pub connect_timeout: Seconds,
    /// Longest wait for each read from the origin. Default: 60s.
    #[serde(default = "sixty_seconds")]
    pub read_timeout: Seconds,
    /// How long an idle keep-alive connection to the origin is kept. Default: 60s.
    #[serde(default = "sixty_seconds")]
    pub idle_timeout: Seconds,
    /// Verify the origin's TLS certificate (https only). Turning this off lets anyone on the
    /// network path impersonate the origin. Default: true.
    #[serde(default = "yes")]
    pub verify_tls: bool,
}

fn five_seconds() -> Seconds {
    Seconds(5)
}

fn sixty_seconds() -> Seconds {
    Seconds(60)
}

/// Which `Host` header the origin receives.
#[derive(
    schemars::JsonSchema, Debug, Deserialize, Serialize, Default, Clone, Copy, PartialEq, Eq,
)]
#[serde(rename_all = "snake_case")]
pub enum HostHeaderFile {
    /// The origin URL's own host (and port, when not the scheme default).
    #[default]
    Origin,
    /// The host the client asked for.
    Original,
}

/// What a route does with a request.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionFile {
    /// Anyone may pass.
    Public,
    /// A signed-in browser session is required.
    Session,
    /// A valid JWT bearer token is required.
    Jwt,
    /// Either a session or a bearer token.
    SessionOrJwt,
    /// Nobody may pass (403).
    Deny,
}

/// One route rule. Exactly one of `exact`, `prefix`, `glob`, `regex` is given.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Name used in logs and metrics. Default: `routes[N]`.
    pub name: Option<String>,
    /// Matches this path only.
    pub exact: Option<String>,
    /// Matches this path and everything below it, on whole segments (`/api` matches `/api`
    /// and `/api/x`, not `/apix`).
    pub prefix: Option<String>,
    /// Shell-style pattern: `*` stays inside a segment, `**` crosses segments.
    pub glob: Option<String>,
    /// Regular expression matched against the whole path (it is anchored for you).
    pub regex: Option<String>,
    /// HTTP methods this rule applies to. Default: all.
    #[serde(default)]
    pub methods: Vec<String>,
    /// What to do with a matching request.
    pub action: ActionFile,
    /// Further requirements on the signed-in identity (session and JWT routes only).
    #[serde(default)]
    pub require: Option<RequireFile>,
}

/// Requirements on the identity, all of which must hold.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Default, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequireFile {
    /// Every one of these scopes (`scope` string or `scp` array).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// At least one of these groups (`groups` or `roles` claim).
    #[serde(default)]
    pub groups: Vec<String>,
    /// For each claim, its value must be one of the listed values.
    #[serde(default)]
    pub claims: std::collections::BTreeMap<String, Vec<String>>,
}

/// Opt-ins for request paths the gateway refuses by default.
#[derive(schemars::JsonSchema, Debug, Deserialize, Serialize, Default, Clone, Copy, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PathOptionsFile {
    /// Pass `%2F` (encoded `/`) and `%5C` (encoded `\`) through undecoded. Default: false.
    pub allow_encoded_slash: bool,
    /// Allow `;` in paths (matrix / path parameters such as `;jsessionid=`). Default: false.
    pub allow_semicolon: bool,
    /// Match route rules ignoring ASCII case (`/ADMINS` and `/%41dmins` meet the rule for
    /// `/admins`). Turn on for an origin that resolves paths case-insensitively (IIS,
    /// Windows file systems, some Java and PHP routers); otherwise such a spelling reaches
    /// it under a weaker rule. The origin still receives the path as the client wrote it.
    /// Default: false.
    pub case_insensitive: bool,
}
