//! Facts about the downstream connection: the peer, whether it is a trusted proxy, and
//! whether the client reached the gateway over TLS.

use std::net::IpAddr;

use pingora::proxy::Session;

use std::sync::Arc;

use crate::config::{App, Gateway};
use crate::tls::Sni;

/// The downstream connection of a request.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The connecting peer's IP.
    pub peer: Option<IpAddr>,
    /// The peer is listed in `trusted_proxies`.
    pub peer_trusted: bool,
    /// TLS to the gateway itself.
    pub direct_tls: bool,
    /// TLS to the gateway, or to a trusted proxy that says so in `X-Forwarded-Proto`.
    pub tls: bool,
}

impl Connection {
    /// The connection facts of `session` under `gw`'s trusted proxies.
    pub fn of(session: &Session, gw: &Gateway) -> Connection {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let peer_trusted =
            peer.is_some_and(|ip| gw.trusted_proxies.iter().any(|net| net.contains(&ip)));
        let direct_tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let forwarded_tls = peer_trusted
            && session
                .req_header()
                .headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
        Connection {
            peer,
            peer_trusted,
            direct_tls,
            tls: direct_tls || forwarded_tls,
        }
    }
}

/// On a TLS connection, the SNI name must belong to the same app as the request's host (else
/// a certificate for one app could carry requests for another). Plain connections pass.
pub fn sni_matches(session: &Session, gw: &Gateway, app: &Arc<App>) -> bool {
    let Some(ssl) = session.digest().and_then(|d| d.ssl_digest.as_ref()) else {
        return true;
    };
    let Some(Sni(name)) = ssl.extension.get::<Sni>() else {
        return false;
    };
    gw.hosts
        .lookup(name)
        .is_some_and(|sni_app| Arc::ptr_eq(sni_app, app))
}
