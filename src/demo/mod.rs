//! `authgate demo`: the gateway, a built-in echo origin and a development identity provider,
//! on loopback only, with a config that shows public, signed-in, token-protected and denied
//! routes.

pub mod idp;
pub mod origin;

use std::net::SocketAddr;

use crate::config::{compile, parse, Gateway, Problems};

/// The demo's configuration, embedded in the binary.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.yaml");

/// Addresses the demo binds; every one must be loopback.
#[derive(Debug, Clone, Copy)]
pub struct DemoAddresses {
    /// Gateway traffic.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
    /// The echo origin.
    pub origin: SocketAddr,
    /// The development identity provider.
    pub idp: SocketAddr,
}

/// The compiled demo configuration for these addresses. Refuses any non-loopback address:
/// the demo is for a developer's own machine, never a network.
pub fn config(addrs: DemoAddresses) -> Result<Gateway, Problems> {
    let mut problems = Problems::default();
    for (field, addr) in [
        ("--listen", addrs.listen),
        ("--admin", addrs.admin),
        ("--origin", addrs.origin),
        ("--idp", addrs.idp),
    ] {
        if !addr.ip().is_loopback() {
            problems.add(
                field,
                format!("{addr} is not a loopback address; the demo binds loopback only"),
            );
        }
    }
    let mut file = parse(DEMO_CONFIG)?;
    file.listen[0].address = addrs.listen.to_string();
    file.admin.listen = addrs.admin.to_string();
    for app in &mut file.apps {
        app.origin.url = format!("http://{}/", addrs.origin);
    }
    let issuer = format!("http://{}", addrs.idp);
    for provider in &mut file.oidc_providers {
        provider.issuer = issuer.clone();
    }
    for jwt in &mut file.jwt_issuers {
        jwt.issuer = issuer.clone();
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    compile::compile(file)
}

/// Starts the echo origin and the development identity provider on their own thread and
/// runtime (pingora owns the main thread). Both addresses are bound before this returns.
pub fn spawn_helpers(addrs: DemoAddresses) -> std::io::Result<()> {
    let bind = |address| -> std::io::Result<std::net::TcpListener> {
        let listener = std::net::TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    let origin_listener = bind(addrs.origin)?;
    let idp_listener = bind(addrs.idp)?;
    let dev_idp = std::sync::Arc::new(idp::DevIdp::new(addrs.idp));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("demo-helpers".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (Ok(origin_listener), Ok(idp_listener)) = (
                    tokio::net::TcpListener::from_std(origin_listener),
                    tokio::net::TcpListener::from_std(idp_listener),
                ) else {
                    tracing::error!("demo helpers could not take their listeners");
                    return;
                };
                tokio::join!(origin::serve(origin_listener), dev_idp.serve(idp_listener));
            })
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(ip: &str) -> DemoAddresses {
        DemoAddresses {
            listen: format!("{ip}:8080").parse().unwrap(),
            admin: "127.0.0.1:9090".parse().unwrap(),
            origin: "127.0.0.1:8081".parse().unwrap(),
            idp: "127.0.0.1:8082".parse().unwrap(),
        }
    }

    #[test]
    fn the_embedded_config_compiles() {
        let gw = config(addrs("127.0.0.1")).unwrap();
        let app = gw.hosts.lookup("localhost").unwrap();
        assert_eq!(
            app.provider.as_ref().unwrap().issuer,
            "http://127.0.0.1:8082"
        );
        assert_eq!(app.jwt_issuers.len(), 1);
    }

    #[test]
    fn non_loopback_binds_are_refused() {
        let err = config(addrs("0.0.0.0")).unwrap_err().to_string();
        assert!(err.contains("--listen"), "{err}");
    }
}
