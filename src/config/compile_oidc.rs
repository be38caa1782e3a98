//! Compiling `oidc_providers` and `sessions`.

use std::sync::Arc;
use std::time::Duration;

use super::carry::{fingerprint, Carried};
use super::compile_jwt::parse_algorithms;
use super::model::{ClientAuthFile, OidcProviderFile, SessionsFile};
use super::problems::{compile_list, Problems};
use crate::jwt::jwks::{provider_client, FetchPolicy, IssuerKeys, KeySource};
use crate::jwt::keys::KeySet;
use crate::jwt::Issuer;
use crate::oidc::provider::{Provider, ProviderSettings};
use crate::oidc::return_to;
use crate::session::cookie::CookieKeys;

/// Authorization request parameters the flow sets itself.
const RESERVED_PARAMS: [&str; 9] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "response_mode",
];

/// Session settings, compiled.
#[derive(Debug)]
pub struct SessionSettings {
    /// Configured cookie keys; `None` means the process's ephemeral key.
    pub cookie_keys: Option<Arc<CookieKeys>>,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Capacity of the in-memory store.
    pub max_sessions: u64,
    /// Refresh this long before token expiry.
    pub refresh_before_expiry: Duration,
    /// Lifetime of a login cookie.
    pub login_timeout: Duration,
    /// Login cookies kept per browser.
    pub max_pending_logins: usize,
    /// Sessions in Redis (shared by replicas), or `None` for this process's memory.
    pub redis: Option<crate::store::redis::RedisSettings>,
    /// With Redis: sessions each replica holds near (0: Redis is read on every request).
    pub near_cache_entries: u64,
}

/// Compiles `sessions`.
pub fn sessions(file: &SessionsFile, problems: &mut Problems) -> SessionSettings {
    for (i, key) in file.cookie_keys.iter().enumerate() {
        if key.expose().len() < 32 {
            problems.add(
                &format!("sessions.cookie_keys[{i}]"),
                "must be at least 32 bytes",
            );
        }
    }
    if file.max_pending_logins == 0 {
        problems.add("sessions.max_pending_logins", "must be at least 1");
    }
    if file.max_sessions == 0 {
        // The store would keep nothing, and every sign-in would end back at the login.
        problems.add("sessions.max_sessions", "must be at least 1");
    }
    let redis = match (file.store, &file.redis) {
        (super::model::SessionStoreFile::Memory, _) => None,
        (super::model::SessionStoreFile::Redis, None) => {
            problems.add(
                "sessions.redis",
                "`store: redis` needs the Redis connection here",
            );
            None
        }
        (super::model::SessionStoreFile::Redis, Some(redis)) => {
            if file.cookie_keys.is_empty() {
                // Each replica would seal with its own random key: no session could be read
                // by another, nor survive a restart.
                problems.add(
                    "sessions.cookie_keys",
                    "required with `store: redis`: every replica must seal sessions with the same keys",
                );
            }
            redis_settings(redis, "sessions.redis", problems)
        }
    };
    let near_cache_entries = file
        .redis
        .as_ref()
        .and_then(|r| r.near_cache_entries)
        .unwrap_or(file.max_sessions);
    SessionSettings {
        redis,
        near_cache_entries,
        cookie_keys: (!file.cookie_keys.is_empty()).then(|| {
            Arc::new(CookieKeys::new(
                file.cookie_keys.iter().map(|k| k.expose().as_bytes()),
            ))
        }),
        idle_timeout: file.idle_timeout.duration(),
        max_sessions: file.max_sessions,
        refresh_before_expiry: file.refresh_before_expiry.duration(),
        login_timeout: file.login_timeout.duration(),
        max_pending_logins: file.max_pending_logins.max(1),
    }
}

