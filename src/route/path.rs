//! Request path normalisation.
//!
//! The gateway decides on one path and forwards that same path: if the origin saw anything
//! else, a rule on `/admin` could be walked around with `/public/../admin`. So the raw path is
//! turned into one canonical form here, and everything ambiguous is refused instead of guessed:
//!
//! - `%XX` of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded, other escapes are
//!   kept with upper-case hex;
//! - `.` and `..` segments are removed (RFC 3986 §5.2.4) — after decoding, so `%2e%2e` counts;
//! - runs of `/` collapse to one;
//! - refused: encoded `/` or `\` (unless the app opts in), any `\`, control bytes raw or
//!   encoded (NUL included), bytes outside ASCII, a `%` not followed by two hex digits, a
//!   double-encoded escape (`%25XX`), and `;` raw or encoded (unless the app opts in).

use crate::config::model::PathOptionsFile;

/// Why a request path was refused. Every variant is answered with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (`*`, absolute paths without a slash…).
    #[error("the request path must start with '/'")]
    NotAbsolute,
    /// `%2F` or `%5C` in a path, and the app did not opt in.
    #[error("encoded '/' or '\\' in the path")]
    EncodedSlash,
    /// A raw `\` in the path.
    #[error("'\\' in the path")]
    Backslash,
    /// A control byte (NUL, CR, LF, DEL…), raw or percent-encoded.
    #[error("control character in the path")]
    Control,
    /// A byte outside ASCII that was not percent-encoded.
    #[error("unencoded non-ASCII byte in the path")]
    NonAscii,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-encoding in the path")]
    BadPercent,
    /// `%25` followed by two hex digits: an escape meant to survive one decoding.
    #[error("double percent-encoding in the path")]
    DoubleEncoded,
    /// `;` (path parameters), and the app did not opt in.
    #[error("';' path parameters in the path")]
    Semicolon,
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 0xf)] as char);
}

