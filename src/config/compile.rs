//! File model → runtime snapshot, collecting every problem with its field path.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use http::HeaderValue;

use super::model::{AppFile, FileConfig, HostHeaderFile, OriginFile};
use super::problems::Problems;
use super::{AdminSettings, App, Gateway, Limits, Listener, ListenerRole, Origin, ServerSettings};
use crate::proxy::headers::ManagedHeaders;
use crate::route::host::{canonical_host, HostTable};
use crate::route::rules::RouteTable;

/// Three quarters of the process's open-file limit (the rest is for origins, providers and
/// files), or 4096 when the limit cannot be read.
fn default_max_connections() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse::<usize>().ok())
        });
    limit.map_or(4096, |n| (n / 4 * 3).max(16))
}

/// Compiles a parsed file, or returns every problem in it.
pub fn compile(file: FileConfig) -> Result<Gateway, Problems> {
    compile_after(file, None)
}

/// Compiles a parsed file to replace `running`: issuers and providers whose settings did not
/// change are taken over from it with their keys, discovery and timers (see [`super::carry`]).
pub fn compile_after(file: FileConfig, running: Option<&Gateway>) -> Result<Gateway, Problems> {
    let mut problems = Problems::default();
    let mut carried = super::carry::Carried::default();
    let previous = running.map(|g| &g.carried);

    if file.listen.is_empty() {
        problems.add("listen", "at least one listener is needed");
    }
    let listeners = file
        .listen
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            let address = socket_addr(&l.address, &format!("listen[{i}].address"), &mut problems)?;
            let role = match (l.tls, l.redirect_to_https) {
                (false, None) => ListenerRole::Plain,
                (true, None) => ListenerRole::Tls,
                (false, Some(port)) => ListenerRole::RedirectToHttps(port),
                (true, Some(_)) => {
                    problems.add(
                        &format!("listen[{i}].redirect_to_https"),
                        "a TLS listener serves HTTPS itself; redirect from a plain listener",
                    );
                    ListenerRole::Tls
                }
            };
            if l.forward_auth_only && matches!(role, ListenerRole::RedirectToHttps(_)) {
                problems.add(
                    &format!("listen[{i}].forward_auth_only"),
                    "a listener that redirects to HTTPS cannot also answer forward-auth checks",
                );
            }
            Some(Listener {
                address,
                h2c: l.h2c,
                role,
                forward_auth_only: l.forward_auth_only,
                forward_auth_mode: l.forward_auth_mode,
            })
        })
        .collect();

    let admin_listen = socket_addr(&file.admin.listen, "admin.listen", &mut problems);
    let health_listen = file
        .admin
        .health_listen
        .as_ref()
        .and_then(|a| socket_addr(a, "admin.health_listen", &mut problems));

    let domains = crate::domains::DomainSettings {
        public_name: match &file.domains.public_name {
            Some(name) => match canonical_host(name) {
                Some(host) if !name.contains(':') => host,
                _ => {
                    problems.add(
                        "domains.public_name",
                        format!("`{name}` is not a host name"),
                    );
                    String::new()
                }
            },
            None => String::new(),
        },
        nameservers: file
            .domains
            .nameservers
            .iter()
            .enumerate()
            .filter_map(|(i, ns)| {
                socket_addr(ns, &format!("domains.nameservers[{i}]"), &mut problems)
            })
            .collect(),
        max_per_app: file.domains.max_per_app,
        blocklist: file.domains.blocklist.clone(),
        check_interval: file
            .domains
            .check_interval
            .duration()
            .max(std::time::Duration::from_secs(1)),
    };
    let acme = file.acme.directory_url.as_ref().map(|url| {
        if !url.starts_with("https://") {
            problems.add("acme.directory_url", format!("`{url}` is not an https URL"));
        }
        crate::acme::AcmeSettings {
            directory_url: url.clone(),
            ca_root: file.acme.ca_root.as_ref().map(std::path::PathBuf::from),
            renew_after: file.acme.renew_after.duration(),
            retry_after: file
                .acme
                .retry_after
                .duration()
                .max(std::time::Duration::from_secs(1)),
        }
    });
    let certs_dir = file.listen.iter().any(|l| l.tls).then(|| {
        let dir = std::path::PathBuf::from(&file.tls.certs_dir);
        match crate::tls::CertStore::load(&dir) {
            // With an ACME CA the directory may start empty: certificates arrive as custom
            // domains are verified, and go when they are removed.
            Ok(store) if store.names().is_empty() && acme.is_none() => problems.add(
                "tls.certs_dir",
                format!("{} holds no <host>.crt + <host>.key pair", dir.display()),
            ),
            Ok(_) => {}
            Err(e) => problems.add("tls.certs_dir", e),
        }
        dir
    });

    if file
        .admin
        .api_token
        .as_ref()
        .is_some_and(|t| t.expose().len() < 32)
    {
        problems.add("admin.api_token", "must be at least 32 bytes");
    }
    if file.server.threads == Some(0) {
        problems.add("server.threads", "must be at least 1");
    }
    let server = ServerSettings {
        threads: file.server.threads.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        }),
        drain_timeout: file.server.drain_timeout.duration(),
        upstream_keepalive_pool_size: file.server.upstream_keepalive_pool_size,
    };

    if file.limits.max_request_header_bytes < 1024 {
        problems.add("limits.max_request_header_bytes", "must be at least 1024");
    }
    for (field, value) in [
        ("limits.keepalive_timeout", file.limits.keepalive_timeout),
        (
            "limits.request_header_timeout",
            file.limits.request_header_timeout,
        ),
    ] {
        if value.0 == 0 {
            problems.add(field, "must be at least 1s");
        }
    }
    if file.limits.max_connections == Some(0) {
        problems.add("limits.max_connections", "must be at least 1");
    }
    let limits = Limits {
        max_request_header_bytes: file.limits.max_request_header_bytes,
        max_request_body_bytes: file.limits.max_request_body_bytes,
        max_response_body_bytes: file.limits.max_response_body_bytes,
        keepalive_timeout: file.limits.keepalive_timeout.duration(),
        request_header_timeout: file.limits.request_header_timeout.duration(),
        max_connections: file
            .limits
            .max_connections
            .unwrap_or_else(default_max_connections),
    };

    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&file.log.level) {
        problems.add("log.level", format!("not a log filter: {e}"));
    }

    let trusted_proxies = file
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, written)| {
            let net = written
                .parse::<ipnet::IpNet>()
                .ok()
                .or_else(|| written.parse::<IpAddr>().ok().map(ipnet::IpNet::from));
            if net.is_none() {
                problems.add(
                    &format!("trusted_proxies[{i}]"),
                    format!("`{written}` is not an IP address or CIDR"),
                );
            }
            net
        })
        .collect();

    let mut managed_headers = match ManagedHeaders::compile(&file.identity_headers.strip) {
        Ok(headers) => headers,
        Err((i, message)) => {
            problems.add(&format!("identity_headers.strip[{i}]"), message);
            ManagedHeaders::default()
        }
    };
    match ManagedHeaders::compile(&file.rewrite_headers.strip) {
        Ok(rewrites) => managed_headers.extend(rewrites),
        Err((i, message)) => problems.add(&format!("rewrite_headers.strip[{i}]"), message),
    }

    let identity_headers = super::compile_jwt::identity_headers(
        &file.identity_headers,
        &managed_headers,
        &mut problems,
    );
    let issuers =
        super::compile_jwt::issuers(file.jwt_issuers, previous, &mut carried, &mut problems);
    let mut sessions = super::compile_oidc::sessions(&file.sessions, &mut problems);
    if let Some(running) = running {
        // The session store is chosen at start-up: a reload keeps the running one, and may not
        // take away the keys its sessions are sealed with.
        sessions.redis = running.sessions.redis.clone();
        sessions.near_cache_entries = running.sessions.near_cache_entries;
        if sessions.redis.is_some() && sessions.cookie_keys.is_none() {
            problems.add(
                "sessions.cookie_keys",
                "the running gateway keeps sessions in Redis (chosen at start-up); a reload \
                 cannot take away the keys they are sealed with",
            );
        }
    }
    let providers =
        super::compile_oidc::providers(file.oidc_providers, previous, &mut carried, &mut problems);
    let issuer_ids: Vec<Arc<str>> = issuers.iter().map(|i| i.id.clone()).collect();
    let verifier = Arc::new(crate::jwt::Verifier::after(
        issuers,
        file.limits.verified_token_cache_entries,
        running.map(|g| &*g.verifier),
    ));

    let pages = compile_pages(&file.pages, &mut problems);
    let site_branding = branding(&crate::pages::Branding::default(), &file.pages.branding);

    let mut hosts = HostTable::default();
    let mut ids = HashSet::new();
    let mut longest_assertion = None;
    // What every app is compiled against; while it is unchanged, an app whose own settings
    // are unchanged is taken over from the running snapshot as it is (a change to one app of
    // thousands compiles that one).
    let context = {
        let provider_ptrs: Vec<usize> = providers
            .iter()
            .map(|p| Arc::as_ptr(p) as *const () as usize)
            .collect();
        super::carry::fingerprint(
            &(
                &issuer_ids,
                provider_ptrs,
                &site_branding,
                &managed_headers,
                &file.signing.issuer,
                &file.identity_headers,
            ),
            &[],
        )
    };
    for (i, app) in file.apps.into_iter().enumerate() {
        let at = format!("apps[{i}]");
        if !ids.insert(app.id.clone()) {
            problems.add(
                &format!("{at}.id"),
                format!("`{}` is used by another app", app.id),
            );
        }
        if let Some(assertion) = &app.assertion {
            longest_assertion = longest_assertion.max(Some(assertion.lifetime.duration()));
        }
        // Compared without its custom domains: they are host names, claimed below either way.
        let mut settings = app;
        let custom_domains = std::mem::take(&mut settings.custom_domains);
        if let Some(done) = previous.and_then(|p| p.app(&settings, &context)) {
            claim_hosts(&done, &custom_domains, &at, &mut hosts, &mut problems);
            let id = settings.id.clone();
            let carry = super::carry::CarriedApp {
                context,
                settings,
                app: done,
            };
            carried.apps.insert(id, carry);
            continue;
        }
        let kept = settings.clone();
        let mut app = settings;
        app.custom_domains = custom_domains;
        let own_headers = app.identity_headers.as_ref().map(|from_claims| {
            super::compile_jwt::header_mappings(
                from_claims,
                file.identity_headers.max_value_bytes,
                &format!("{at}.identity_headers"),
                &managed_headers,
                &mut problems,
            )
        });
        let shared = SharedByApps {
            issuer_ids: &issuer_ids,
            providers: &providers,
            site_branding: &site_branding,
            managed_headers: &managed_headers,
            signing_issuer: file.signing.issuer.as_deref(),
        };
        if let Some(done) = compile_app(app, &at, &shared, own_headers, &mut hosts, &mut problems) {
            let carry = super::carry::CarriedApp {
                context,
                settings: kept,
                app: done,
            };
            carried.apps.insert(carry.settings.id.clone(), carry);
        }
    }

    if ids.is_empty() && file.admin.api_token.is_none() {
        problems.add(
            "apps",
            "no apps: nothing would be served; add apps, or set admin.api_token to add them \
             through the admin API",
        );
    }

    let signing = super::compile_signing::signing(&file.signing, longest_assertion, &mut problems);
    let control = super::compile_control::control(&file.control, &file.sessions, &mut problems);
    problems.into_result(Gateway {
        signing,
        control,
        listeners,
        server,
        admin: AdminSettings {
            listen: admin_listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9090))),
            health_listen,
            metrics_token: file.admin.metrics_token,
            api_token: file.admin.api_token,
            data_dir: std::path::PathBuf::from(&file.admin.data_dir),
        },
        log: file.log,
        limits,
        trusted_proxies,
        managed_headers,
        hosts,
        verifier,
        identity_headers,
        providers,
        sessions,
        certs_dir,
        domains,
        acme,
        carried,
        warnings: Problems::default(),
        pages,
        branding: site_branding,
    })
}

