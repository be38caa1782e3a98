//! The gateway's cookies.
//!
//! - The **session cookie** holds a random 128-bit id and a MAC over (app, id): a forged or
//!   tampered cookie is refused without a store lookup, and a cookie from one app's host is
//!   worthless on another's.
//! - A **login cookie** (one per sign-in in progress, so parallel tabs work) holds the state,
//!   nonce, PKCE verifier and return path, sealed with AES-256-GCM: the browser can neither read
//!   nor change it.
//!
//! Keys rotate: the first configured key seals and signs, every key is tried when opening.
//! Under TLS the names carry the `__Host-` prefix and `Secure`; always `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, no `Domain`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cookie::{Cookie, SameSite};
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};

use super::{SessionId, ID_LEN};

/// Cookie names start with this (after any `__Host-` prefix).
pub const COOKIE_PREFIX: &str = "authgate";
const MAC_LEN: usize = 16;
/// Characters in a session cookie's value: base64 of the id and the MAC.
const SESSION_COOKIE_LEN: usize = ((ID_LEN + MAC_LEN) * 4).div_ceil(3);

struct KeyMaterial {
    mac: hmac::Key,
    seal: LessSafeKey,
    csrf: hmac::Key,
    index: hmac::Key,
}

/// The keys that sign session cookies and seal login cookies; the first is current.
pub struct CookieKeys {
    keys: Vec<KeyMaterial>,
}

impl std::fmt::Debug for CookieKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CookieKeys({} key(s))", self.keys.len())
    }
}

impl CookieKeys {
    /// Keys from secrets (each at least 32 bytes; checked by the config). The first is current.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a [u8]>) -> CookieKeys {
        let keys = secrets
            .into_iter()
            .map(|secret| {
                let root = hmac::Key::new(hmac::HMAC_SHA256, secret);
                let derive = |label: &[u8]| hmac::sign(&root, label);
                let mac_key = derive(b"authgate session cookie mac");
                let seal_key = derive(b"authgate login cookie seal");
                let csrf_key = derive(b"authgate form token mac");
                let index_key = derive(b"authgate store index names");
                KeyMaterial {
                    mac: hmac::Key::new(hmac::HMAC_SHA256, mac_key.as_ref()),
                    csrf: hmac::Key::new(hmac::HMAC_SHA256, csrf_key.as_ref()),
                    index: hmac::Key::new(hmac::HMAC_SHA256, index_key.as_ref()),
                    seal: LessSafeKey::new(
                        UnboundKey::new(&AES_256_GCM, seal_key.as_ref())
                            .expect("a 32-byte key is a valid AES-256 key"),
                    ),
                }
            })
            .collect();
        CookieKeys { keys }
    }

    /// A random key for this process only (sessions end when it restarts).
    pub fn ephemeral() -> CookieKeys {
        let secret = super::new_id();
        CookieKeys::new([&secret[..]])
    }

    /// The names a store index for `text` (a user's `sub`) goes under by every key, current
    /// first: MACs, so a store dump does not list who is signed in, and entries written before
    /// a key rotation are found too.
    pub fn index_names(&self, text: &str) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| URL_SAFE_NO_PAD.encode(&hmac::sign(&k.index, text.as_bytes()).as_ref()[..16]))
            .collect()
    }

    /// The session cookie value for `id` in `app`.
    pub fn sign_session(&self, app: &str, id: &SessionId) -> String {
        let tag = session_mac(&self.keys[0].mac, app, id);
        let mut raw = Vec::with_capacity(ID_LEN + MAC_LEN);
        raw.extend_from_slice(id);
        raw.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The session id in a cookie value, if its MAC verifies for `app` under any key.
    pub fn open_session(&self, app: &str, value: &str) -> Option<SessionId> {
        if value.len() != SESSION_COOKIE_LEN {
            return None;
        }
        // Decoded on the stack: this runs on every signed-in request.
        let mut raw = [0u8; ID_LEN + MAC_LEN + 3];
        let len = URL_SAFE_NO_PAD.decode_slice(value, &mut raw).ok()?;
        if len != ID_LEN + MAC_LEN {
            return None;
        }
        let (id, tag) = raw[..len].split_at(ID_LEN);
        let id: SessionId = id.try_into().ok()?;
        self.keys
            .iter()
            .any(|k| {
                let expected = session_mac(&k.mac, app, &id);
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    &expected.as_ref()[..MAC_LEN],
                    tag,
                )
                .is_ok()
            })
            .then_some(id)
    }

    /// A token for a form the gateway serves to the holder of session `id` (the sign-out
    /// confirmation): only that session's browser can have read it from the page.
    pub fn form_token(&self, app: &str, id: &SessionId) -> String {
        URL_SAFE_NO_PAD.encode(&session_mac(&self.keys[0].csrf, app, id).as_ref()[..MAC_LEN])
    }

    /// True when `token` is [`CookieKeys::form_token`] for this session, under any key.
    pub fn check_form_token(&self, app: &str, id: &SessionId, token: &str) -> bool {
        let mut raw = [0u8; MAC_LEN + 3];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(token, &mut raw) else {
            return false;
        };
        len == MAC_LEN
            && self.keys.iter().any(|k| {
                let expected = session_mac(&k.csrf, app, id);
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    &expected.as_ref()[..MAC_LEN],
                    &raw[..MAC_LEN],
                )
                .is_ok()
            })
    }

    /// Seals `plaintext` for the cookie `name` of `app`.
    pub fn seal(&self, app: &str, name: &str, plaintext: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal_bytes(app, name, plaintext))
    }

    /// Seals `plaintext` under the current key, bound to `app` and `name`: nonce, ciphertext
    /// and tag as raw bytes (a store record; cookies use [`CookieKeys::seal`]).
    pub fn seal_bytes(&self, app: &str, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).expect("the system random source is available");
        let mut data = plaintext.to_vec();
        let aad = format!("{app}\0{name}");
        self.keys[0]
            .seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut data,
            )
            .expect("sealing a cookie-sized buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        out
    }

    /// Opens a sealed cookie value, under any key.
    pub fn open(&self, app: &str, name: &str, value: &str) -> Option<Vec<u8>> {
        self.open_bytes(app, name, &URL_SAFE_NO_PAD.decode(value).ok()?)
    }

    /// Opens what [`CookieKeys::seal_bytes`] sealed, under any key.
    pub fn open_bytes(&self, app: &str, name: &str, raw: &[u8]) -> Option<Vec<u8>> {
        if raw.len() < NONCE_LEN + 16 {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let aad = format!("{app}\0{name}");
        self.keys.iter().find_map(|k| {
            let mut data = sealed.to_vec();
            let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
            let plain = k
                .seal
                .open_in_place(nonce, Aad::from(aad.as_bytes()), &mut data)
                .ok()?;
            Some(plain.to_vec())
        })
    }
}

