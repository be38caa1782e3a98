//! Where a browser may be sent back to after sign-in: only a relative path on the same app.
//! The path is first normalised the way requests are (dot segments removed, `//` merged, so
//! `/.//evil` and `/%2e%2e//evil` cannot resolve to `//evil` in the browser), then judged.
//! Every open-redirect trick — `//evil`, `/\evil`, whitespace, tabs or line breaks, schemes,
//! user-info `@`, and their percent-encoded forms — falls back to `/`.

use crate::config::model::PathOptionsFile;
use crate::route::path::normalize;

/// The safe form of a requested return path (`/` when it is not safe).
pub fn sanitize(requested: &str) -> String {
    if requested.bytes().any(|b| b.is_ascii_whitespace()) {
        return "/".to_string();
    }
    let split = requested.find(['?', '#']).unwrap_or(requested.len());
    let (path, rest) = requested.split_at(split);
    // Judge the raw form too: normalising must not launder `//evil` into `/evil`.
    if !is_safe(requested) {
        return "/".to_string();
    }
    let Ok(path) = normalize(path, PathOptionsFile::default()) else {
        return "/".to_string();
    };
    let normalised = format!("{path}{rest}");
    if is_safe(&normalised) {
        normalised
    } else {
        "/".to_string()
    }
}

fn is_safe(path: &str) -> bool {
    if path.is_empty() || path.len() > 2048 || !path.starts_with('/') {
        return false;
    }
    // Judge the decoded form too, so `%2F%2Fevil` or `%5C` cannot hide a second slash.
    let decoded = percent_decode(path);
    for candidate in [path, decoded.as_str()] {
        let bytes = candidate.as_bytes();
        if bytes
            .iter()
            .any(|b| b.is_ascii_control() || *b == b'\\' || *b >= 0x80)
        {
            return false;
        }
        if bytes.get(1).is_some_and(|b| *b == b'/') {
            return false;
        }
        // A scheme or user-info before the first `/`, `?` or `#` of the rest.
        let head = candidate[1..].split(['/', '?', '#']).next().unwrap_or("");
        if head.contains(':') || head.contains('@') {
            return false;
        }
    }
    !decoded.contains("://")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Decode twice over: `%252F` is a slash to a server that decodes once more.
    let once = String::from_utf8_lossy(&out).into_owned();
    if once.contains('%') && once != s {
        percent_decode(&once)
    } else {
        once
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_app_paths_are_kept() {
        for ok in [
            "/",
            "/account",
            "/a/b?x=1&y=%20#frag",
            "/search?q=a:b",
            "/a/b@c",
        ] {
            assert_eq!(sanitize(ok), ok, "{ok}");
        }
    }

    #[test]
    fn dot_segments_cannot_make_a_second_slash() {
        for (requested, expected) in [
            ("/.//evil.test", "/evil.test"),
            ("/..//evil.test", "/evil.test"),
            ("/%2e%2e//evil.test", "/evil.test"),
            ("/a/./b/../c?x=/../y", "/a/c?x=/../y"),
            ("/%2E/%2e%2E/", "/"),
        ] {
            let got = sanitize(requested);
            assert_eq!(got, expected, "{requested}");
            assert!(!got.starts_with("//"));
        }
    }

    #[test]
    fn open_redirect_tricks_fall_back_to_root() {
        for bad in [
            "//evil.test",
            "///evil.test",
            "/\\evil.test",
            "\\\\evil.test",
            "/\t/evil.test",
            "/\r\n/evil.test",
            "https://evil.test",
            "javascript:alert(1)",
            "/%2F%2Fevil.test",
            "/%2f/evil.test",
            "/%5Cevil.test",
            "/%252F%252Fevil.test",
            "/https://evil.test",
            "/user@evil.test",
            "/%09/evil.test",
            "evil.test",
            "",
            "/\u{e9}vil",
            "/ /evil.test",
            "/\u{b}/evil.test",
            "/x y",
        ] {
            assert_eq!(sanitize(bad), "/", "{bad:?}");
        }
    }
}
