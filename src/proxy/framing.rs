//! Request framing checks: refuse every request whose length or host could be read two ways,
//! before a single body byte is read. These are the request-smuggling shapes — a front end
//! and an origin disagreeing on where one request ends is how the next one gets hijacked.

use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use pingora::http::RequestHeader;

use crate::config::Limits;
use crate::respond::Reject;

/// Checks framing, header size, and declared body size.
pub fn check(req: &RequestHeader, limits: &Limits) -> Result<(), Reject> {
    let header_bytes: usize = req
        .headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if header_bytes > limits.max_request_header_bytes {
        return Err(Reject::HeadersTooLarge);
    }

    if req.headers.get_all(HOST).iter().count() > 1 {
        return Err(Reject::BadFraming("more than one Host header"));
    }

    let mut lengths = req.headers.get_all(CONTENT_LENGTH).iter();
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => None,
        (Some(value), None) => Some(parse_length(value.as_bytes())?),
        (Some(_), Some(_)) => return Err(Reject::BadFraming("more than one Content-Length")),
    };

    let mut encodings = req.headers.get_all(TRANSFER_ENCODING).iter().peekable();
    if encodings.peek().is_some() {
        if length.is_some() {
            return Err(Reject::BadFraming(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if req.version < http::Version::HTTP_11 {
            return Err(Reject::BadFraming(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        // The only coding the gateway forwards is plain `chunked`, given once. Anything
        // else (`gzip, chunked`, `chunked, identity`, `xchunked`, a repeat) is refused.
        let values: Vec<&[u8]> = encodings.map(|v| v.as_bytes()).collect();
        let only_chunked =
            values.len() == 1 && values[0].trim_ascii().eq_ignore_ascii_case(b"chunked");
        if !only_chunked {
            return Err(Reject::BadFraming("unsupported Transfer-Encoding"));
        }
    }

    if length.is_some_and(|len| len > limits.max_request_body_bytes) {
        return Err(Reject::BodyTooLarge);
    }
    Ok(())
}

/// True when a raw HTTP/1 request head carries a `Content-Length` line. Pingora drops
/// `Content-Length` from the parsed header when `Transfer-Encoding` is also present (RFC 9112
/// §6.3), so the raw head is the only place the conflict is still visible.
pub fn raw_head_has_content_length(raw_head: &[u8]) -> bool {
    raw_head.split(|&b| b == b'\n').skip(1).any(|line| {
        let name_end = line.iter().position(|&b| b == b':').unwrap_or(line.len());
        line[..name_end]
            .trim_ascii()
            .eq_ignore_ascii_case(b"content-length")
    })
}

fn parse_length(value: &[u8]) -> Result<u64, Reject> {
    let bad = Reject::BadFraming("malformed Content-Length");
    if value.is_empty() || value.len() > 19 || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad);
    }
    std::str::from_utf8(value)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_request_header_bytes: 2048,
            max_request_body_bytes: 100,
            max_response_body_bytes: None,
            keepalive_timeout: std::time::Duration::from_secs(60),
            request_header_timeout: std::time::Duration::from_secs(15),
            max_connections: 100,
        }
    }

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/", None).unwrap();
        for (name, value) in headers {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn verdict(headers: &[(&str, &str)]) -> Result<(), Reject> {
        check(&req(headers), &limits())
    }

    #[test]
    fn plain_requests_pass() {
        assert!(verdict(&[("host", "a")]).is_ok());
        assert!(verdict(&[("host", "a"), ("content-length", "10")]).is_ok());
        assert!(verdict(&[("host", "a"), ("transfer-encoding", "Chunked")]).is_ok());
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for headers in [
            &[("host", "a"), ("host", "b")][..],
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "+5")],
            &[("content-length", "5, 5")],
            &[("content-length", "")],
            &[("content-length", "99999999999999999999999")],
            &[("transfer-encoding", "gzip, chunked")],
            &[("transfer-encoding", "chunked, identity")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            &[("transfer-encoding", "xchunked")],
        ] {
            assert!(
                matches!(verdict(headers), Err(Reject::BadFraming(_))),
                "{headers:?}"
            );
        }
    }

    #[test]
    fn raw_heads_reveal_a_dropped_content_length() {
        assert!(raw_head_has_content_length(
            b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH : 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(!raw_head_has_content_length(
            b"POST /content-length: HTTP/1.1\r\nX-Content-Length: 4\r\n\r\n"
        ));
    }

    #[test]
    fn sizes_are_limited() {
        assert_eq!(
            verdict(&[("content-length", "101")]),
            Err(Reject::BodyTooLarge)
        );
        let big = "x".repeat(3000);
        assert_eq!(verdict(&[("x-big", &big)]), Err(Reject::HeadersTooLarge));
    }
}
