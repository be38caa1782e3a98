//! Configuration: the YAML file model, its validation, and the compiled runtime snapshot.
//!
//! `load` reads and validates a file and returns a [`Gateway`] — the runtime snapshot the
//! proxy consults on every request. Everything that costs (parsing URLs, compiling regexes,
//! building header names, resolving origin addresses) happens here, once.

pub mod carry;
pub mod compile;
pub mod compile_control;
pub mod compile_jwt;
pub mod compile_oidc;
pub mod compile_signing;
pub mod duration;
pub mod lines;
pub mod model;
pub mod model_control;
pub mod model_signing;
pub mod parse;
pub mod paths;
pub mod problems;
pub mod secret;
pub mod warnings;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::proxy::headers::ManagedHeaders;
use crate::route::host::HostTable;
use crate::route::rules::RouteTable;
pub use model::{FileConfig, LogFile, LogFormat, PathOptionsFile};
pub use problems::{Problem, Problems};
pub use secret::Secret;

/// The compiled configuration: what the running gateway consults.
#[derive(Debug)]
pub struct Gateway {
    /// Traffic listeners.
    pub listeners: Vec<Listener>,
    /// Worker threads and shutdown timing.
    pub server: ServerSettings,
    /// The admin listener.
    pub admin: AdminSettings,
    /// Log output.
    pub log: LogFile,
    /// Size limits.
    pub limits: Limits,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Identity header names the gateway owns.
    pub managed_headers: ManagedHeaders,
    /// Host name → app.
    pub hosts: HostTable,
    /// Bearer token verification for every configured issuer.
    pub verifier: Arc<crate::jwt::Verifier>,
    /// Identity headers built from verified claims.
    pub identity_headers: crate::authn::identity::IdentityHeaders,
    /// OIDC providers.
    pub providers: Vec<Arc<crate::oidc::Provider>>,
    /// Session settings.
    pub sessions: compile_oidc::SessionSettings,
    /// The certificate directory, when a listener terminates TLS.
    pub certs_dir: Option<std::path::PathBuf>,
    /// Custom-domain verification settings (`public_name` empty: custom domains are off).
    pub domains: crate::domains::DomainSettings,
    /// The ACME CA, if configured.
    pub acme: Option<crate::acme::AcmeSettings>,
    /// Issuers and providers the next rebuild may take over when their settings stay.
    pub carried: carry::Carried,
    /// What the file may mean but probably should not (plain-http identity endpoints).
    pub warnings: Problems,
    /// The gateway's own pages.
    pub pages: Arc<crate::pages::Pages>,
    /// How pages look where no app is known (an unknown host).
    pub branding: crate::pages::Branding,
    /// The keys assertions are signed with.
    pub signing: crate::keys::SigningSettings,
    /// Where the admin API's apps are kept.
    pub control: compile_control::ControlSettings,
}

/// A traffic listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address to bind.
    pub address: SocketAddr,
    /// Accept cleartext HTTP/2.
    pub h2c: bool,
    /// What the listener does.
    pub role: ListenerRole,
    /// Every request is a forward-auth check, whatever its path.
    pub forward_auth_only: bool,
    /// How forward-auth answers here send a browser to sign in (`None`: by the request's
    /// style).
    pub forward_auth_mode: Option<model_signing::ForwardAuthModeFile>,
}

/// What a listener does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Plain HTTP, served.
    Plain,
    /// TLS terminated here, served.
    Tls,
    /// Plain HTTP, every request redirected to `https://` on this port.
    RedirectToHttps(u16),
}

/// Process settings.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Worker threads.
    pub threads: usize,
    /// In-flight requests get this long to finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// Idle origin connections kept.
    pub upstream_keepalive_pool_size: usize,
}

/// The admin listener's settings.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Address to bind.
    pub listen: SocketAddr,
    /// The health-only listener, if any.
    pub health_listen: Option<SocketAddr>,
    /// Bearer token for `/metrics`, if any.
    pub metrics_token: Option<Secret>,
    /// Bearer token of the admin API; `None` turns the API off.
    pub api_token: Option<Secret>,
    /// Where API-created apps are stored.
    pub data_dir: std::path::PathBuf,
}

/// Size limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Request header bytes (431 above).
    pub max_request_header_bytes: usize,
    /// Request body bytes (413 above).
    pub max_request_body_bytes: u64,
    /// Origin response body bytes (502 above), if limited.
    pub max_response_body_bytes: Option<u64>,
    /// Idle time allowed between requests on a kept-alive connection.
    pub keepalive_timeout: std::time::Duration,
    /// Time allowed for a request head (and a new connection's first one).
    pub request_header_timeout: std::time::Duration,
    /// Client connections open at once, per listener.
    pub max_connections: usize,
}