/// A Redis connection (`sessions.redis`, `control.redis`: the field path `at`), checked.
pub fn redis_settings(
    file: &super::model::RedisFile,
    at: &str,
    problems: &mut Problems,
) -> Option<crate::store::redis::RedisSettings> {
    use super::model::RedisModeFile;
    use crate::store::redis::Topology;
    let url = file.url.expose().to_string();
    let parsed = url::Url::parse(&url).ok().filter(|u| {
        matches!(u.scheme(), "redis" | "rediss") && u.host_str().is_some_and(|h| !h.is_empty())
    });
    let Some(parsed) = parsed else {
        // The value may hold a password: it is not repeated.
        problems.add(
            &format!("{at}.url"),
            "is not a redis:// or rediss:// URL with a host",
        );
        return None;
    };
    // A node `host:port` reached with the URL's scheme, user and password.
    let node_url = |node: &str| {
        let mut u = parsed.clone();
        let (host, port) = node.rsplit_once(':')?;
        let port: u16 = port.parse().ok()?;
        // IPv6 is written in brackets, as in a URL.
        u.set_host(Some(host)).ok()?;
        u.set_port(Some(port)).ok()?;
        Some(u.to_string())
    };
    let mut nodes = Vec::new();
    for (i, node) in file.nodes.iter().enumerate() {
        match node_url(node) {
            Some(u) => nodes.push(u),
            None => problems.add(
                &format!("{at}.nodes[{i}]"),
                format!("`{node}` is not host:port"),
            ),
        }
    }
    let topology = match file.mode {
        RedisModeFile::Standalone => Topology::Standalone { url: url.clone() },
        RedisModeFile::Sentinel => {
            let Some(master) = file.sentinel_master.clone().filter(|m| !m.is_empty()) else {
                problems.add(
                    &format!("{at}.sentinel_master"),
                    "required in sentinel mode",
                );
                return None;
            };
            if file.nodes.is_empty() {
                problems.add(&format!("{at}.nodes"), "list the sentinels (host:port)");
                return None;
            }
            Topology::Sentinel {
                sentinels: nodes,
                master,
                url: url.clone(),
            }
        }
        RedisModeFile::Cluster => {
            if file.nodes.is_empty() {
                problems.add(
                    &format!("{at}.nodes"),
                    "list some cluster nodes (host:port)",
                );
                return None;
            }
            Topology::Cluster { nodes }
        }
    };
    if file.connect_timeout.0 == 0 || file.response_timeout.0 == 0 {
        problems.add(at, "timeouts must be at least 1s");
    }
    if !(1..=64).contains(&file.pool_size) {
        problems.add(&format!("{at}.pool_size"), "must be from 1 to 64");
    }
    Some(crate::store::redis::RedisSettings {
        topology,
        key_prefix: file.key_prefix.clone(),
        connect_timeout: file.connect_timeout.duration(),
        response_timeout: file.response_timeout.duration(),
        pool_size: file.pool_size.clamp(1, 64) as usize,
    })
}

/// Compiles every provider, reporting problems under `oidc_providers[N]`. A provider whose
/// settings are those of `running`'s (same id) is taken over with its discovery result and ID
/// token keys; the fingerprints of the result go into `carried` for the next rebuild.
pub fn providers(
    files: Vec<OidcProviderFile>,
    running: Option<&Carried>,
    carried: &mut Carried,
    problems: &mut Problems,
) -> Vec<Arc<Provider>> {
    compile_list(
        files,
        "oidc_providers",
        |f| f.id.clone(),
        |f, at, p| {
            let fp = fingerprint(&f, &[f.client_secret.as_ref()]);
            let id = f.id.clone();
            let compiled = match running.and_then(|r| r.provider(&id, &fp)) {
                Some(provider) => provider,
                None => Arc::new(provider(f, at, p)?),
            };
            carried.providers.insert(id, (fp, compiled.clone()));
            Some(compiled)
        },
        problems,
    )
}