fn socket_addr(written: &str, field: &str, problems: &mut Problems) -> Option<SocketAddr> {
    match written.parse() {
        Ok(addr) => Some(addr),
        Err(_) => {
            problems.add(
                field,
                format!("`{written}` is not an IP:port address (e.g. 127.0.0.1:8080)"),
            );
            None
        }
    }
}

/// The page templates (built-in, or replaced from `pages.templates_dir`) and the site-wide
/// branding's checks.
fn compile_pages(
    file: &super::model::PagesFile,
    problems: &mut Problems,
) -> Arc<crate::pages::Pages> {
    crate::pages::check_branding(
        file.branding.logo_url.as_deref(),
        file.branding.accent_color.as_deref(),
        "pages.branding",
        problems,
    );
    let dir = file.templates_dir.as_deref().map(std::path::Path::new);
    if let Some(dir) = dir {
        if !dir.is_dir() {
            problems.add(
                "pages.templates_dir",
                format!("{} is not a directory", dir.display()),
            );
        }
    }
    match crate::pages::Pages::load(dir) {
        Ok(pages) => Arc::new(pages),
        Err(e) => {
            problems.add("pages.templates_dir", e);
            Arc::new(crate::pages::Pages::load(None).expect("the built-in templates compile"))
        }
    }
}

