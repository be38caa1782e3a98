//! Host → app lookup. Host names are compared lower-case, without a trailing dot and without
//! the port, so `App.Example.com.:8443` finds the app for `app.example.com`. A value is read
//! once, strictly: what is not a host name (an empty label, a second colon, a port out of
//! range) is refused, never repaired, so no other spelling of a host reaches an app.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::App;

/// A `Host` header value read strictly: the canonical host name (lower-case, no trailing
/// dot; IPv6 literals keep their brackets) and the port when one is written. `None` for a
/// value that is not a host.
pub fn parse_host(raw: &str) -> Option<(String, Option<u16>)> {
    let raw = raw.trim();
    let (host, port) = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let (host, rest) = raw.split_at(end + 1);
        let inside = &host[1..host.len() - 1];
        let literal = !inside.is_empty()
            && inside.contains(':')
            && inside
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        if !literal {
            return None;
        }
        match rest {
            "" => (host, None),
            _ => (host, Some(port(rest.strip_prefix(':')?)?)),
        }
    } else {
        match raw.split_once(':') {
            Some((host, written)) => (host, Some(port(written)?)),
            None => (raw, None),
        }
    };
    let host = if host.starts_with('[') {
        host
    } else {
        let host = host.strip_suffix('.').unwrap_or(host);
        let labels_ok = host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !labels_ok {
            return None;
        }
        host
    };
    (!host.is_empty() && host.len() <= 253).then(|| (host.to_ascii_lowercase(), port))
}

/// The canonical form of a host name or `Host` header value (see [`parse_host`]), without
/// its port.
pub fn canonical_host(raw: &str) -> Option<String> {
    parse_host(raw).map(|(host, _)| host)
}

/// A port as written after the colon: 1 to 65535, digits only.
fn port(written: &str) -> Option<u16> {
    if written.is_empty() || written.len() > 5 || !written.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    written.parse::<u16>().ok().filter(|p| *p != 0)
}

/// Every host name the gateway serves, each mapped to its app.
#[derive(Debug, Default)]
pub struct HostTable {
    by_host: HashMap<String, Arc<App>>,
}

impl HostTable {
    /// Registers `host` (already canonical) for `app`; returns the id of the app that
    /// already holds it, if any.
    pub fn insert(&mut self, host: String, app: Arc<App>) -> Option<Arc<str>> {
        match self.by_host.get(&host) {
            Some(existing) => Some(existing.id.clone()),
            None => {
                self.by_host.insert(host, app);
                None
            }
        }
    }

    /// The app serving a `Host` header value, if any.
    pub fn lookup(&self, raw_host: &str) -> Option<&Arc<App>> {
        self.by_host.get(&canonical_host(raw_host)?)
    }

    /// Every app, once each (in no particular order).
    pub fn apps(&self) -> Vec<Arc<App>> {
        let mut seen = std::collections::HashSet::with_capacity(self.by_host.len());
        self.by_host
            .values()
            .filter(|app| seen.insert(Arc::as_ptr(app)))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical_host("App.Example.COM").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host("app.example.com.").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host("app.example.com:8443").unwrap(),
            "app.example.com"
        );
        assert_eq!(
            canonical_host("app.example.com.:80").unwrap(),
            "app.example.com"
        );
        assert_eq!(canonical_host("[::1]:8080").unwrap(), "[::1]");
        assert_eq!(canonical_host("127.0.0.1:80").unwrap(), "127.0.0.1");
        assert_eq!(canonical_host(""), None);
        assert_eq!(canonical_host("a b"), None);
        assert_eq!(canonical_host("host:port"), None);
        assert_eq!(canonical_host("evil.com/x"), None);
        assert_eq!(canonical_host("[::1]x"), None);
    }

    #[test]
    fn other_spellings_of_a_host_are_refused() {
        for bad in [
            "app.example.com..",
            ".app.example.com",
            "app..example.com",
            "app.example.com:1:2",
            "app.example.com:",
            "app.example.com:0",
            "app.example.com:65536",
            "app.example.com:+80",
            "[]",
            "[::1]:",
            "[::1]:1:2",
            "[app.example.com]",
            "[::1",
            &format!("{}.com", "a".repeat(64)),
        ] {
            assert_eq!(parse_host(bad), None, "{bad}");
        }
        assert_eq!(
            parse_host("App.Example.com.:08443"),
            Some(("app.example.com".into(), Some(8443)))
        );
        assert_eq!(parse_host("[::1]:80"), Some(("[::1]".into(), Some(80))));
        assert_eq!(parse_host("a_b.test"), Some(("a_b.test".into(), None)));
    }
}