/// One protected app, compiled.
#[derive(Debug)]
pub struct App {
    /// The app's id, for logs and metrics.
    pub id: Arc<str>,
    /// The primary host name.
    pub host: String,
    /// Where requests go.
    pub origin: Origin,
    /// Absolute session lifetime.
    pub session_duration: Duration,
    /// Route rules.
    pub routes: RouteTable,
    /// Path opt-ins.
    pub paths: PathOptionsFile,
    /// Ids of the JWT issuers this app accepts.
    pub jwt_issuers: Vec<Arc<str>>,
    /// Pass the client's `Authorization` on after a bearer token verified.
    pub forward_authorization: bool,
    /// The provider that signs users in, if any.
    pub provider: Option<Arc<crate::oidc::Provider>>,
    /// Prefix of the gateway's endpoints (`/_auth`), without a trailing slash.
    pub auth_prefix: String,
    /// How the gateway's pages look for this app.
    pub branding: crate::pages::Branding,
    /// This app's identity headers, when it overrides the global mapping.
    pub identity_headers: Option<crate::authn::identity::IdentityHeaders>,
    /// The signed identity assertion the origin receives, if the app wants one.
    pub assertion: Option<Arc<crate::keys::assertion::AssertionSpec>>,
}

/// An app's origin, ready to connect to.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Resolved address.
    pub address: SocketAddr,
    /// Connect with TLS.
    pub tls: bool,
    /// TLS server name (the URL's host).
    pub sni: String,
    /// Path prefix without trailing `/` (empty for none).
    pub path_prefix: String,
    /// `Host` to send; `None` means the client's own.
    pub host_header: Option<HeaderValue>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Verify the origin's certificate.
    pub verify_tls: bool,
    /// The pingora peer, built once and cloned per request.
    pub peer: pingora::upstreams::peer::HttpPeer,
}

/// Reads, parses and compiles a configuration file; relative paths written in it are
/// relative to it.
pub fn load(path: &Path) -> Result<Gateway, Problems> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let mut problems = Problems::default();
        problems.add("(file)", format!("cannot read {}: {e}", path.display()));
        problems
    })?;
    compile_text(&text, Some(&paths::dir_of(path)))
}

/// Parses and compiles configuration text. Every problem is reported at once: what could not
/// be read (each with its line), then what the checks of the rest found, leaving out what only
/// repeats a field already reported.
pub fn from_yaml(text: &str) -> Result<Gateway, Problems> {
    compile_text(text, None)
}

fn compile_text(text: &str, config_dir: Option<&Path>) -> Result<Gateway, Problems> {
    let parse::Parsed { file, found } = parse::read_in(text, config_dir)?;
    let mut warnings = warnings::of(&file);
    for warning in &mut warnings.0 {
        warning.line = found.lines.line(&warning.field);
    }
    let compiled = compile::compile(file);
    let mut problems = found.problems.clone();
    match compiled {
        Ok(mut gateway) if problems.is_empty() => {
            gateway.warnings = warnings;
            return Ok(gateway);
        }
        Ok(_) => {}
        Err(checked) => {
            for mut problem in checked.0 {
                problem.field = found.as_written(&problem.field);
                if found.overlaps_left_out(&problem.field) {
                    continue;
                }
                problem.line = problem.line.or_else(|| found.lines.line(&problem.field));
                problems.0.push(problem);
            }
        }
    }
    Err(problems)
}

/// The JSON Schema of the configuration file, generated from its model: editors (the YAML
/// language server, say) complete and check a file with it. Published as
/// `docs/authgate.schema.json`.
pub fn json_schema() -> String {
    let mut schema = schemars::schema_for!(FileConfig);
    schema.insert("title".into(), "authgate configuration".into());
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

/// Parses configuration text into the file model; every field that cannot be read is a
/// problem.
pub fn parse(text: &str) -> Result<FileConfig, Problems> {
    let parse::Parsed { file, found } = parse::read(text)?;
    found.problems.into_result(file)
}

/// Parses the text of the configuration file at `path`, its relative paths made relative to
/// the file.
pub fn parse_file_text(text: &str, path: &Path) -> Result<FileConfig, Problems> {
    let parse::Parsed { file, found } = parse::read_in(text, Some(&paths::dir_of(path)))?;
    found.problems.into_result(file)
}