fn provider(file: OidcProviderFile, at: &str, problems: &mut Problems) -> Option<Provider> {
    let before = problems.0.len();
    if file.id.trim().is_empty() {
        problems.add(&format!("{at}.id"), "must not be empty");
    }
    match url::Url::parse(&file.issuer) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => problems.add(
            &format!("{at}.issuer"),
            format!("`{}` is not an http(s) URL", file.issuer),
        ),
    }
    if file.client_id.trim().is_empty() {
        problems.add(&format!("{at}.client_id"), "must not be empty");
    }
    let algorithms = parse_algorithms(&file.algorithms, at, problems);
    if algorithms.iter().any(|a| algorithm_is_hmac(*a)) {
        problems.add(
            &format!("{at}.algorithms"),
            "ID tokens are checked with the provider's public keys; HS* is not accepted",
        );
    }
    if file
        .post_logout_redirect
        .as_deref()
        .is_some_and(|landing| return_to::sanitize(landing) != landing)
    {
        problems.add(
            &format!("{at}.post_logout_redirect"),
            "must be a path on the app's host, such as `/` or `/signed-out`",
        );
    }
    for name in file.extra_authorize_params.keys() {
        if RESERVED_PARAMS.contains(&name.as_str()) {
            problems.add(
                &format!("{at}.extra_authorize_params.{name}"),
                "set by the sign-in flow itself",
            );
        }
    }
    let http = match provider_client(file.fetch_timeout.duration()) {
        Ok(c) => c,
        Err(e) => {
            problems.add(at, e);
            return None;
        }
    };
    if problems.0.len() > before {
        return None;
    }
    let policy = FetchPolicy {
        unknown_kid_cooldown: Duration::from_secs(30),
        min_refresh: Duration::from_secs(300),
        max_refresh: Duration::from_secs(3600),
        stale_max_age: Duration::from_secs(86400),
        timeout: file.fetch_timeout.duration(),
    };
    let keys = IssuerKeys::new(
        file.issuer.clone(),
        KeySource::Discovery,
        policy,
        http.clone(),
        KeySet::default(),
        None,
    );
    let id: Arc<str> = Arc::from(file.id.as_str());
    let id_tokens = Arc::new(Issuer {
        id: id.clone(),
        issuer: file.issuer.clone(),
        algorithms,
        audiences: vec![file.client_id.clone()],
        leeway: file.leeway.0,
        required_typ: None,
        max_token_bytes: 64 * 1024,
        cache_ttl: Duration::ZERO,
        keys: Arc::new(keys),
    });
    Some(Provider::new(ProviderSettings {
        id,
        issuer: file.issuer,
        client_id: file.client_id,
        client_secret: file.client_secret,
        post_body_auth: file.client_auth == ClientAuthFile::ClientSecretPost,
        scopes: file.scopes,
        extra_params: file.extra_authorize_params.into_iter().collect(),
        userinfo: file.userinfo,
        post_logout_redirect: file.post_logout_redirect,
        http,
        id_tokens,
    }))
}

