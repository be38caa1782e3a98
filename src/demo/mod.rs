//! `authgate demo`: the gateway and a built-in echo origin, on loopback only, with a config
//! that shows public, protected and denied routes.

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
}

/// The compiled demo configuration for these addresses. Refuses any non-loopback address:
/// the demo is for a developer's own machine, never a network.
pub fn config(addrs: DemoAddresses) -> Result<Gateway, Problems> {
    let mut problems = Problems::default();
    for (field, addr) in [
        ("--listen", addrs.listen),
        ("--admin", addrs.admin),
        ("--origin", addrs.origin),
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
    if !problems.is_empty() {
        return Err(problems);
    }
    compile::compile(file)
}

/// Starts the echo origin on its own thread and runtime (pingora owns the main thread).
pub fn spawn_origin(address: SocketAddr) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind(address)?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new()
        .name("demo-origin".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(async move {
                    match tokio::net::TcpListener::from_std(listener) {
                        Ok(listener) => origin::serve(listener).await,
                        Err(e) => tracing::error!("demo origin: {e}"),
                    }
                }),
                Err(e) => tracing::error!("demo origin runtime: {e}"),
            }
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
        }
    }

    #[test]
    fn the_embedded_config_compiles() {
        let gw = config(addrs("127.0.0.1")).unwrap();
        assert!(gw.hosts.lookup("localhost").is_some());
    }

    #[test]
    fn non_loopback_binds_are_refused() {
        let err = config(addrs("0.0.0.0")).unwrap_err().to_string();
        assert!(err.contains("--listen"), "{err}");
    }
}