/// `over` on top of `base`, key by key.
fn branding(
    base: &crate::pages::Branding,
    over: &super::model::BrandingFile,
) -> crate::pages::Branding {
    crate::pages::Branding {
        title: over.title.clone().unwrap_or_else(|| base.title.clone()),
        logo_url: over.logo_url.clone().or_else(|| base.logo_url.clone()),
        accent_color: over
            .accent_color
            .clone()
            .unwrap_or_else(|| base.accent_color.clone()),
    }
}

/// What every app is compiled against: the issuers and providers it may name, and the
/// site's branding it inherits.
struct SharedByApps<'a> {
    issuer_ids: &'a [Arc<str>],
    providers: &'a [Arc<crate::oidc::Provider>],
    site_branding: &'a crate::pages::Branding,
    managed_headers: &'a crate::proxy::headers::ManagedHeaders,
    signing_issuer: Option<&'a str>,
}

/// Compiles one app and claims its host names; the app, when it could be built.
fn compile_app(
    file: AppFile,
    at: &str,
    shared: &SharedByApps,
    identity_headers: Option<crate::authn::identity::IdentityHeaders>,
    hosts: &mut HostTable,
    problems: &mut Problems,
) -> Option<Arc<App>> {
    let SharedByApps {
        issuer_ids,
        providers,
        site_branding,
        managed_headers,
        signing_issuer,
    } = *shared;
    let branding = match &file.branding {
        Some(own) => {
            crate::pages::check_branding(
                own.logo_url.as_deref(),
                own.accent_color.as_deref(),
                &format!("{at}.branding"),
                problems,
            );
            self::branding(site_branding, own)
        }
        None => site_branding.clone(),
    };
    if file.id.trim().is_empty() {
        problems.add(&format!("{at}.id"), "must not be empty");
    }
    let origin = compile_origin(&file.origin, &format!("{at}.origin"), problems);
    let host = host_name(&file.host, &format!("{at}.host"), problems);
    let routes = RouteTable::compile(file.routes, file.default_action, file.paths, at, problems);
    let provider = match &file.oidc_provider {
        Some(id) => {
            let found = providers.iter().find(|p| *p.id == **id).cloned();
            if found.is_none() {
                problems.add(
                    &format!("{at}.oidc_provider"),
                    format!("no oidc_providers entry has id `{id}`"),
                );
            }
            found
        }
        None if providers.len() == 1 => Some(providers[0].clone()),
        None => None,
    };
    let auth_prefix = file.auth_prefix.trim_end_matches('/').to_string();
    let prefix_ok = auth_prefix.len() > 1
        && crate::route::path::normalize(&auth_prefix, crate::config::PathOptionsFile::default())
            .is_ok_and(|n| n == auth_prefix);
    if !prefix_ok {
        problems.add(
            &format!("{at}.auth_prefix"),
            format!(
                "`{}` must be a normalised path below `/`, such as `/_auth`",
                file.auth_prefix
            ),
        );
    }
    let jwt_issuers: Vec<Arc<str>> = match &file.jwt.issuers {
        None => issuer_ids.to_vec(),
        Some(named) => named
            .iter()
            .enumerate()
            .filter_map(|(j, id)| {
                let found = issuer_ids.iter().find(|known| ***known == **id).cloned();
                if found.is_none() {
                    problems.add(
                        &format!("{at}.jwt.issuers[{j}]"),
                        format!("no jwt_issuers entry has id `{id}`"),
                    );
                }
                found
            })
            .collect(),
    };
    let (Some(origin), Some(host)) = (origin, host) else {
        // Not served; its custom domains are still checked, so every problem is named at once.
        for (j, written) in file.custom_domains.iter().enumerate() {
            host_name(written, &format!("{at}.custom_domains[{j}]"), problems);
        }
        return None;
    };
    let assertion = file.assertion.as_ref().and_then(|assertion| {
        let cx = super::compile_signing::AssertionContext {
            app_id: &file.id,
            host: &host,
            auth_prefix: &auth_prefix,
            issuer: signing_issuer,
            at,
        };
        super::compile_signing::assertion(assertion, &cx, managed_headers, problems)
    });
    let app = Arc::new(App {
        id: Arc::from(file.id.as_str()),
        host: host.clone(),
        origin,
        session_duration: file.session_duration.duration(),
        routes,
        paths: file.paths,
        jwt_issuers,
        forward_authorization: file.jwt.forward_authorization,
        provider,
        auth_prefix,
        identity_headers,
        branding,
        assertion,
    });
    claim_hosts(&app, &file.custom_domains, at, hosts, problems);
    Some(app)
}