fn algorithm_is_hmac(alg: jsonwebtoken::Algorithm) -> bool {
    use jsonwebtoken::Algorithm::*;
    matches!(alg, HS256 | HS384 | HS512)
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml;

    #[test]
    fn defaults_and_the_single_provider_rule() {
        let gw = from_yaml(
            "
oidc_providers:
  - {id: idp, issuer: 'https://id.example.com', client_id: app}
apps:
  - {id: a, host: a.test, origin: {url: 'http://127.0.0.1:9'}}
",
        )
        .unwrap();
        assert_eq!(gw.sessions.idle_timeout.as_secs(), 7200);
        assert_eq!(gw.sessions.max_sessions, 100_000);
        assert_eq!(gw.sessions.login_timeout.as_secs(), 600);
        assert_eq!(gw.sessions.max_pending_logins, 3);
        assert!(
            gw.sessions.cookie_keys.is_none(),
            "a process key unless configured"
        );
        let app = gw.hosts.lookup("a.test").unwrap();
        assert_eq!(app.auth_prefix, "/_auth");
        assert_eq!(&*app.provider.as_ref().unwrap().id, "idp");
    }

    #[test]
    fn unsafe_sign_in_settings_are_refused() {
        let err = from_yaml(
            "
sessions: {cookie_keys: [short], max_pending_logins: 0, max_sessions: 0}
oidc_providers:
  - {id: idp, issuer: 'not a url', client_id: '', post_logout_redirect: '//evil.test', extra_authorize_params: {redirect_uri: 'https://evil.test'}, algorithms: [HS256]}
  - {id: idp, issuer: 'https://b.test', client_id: b}
apps:
  - {id: a, host: a.test, origin: {url: 'http://127.0.0.1:9'}, oidc_provider: nobody, auth_prefix: /}
",
        )
        .unwrap_err()
        .to_string();
        for field in [
            "sessions.cookie_keys[0]",
            "sessions.max_pending_logins",
            "sessions.max_sessions",
            "oidc_providers[0].issuer",
            "oidc_providers[0].client_id",
            "oidc_providers[0].post_logout_redirect",
            "oidc_providers[0].extra_authorize_params.redirect_uri",
            "oidc_providers[0].algorithms",
            "oidc_providers[1].id",
            "apps[0].oidc_provider",
            "apps[0].auth_prefix",
        ] {
            assert!(err.contains(field), "{field} missing from:\n{err}");
        }
    }

    const APP: &str = "apps: [{id: a, host: a.test, origin: {url: 'http://127.0.0.1:9'}}]\n";

    #[test]
    fn a_redis_store_needs_its_connection_and_shared_keys() {
        let err = from_yaml(&format!("sessions: {{store: redis}}\n{APP}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sessions.redis"), "{err}");
        let err = from_yaml(&format!(
            "sessions: {{store: redis, redis: {{url: 'redis://127.0.0.1:6379'}}}}\n{APP}"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("sessions.cookie_keys"), "{err}");
        assert!(err.contains("required with `store: redis`"), "{err}");
    }

    #[test]
    fn redis_settings_are_checked_without_repeating_the_url() {
        let keys = "cookie_keys: ['a-cookie-key-for-the-tests-0123456789']";
        for (redis, field) in [
            ("{url: 'http://user:hunter2@x:1'}", "sessions.redis.url"),
            (
                "{url: 'redis://:hunter2@x:1', mode: sentinel, nodes: ['s:26379']}",
                "sessions.redis.sentinel_master",
            ),
            (
                "{url: 'redis://x:1', mode: sentinel, sentinel_master: m}",
                "sessions.redis.nodes",
            ),
            (
                "{url: 'redis://x:1', mode: cluster}",
                "sessions.redis.nodes",
            ),
            (
                "{url: 'redis://x:1', mode: cluster, nodes: ['no-port']}",
                "sessions.redis.nodes[0]",
            ),
            (
                "{url: 'redis://x:1', pool_size: 0}",
                "sessions.redis.pool_size",
            ),
            (
                "{url: 'redis://x:1', pool_size: 65}",
                "sessions.redis.pool_size",
            ),
        ] {
            let err = from_yaml(&format!(
                "sessions: {{{keys}, store: redis, redis: {redis}}}\n{APP}"
            ))
            .unwrap_err()
            .to_string();
            assert!(err.contains(field), "{field} missing for {redis}:\n{err}");
            assert!(
                !err.contains("hunter2"),
                "the password was repeated:\n{err}"
            );
        }
    }

    #[test]
    fn sentinel_and_cluster_nodes_are_reached_with_the_urls_credentials() {
        use crate::store::redis::Topology;
        let keys = "cookie_keys: ['a-cookie-key-for-the-tests-0123456789']";
        let gw = from_yaml(&format!(
            "sessions: {{{keys}, store: redis, redis: {{url: 'rediss://u:pw@ignored:6379/2', mode: sentinel, sentinel_master: primary, nodes: ['10.0.0.5:26379', '[::1]:26380']}}}}\n{APP}"
        ))
        .unwrap();
        let settings = gw.sessions.redis.as_ref().unwrap();
        let Topology::Sentinel {
            sentinels, master, ..
        } = &settings.topology
        else {
            panic!("{:?}", settings.topology);
        };
        assert_eq!(master, "primary");
        assert_eq!(
            sentinels,
            &[
                "rediss://u:pw@10.0.0.5:26379/2",
                "rediss://u:pw@[::1]:26380/2"
            ]
        );
        assert_eq!(settings.key_prefix, "authgate:");
        // The password never shows in the settings' debug form.
        assert!(!format!("{settings:?}").contains("pw"));
    }
}
