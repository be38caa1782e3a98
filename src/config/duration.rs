//! Durations in the config file: `30s`, `5m`, `14d`, `1h 30m`, or a plain number of seconds.

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A whole number of seconds, written in the config as `90`, `90s`, `5m`, `14d`…
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seconds(pub u64);

impl Seconds {
    /// As a [`Duration`].
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;
        impl Visitor<'_> for SecondsVisitor {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as 30s, 5m, 14d, or a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                let parsed = humantime::parse_duration(v.trim()).map_err(|e| {
                    E::custom(format!(
                        "`{v}` is not a duration ({e}); write e.g. 30s, 5m, 14d"
                    ))
                })?;
                if parsed.subsec_nanos() != 0 {
                    return Err(E::custom(format!(
                        "`{v}` has a fraction of a second; durations are whole seconds"
                    )));
                }
                Ok(Seconds(parsed.as_secs()))
            }
        }
        deserializer.deserialize_any(SecondsVisitor)
    }
}

impl schemars::JsonSchema for Seconds {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: a number of seconds, or e.g. `30s`, `5m`, `12h`, `14d`, `1h 30m`.",
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": "^\\s*(\\d+\\s*[smhd]?\\s*)+$"}
            ]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Seconds, serde_yaml_ng::Error> {
        serde_yaml_ng::from_str(yaml)
    }

    #[test]
    fn accepts_numbers_and_units() {
        assert_eq!(parse("90").unwrap(), Seconds(90));
        assert_eq!(parse("90s").unwrap(), Seconds(90));
        assert_eq!(parse("5m").unwrap(), Seconds(300));
        assert_eq!(parse("14d").unwrap(), Seconds(14 * 86400));
        assert_eq!(parse("1h 30m").unwrap(), Seconds(5400));
    }

    #[test]
    fn refuses_nonsense() {
        assert!(parse("-5").is_err());
        assert!(parse("soon").is_err());
        assert!(parse("1500ms").is_err());
        assert!(parse("[1]").is_err());
    }
}
