//! Forward-auth: an ingress that already proxies (nginx `auth_request`, ingress-nginx,
//! Traefik `forwardAuth`, Caddy `forward_auth`) asks the gateway about each request and copies
//! the identity headers from a 200 onto it. The request it describes goes through the same
//! admission (host → app, one normalised path, route rules) and the same gate (session or
//! bearer token, requirements) as a proxied one; only the answer differs:
//!
//! - allowed: 200, no body, the identity headers (every header of the app's mapping, empty
//!   when the identity has no such claim, so a client's own copy is overwritten whatever the
//!   ingress does with absent headers) and the signed assertion;
//! - a browser without a session: `redirect` mode 302s to the provider as the proxy path
//!   does (Traefik and Caddy hand non-2xx answers to the client); `status` mode answers 401
//!   with the sign-in URL in `X-Authgate-Login` for nginx's `error_page 401`;
//! - refused: the proxy path's refusal (401/403 …); in `status` mode any other status becomes
//!   403 with the real one in `X-Authgate-Status`, since nginx turns every answer but
//!   2xx/401/403 into a 500.
//!
//! The description headers are believed only from `trusted_proxies`; from anyone else the
//! check is refused with 400, never decided on the client's word.

use http::{HeaderName, HeaderValue, Method};
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

use super::admission;
use super::connection::Connection;
use super::gate::{self, Verdict};
use super::{AuthGate, RequestCtx};
use crate::config::model_signing::ForwardAuthModeFile as Mode;
use crate::config::Gateway;
use crate::oidc::flow::Answer;
use crate::respond::{self, Reject};
use crate::route::host::parse_host;

/// The header a `status`-mode 401 carries the sign-in URL in.
pub const LOGIN_HEADER: &str = "x-authgate-login";

/// The header a `status`-mode 403 carries the refusal's real status in.
pub const STATUS_HEADER: &str = "x-authgate-status";

/// Headers that describe the original request (or frame this one): never copied onto it.
const DESCRIPTION_HEADERS: [&str; 11] = [
    "host",
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-port",
    "x-forwarded-for",
    "x-original-url",
    "x-original-method",
    "content-length",
    "transfer-encoding",
];

/// The original request, as the calling proxy describes it.
#[derive(Debug, PartialEq, Eq)]
pub struct Described {
    /// Its method.
    pub method: Method,
    /// `https` (true) or `http`.
    pub tls: bool,
    /// Its host, with the port if one was written.
    pub host: String,
    /// Its path and query.
    pub path_and_query: String,
    /// Described in `X-Original-URL` (nginx's style), not `X-Forwarded-*`.
    pub nginx_style: bool,
}

/// One value of a header; two (or an unreadable one) is refused.
fn single<'a>(req: &'a RequestHeader, name: &str) -> Result<Option<&'a str>, &'static str> {
    let mut values = req.headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Ok(None),
        (Some(v), None) => v
            .to_str()
            .map(|v| Some(v.trim()))
            .map_err(|_| "a forward-auth header is not readable text"),
        (Some(_), Some(_)) => Err("a forward-auth header is repeated"),
    }
}

fn method(written: Option<&str>) -> Result<Method, &'static str> {
    match written {
        None | Some("") => Ok(Method::GET),
        Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| "the described method is not one"),
    }
}

fn is_https(proto: &str) -> Result<bool, &'static str> {
    match proto.to_ascii_lowercase().as_str() {
        "https" | "wss" => Ok(true),
        "http" | "ws" => Ok(false),
        _ => Err("the described scheme is neither http nor https"),
    }
}

