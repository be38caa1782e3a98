//! Admission: everything decided from the request head alone — framing, host → app, path
//! normalisation, route → action. Pure and synchronous, so it is unit-tested and benchmarked
//! without a network.

use std::sync::Arc;

use http::header::HOST;
use pingora::http::RequestHeader;

use crate::config::{App, Gateway};
use crate::proxy::framing;
use crate::respond::Reject;
use crate::route::host::{canonical_host, parse_host};
use crate::route::path::{normalize, without_parameters};
use crate::route::rules::{Action, Requirements, Route};

/// A request the gateway will forward (once its action is satisfied).
#[derive(Debug)]
pub struct Admitted {
    /// The app serving the request.
    pub app: Arc<App>,
    /// The canonical host the client asked for.
    pub host: String,
    /// The canonical host with the port the client wrote (if any), for `Host: original`,
    /// `X-Forwarded-Host` and every URL the gateway builds: never the raw spelling.
    pub client_host: String,
    /// The deciding route's name.
    pub route: Arc<str>,
    /// The deciding route's action.
    pub action: Action,
    /// The deciding route's requirements on the identity.
    pub require: Arc<Requirements>,
    /// Request target for the origin: path prefix + normalised path + query.
    pub upstream_uri: String,
    /// The normalised path (no prefix, no query) rules were matched on.
    pub path: String,
}

/// The app, route and upstream target for a request, or why it is refused. The route is
/// chosen on the same normalised path that is forwarded.
///
/// On refusal the second value names the app when the host was known, for logs and metrics.
pub fn admit(gw: &Gateway, req: &RequestHeader) -> Result<Admitted, (Reject, Option<Arc<App>>)> {
    framing::check(req, &gw.limits).map_err(|r| (r, None))?;
    let raw_host = request_host(req).map_err(|r| (r, None))?;
    let (host, port) = parse_host(raw_host).ok_or((Reject::BadHost, None))?;
    let client_host = match port {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let app = gw
        .hosts
        .lookup(&host)
        .cloned()
        .ok_or((Reject::UnknownHost, None))?;
    let path = normalize(req.uri.path(), app.paths)
        .map_err(|e| (Reject::BadPath(e), Some(app.clone())))?;
    // With path parameters allowed, rules see the path the origin will resolve.
    let route: &Route = app.routes.decide(&req.method, &without_parameters(&path));
    let mut upstream_uri = String::with_capacity(
        app.origin.path_prefix.len() + path.len() + 1 + req.uri.query().map_or(0, str::len),
    );
    upstream_uri.push_str(&app.origin.path_prefix);
    upstream_uri.push_str(&path);
    if let Some(query) = req.uri.query() {
        upstream_uri.push('?');
        upstream_uri.push_str(query);
    }
    Ok(Admitted {
        route: route.name.clone(),
        action: route.action,
        require: route.require.clone(),
        host,
        client_host,
        upstream_uri,
        path,
        app: app.clone(),
    })
}

/// The host a request is for: the `Host` header, or the authority of an absolute-form or
/// HTTP/2 request. Both present and different is ambiguous and refused.
fn request_host(req: &RequestHeader) -> Result<&str, Reject> {
    let header = match req.headers.get(HOST) {
        Some(value) => Some(value.to_str().map_err(|_| Reject::BadHost)?),
        None => None,
    };
    let authority = req.uri.authority().map(|a| a.as_str());
    match (header, authority) {
        (Some(h), Some(a)) if canonical_host(h) != canonical_host(a) => Err(Reject::BadHost),
        (Some(h), _) => Ok(h),
        (None, Some(a)) => Ok(a),
        (None, None) => Err(Reject::BadHost),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::path::PathError;

    fn gateway() -> Gateway {
        crate::config::from_yaml(
            "
apps:
  - id: shop
    host: shop.test
    origin: {url: 'http://127.0.0.1:9/base'}
    routes:
      - {name: public, prefix: /public, action: public}
      - {name: admin, prefix: /admin, action: deny}
",
        )
        .unwrap()
    }

    fn request(uri: &str, host: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        if let Some(host) = host {
            req.insert_header("host", host).unwrap();
        }
        req
    }

    #[test]
    fn decides_and_forwards_the_same_normalised_path() {
        let gw = gateway();
        let a = admit(&gw, &request("/public/../admin?x=1", Some("SHOP.test."))).unwrap();
        assert_eq!(&*a.route, "admin");
        assert_eq!(a.action, Action::Deny);
        assert_eq!(a.upstream_uri, "/base/admin?x=1");
        let a = admit(&gw, &request("/public/a", Some("shop.test:8080"))).unwrap();
        assert_eq!(a.action, Action::Public);
        assert_eq!(a.upstream_uri, "/base/public/a");
    }

    #[test]
    fn refusals() {
        let gw = gateway();
        let code = |uri: &str, host: Option<&str>| admit(&gw, &request(uri, host)).unwrap_err().0;
        assert_eq!(code("/", Some("other.test")), Reject::UnknownHost);
        assert_eq!(code("/", None), Reject::BadHost);
        assert_eq!(code("/", Some("bad host")), Reject::BadHost);
        assert_eq!(
            code("/admin;x=1", Some("shop.test")),
            Reject::BadPath(PathError::Semicolon)
        );
    }

    #[test]
    fn unmatched_paths_get_the_default_session_action() {
        let gw = gateway();
        let a = admit(&gw, &request("/private", Some("shop.test"))).unwrap();
        assert_eq!(a.action, Action::Session);
        assert_eq!(&*a.route, "default");
    }
}
