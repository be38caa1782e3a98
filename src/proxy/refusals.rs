//! Requests pingora refuses before the gateway sees them.
//!
//! When an HTTP/1 request head cannot be parsed (bad framing, a malformed request line or
//! header, a head over pingora's size limit) or uses `CONNECT`, pingora answers by itself —
//! a bare 400 or 405 with `Server: Pingora` — and no `ProxyHttp` phase runs: no request id,
//! no access-log event, no metric. Pingora offers no hook there, so the connection's stream
//! is watched instead ([`super::watch`]): the exact answer pingora writes for such a refusal
//! is recognised here and replaced with the gateway's own (JSON body, request id, no `Server`
//! header), and the refusal is logged and counted like every other one.

/// A refusal pingora writes by itself: the status it carries, and the decision label the
/// gateway logs it under.
pub(super) fn pingora_refusal(head: &[u8]) -> Option<(u16, &'static str, &'static str)> {
    // The whole head, as pingora's `gen_error_response` builds it: nothing an origin's
    // response would be mistaken for (those keep their own headers and reach the client
    // through the gateway's filters).
    let (status, decision, message) = if head.starts_with(b"HTTP/1.1 400 Bad Request\r\n") {
        (400, "malformed_request", "the request could not be parsed")
    } else if head.starts_with(b"HTTP/1.1 405 Method Not Allowed\r\n") {
        (405, "method_not_allowed", "CONNECT is not supported")
    } else {
        return None;
    };
    let rest = &head[head.iter().position(|b| *b == b'\n')? + 1..];
    let shaped = rest.starts_with(b"Server: Pingora\r\nDate: ")
        && head.ends_with(b"\r\n\r\n")
        && contains(rest, b"\r\nContent-Length: 0\r\n")
        && contains(rest, b"\r\nCache-Control: private, no-store\r\n");
    shaped.then_some((status, decision, message))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The gateway's answer in place of pingora's.
pub(super) fn replacement(status: u16, code: &str, message: &str, request_id: &str) -> Vec<u8> {
    let body = crate::respond::body(code, message);
    let reason = if status == 405 {
        "Method Not Allowed"
    } else {
        "Bad Request"
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nx-request-id: {request_id}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_pingoras_own_refusals_are_recognised() {
        let pingora = b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: Sun, 29 Nov 2026 16:16:43 GMT\r\nContent-Length: 0\r\nCache-Control: private, no-store\r\nConnection: close\r\n\r\n";
        assert_eq!(pingora_refusal(pingora).map(|r| r.0), Some(400));
        let connect =
            String::from_utf8_lossy(pingora).replace("400 Bad Request", "405 Method Not Allowed");
        assert_eq!(pingora_refusal(connect.as_bytes()).map(|r| r.0), Some(405));
        for other in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 400 Bad Request\r\nServer: Pingora\r\nDate: x\r\nContent-Length: 12\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nServer: Pingora\r\n\r\n",
            b"\x00\x00\x04\x08\x00",
        ] {
            assert_eq!(pingora_refusal(other), None, "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn the_replacement_is_json_with_a_request_id() {
        let text = String::from_utf8(replacement(400, "malformed_request", "m", "rid")).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("x-request-id: rid\r\n"));
        assert!(!text.to_ascii_lowercase().contains("server:"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(body).unwrap()["error"],
            "malformed_request"
        );
    }
}
