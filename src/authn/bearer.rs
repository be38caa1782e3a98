//! Extracting a bearer token from a request (RFC 6750 §2.1), refusing the ambiguous shapes.

use pingora::http::RequestHeader;

use crate::respond::Reject;

/// The bearer token of a request: `Ok(None)` when there is none (or another scheme is used),
/// 400 when there are two `Authorization` headers or a token in the query string, 401 when
/// the header is not a well-formed bearer credential.
pub fn extract(req: &RequestHeader) -> Result<Option<&str>, Reject> {
    if req.uri.query().is_some_and(has_access_token_param) {
        return Err(Reject::BadRequest(
            "bearer tokens are not accepted in the query",
        ));
    }
    let mut values = req.headers.get_all(http::header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(v), None) => v,
        (Some(_), Some(_)) => return Err(Reject::BadRequest("more than one Authorization header")),
    };
    let value = value.to_str().map_err(|_| Reject::MalformedCredentials)?;
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() || !token.bytes().all(|b| B64TOKEN[usize::from(b)]) {
        return Err(Reject::MalformedCredentials);
    }
    Ok(Some(token))
}

/// The bytes of RFC 6750's `b64token`, as a table: tokens are long and checked on every
/// request, and a lookup per byte is several times cheaper than a search of the symbols.
const B64TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=');
        b += 1;
    }
    table
};

fn has_access_token_param(query: &str) -> bool {
    query.split('&').any(|pair| {
        pair.split('=')
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, auth: &[&str]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
        for a in auth {
            r.append_header("authorization", *a).unwrap();
        }
        r
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for header in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER  abc.def.ghi",
        ] {
            assert_eq!(extract(&req("/", &[header])).unwrap(), Some("abc.def.ghi"));
        }
    }

    #[test]
    fn other_schemes_and_no_header_mean_no_token() {
        assert_eq!(extract(&req("/", &[])).unwrap(), None);
        assert_eq!(extract(&req("/", &["Basic dXNlcjpwdw=="])).unwrap(), None);
    }

    #[test]
    fn ambiguous_shapes_are_refused() {
        assert_eq!(
            extract(&req("/", &["Bearer a", "Bearer b"]))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            extract(&req("/x?a=1&access_token=t", &["Bearer a"]))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(
            extract(&req("/x?Access_Token=t", &[]))
                .unwrap_err()
                .status(),
            400
        );
        assert_eq!(extract(&req("/", &["Bearer "])).unwrap_err().status(), 401);
        assert_eq!(
            extract(&req("/", &["Bearer a b"])).unwrap_err().status(),
            401
        );
    }
}