/// The MAC binding a session id to its app: HMAC over `app`, a zero byte, and the id.
fn session_mac(key: &hmac::Key, app: &str, id: &SessionId) -> hmac::Tag {
    let mut mac = hmac::Context::with_key(key);
    mac.update(app.as_bytes());
    mac.update(&[0]);
    mac.update(id);
    mac.sign()
}

/// Cookie naming for a request: `__Host-` prefix under TLS.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    /// The request arrived over TLS (directly or through a trusted proxy).
    pub tls: bool,
}

impl CookieNames {
    fn prefix(&self) -> &'static str {
        if self.tls {
            "__Host-"
        } else {
            ""
        }
    }

    /// The session cookie's name.
    pub fn session(&self) -> &'static str {
        if self.tls {
            "__Host-authgate"
        } else {
            COOKIE_PREFIX
        }
    }

    /// The login cookie's name for a sign-in with this state.
    pub fn login(&self, state: &str) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, state.as_bytes());
        let suffix: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{}{COOKIE_PREFIX}-login-{suffix}", self.prefix())
    }

    /// True for the names of pending login cookies.
    pub fn is_login(&self, name: &str) -> bool {
        name.strip_prefix(self.prefix())
            .is_some_and(|rest| rest.starts_with(&format!("{COOKIE_PREFIX}-login-")))
    }

    /// A `Set-Cookie` value.
    pub fn set(&self, name: String, value: String, max_age_secs: i64) -> HeaderValue {
        let cookie = Cookie::build((name, value))
            .path("/")
            .http_only(true)
            .secure(self.tls)
            .same_site(SameSite::Lax)
            .max_age(cookie::time::Duration::seconds(max_age_secs))
            .build();
        HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
    }

    /// A `Set-Cookie` value that deletes `name`.
    pub fn clear(&self, name: String) -> HeaderValue {
        self.set(name, String::new(), 0)
    }
}

/// Every cookie (name, value) a request carries, in order, read as bytes: a header that also
/// holds a cookie outside visible ASCII (`pref=café`) is still read whole, so the gateway's
/// own cookie in it is neither missed nor forwarded.
pub fn request_cookies(req: &RequestHeader) -> Vec<(&[u8], &[u8])> {
    each_request_cookie(req).collect()
}

/// Every cookie (name, value) a request carries, in order, without collecting them.
pub fn each_request_cookie(req: &RequestHeader) -> impl Iterator<Item = (&[u8], &[u8])> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(split_pair)
}

