//! Compiles the `signing` section, each app's `assertion`, and checks them against each
//! other (a replaced key must stay published longer than any assertion it signed lives).

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::model_signing::{AssertionFile, SigningAlgorithmFile, SigningFile};
use super::Problems;
use crate::keys::assertion::AssertionSpec;
use crate::keys::material::SigningAlgorithm;
use crate::keys::ring::RotationPolicy;
use crate::keys::SigningSettings;
use crate::proxy::headers::ManagedHeaders;

/// Shortest and longest assertion lifetimes.
const LIFETIMES: std::ops::RangeInclusive<u64> = 10..=3600;

/// The `signing` settings; `longest_assertion` is the longest `assertion.lifetime` of any app
/// (`None`: no app sends assertions, so no key needs generating).
pub fn signing(
    file: &SigningFile,
    longest_assertion: Option<Duration>,
    problems: &mut Problems,
) -> SigningSettings {
    if let Some(issuer) = &file.issuer {
        if url::Url::parse(issuer).is_err() {
            problems.add(
                "signing.issuer",
                format!("`{issuer}` is not a URL (e.g. https://auth.example.com)"),
            );
        }
    }
    if file.publish_before_use.0 < file.jwks_max_age.0 {
        problems.add(
            "signing.publish_before_use",
            format!(
                "{}s is shorter than signing.jwks_max_age ({}s): a new key would sign before \
                 verifiers' cached key sets had it",
                file.publish_before_use.0, file.jwks_max_age.0
            ),
        );
    }
    if let Some(longest) = longest_assertion {
        if file.keep_previous.0 < longest.as_secs() + file.jwks_max_age.0 {
            problems.add(
                "signing.keep_previous",
                format!(
                    "{}s is shorter than the longest assertion lifetime plus jwks_max_age \
                     ({}s): assertions signed just before a rotation would stop verifying",
                    file.keep_previous.0,
                    longest.as_secs() + file.jwks_max_age.0
                ),
            );
        }
    }
    for (i, path) in file.key_files.iter().enumerate() {
        if let Err(e) = crate::keys::check_key_file(std::path::Path::new(path)) {
            problems.add(&format!("signing.key_files[{i}]"), e);
        }
    }
    SigningSettings {
        policy: RotationPolicy {
            algorithm: match file.algorithm {
                SigningAlgorithmFile::ES256 => SigningAlgorithm::ES256,
                SigningAlgorithmFile::EdDSA => SigningAlgorithm::EdDSA,
            },
            rotate_after: file.rotate_after.duration(),
            publish_before_use: file.publish_before_use.duration(),
            keep_previous: file.keep_previous.duration(),
        },
        jwks_max_age: file.jwks_max_age.duration(),
        key_files: file
            .key_files
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        wanted: longest_assertion.is_some(),
    }
}

/// What an app needs to know to build its assertion.
pub struct AssertionContext<'a> {
    /// The app's id (the default `aud`).
    pub app_id: &'a str,
    /// Its primary host (in the default `iss`).
    pub host: &'a str,
    /// Its `auth_prefix` (in the default `iss`).
    pub auth_prefix: &'a str,
    /// `signing.issuer`.
    pub issuer: Option<&'a str>,
    /// Where in the file the app is (`apps[3]`).
    pub at: &'a str,
}

/// An app's assertion settings, checked.
pub fn assertion(
    file: &AssertionFile,
    cx: &AssertionContext,
    managed: &ManagedHeaders,
    problems: &mut Problems,
) -> Option<Arc<AssertionSpec>> {
    let at = cx.at;
    let header = match HeaderName::from_bytes(file.header.as_bytes()) {
        Ok(name) if managed.is_managed(name.as_str()) => Some(name),
        Ok(_) => {
            problems.add(
                &format!("{at}.assertion.header"),
                format!(
                    "`{}` is not in identity_headers.strip: a client could send its own",
                    file.header
                ),
            );
            None
        }
        Err(_) => {
            problems.add(
                &format!("{at}.assertion.header"),
                format!("`{}` is not a header name", file.header),
            );
            None
        }
    };
    if !LIFETIMES.contains(&file.lifetime.0) {
        problems.add(
            &format!("{at}.assertion.lifetime"),
            format!("{}s is outside 10s to 1h", file.lifetime.0),
        );
    }
    if file
        .audience
        .as_deref()
        .is_some_and(|a| a.trim().is_empty())
    {
        problems.add(&format!("{at}.assertion.audience"), "must not be empty");
    }
    Some(Arc::new(AssertionSpec {
        header: header?,
        issuer: match cx.issuer {
            Some(issuer) => issuer.to_string(),
            None => format!("https://{}{}", cx.host, cx.auth_prefix),
        },
        audience: file
            .audience
            .clone()
            .unwrap_or_else(|| cx.app_id.to_string()),
        lifetime: file.lifetime.duration(),
    }))
}

#[cfg(test)]
mod tests {
    fn problems(yaml: &str) -> Vec<(String, String)> {
        match crate::config::from_yaml(yaml) {
            Ok(_) => Vec::new(),
            Err(p) => p.0.into_iter().map(|p| (p.field, p.message)).collect(),
        }
    }

    const APP: &str = "
apps:
  - id: shop
    host: shop.test
    origin: {url: 'http://127.0.0.1:9'}
";

    #[test]
    fn an_app_sends_an_assertion_with_defaults() {
        let gw = crate::config::from_yaml(&format!("{APP}    assertion: {{}}\n")).unwrap();
        let app = gw.hosts.lookup("shop.test").unwrap();
        let spec = app.assertion.as_ref().unwrap();
        assert_eq!(spec.header, "x-authgate-assertion");
        assert_eq!(spec.issuer, "https://shop.test/_auth");
        assert_eq!(spec.audience, "shop");
        assert_eq!(spec.lifetime.as_secs(), 60);
        assert!(gw.signing.wanted);
        let plain = crate::config::from_yaml(APP).unwrap();
        assert!(plain.hosts.lookup("shop.test").unwrap().assertion.is_none());
        assert!(!plain.signing.wanted, "no keys are made for nobody");
    }

    #[test]
    fn each_unsafe_setting_is_named() {
        let found = problems(&format!(
            "{APP}    assertion: {{header: X-Custom, lifetime: 5s, audience: ' '}}\n\
             signing: {{publish_before_use: 10s, keep_previous: 30s, issuer: 'not a url', \
             key_files: [/nonexistent/key.pem]}}\n"
        ));
        let fields: Vec<&str> = found.iter().map(|(f, _)| f.as_str()).collect();
        for field in [
            "apps[0].assertion.header",
            "apps[0].assertion.lifetime",
            "apps[0].assertion.audience",
            "signing.publish_before_use",
            "signing.issuer",
            "signing.key_files[0]",
        ] {
            assert!(fields.contains(&field), "{field} in {found:?}");
        }
        let found = problems(&format!(
            "{APP}    assertion: {{lifetime: 1h}}\nsigning: {{keep_previous: 1h}}\n"
        ));
        assert!(
            found.iter().any(|(f, _)| f == "signing.keep_previous"),
            "{found:?}"
        );
    }
}