/// Reads the description: `X-Original-URL` (+ `X-Original-Method`), else `X-Forwarded-Host`,
/// `-Uri` (+ `-Proto`, `-Method`).
pub fn describe(req: &RequestHeader) -> Result<Described, &'static str> {
    if let Some(url) = single(req, "x-original-url")? {
        let url = url::Url::parse(url).map_err(|_| "X-Original-URL is not an absolute URL")?;
        let host = url.host_str().ok_or("X-Original-URL has no host")?;
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let mut path_and_query = url.path().to_string();
        if let Some(query) = url.query() {
            path_and_query.push('?');
            path_and_query.push_str(query);
        }
        return Ok(Described {
            method: method(single(req, "x-original-method")?)?,
            tls: is_https(url.scheme())?,
            host,
            path_and_query,
            nginx_style: true,
        });
    }
    let uri = single(req, "x-forwarded-uri")?
        .ok_or("the proxy did not describe the request (X-Forwarded-Uri or X-Original-URL)")?;
    let host = single(req, "x-forwarded-host")?.ok_or("X-Forwarded-Host is missing")?;
    if host.contains(',') {
        return Err("X-Forwarded-Host names more than one host");
    }
    if !uri.starts_with('/') {
        return Err("X-Forwarded-Uri is not a path");
    }
    Ok(Described {
        method: method(single(req, "x-forwarded-method")?)?,
        tls: is_https(single(req, "x-forwarded-proto")?.unwrap_or("http"))?,
        host: host.to_string(),
        path_and_query: uri.to_string(),
        nginx_style: false,
    })
}

/// The described request as a request head: its method, target and host, with every other
/// header of the check (cookies, `Authorization`, `Accept`, `Sec-Fetch-*`) as the client
/// sent them to the proxy.
pub fn request_head(check: &RequestHeader, described: &Described) -> Result<RequestHeader, Reject> {
    let mut head = RequestHeader::build(
        described.method.clone(),
        described.path_and_query.as_bytes(),
        None,
    )
    .map_err(|_| Reject::BadRequest("the described path is not a request target"))?;
    for (name, value) in check.headers.iter() {
        if DESCRIPTION_HEADERS.contains(&name.as_str()) {
            continue;
        }
        head.append_header(name.clone(), value.clone())
            .map_err(|_| Reject::BadRequest("a header cannot be copied"))?;
    }
    head.insert_header(http::header::HOST, described.host.as_str())
        .map_err(|_| Reject::BadHost)?;
    Ok(head)
}

/// Whether a request is a forward-auth check: on a forward-auth listener every request is;
/// elsewhere one for `{auth_prefix}/verify` of the app of its `Host`, or — when its `Host`
/// is no app's (Traefik sends the gateway's own address) — any `…/verify` that describes a
/// request (the described app's prefix is checked after).
pub fn is_check(only: bool, gw: &Gateway, req: &RequestHeader) -> bool {
    if only {
        return true;
    }
    let Some(prefix) = req.uri.path().strip_suffix("/verify") else {
        return false;
    };
    let host = req
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri.authority().map(|a| a.as_str()))
        .and_then(parse_host);
    match host.and_then(|(host, _)| gw.hosts.lookup(&host)) {
        Some(app) => app.auth_prefix == prefix,
        None => {
            req.headers.contains_key("x-forwarded-uri")
                || req.headers.contains_key("x-original-url")
        }
    }
}

/// The mode a check asks for: `?mode=` on the check, else the listener's, else by the
/// description's style.
fn mode(check: &RequestHeader, listener: Option<Mode>, described: &Described) -> Mode {
    let asked = check.uri.query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "mode")
            .and_then(|(_, v)| match v.as_ref() {
                "status" => Some(Mode::Status),
                "redirect" => Some(Mode::Redirect),
                _ => None,
            })
    });
    asked.or(listener).unwrap_or(if described.nginx_style {
        Mode::Status
    } else {
        Mode::Redirect
    })
}

