//! The gateway's cookies as an attacker would send and set them: non-ASCII neighbours, a
//! tossed second session cookie, an origin planting them, and a sign-in over another session.

use crate::common::{raw, PLANTED_COOKIES};
use crate::signin::{setup, Setup};

/// Signs a browser in and returns its session cookie's value.
async fn signed_in(s: &Setup) -> String {
    let mut b = s.browser();
    assert_eq!(
        s.sign_in(&mut b, "/private").await.last().unwrap().status,
        200
    );
    b.jar["authgate"].clone()
}

/// A raw request with the given `Cookie` header lines (bytes, as a browser may send them).
async fn with_cookies(s: &Setup, path: &str, cookie_lines: &[&[u8]]) -> crate::common::Resp {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: app.test\r\nAccept: application/json\r\n")
        .into_bytes();
    for line in cookie_lines {
        req.extend_from_slice(b"Cookie: ");
        req.extend_from_slice(line);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    raw(s.gw.addr, &req).await
}

#[tokio::test]
async fn a_non_ascii_cookie_beside_the_session_neither_leaks_nor_signs_out() {
    let s = setup("", "", "").await;
    let session = signed_in(&s).await;
    let before = s.origin.seen().len();
    for (i, neighbour) in [&b"pref=caf\xc3\xa9"[..], b"x=\xff\xfe"].iter().enumerate() {
        let mut line = neighbour.to_vec();
        line.extend_from_slice(format!("; authgate={session}").as_bytes());
        let resp = with_cookies(&s, &format!("/private/{i}"), &[&line]).await;
        assert_eq!(resp.status, 200, "still signed in: {}", resp.body);
        let public = with_cookies(&s, &format!("/public/{i}"), &[&line]).await;
        assert_eq!(public.status, 200);
    }
    let seen = &s.origin.seen()[before..];
    assert_eq!(seen.len(), 4);
    for request in seen {
        let cookies = request.all("cookie");
        assert_eq!(cookies.len(), 1, "{request:?}");
        assert!(!cookies[0].contains("authgate"), "leaked: {request:?}");
        assert!(
            cookies[0].starts_with("pref=caf") || cookies[0].starts_with("x="),
            "the app's own cookie arrives: {request:?}"
        );
    }
}

#[tokio::test]
async fn two_session_cookies_are_no_session_and_neither_is_forwarded() {
    let s = setup("", "", "").await;
    let session = signed_in(&s).await;
    let other = signed_in(&s).await;
    let one = format!("authgate={session}");
    assert_eq!(
        with_cookies(&s, "/private", &[one.as_bytes()]).await.status,
        200
    );
    let before = s.origin.seen().len();
    let cases: Vec<Vec<String>> = vec![
        vec![format!("authgate={other}; authgate={session}")],
        vec![format!("authgate={session}; authgate={session}")],
        vec![format!("authgate=forged; authgate={session}")],
        vec![format!("authgate={other}"), format!("authgate={session}")],
    ];
    for lines in &cases {
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        let resp = with_cookies(&s, "/private", &lines).await;
        assert_eq!(resp.status, 401, "{lines:?}");
        let public = with_cookies(&s, "/public/x", &lines).await;
        assert_eq!(public.status, 200);
    }
    let seen = &s.origin.seen()[before..];
    assert_eq!(seen.len(), cases.len(), "only the public requests arrive");
    assert!(seen.iter().all(|r| r.all("cookie").is_empty()), "{seen:?}");
}

#[tokio::test]
async fn an_origin_cannot_set_the_gateways_cookies() {
    let s = setup("", "", "").await;
    let resp = with_cookies(&s, "/public/plant-cookies", &[]).await;
    assert_eq!(resp.status, 200);
    let set: Vec<&str> = resp
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(set, [PLANTED_COOKIES[0]], "only the origin's own cookie");
}

#[tokio::test]
async fn signing_in_ends_the_session_the_browser_already_had() {
    let s = setup("", "", "").await;
    let mut b = s.browser();
    s.sign_in(&mut b, "/private").await;
    let first = b.jar["authgate"].clone();
    let old = format!("authgate={first}");
    assert_eq!(
        with_cookies(&s, "/private", &[old.as_bytes()]).await.status,
        200
    );
    // Signing in again, with the first session's cookie still sent.
    let hops = s.sign_in(&mut b, "/_auth/login?rd=/private").await;
    assert_eq!(hops.last().unwrap().status, 200);
    let second = b.jar["authgate"].clone();
    assert_ne!(second, first);
    assert_eq!(
        with_cookies(&s, "/private", &[old.as_bytes()]).await.status,
        401,
        "the first session ended"
    );
    let new = format!("authgate={second}");
    assert_eq!(
        with_cookies(&s, "/private", &[new.as_bytes()]).await.status,
        200
    );
}
