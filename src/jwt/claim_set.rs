//! Read access to an identity's claims, whether a verified token's parsed map or a session's
//! packed record. Route requirements and identity headers only need a claim's scalar values
//! as text, so that is what the hot path asks for: a packed record answers it without
//! building `serde_json` values.

use std::borrow::Cow;

use serde_json::Value;

use super::Claims;

/// The shape of a claim whose texts were visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A string, number or bool: one text.
    Scalar,
    /// An array: one text per string, number or bool element (nested arrays and objects are
    /// skipped).
    List,
    /// `null` or an object: no text.
    Other,
}

/// Read access to an identity's claims.
pub trait ClaimSet {
    /// The value of a claim, if present.
    fn claim(&self, name: &str) -> Option<Cow<'_, Value>>;

    /// Calls `each` with the claim's scalar values as text (see [`Shape`]); `None` when the
    /// claim is absent. Numbers are written as `serde_json` writes them, bools as
    /// `true`/`false`.
    fn claim_texts(&self, name: &str, each: &mut dyn FnMut(&str)) -> Option<Shape> {
        Some(value_texts(self.claim(name)?.as_ref(), each))
    }
}

impl ClaimSet for Claims {
    fn claim(&self, name: &str) -> Option<Cow<'_, Value>> {
        self.get(name).map(Cow::Borrowed)
    }
}

/// The texts of a parsed value.
pub fn value_texts(value: &Value, each: &mut dyn FnMut(&str)) -> Shape {
    match value {
        Value::Array(items) => {
            for item in items {
                scalar_text(item, each);
            }
            Shape::List
        }
        Value::Null | Value::Object(_) => Shape::Other,
        scalar => {
            scalar_text(scalar, each);
            Shape::Scalar
        }
    }
}

fn scalar_text(value: &Value, each: &mut dyn FnMut(&str)) {
    match value {
        Value::String(s) => each(s),
        Value::Number(n) => each(&n.to_string()),
        Value::Bool(b) => each(if *b { "true" } else { "false" }),
        Value::Null | Value::Array(_) | Value::Object(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn texts(v: Value) -> (Vec<String>, Shape) {
        let mut out = Vec::new();
        let shape = value_texts(&v, &mut |t| out.push(t.to_string()));
        (out, shape)
    }

    #[test]
    fn scalars_lists_and_others() {
        assert_eq!(texts(json!("a")), (vec!["a".into()], Shape::Scalar));
        assert_eq!(texts(json!(1.5)), (vec!["1.5".into()], Shape::Scalar));
        assert_eq!(texts(json!(false)), (vec!["false".into()], Shape::Scalar));
        assert_eq!(
            texts(json!(["a", 2, true, null, ["x"], {"k": 1}])),
            (vec!["a".into(), "2".into(), "true".into()], Shape::List)
        );
        assert_eq!(texts(json!([])), (vec![], Shape::List));
        assert_eq!(texts(json!(null)), (vec![], Shape::Other));
        assert_eq!(texts(json!({"a": "b"})), (vec![], Shape::Other));
    }
}
