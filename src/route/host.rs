//! Host → app lookup. Host names are compared lower-case, without a trailing dot and without
//! the port, so `App.Example.com.:8443` finds the app for `app.example.com`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::App;

/// Canonical form of a host name or `Host` header value: lower-case, port and trailing dot
/// removed. IPv6 literals keep their brackets. Returns `None` for a value that cannot be a
/// host (empty, bad characters).
pub fn canonical_host(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let host = if raw.starts_with('[') {
        let end = raw.find(']')?;
        let (host, rest) = raw.split_at(end + 1);
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        host
    } else {
        match raw.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return None,
            None => raw,
        }
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        });
    valid.then(|| host.to_ascii_lowercase())
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
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
        let mut apps: Vec<Arc<App>> = Vec::new();
        for app in self.by_host.values() {
            if !apps.iter().any(|a| Arc::ptr_eq(a, app)) {
                apps.push(app.clone());
            }
        }
        apps
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
}
