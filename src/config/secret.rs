//! Secrets in the config file, read from the environment or a file and never printed.
//!
//! A secret is written as `${ENV_VAR}`, `file:/path/to/secret` (trailing newline dropped) or,
//! for development only, the literal value. Its `Debug` output is always `Secret(****)`, so a
//! config dumped to a log cannot leak it.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::fmt;

/// A value that must never appear in logs, errors, or responses.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself. Call only where the value is used, never to display it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Resolves the config notation (`${VAR}`, `file:PATH`, literal) to the value.
    /// Errors name the variable or file, never the value.
    pub fn resolve(written: &str) -> Result<Secret, String> {
        let written = written.trim();
        let value = if let Some(var) = written
            .strip_prefix("${")
            .and_then(|rest| rest.strip_suffix('}'))
        {
            std::env::var(var).map_err(|_| format!("environment variable `{var}` is not set"))?
        } else if let Some(path) = written.strip_prefix("file:") {
            let path = relative_to_config(std::path::Path::new(path));
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("cannot read secret file `{}`: {e}", path.display()))?;
            text.trim_end_matches(['\r', '\n']).to_string()
        } else {
            written.to_string()
        };
        if value.is_empty() {
            return Err("the secret is empty".into());
        }
        Ok(Secret(value))
    }
}

std::thread_local! {
    /// The directory of the configuration file being read on this thread, if any.
    static CONFIG_DIR: std::cell::RefCell<Option<std::path::PathBuf>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `read` with relative `file:` secrets resolved against `dir` (the configuration file's
/// directory) instead of the working directory.
pub fn reading_in<T>(dir: Option<&std::path::Path>, read: impl FnOnce() -> T) -> T {
    let previous = CONFIG_DIR.with(|d| d.replace(dir.map(std::path::Path::to_path_buf)));
    let result = read();
    CONFIG_DIR.with(|d| *d.borrow_mut() = previous);
    result
}

fn relative_to_config(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    CONFIG_DIR
        .with(|d| d.borrow().as_ref().map(|dir| dir.join(path)))
        .unwrap_or_else(|| path.to_path_buf())
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let written = String::deserialize(deserializer)?;
        Secret::resolve(&written).map_err(de::Error::custom)
    }
}

impl schemars::JsonSchema for Secret {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A secret: `${ENV_VAR}`, `file:/path/to/file`, or (development only) the value itself.",
            "type": "string",
            "minLength": 1
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_environment_and_files() {
        std::env::set_var("AUTHGATE_TEST_SECRET_A", "from-env");
        assert_eq!(
            Secret::resolve("${AUTHGATE_TEST_SECRET_A}")
                .unwrap()
                .expose(),
            "from-env"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "from-file\n").unwrap();
        let written = format!("file:{}", path.display());
        assert_eq!(Secret::resolve(&written).unwrap().expose(), "from-file");
        assert_eq!(Secret::resolve("literal").unwrap().expose(), "literal");
    }

    #[test]
    fn errors_name_the_source_not_the_value() {
        let err = Secret::resolve("${AUTHGATE_TEST_SECRET_UNSET}").unwrap_err();
        assert!(err.contains("AUTHGATE_TEST_SECRET_UNSET"));
        assert!(Secret::resolve("file:/nonexistent/authgate").is_err());
        assert!(Secret::resolve("   ").is_err());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::resolve("hunter2").unwrap();
        assert_eq!(format!("{secret:?}"), "Secret(****)");
    }
}