impl AuthGate {
    /// Answers a forward-auth check.
    pub(super) async fn forward_auth(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<bool> {
        ctx.forward_auth = true;
        let conn = Connection::of(session, &ctx.snapshot);
        if !conn.peer_trusted {
            tracing::warn!(request_id = %ctx.request_id, peer = ?conn.peer, "a forward-auth check from a peer not in trusted_proxies; refused");
            return self
                .refuse(
                    session,
                    ctx,
                    Reject::BadRequest("forward-auth checks are only answered for trusted_proxies"),
                )
                .await;
        }
        let check = session.req_header();
        let described = match describe(check) {
            Ok(described) => described,
            Err(why) => return self.refuse(session, ctx, Reject::BadRequest(why)).await,
        };
        let mode = mode(check, self.forward_auth_mode, &described);
        let head = request_head(check, &described);
        let admitted = match head.as_ref().map_err(Clone::clone).and_then(|head| {
            admission::admit(&ctx.snapshot, head).map_err(|(reject, app)| {
                ctx.refused_app = app;
                reject
            })
        }) {
            Ok(admitted) => admitted,
            Err(reject) => return self.answer_refusal(session, ctx, reject, mode).await,
        };
        let head = head.map_err(|_| Error::new(ErrorType::InternalError))?;
        let check_prefix = check.uri.path().strip_suffix("/verify");
        let app = admitted.app.clone();
        ctx.admitted = Some(admitted);
        if !self.forward_auth_only && check_prefix.is_some_and(|p| p != app.auth_prefix) {
            let reject =
                Reject::BadRequest("this app's forward-auth endpoint is under its own auth_prefix");
            return self.answer_refusal(session, ctx, reject, mode).await;
        }
        let admitted = ctx
            .admitted
            .as_ref()
            .ok_or_else(|| Error::new(ErrorType::InternalError))?;
        let own_endpoint = admitted
            .path
            .strip_prefix(app.auth_prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        if own_endpoint {
            let reject = Reject::BadRequest(
                "the gateway's own endpoints are not checked: route the auth_prefix to authgate",
            );
            return self.answer_refusal(session, ctx, reject, mode).await;
        }
        let verdict = gate::decide(
            &self.sign_in,
            &self.keys,
            &ctx.snapshot,
            &head,
            admitted,
            described.tls,
            &ctx.request_id,
        )
        .await;
        let login_url = || {
            format!(
                "{}://{}{}/login?rd={}",
                if described.tls { "https" } else { "http" },
                described.host,
                app.auth_prefix,
                url::form_urlencoded::byte_serialize(described.path_and_query.as_bytes())
                    .collect::<String>()
            )
        };
        let answer = match verdict {
            Verdict::Forward(identity) => {
                let gw = &ctx.snapshot;
                let mapping = app
                    .identity_headers
                    .as_ref()
                    .unwrap_or(&gw.identity_headers);
                let mut answer = Answer::empty(200, "allow");
                let set = identity.as_ref().map_or(&[][..], |i| &i.headers[..]);
                let mut names: Vec<&HeaderName> = mapping.header_names().collect();
                names.extend(app.assertion.as_ref().map(|a| &a.header));
                for name in names {
                    let value = set
                        .iter()
                        .find(|(n, _)| n == name)
                        .map_or(HeaderValue::from_static(""), |(_, v)| v.clone());
                    answer = answer.header(name.clone(), value);
                }
                ctx.identity = identity;
                answer
            }
            Verdict::Refuse(reject) => {
                return self.answer_refusal(session, ctx, reject, mode).await
            }
            Verdict::Answer(answer)
                if answer.decision == "login_redirect" && mode == Mode::Status =>
            {
                // The URL is built from an admitted host and an encoded path: always a valid
                // header; were it not, the answer is still a plain 401.
                let Ok(login) = HeaderValue::from_str(&login_url()) else {
                    return self
                        .answer_refusal(session, ctx, Reject::Unauthenticated, mode)
                        .await;
                };
                Answer::json(
                    401,
                    "unauthenticated",
                    serde_json::json!({"error": "unauthenticated", "message": "sign-in required", "login_url": login_url()}),
                )
                .header(HeaderName::from_static(LOGIN_HEADER), login)
            }
            // An API client's 401 (with its `login_url`) stays as it is: nginx must not
            // redirect it.
            Verdict::Answer(answer) if answer.status >= 300 => answer,
            // Nothing else the gate answers (the "no icon" 204) may read as allowed.
            Verdict::Answer(_) => {
                return self
                    .answer_refusal(session, ctx, Reject::Unauthenticated, mode)
                    .await
            }
        };
        // nginx reads anything but 2xx, 401 and 403 as its own failure (a 500): in status
        // mode the gate's other answers (a provider that cannot be reached, 502) become 403
        // with the real status beside it.
        let answer = if mode == Mode::Status && !matches!(answer.status, 200 | 401 | 403) {
            let status = answer.status;
            Answer::json(
                403,
                answer.decision,
                serde_json::json!({"error": answer.decision, "status": status}),
            )
            .header(
                HeaderName::from_static(STATUS_HEADER),
                HeaderValue::from(status),
            )
        } else {
            answer
        };
        ctx.decision = answer.decision;
        respond::send_answer(session, answer, &ctx.request_id).await?;
        Ok(true)
    }

    /// A refusal, kept to 401 and 403 in `status` mode (nginx reads anything else as its own
    /// failure).
    async fn answer_refusal(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        reject: Reject,
        mode: Mode,
    ) -> Result<bool> {
        let status = reject.status();
        if mode == Mode::Redirect || status == 401 || status == 403 {
            return self.refuse(session, ctx, reject).await;
        }
        ctx.decision = reject.code();
        let answer = Answer::json(
            403,
            reject.code(),
            serde_json::json!({"error": reject.code(), "message": reject.to_string(), "status": status}),
        )
        .header(HeaderName::from_static(STATUS_HEADER), HeaderValue::from(status));
        respond::send_answer(session, answer, &ctx.request_id).await?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/_auth/verify", None).unwrap();
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn reads_nginx_and_traefik_descriptions() {
        let d = describe(&check(&[
            ("x-original-url", "https://app.test:8443/a/b?x=1"),
            ("x-original-method", "POST"),
        ]))
        .unwrap();
        assert_eq!(
            d,
            Described {
                method: Method::POST,
                tls: true,
                host: "app.test:8443".into(),
                path_and_query: "/a/b?x=1".into(),
                nginx_style: true
            }
        );
        let d = describe(&check(&[
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/p?q"),
            ("x-forwarded-proto", "http"),
        ]))
        .unwrap();
        assert_eq!(d.method, Method::GET);
        assert!(!d.tls && !d.nginx_style);
        assert_eq!(d.path_and_query, "/p?q");
    }

    #[test]
    fn refuses_what_cannot_be_read_in_one_way() {
        for headers in [
            &[][..],
            &[("x-forwarded-uri", "/p")][..],
            &[("x-forwarded-host", "a.test"), ("x-forwarded-uri", "p")][..],
            &[
                ("x-forwarded-host", "a.test, b.test"),
                ("x-forwarded-uri", "/p"),
            ][..],
            &[
                ("x-forwarded-host", "a.test"),
                ("x-forwarded-uri", "/p"),
                ("x-forwarded-uri", "/q"),
            ][..],
            &[
                ("x-forwarded-host", "a.test"),
                ("x-forwarded-uri", "/p"),
                ("x-forwarded-proto", "gopher"),
            ][..],
            &[("x-original-url", "/relative")][..],
            &[
                ("x-original-url", "https://a.test/"),
                ("x-original-method", "G E T"),
            ][..],
        ] {
            assert!(describe(&check(headers)).is_err(), "{headers:?}");
        }
    }

    #[test]
    fn the_described_head_keeps_credentials_and_drops_the_description() {
        let c = check(&[
            ("host", "authgate:8080"),
            ("x-forwarded-host", "app.test"),
            ("x-forwarded-uri", "/p"),
            ("cookie", "a=b"),
            ("authorization", "Bearer t"),
        ]);
        let head = request_head(&c, &describe(&c).unwrap()).unwrap();
        assert_eq!(head.uri, "/p");
        assert_eq!(head.headers["host"], "app.test");
        assert_eq!(head.headers["cookie"], "a=b");
        assert_eq!(head.headers["authorization"], "Bearer t");
        assert!(!head.headers.contains_key("x-forwarded-uri"));
    }
}
