//! What the gateway answers itself (endpoints, sign-in redirects, small pages), and the one
//! place such answers are built.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

/// A response the gateway writes itself.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Headers (content type included).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body.
    pub body: Bytes,
    /// Label for logs and metrics.
    pub decision: &'static str,
}

impl Answer {
    pub(super) fn new(status: u16, decision: &'static str) -> Answer {
        Answer {
            status,
            headers: vec![(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            )],
            body: Bytes::new(),
            decision,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Answer {
        self.headers.push((name, value));
        self
    }

    /// An answer with no body.
    pub fn empty(status: u16, decision: &'static str) -> Answer {
        Answer::new(status, decision)
    }

    /// An HTML page.
    pub fn html(status: u16, decision: &'static str, body: Bytes) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        a.body = body;
        a
    }

    pub(super) fn redirect(location: &str, decision: &'static str) -> Answer {
        match HeaderValue::from_str(location) {
            Ok(v) => Answer::new(302, decision).header(http::header::LOCATION, v),
            Err(_) => page(
                400,
                "bad_redirect",
                "Sign-in failed",
                "The redirect address is invalid.",
            ),
        }
    }

    /// A plain-text answer.
    pub fn text(status: u16, decision: &'static str, body: String) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        a.body = Bytes::from(body);
        a
    }

    /// A 308 to `location` (same method and body on the new address).
    pub fn permanent_redirect(location: &str) -> Answer {
        match HeaderValue::from_str(location) {
            Ok(v) => Answer::new(308, "redirect_https").header(http::header::LOCATION, v),
            Err(_) => page(
                400,
                "bad_redirect",
                "Bad request",
                "The address cannot be redirected.",
            ),
        }
    }

    /// The gateway's JWKS (`jwks` is `{"keys":[...]}`), cacheable for `max_age`.
    pub fn jwks(jwks: Bytes, max_age: std::time::Duration) -> Answer {
        let cache = HeaderValue::from_str(&format!("public, max-age={}", max_age.as_secs()))
            .unwrap_or(HeaderValue::from_static("no-store"));
        Answer {
            status: 200,
            headers: vec![
                (http::header::CACHE_CONTROL, cache),
                (
                    http::header::CONTENT_TYPE,
                    HeaderValue::from_static("application/jwk-set+json"),
                ),
            ],
            body: jwks,
            decision: "jwks",
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, decision: &'static str, body: serde_json::Value) -> Answer {
        let mut a = Answer::new(status, decision).header(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        a.body = Bytes::from(body.to_string() + "\n");
        a
    }
}

/// A small HTML page; `title` and `text` are escaped.
pub fn page(status: u16, decision: &'static str, title: &str, text: &str) -> Answer {
    let mut a = Answer::new(status, decision).header(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    a.body = Bytes::from(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body><h1>{t}</h1><p>{x}</p><p><a href=\"/\">Back to the start page</a></p></body></html>\n",
        t = escape(title),
        x = escape(text)
    ));
    a
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '&' => "&amp;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c if c.is_control() => " ".to_string(),
            c => c.to_string(),
        })
        .collect()
}
