//! Header hygiene on the way to the origin: identity and forwarding headers are *removed, then
//! set*. Whatever a client sent under a name the gateway owns never reaches the origin —
//! whatever its case, however often it appears, and whether it is spelt with `-` or `_`
//! (many origins, CGI and PHP among them, read `X_Forwarded_User` as `X-Forwarded-User`).
//!
//! Hop-by-hop headers, including those a client nominates in `Connection`, are removed by
//! pingora's upstream request policy before this module runs.

use std::net::IpAddr;

use http::HeaderName;
use pingora::http::RequestHeader;

/// Forwarding headers the gateway always sets itself.
const FORWARDING: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
];

/// The identity header names the gateway owns (exact names and prefixes), compared in
/// canonical form: lower-case with `_` read as `-`.
#[derive(Debug, Clone, Default)]
pub struct ManagedHeaders {
    /// Looked up once per request header: a search, not a scan of the ~50 default names.
    /// Ordered, so its `Debug` form (part of the compile context's fingerprint) is stable.
    exact: std::collections::BTreeSet<String>,
    prefixes: Vec<String>,
}

fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase().replace('_', "-"))
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

impl ManagedHeaders {
    /// Compiles the configured list; a trailing `*` makes a prefix. On error returns the index
    /// of the bad entry and why.
    pub fn compile(written: &[String]) -> Result<ManagedHeaders, (usize, String)> {
        let mut managed = ManagedHeaders::default();
        for (i, entry) in written.iter().enumerate() {
            let (name, is_prefix) = match entry.strip_suffix('*') {
                Some(prefix) => (prefix, true),
                None => (entry.as_str(), false),
            };
            if HeaderName::from_bytes(name.as_bytes()).is_err() || name.is_empty() {
                return Err((i, format!("`{entry}` is not a header name")));
            }
            let name = canonical(name).into_owned();
            if is_prefix {
                managed.prefixes.push(name);
            } else {
                managed.exact.insert(name);
            }
        }
        Ok(managed)
    }

    /// Adds another list's names.
    pub fn extend(&mut self, other: ManagedHeaders) {
        self.exact.extend(other.exact);
        self.prefixes.extend(other.prefixes);
    }

    /// True when a client-sent header of this name must not reach the origin.
    pub fn is_managed(&self, name: &str) -> bool {
        let name = canonical(name);
        self.exact.contains(name.as_ref())
            || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }
}

/// Facts about the downstream connection the forwarding headers are built from.
pub struct Forwarding<'a> {
    /// The connecting peer's IP, if known.
    pub peer: Option<IpAddr>,
    /// The peer is a trusted proxy: its `X-Forwarded-*` values are kept and extended.
    pub peer_trusted: bool,
    /// `https` or `http`, as the client reached the gateway.
    pub proto: &'static str,
    /// The host the client asked for.
    pub host: &'a str,
    /// This request's id.
    pub request_id: &'a str,
}

/// Removes every managed and forwarding header the client sent, then sets the gateway's own
/// forwarding headers.
pub fn prepare_upstream(req: &mut RequestHeader, managed: &ManagedHeaders, fwd: &Forwarding) {
    let client_chain = if fwd.peer_trusted {
        joined(req, "x-forwarded-for")
    } else {
        None
    };
    let client_proto = if fwd.peer_trusted {
        joined(req, "x-forwarded-proto")
    } else {
        None
    };
    let owned: Vec<HeaderName> = req
        .headers
        .keys()
        .filter(|name| {
            let canonical = canonical(name.as_str());
            FORWARDING.contains(&canonical.as_ref()) || managed.is_managed(&canonical)
        })
        .cloned()
        .collect();
    for name in owned {
        req.remove_header(&name);
    }

    let peer = fwd.peer.map(|ip| ip.to_string());
    let chain = match (client_chain, peer.as_deref()) {
        (Some(chain), Some(peer)) => Some(format!("{chain}, {peer}")),
        (None, Some(peer)) => Some(peer.to_string()),
        (Some(chain), None) => Some(chain),
        (None, None) => None,
    };
    // Values below come from parsed addresses, validated host names, and gateway-made ids, so
    // they are valid header values; an insert can only fail on an invalid value.
    if let Some(chain) = chain {
        let _ = req.insert_header("x-forwarded-for", chain);
    }
    if let Some(peer) = peer {
        let _ = req.insert_header("x-real-ip", peer);
    }
    let proto = client_proto.unwrap_or_else(|| fwd.proto.to_string());
    let _ = req.insert_header("x-forwarded-proto", proto);
    let _ = req.insert_header("x-forwarded-host", fwd.host);
    let _ = req.insert_header("x-request-id", fwd.request_id);
}

/// All values of a header joined with `, `, if any are valid text.
fn joined(req: &RequestHeader, name: &str) -> Option<String> {
    let values: Vec<&str> = req
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> ManagedHeaders {
        ManagedHeaders::compile(&crate::config::model::IdentityHeadersFile::default().strip)
            .unwrap()
    }

    #[test]
    fn managed_names_ignore_case_and_underscores() {
        let m = defaults();
        for name in [
            "x-forwarded-user",
            "X_Forwarded_User",
            "REMOTE_USER",
            "x-auth-request-email",
            "X_AUTH_REQUEST_ANYTHING",
            "x-authgate-assertion",
        ] {
            assert!(m.is_managed(name), "{name}");
        }
        for name in [
            "x-forwarded-usery",
            "user",
            "x-auth-requests",
            "authorization",
        ] {
            assert!(!m.is_managed(name), "{name}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_their_index() {
        let list = ["X-Ok".to_string(), "bad name".to_string()];
        assert_eq!(ManagedHeaders::compile(&list).unwrap_err().0, 1);
        assert!(ManagedHeaders::compile(&["*".to_string()]).is_err());
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    #[test]
    fn forged_headers_are_replaced_by_the_gateways_own() {
        let mut req = request(&[
            ("X-Forwarded-User", "admin"),
            ("x-forwarded-user", "admin2"),
            ("X_Forwarded_User", "admin3"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X_Forwarded_For", "1.2.3.5"),
            ("X-Request-Id", "forged"),
            ("Accept", "text/html"),
        ]);
        let fwd = Forwarding {
            peer: Some("10.1.1.1".parse().unwrap()),
            peer_trusted: false,
            proto: "http",
            host: "app.test",
            request_id: "rid-1",
        };
        prepare_upstream(&mut req, &defaults(), &fwd);
        assert!(req.headers.get("x-forwarded-user").is_none());
        assert!(req.headers.get("x_forwarded_user").is_none());
        assert!(req.headers.get("x_forwarded_for").is_none());
        let xff: Vec<_> = req.headers.get_all("x-forwarded-for").iter().collect();
        assert_eq!(xff, ["10.1.1.1"]);
        assert_eq!(req.headers["x-request-id"], "rid-1");
        assert_eq!(req.headers["x-forwarded-host"], "app.test");
        assert_eq!(req.headers["x-forwarded-proto"], "http");
        assert_eq!(req.headers["accept"], "text/html");
    }

    #[test]
    fn a_trusted_peer_extends_the_chain() {
        let mut req = request(&[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let fwd = Forwarding {
            peer: Some("10.0.0.2".parse().unwrap()),
            peer_trusted: true,
            proto: "http",
            host: "app.test",
            request_id: "rid",
        };
        prepare_upstream(&mut req, &defaults(), &fwd);
        assert_eq!(req.headers["x-forwarded-for"], "203.0.113.9, 10.0.0.2");
        assert_eq!(req.headers["x-forwarded-proto"], "https");
    }
}