/// One `name=value` pair of a `Cookie` header, spaces and tabs around both trimmed. A pair
/// without `=` or with an empty name is no cookie.
fn split_pair(pair: &[u8]) -> Option<(&[u8], &[u8])> {
    let eq = pair.iter().position(|b| *b == b'=')?;
    let name = pair[..eq].trim_ascii();
    (!name.is_empty()).then(|| (name, pair[eq + 1..].trim_ascii()))
}

/// True for a cookie the gateway owns (with or without `__Host-`, in any case), which the
/// origin never sees and never sets.
pub fn is_gateway_cookie(name: &[u8]) -> bool {
    const HOST: &[u8] = b"__host-";
    let name = match name.get(..HOST.len()) {
        Some(head) if head.eq_ignore_ascii_case(HOST) => &name[HOST.len()..],
        _ => name,
    };
    name.get(..COOKIE_PREFIX.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(COOKIE_PREFIX.as_bytes()))
}

/// Removes the gateway's cookies from the `Cookie` header(s) of an upstream request; the
/// other cookies reach the origin byte for byte.
pub fn strip_gateway_cookies(req: &mut RequestHeader) {
    if !each_request_cookie(req).any(|(name, _)| is_gateway_cookie(name)) {
        return;
    }
    let mut kept: Vec<u8> = Vec::new();
    for pair in req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
    {
        let pair = pair.trim_ascii();
        let ours = split_pair(pair).is_some_and(|(name, _)| is_gateway_cookie(name));
        if pair.is_empty() || ours {
            continue;
        }
        if !kept.is_empty() {
            kept.extend_from_slice(b"; ");
        }
        kept.extend_from_slice(pair);
    }
    req.remove_header(&http::header::COOKIE);
    if let Ok(value) = HeaderValue::from_bytes(&kept) {
        if !kept.is_empty() {
            let _ = req.insert_header(http::header::COOKIE, value);
        }
    }
}

