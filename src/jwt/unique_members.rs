//! JSON read into a `serde_json::Value`, refusing any object that names a member twice.
//! RFC 7515 §5.2 and RFC 7519 §4 let a JWT reader refuse duplicate names, and it must: one
//! reader keeps the first copy, another the last, so a token could mean one thing to its
//! issuer and another to the gateway and the origin.

use std::fmt;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON value in which no object has a repeated member name.
pub struct UniqueMembers(pub Value);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueVisitor)
            .map(UniqueMembers)
    }
}

struct UniqueVisitor;

impl<'de> Visitor<'de> for UniqueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON without repeated member names")
    }

    fn visit_bool<E: Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueMembers(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(A::Error::custom(format!("member `{name}` is repeated")));
            }
            let UniqueMembers(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str::<UniqueMembers>(text).map(|v| v.0)
    }

    #[test]
    fn repeated_names_are_refused_at_any_depth() {
        assert!(read(r#"{"scope":"read","scope":"admin"}"#).is_err());
        assert!(read(r#"{"a":{"b":1,"b":2}}"#).is_err());
        assert!(read(r#"{"a":[{"b":1,"b":1}]}"#).is_err());
        // An escaped spelling of the same name is the same name.
        assert!(read(r#"{"sub":"a","s\u0075b":"b"}"#).is_err());
    }

    #[test]
    fn everything_else_reads_as_serde_json_does() {
        let text = r#"{"s":"é\n","n":-3,"u":18446744073709551615,"f":1.5,"b":true,"z":null,
                       "a":[1,{"x":[]}],"o":{"sub":1,"Sub":2}}"#;
        assert_eq!(
            read(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
