//! What a configuration may mean but probably should not: reported by `check` and logged at
//! start and on reload, without refusing the file.

use super::model::FileConfig;
use super::problems::Problems;

/// Plain-http identity endpoints off this machine: keys and discovery fetched over plain HTTP
/// can be replaced on the way, and with them every identity the gateway believes.
pub fn of(file: &FileConfig) -> Problems {
    let mut warnings = Problems::default();
    for (i, provider) in file.oidc_providers.iter().enumerate() {
        if let Some(host) = plain_http_off_loopback(&provider.issuer) {
            warnings.add(
                &format!("oidc_providers[{i}].issuer"),
                format!(
                    "plain http to {host}: discovery, keys and tokens travel unencrypted and \
                     unauthenticated; use https unless this is a test setup"
                ),
            );
        }
    }
    for (i, issuer) in file.jwt_issuers.iter().enumerate() {
        let (field, url) = match &issuer.jwks_uri {
            Some(uri) => ("jwks_uri", uri.as_str()),
            None if issuer.jwks_file.is_none() && issuer.shared_secret.is_none() => {
                ("issuer", issuer.issuer.as_str())
            }
            None => continue,
        };
        if let Some(host) = plain_http_off_loopback(url) {
            warnings.add(
                &format!("jwt_issuers[{i}].{field}"),
                format!(
                    "plain http to {host}: signing keys fetched this way can be replaced on the \
                     way; use https unless this is a test setup"
                ),
            );
        }
    }
    warnings
}

/// The host of an `http://` URL that is not a loopback address or `localhost`.
fn plain_http_off_loopback(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    if parsed.scheme() != "http" {
        return None;
    }
    let loopback = match parsed.host()? {
        url::Host::Domain(name) => {
            name.eq_ignore_ascii_case("localhost")
                || name.to_ascii_lowercase().ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    (!loopback).then(|| parsed.host_str().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_a_warning_only_off_this_machine() {
        let file = super::super::parse(
            "oidc_providers:\n  - {id: a, issuer: 'http://id.example.com', client_id: c}\n  - {id: b, issuer: 'http://127.0.0.1:8082', client_id: c}\n  - {id: c, issuer: 'https://id.example.com', client_id: c}\njwt_issuers:\n  - {id: j, issuer: 'https://x.test', jwks_uri: 'http://keys.example.com/jwks', audiences: [a]}\n  - {id: k, issuer: 'http://localhost:9000', audiences: [a]}\n",
        )
        .unwrap();
        let warned: Vec<String> = of(&file).0.into_iter().map(|w| w.field).collect();
        assert_eq!(
            warned,
            ["oidc_providers[0].issuer", "jwt_issuers[0].jwks_uri"]
        );
    }
}