/// Removes `Set-Cookie` headers that would set one of the gateway's cookies from an origin's
/// response, so an origin cannot plant or end a gateway session. A nameless cookie
/// (`Set-Cookie: =authgate=x`, which browsers send back as `authgate=x`) counts as one.
/// Returns how many were removed.
pub fn strip_gateway_set_cookies(resp: &mut ResponseHeader) -> usize {
    let is_ours = |v: &HeaderValue| {
        let pair = v.as_bytes().split(|b| *b == b';').next().unwrap_or(&[]);
        split_pair(pair).is_none_or(|(name, _)| is_gateway_cookie(name))
    };
    let set_by_origin = resp.headers.get_all(http::header::SET_COOKIE);
    if !set_by_origin.iter().any(is_ours) {
        return 0;
    }
    let all: Vec<HeaderValue> = set_by_origin.iter().cloned().collect();
    let kept: Vec<HeaderValue> = all.iter().filter(|v| !is_ours(v)).cloned().collect();
    resp.remove_header(&http::header::SET_COOKIE);
    for value in kept.iter() {
        let _ = resp.append_header(http::header::SET_COOKIE, value.clone());
    }
    all.len() - kept.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &[u8]) -> CookieKeys {
        CookieKeys::new([secret])
    }

    #[test]
    fn session_cookies_are_bound_to_their_app_and_key() {
        let current = keys(b"current-key-of-at-least-32-bytes-long");
        let id = crate::session::new_id();
        let value = current.sign_session("shop", &id);
        assert_eq!(current.open_session("shop", &value), Some(id));
        assert_eq!(
            current.open_session("blog", &value),
            None,
            "another app's cookie"
        );
        let mut tampered = value.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            current.open_session("shop", std::str::from_utf8(&tampered).unwrap()),
            None
        );
        assert_eq!(current.open_session("shop", "junk"), None);
        assert_eq!(
            keys(b"another-key-of-at-least-32-bytes-long").open_session("shop", &value),
            None
        );
        // After rotation the old key still opens existing cookies; new ones use the new key.
        let rotated = CookieKeys::new([
            &b"next-key-of-at-least-32-bytes-long!!"[..],
            &b"current-key-of-at-least-32-bytes-long"[..],
        ]);
        assert_eq!(rotated.open_session("shop", &value), Some(id));
        assert_ne!(rotated.sign_session("shop", &id), value);
    }

    #[test]
    fn form_tokens_belong_to_one_session_of_one_app() {
        let k = keys(b"current-key-of-at-least-32-bytes-long");
        let id = crate::session::new_id();
        let token = k.form_token("shop", &id);
        assert!(k.check_form_token("shop", &id, &token));
        assert!(!k.check_form_token("blog", &id, &token));
        assert!(!k.check_form_token("shop", &crate::session::new_id(), &token));
        assert!(!k.check_form_token("shop", &id, ""));
        assert!(!k.check_form_token("shop", &id, "!!!"));
        assert_ne!(token, k.sign_session("shop", &id)[22..]);
    }

    #[test]
    fn sealed_cookies_cannot_be_read_moved_or_changed() {
        let k = keys(b"current-key-of-at-least-32-bytes-long");
        let sealed = k.seal("shop", "authgate-login-1", b"state=abc");
        assert!(!sealed.contains("abc"));
        assert_eq!(
            k.open("shop", "authgate-login-1", &sealed).unwrap(),
            b"state=abc"
        );
        assert!(k.open("shop", "authgate-login-2", &sealed).is_none());
        assert!(k.open("blog", "authgate-login-1", &sealed).is_none());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(k
            .open("shop", "authgate-login-1", &URL_SAFE_NO_PAD.encode(bytes))
            .is_none());
    }

    #[test]
    fn names_and_attributes_follow_tls() {
        let tls = CookieNames { tls: true };
        assert_eq!(tls.session(), "__Host-authgate");
        let set = tls.set(tls.session().into(), "v".into(), 60);
        let text = set.to_str().unwrap();
        for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/", "Max-Age=60"] {
            assert!(text.contains(attr), "{text}");
        }
        assert!(!text.contains("Domain"));
        let plain = CookieNames { tls: false };
        assert_eq!(plain.session(), "authgate");
        assert!(!plain
            .set(plain.session().into(), "v".into(), 60)
            .to_str()
            .unwrap()
            .contains("Secure"));
        assert!(plain.is_login(&plain.login("state")));
        assert!(!plain.is_login("authgate"));
    }

    #[test]
    fn gateway_cookies_are_stripped_for_the_origin() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header("cookie", "a=1; authgate=x; __Host-authgate=y")
            .unwrap();
        req.append_header("cookie", "authgate-login-abc=z; b=2")
            .unwrap();
        strip_gateway_cookies(&mut req);
        assert_eq!(req.headers.get_all("cookie").iter().count(), 1);
        assert_eq!(req.headers["cookie"], "a=1; b=2");
        let mut mixed = RequestHeader::build("GET", b"/", None).unwrap();
        mixed
            .append_header(
                "cookie",
                HeaderValue::from_bytes(b"pref=caf\xc3\xa9; authgate=x;x=\xff").unwrap(),
            )
            .unwrap();
        strip_gateway_cookies(&mut mixed);
        assert_eq!(
            mixed.headers["cookie"].as_bytes(),
            b"pref=caf\xc3\xa9; x=\xff"
        );
        let mut only_ours = RequestHeader::build("GET", b"/", None).unwrap();
        only_ours.append_header("cookie", "authgate=x").unwrap();
        strip_gateway_cookies(&mut only_ours);
        assert!(only_ours.headers.get("cookie").is_none());
    }

    #[test]
    fn cookies_are_read_as_bytes() {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.append_header(
            "cookie",
            HeaderValue::from_bytes(b"pref=caf\xc3\xa9;authgate=v1 ; =x; novalue;\xff=1").unwrap(),
        )
        .unwrap();
        let got = request_cookies(&req);
        assert_eq!(
            got,
            [
                (&b"pref"[..], &b"caf\xc3\xa9"[..]),
                (b"authgate", b"v1"),
                (b"\xff", b"1")
            ]
        );
        for ours in [
            "authgate",
            "__Host-authgate",
            "__HOST-AuthGate-login-1",
            "authgate-x",
        ] {
            assert!(is_gateway_cookie(ours.as_bytes()), "{ours}");
        }
        for theirs in ["session", "__Host-session", "__Secure-authgate", "auth"] {
            assert!(!is_gateway_cookie(theirs.as_bytes()), "{theirs}");
        }
    }

    #[test]
    fn origins_cannot_set_gateway_cookies() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for v in [
            "a=1; Path=/",
            "authgate=planted; Path=/",
            "__Host-authgate=x; Secure",
            "=authgate=nameless",
            "authgate-login-abc=1",
            "b=2",
        ] {
            resp.append_header("set-cookie", v).unwrap();
        }
        assert_eq!(strip_gateway_set_cookies(&mut resp), 4);
        let left: Vec<_> = resp.headers.get_all("set-cookie").iter().collect();
        assert_eq!(left, ["a=1; Path=/", "b=2"]);
        let mut clean = ResponseHeader::build(200, None).unwrap();
        clean.append_header("set-cookie", "a=1").unwrap();
        assert_eq!(strip_gateway_set_cookies(&mut clean), 0);
    }
}
