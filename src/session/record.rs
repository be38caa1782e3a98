//! What a session keeps about its user, packed into one allocation: the claims as JSON text
//! with a sorted index of their names, the ID token (for `id_token_hint` at sign-out) and the
//! refresh token.
//!
//! Sessions are many, so the layout is chosen for memory. When the claims are exactly the ID
//! token's payload (no userinfo merged), the token is not stored twice: only its signature
//! (as raw bytes) is kept, with its header shared between sessions (the ID tokens of one
//! provider carry the same header until its signing key rotates), and the token is rebuilt
//! from the claims text at sign-out. Claim values are parsed from the text when a request
//! asks for them.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;

use crate::jwt::{ClaimSet, Claims, Shape};

/// The claims text may not exceed this (the index holds 16-bit offsets). An ID token is
/// bounded by 64 KiB, so only a huge userinfo answer can reach it.
pub const MAX_CLAIMS_BYTES: usize = u16::MAX as usize;

/// Why a record cannot be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The claims (or the ID token's header) are too large to index.
    #[error("the user's claims are larger than {MAX_CLAIMS_BYTES} bytes")]
    TooLarge,
    /// The claims are not a JSON object.
    #[error("the claims are not a JSON object")]
    NotAnObject,
}

/// A signed-in user's claims and tokens. See the module documentation for the layout.
#[derive(Clone)]
pub struct UserRecord {
    /// Claims JSON, then the index (`count` × (name offset, value offset), little-endian u16),
    /// then the ID token part (its raw signature, or the whole token when `header` is
    /// `None`), then the refresh token.
    bytes: Box<[u8]>,
    /// The ID token's base64 header, shared (a thin pointer: sessions are many).
    #[allow(clippy::rc_buffer)]
    header: Option<Arc<String>>,
    claims_len: u16,
    count: u16,
    id_token_len: u32,
    has_refresh: bool,
}

impl UserRecord {
    /// Packs the validated claims, the raw ID token they came from and the refresh token.
    pub fn new(
        claims: &Claims,
        id_token: &str,
        refresh_token: Option<&str>,
    ) -> Result<UserRecord, RecordError> {
        let (claims_json, token_part, header) = match shared_payload(claims, id_token) {
            Some((payload, header, signature)) => (payload, signature, Some(shared_header(header))),
            None => (
                serde_json::to_string(claims).map_err(|_| RecordError::NotAnObject)?,
                id_token.as_bytes().to_vec(),
                None,
            ),
        };
        if claims_json.len() > MAX_CLAIMS_BYTES {
            return Err(RecordError::TooLarge);
        }
        let index = index(&claims_json)?;
        let refresh = refresh_token.unwrap_or("");
        let mut bytes = Vec::with_capacity(
            claims_json.len() + index.len() * 4 + token_part.len() + refresh.len(),
        );
        bytes.extend_from_slice(claims_json.as_bytes());
        for (name, value) in &index {
            bytes.extend_from_slice(&name.to_le_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes.extend_from_slice(&token_part);
        bytes.extend_from_slice(refresh.as_bytes());
        Ok(UserRecord {
            bytes: bytes.into_boxed_slice(),
            claims_len: claims_json.len() as u16,
            count: index.len() as u16,
            id_token_len: u32::try_from(token_part.len()).map_err(|_| RecordError::TooLarge)?,
            header,
            has_refresh: refresh_token.is_some(),
        })
    }

    fn claims_text(&self) -> &str {
        // Written from a `String` in `new`.
        std::str::from_utf8(&self.bytes[..usize::from(self.claims_len)]).unwrap_or("{}")
    }

    fn index_end(&self) -> usize {
        usize::from(self.claims_len) + usize::from(self.count) * 4
    }

    fn entry(&self, i: usize) -> (usize, usize) {
        let at = usize::from(self.claims_len) + i * 4;
        let b = &self.bytes[at..at + 4];
        (
            usize::from(u16::from_le_bytes([b[0], b[1]])),
            usize::from(u16::from_le_bytes([b[2], b[3]])),
        )
    }

    fn token_part(&self) -> &[u8] {
        let start = self.index_end();
        &self.bytes[start..start + self.id_token_len as usize]
    }

    /// All claims as a JSON map (for `/_auth/me` and token refresh; not the hot path).
    pub fn claims(&self) -> Claims {
        serde_json::from_str(self.claims_text()).unwrap_or_default()
    }

    /// The raw ID token, as the provider issued it.
    pub fn id_token(&self) -> String {
        let part = self.token_part();
        match &self.header {
            None => String::from_utf8_lossy(part).into_owned(),
            Some(header) => format!(
                "{header}.{}.{}",
                URL_SAFE_NO_PAD.encode(self.claims_text()),
                URL_SAFE_NO_PAD.encode(part)
            ),
        }
    }

    /// The refresh token, if the provider issued one.
    pub fn refresh_token(&self) -> Option<&str> {
        if !self.has_refresh {
            return None;
        }
        let start = self.index_end() + self.id_token_len as usize;
        std::str::from_utf8(&self.bytes[start..]).ok()
    }

    /// Heap bytes held (for the memory benchmark and tests).
    pub fn heap_bytes(&self) -> usize {
        self.bytes.len()
    }
}

impl UserRecord {
    /// The text of a claim's value (binary search of the index).
    fn value_text(&self, name: &str) -> Option<&str> {
        let text = self.claims_text();
        let (mut low, mut high) = (0, usize::from(self.count));
        while low < high {
            let mid = (low + high) / 2;
            let (key_at, value_at) = self.entry(mid);
            match key(text, key_at).cmp(name) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Some(&text[value_at..]),
            }
        }
        None
    }
}

impl ClaimSet for UserRecord {
    fn claim(&self, name: &str) -> Option<Cow<'_, Value>> {
        // The text runs on past the value; the parser stops at the value's end.
        let mut de = serde_json::Deserializer::from_str(self.value_text(name)?);
        Value::deserialize(&mut de).ok().map(Cow::Owned)
    }