/// Serves `app` on its host and `custom_domains`; a name another app has is a problem.
fn claim_hosts(
    app: &Arc<App>,
    custom_domains: &[String],
    at: &str,
    hosts: &mut HostTable,
    problems: &mut Problems,
) {
    let mut claim = |name: String, field: String, problems: &mut Problems| {
        if let Some(owner) = hosts.insert(name.clone(), app.clone()) {
            problems.add(
                &field,
                format!("`{name}` is already served by app `{owner}`"),
            );
        }
    };
    claim(app.host.clone(), format!("{at}.host"), problems);
    for (j, written) in custom_domains.iter().enumerate() {
        let field = format!("{at}.custom_domains[{j}]");
        if let Some(domain) = host_name(written, &field, problems) {
            claim(domain, field, problems);
        }
    }
}

fn host_name(written: &str, field: &str, problems: &mut Problems) -> Option<String> {
    match canonical_host(written) {
        Some(host) if !written.contains(':') || written.starts_with('[') => Some(host),
        _ => {
            problems.add(
                field,
                format!("`{written}` is not a host name (no scheme, port or path)"),
            );
            None
        }
    }
}

fn compile_origin(file: &OriginFile, at: &str, problems: &mut Problems) -> Option<Origin> {
    let field = format!("{at}.url");
    let url = match url::Url::parse(&file.url) {
        Ok(url) => url,
        Err(e) => {
            problems.add(&field, format!("`{}` is not a URL: {e}", file.url));
            return None;
        }
    };
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            problems.add(&field, format!("scheme `{other}` is not http or https"));
            return None;
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        problems.add(&field, "credentials in the origin URL are not supported");
        return None;
    }
    if url.query().is_some() || url.fragment().is_some() {
        problems.add(&field, "the origin URL must not have a query or fragment");
        return None;
    }
    let Some(host) = url.host_str() else {
        problems.add(&field, "the origin URL has no host");
        return None;
    };
    let port = url
        .port_or_known_default()
        .unwrap_or(if tls { 443 } else { 80 });
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let address = match (bare_host, port).to_socket_addrs() {
        Ok(mut addrs) => addrs.next(),
        Err(_) => None,
    };
    let Some(address) = address else {
        problems.add(&field, format!("cannot resolve origin host `{host}`"));
        return None;
    };
    let host_header = match file.host_header {
        HostHeaderFile::Original => None,
        HostHeaderFile::Origin => {
            let value = match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            HeaderValue::from_str(&value).ok()
        }
    };
    for (name, value) in [
        ("connect_timeout", file.connect_timeout),
        ("read_timeout", file.read_timeout),
    ] {
        if value.0 == 0 {
            problems.add(&format!("{at}.{name}"), "must be at least 1s");
        }
    }
    let mut peer = pingora::upstreams::peer::HttpPeer::new(address, tls, bare_host.to_string());
    peer.options.connection_timeout = Some(file.connect_timeout.duration());
    peer.options.read_timeout = Some(file.read_timeout.duration());
    peer.options.write_timeout = Some(file.read_timeout.duration());
    peer.options.idle_timeout = Some(file.idle_timeout.duration());
    peer.options.verify_cert = file.verify_tls;
    peer.options.verify_hostname = file.verify_tls;
    Some(Origin {
        peer,
        address,
        tls,
        sni: bare_host.to_string(),
        path_prefix: url.path().trim_end_matches('/').to_string(),
        host_header,
        connect_timeout: file.connect_timeout.duration(),
        read_timeout: file.read_timeout.duration(),
        idle_timeout: file.idle_timeout.duration(),
        verify_tls: file.verify_tls,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml;

    #[test]
    fn a_rebuild_compiles_only_the_apps_that_changed() {
        let config = |second_route: &str, domain: &str, title: &str| {
            format!(
                "listen: [{{address: '127.0.0.1:8080'}}]\n\
                 pages: {{branding: {{title: '{title}'}}}}\n\
                 apps:\n\
                 - {{id: a, host: a.test, origin: {{url: 'http://127.0.0.1:9'}}}}\n\
                 - {{id: b, host: b.test, custom_domains: [{domain}], origin: {{url: 'http://127.0.0.1:9'}}, \
                 routes: [{{prefix: '{second_route}', action: public}}]}}\n"
            )
        };
        let compiled = |text: &str, running: Option<&super::Gateway>| {
            let file = crate::config::parse(text).unwrap();
            super::compile_after(file, running).unwrap()
        };
        let app = |gw: &super::Gateway, host: &str| gw.hosts.lookup(host).unwrap().clone();
        let first = compiled(&config("/open", "b.customer.test", "Shop"), None);
        // Another app's route changed: `a` is taken over as it was, `b` is compiled again.
        let second = compiled(&config("/public", "b.customer.test", "Shop"), Some(&first));
        assert!(std::sync::Arc::ptr_eq(
            &app(&first, "a.test"),
            &app(&second, "a.test")
        ));
        assert!(!std::sync::Arc::ptr_eq(
            &app(&first, "b.test"),
            &app(&second, "b.test")
        ));
        // A custom domain is a host name: the app is taken over and served on the new name.
        let third = compiled(
            &config("/public", "b.elsewhere.test", "Shop"),
            Some(&second),
        );
        assert!(std::sync::Arc::ptr_eq(
            &app(&second, "b.test"),
            &app(&third, "b.elsewhere.test")
        ));
        assert!(third.hosts.lookup("b.customer.test").is_none());
        // What every app is compiled against changed (the site's branding): all are compiled.
        let fourth = compiled(&config("/public", "b.elsewhere.test", "Mall"), Some(&third));
        assert!(!std::sync::Arc::ptr_eq(
            &app(&third, "a.test"),
            &app(&fourth, "a.test")
        ));
        assert_eq!(app(&fourth, "a.test").branding.title, "Mall");
    }

    const MINIMAL: &str = "
apps:
  - id: demo
    host: App.Example.com.
    custom_domains: [app.customer.test]
    origin: {url: 'http://127.0.0.1:9/base/'}
";

    #[test]
    fn defaults_of_a_minimal_file() {
        let gw = from_yaml(MINIMAL).unwrap();
        assert_eq!(gw.listeners.len(), 1);
        assert_eq!(gw.listeners[0].address.to_string(), "127.0.0.1:8080");
        assert!(gw.listeners[0].h2c);
        assert_eq!(gw.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(gw.limits.max_request_header_bytes, 32768);
        assert_eq!(gw.limits.max_request_body_bytes, 10 * 1024 * 1024);
        assert!(gw.trusted_proxies.is_empty());
        assert_eq!(gw.server.drain_timeout.as_secs(), 10);
        let app = gw.hosts.lookup("app.example.com").unwrap();
        assert_eq!(app.session_duration.as_secs(), 14 * 86400);
        assert_eq!(app.origin.path_prefix, "/base");
        assert_eq!(app.origin.host_header.as_ref().unwrap(), "127.0.0.1:9");
        assert_eq!(app.origin.connect_timeout.as_secs(), 5);
        assert_eq!(app.origin.read_timeout.as_secs(), 60);
        assert!(gw.hosts.lookup("APP.CUSTOMER.TEST:443").is_some());
        assert!(gw.managed_headers.is_managed("x_auth_request_user"));
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_field() {
        let err = from_yaml(&format!("{MINIMAL}    sesion_duration: 1h\n")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("apps[0]"), "{text}");
        assert!(text.contains("sesion_duration"), "{text}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let err = from_yaml(
            "
listen: [{address: 'nowhere'}]
admin: {listen: 'localhost'}
trusted_proxies: ['10.0.0.0/8', 'banana']
identity_headers: {strip: ['bad header']}
log: {level: 'info,,=['}
apps:
  - id: a
    host: a.test
    origin: {url: 'ftp://x'}
  - id: a
    host: A.TEST
    origin: {url: 'http://127.0.0.1:1', connect_timeout: 0}
  - id: c
    host: 'http://c.test'
    origin: {url: 'http://127.0.0.1:1?x=1'}
",
        )
        .unwrap_err()
        .to_string();
        for field in [
            "listen[0].address",
            "admin.listen",
            "trusted_proxies[1]",
            "identity_headers.strip[0]",
            "log.level",
            "apps[0].origin.url",
            "apps[1].id",
            "apps[1].origin.connect_timeout",
            "apps[2].host",
            "apps[2].origin.url",
        ] {
            assert!(err.contains(field), "{field} missing from:\n{err}");
        }
    }

    #[test]
    fn a_host_served_twice_is_refused() {
        let err = from_yaml(
            "
apps:
  - {id: a, host: a.test, origin: {url: 'http://127.0.0.1:1'}}
  - {id: b, host: b.test, custom_domains: [A.test.], origin: {url: 'http://127.0.0.1:1'}}
",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("apps[1].custom_domains[0]"), "{err}");
        assert!(err.contains("app `a`"), "{err}");
    }

    #[test]
    fn a_reload_keeps_the_session_store_and_its_keys() {
        let with = |sessions: &str| format!("{MINIMAL}sessions: {sessions}\n");
        let running = from_yaml(&with(
            "{cookie_keys: ['a-key-of-at-least-thirty-two-bytes!!'], store: redis, redis: {url: 'redis://127.0.0.1:6379/'}}",
        ))
        .unwrap();
        let file = |sessions: &str| crate::config::parse(&with(sessions)).unwrap();
        // The store is chosen at start-up: a file that says memory keeps the running Redis.
        let reloaded = super::compile_after(
            file("{cookie_keys: ['a-key-of-at-least-thirty-two-bytes!!']}"),
            Some(&running),
        )
        .unwrap();
        assert!(reloaded.sessions.redis.is_some());
        // Without the keys, every session in Redis would stop opening: refused.
        let err = super::compile_after(file("{}"), Some(&running))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sessions.cookie_keys"), "{err}");
    }
}