/// Decodes what may be decoded and refuses what is ambiguous (first pass).
fn decode(raw: &str, opts: PathOptionsFile) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex_value),
                    bytes.get(i + 2).copied().and_then(hex_value),
                ) else {
                    return Err(PathError::BadPercent);
                };
                let v = hi << 4 | lo;
                match v {
                    _ if is_unreserved(v) => out.push(v as char),
                    b'/' | b'\\' if opts.allow_encoded_slash => push_escape(&mut out, v),
                    b'/' | b'\\' => return Err(PathError::EncodedSlash),
                    0..=0x1f | 0x7f => return Err(PathError::Control),
                    b';' if !opts.allow_semicolon => return Err(PathError::Semicolon),
                    b'%' if bytes.get(i + 3).copied().and_then(hex_value).is_some()
                        && bytes.get(i + 4).copied().and_then(hex_value).is_some() =>
                    {
                        return Err(PathError::DoubleEncoded)
                    }
                    _ => push_escape(&mut out, v),
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            b';' if !opts.allow_semicolon => return Err(PathError::Semicolon),
            0..=0x1f | 0x7f => return Err(PathError::Control),
            0x80..=0xff => return Err(PathError::NonAscii),
            _ => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Returns the canonical form of a request path (without its query), or why it is refused.
pub fn normalize(raw: &str, opts: PathOptionsFile) -> Result<String, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = decode(raw, opts)?;
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/').skip(1) {
        trailing_slash = false;
        match segment {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            _ => segments.push(segment),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if trailing_slash || segments.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// The path with each segment's `;` parameters removed (`/admin;x=1/a;b` → `/admin/a`): the
/// path an origin that honours path parameters resolves, so the one rules must be matched on
/// when an app allows them.
pub fn without_parameters(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains(';') {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len());
    let mut in_parameter = false;
    for c in path.chars() {
        match c {
            '/' => {
                in_parameter = false;
                out.push(c);
            }
            ';' => in_parameter = true,
            _ if !in_parameter => out.push(c),
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str) -> Result<String, PathError> {
        normalize(raw, PathOptionsFile::default())
    }

    #[test]
    fn removes_dot_segments_and_duplicate_slashes() {
        assert_eq!(norm("/").unwrap(), "/");
        assert_eq!(norm("/a/b").unwrap(), "/a/b");
        assert_eq!(norm("/a/b/").unwrap(), "/a/b/");
        assert_eq!(norm("/public/../admin").unwrap(), "/admin");
        assert_eq!(norm("/public/./admin").unwrap(), "/public/admin");
        assert_eq!(norm("/../../admin").unwrap(), "/admin");
        assert_eq!(norm("//admin").unwrap(), "/admin");
        assert_eq!(norm("/a//b///c").unwrap(), "/a/b/c");
        assert_eq!(norm("/a/..").unwrap(), "/");
        assert_eq!(norm("/a/b/..").unwrap(), "/a/");
        assert_eq!(norm("/a/.").unwrap(), "/a/");
        assert_eq!(norm("/...").unwrap(), "/...");
    }

    #[test]
    fn decodes_unreserved_escapes_before_removing_dots() {
        assert_eq!(norm("/public/%2e%2e/admin").unwrap(), "/admin");
        assert_eq!(norm("/public/.%2E/admin").unwrap(), "/admin");
        assert_eq!(norm("/%61dmin").unwrap(), "/admin");
        assert_eq!(norm("/a%20b").unwrap(), "/a%20b");
        assert_eq!(norm("/a%c3%a9").unwrap(), "/a%C3%A9");
    }

    #[test]
    fn refuses_ambiguous_paths() {
        assert_eq!(norm("/public%2F..%2Fadmin"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a%5cb"), Err(PathError::EncodedSlash));
        assert_eq!(norm("/a\\b"), Err(PathError::Backslash));
        assert_eq!(norm("/a%00"), Err(PathError::Control));
        assert_eq!(norm("/a%0d%0a"), Err(PathError::Control));
        assert_eq!(norm("/a%"), Err(PathError::BadPercent));
        assert_eq!(norm("/a%2"), Err(PathError::BadPercent));
        assert_eq!(norm("/a%zz"), Err(PathError::BadPercent));
        assert_eq!(norm("/a%252e%252e/admin"), Err(PathError::DoubleEncoded));
        assert_eq!(norm("/admin;x=1"), Err(PathError::Semicolon));
        assert_eq!(norm("/admin%3bx=1"), Err(PathError::Semicolon));
        assert_eq!(norm("/a\u{e9}"), Err(PathError::NonAscii));
        assert_eq!(norm("*"), Err(PathError::NotAbsolute));
        assert_eq!(norm(""), Err(PathError::NotAbsolute));
    }

    #[test]
    fn opt_ins_keep_the_escape_or_parameter() {
        let opts = PathOptionsFile {
            allow_encoded_slash: true,
            allow_semicolon: true,
            case_insensitive: false,
        };
        assert_eq!(
            normalize("/a%2fb/../c", opts).unwrap(),
            "/c",
            "an encoded slash is data, so `a%2Fb` is one segment"
        );
        assert_eq!(normalize("/a%2fb", opts).unwrap(), "/a%2Fb");
        assert_eq!(
            normalize("/x;jsessionid=1", opts).unwrap(),
            "/x;jsessionid=1"
        );
        assert_eq!(normalize("/a\\b", opts), Err(PathError::Backslash));
    }

    #[test]
    fn parameters_are_removed_for_matching() {
        assert_eq!(without_parameters("/admin;x=1"), "/admin");
        assert_eq!(without_parameters("/a;x/b;y=2/c"), "/a/b/c");
        assert_eq!(without_parameters("/plain"), "/plain");
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for raw in [
            "/a/./b/../c//d/",
            "/%7euser/x",
            "/a%20b/..",
            "/public/%2e%2e/x",
        ] {
            let once = norm(raw).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{raw}");
        }
    }
}