    fn claim_texts(&self, name: &str, each: &mut dyn FnMut(&str)) -> Option<Shape> {
        let mut de = serde_json::Deserializer::from_str(self.value_text(name)?);
        // The text was indexed from valid JSON; were it not, the claim counts as no value.
        Some(
            de.deserialize_any(Texts {
                each,
                nested: false,
            })
            .unwrap_or(Shape::Other),
        )
    }
}

/// Visits a claim's scalar values straight from its JSON text, without building values:
/// the same texts as [`crate::jwt::claim_set::value_texts`] gives for the parsed value.
struct Texts<'a> {
    each: &'a mut dyn FnMut(&str),
    /// Inside an array, where arrays and objects are skipped.
    nested: bool,
}

impl Texts<'_> {
    fn text(self, s: &str) -> Shape {
        (self.each)(s);
        Shape::Scalar
    }
}

impl<'de> DeserializeSeed<'de> for Texts<'_> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Shape, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Texts<'_> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a claim value")
    }

    fn visit_str<E>(self, s: &str) -> Result<Shape, E> {
        Ok(self.text(s))
    }

    fn visit_bool<E>(self, b: bool) -> Result<Shape, E> {
        Ok(self.text(if b { "true" } else { "false" }))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Shape, E> {
        Ok(self.text(itoa::Buffer::new().format(n)))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Shape, E> {
        Ok(self.text(itoa::Buffer::new().format(n)))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Shape, E> {
        let text = serde_json::Number::from_f64(n).map(|n| n.to_string());
        Ok(self.text(text.as_deref().unwrap_or("")))
    }

    fn visit_unit<E>(self) -> Result<Shape, E> {
        Ok(Shape::Other)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        if self.nested {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(Shape::Other);
        }
        let each = self.each;
        while seq
            .next_element_seed(Texts {
                each: &mut *each,
                nested: true,
            })?
            .is_some()
        {}
        Ok(Shape::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
}

/// The claim name starting at `at` (names with escapes are not indexed, so the next quote
/// ends it).
fn key(text: &str, at: usize) -> &str {
    let rest = &text[at..];
    &rest[..rest.find('"').unwrap_or(rest.len())]
}

/// The one shared copy of an ID token header. At most `MAX_SHARED_HEADERS` distinct headers
/// are remembered (a provider has one or two signing keys at a time); beyond that a header is
/// simply not shared.
#[allow(clippy::rc_buffer)]
fn shared_header(header: &str) -> Arc<String> {
    const MAX_SHARED_HEADERS: usize = 64;
    static SEEN: Mutex<Vec<Weak<String>>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(PoisonError::into_inner);
    seen.retain(|h| h.strong_count() > 0);
    if let Some(known) = seen
        .iter()
        .filter_map(Weak::upgrade)
        .find(|h| h.as_str() == header)
    {
        return known;
    }
    let fresh = Arc::new(header.to_string());
    if seen.len() < MAX_SHARED_HEADERS {
        seen.push(Arc::downgrade(&fresh));
    }
    fresh
}

/// When `claims` are exactly the ID token's payload and the token's base64 is canonical (so
/// it can be rebuilt byte for byte): the payload text, the base64 header and the raw signature.
fn shared_payload<'t>(claims: &Claims, id_token: &'t str) -> Option<(String, &'t str, Vec<u8>)> {
    let mut parts = id_token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let payload_bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let canonical = URL_SAFE_NO_PAD.encode(&payload_bytes) == payload
        && URL_SAFE_NO_PAD.encode(&signature_bytes) == signature;
    let text = String::from_utf8(payload_bytes).ok()?;
    let same: Claims = serde_json::from_str(&text).ok()?;
    (canonical && same == *claims).then_some((text, header, signature_bytes))
}

/// (name offset, value offset) of each top-level member whose name has no escapes, sorted by
/// name; for a repeated name the last one wins, as when the JSON is parsed into a map.
fn index(text: &str) -> Result<Vec<(u16, u16)>, RecordError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let mut members = de
        .deserialize_map(Members {
            base: text.as_ptr() as usize,
        })
        .map_err(|_| RecordError::NotAnObject)?;
    // A stable sort keeps repeated names in document order; keep the last of each run.
    members.sort_by(|a, b| key(text, a.0.into()).cmp(key(text, b.0.into())));
    let mut out: Vec<(u16, u16)> = Vec::with_capacity(members.len());
    for m in members {
        match out.last_mut() {
            Some(last) if key(text, last.0.into()) == key(text, m.0.into()) => *last = m,
            _ => out.push(m),
        }
    }
    if out.len() > usize::from(u16::MAX) {
        return Err(RecordError::TooLarge);
    }
    Ok(out)
}

struct Members {
    base: usize,
}

/// A member name borrowed from the text, or `None` when it has escapes.
struct PlainName<'de>(Option<&'de str>);

impl<'de> Deserialize<'de> for PlainName<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PlainName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<PlainName<'de>, E> {
                Ok(PlainName(Some(s)))
            }
            fn visit_str<E>(self, _: &str) -> Result<PlainName<'de>, E> {
                Ok(PlainName(None))
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(u16, u16)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(PlainName(name)) = map.next_key()? {
            let Some(name) = name else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let value: &'de RawValue = map.next_value()?;
            // Offsets fit: the text is at most `MAX_CLAIMS_BYTES` long.
            let offset = |s: &str| (s.as_ptr() as usize - self.base) as u16;
            out.push((offset(name), offset(value.get())));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token_for(claims: &Value) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"k1"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode([7u8; 256])
        )
    }

    fn map(v: &Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn every_claim_is_found_and_the_token_is_rebuilt_exactly() {
        let claims = json!({"sub": "u1", "groups": ["a", "b\\u00e9", 7, -2, 1.5, [1], {"k": 1}, false],
                            "email": "e@x", "n": 3, "nested": {"k": [1, 2]}, "z": null, "ok": true});
        let token = token_for(&claims);
        let record = UserRecord::new(&map(&claims), &token, Some("refresh")).unwrap();
        for (k, v) in map(&claims) {
            assert_eq!(record.claim(&k).as_deref(), Some(&v), "claim {k}");
        }
        assert_eq!(record.claim("missing"), None);
        assert_eq!(record.claim(""), None);
        // Texts read from the packed text are those of the parsed values.
        let parsed = map(&claims);
        for name in ["sub", "groups", "n", "nested", "z", "ok", "missing"] {
            let mut packed = Vec::new();
            let packed_shape = record.claim_texts(name, &mut |t| packed.push(t.to_string()));
            let mut expected = Vec::new();
            let expected_shape = parsed.claim_texts(name, &mut |t| expected.push(t.to_string()));
            assert_eq!(
                (packed, packed_shape),
                (expected, expected_shape),
                "claim {name}"
            );
        }
        assert_eq!(record.claims(), map(&claims));
        assert_eq!(record.id_token(), token);
        assert_eq!(record.refresh_token(), Some("refresh"));
        // Neither the payload nor the header is stored twice.
        assert!(
            record.heap_bytes() < token.len() - 30,
            "{}",
            record.heap_bytes()
        );
        let again = UserRecord::new(&map(&claims), &token, None).unwrap();
        assert!(Arc::ptr_eq(
            record.header.as_ref().unwrap(),
            again.header.as_ref().unwrap()
        ));
    }

    #[test]
    fn merged_claims_keep_the_whole_token() {
        let from_token = json!({"sub": "u1", "aud": "app"});
        let token = token_for(&from_token);
        let mut merged = map(&from_token);
        merged.insert("email".into(), json!("from-userinfo@x"));
        let record = UserRecord::new(&merged, &token, None).unwrap();
        assert_eq!(record.id_token(), token);
        assert_eq!(record.claims(), merged);
        assert_eq!(
            record.claim("email").as_deref(),
            Some(&json!("from-userinfo@x"))
        );
        assert_eq!(record.refresh_token(), None);
    }

    #[test]
    fn a_token_with_non_canonical_base64_is_kept_whole() {
        let claims = json!({"sub": "u"});
        // A last signature character with trailing bits set: the signature does not decode
        // canonically, so the token cannot be rebuilt from parts and is kept as given.
        let mut token = token_for(&claims);
        let last = token.pop().unwrap();
        token.push(if last == 'B' { 'C' } else { 'B' });
        let record = UserRecord::new(&map(&claims), &token, Some("")).unwrap();
        assert!(record.header.is_none(), "kept whole");
        assert_eq!(record.id_token(), token);
        assert_eq!(record.refresh_token(), Some(""));
    }

    #[test]
    fn escaped_and_repeated_names() {
        let text = r#"{"a\"b": 1, "sub": "first", "sub": "second", "x": 2}"#;
        let claims: Claims = serde_json::from_str(text).unwrap();
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("{}"),
            URL_SAFE_NO_PAD.encode(text),
            URL_SAFE_NO_PAD.encode([1u8; 64])
        );
        let record = UserRecord::new(&claims, &token, None).unwrap();
        assert_eq!(record.id_token(), token);
        // The last of a repeated name wins, as in the parsed map.
        assert_eq!(record.claim("sub").as_deref(), Some(&json!("second")));
        assert_eq!(record.claim("x").as_deref(), Some(&json!(2)));
        // A name with escapes cannot be looked up (fails closed), but /_auth/me shows it.
        assert_eq!(record.claim("a\"b"), None);
        assert_eq!(record.claims(), claims);
    }

    #[test]
    fn oversized_claims_are_refused() {
        let mut claims = Claims::new();
        claims.insert("big".into(), json!("x".repeat(MAX_CLAIMS_BYTES)));
        assert_eq!(
            UserRecord::new(&claims, "a.b.c", None).err(),
            Some(RecordError::TooLarge)
        );
    }
}
