//! Compiling `jwt_issuers` and the identity header mappings.

use std::sync::Arc;

use http::HeaderName;
use jsonwebtoken::Algorithm;

use super::carry::{fingerprint, Carried};
use super::model::{IdentityHeadersFile, JwtIssuerFile};
use super::problems::{compile_list, Problems};
use crate::authn::identity::IdentityHeaders;
use crate::jwt::jwks::{provider_client, FetchPolicy, IssuerKeys, KeySource};
use crate::jwt::keys::KeySet;
use crate::jwt::verify::algorithm_name;
use crate::jwt::Issuer;
use crate::proxy::headers::ManagedHeaders;

const ALGORITHMS: [Algorithm; 12] = [
    Algorithm::HS256,
    Algorithm::HS384,
    Algorithm::HS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Parses `{at}.algorithms`; `none` and unknown names are problems.
pub fn parse_algorithms(names: &[String], at: &str, problems: &mut Problems) -> Vec<Algorithm> {
    let mut algorithms = Vec::new();
    for (j, name) in names.iter().enumerate() {
        match ALGORITHMS.iter().find(|a| algorithm_name(**a) == name) {
            Some(alg) => algorithms.push(*alg),
            None => problems.add(
                &format!("{at}.algorithms[{j}]"),
                format!("`{name}` is not an accepted signature algorithm (`none` never is)"),
            ),
        }
    }
    if algorithms.is_empty() {
        problems.add(
            &format!("{at}.algorithms"),
            "at least one algorithm is needed",
        );
    }
    algorithms
}

/// Compiles every issuer, reporting problems under `jwt_issuers[N]`. An issuer whose settings
/// are those of `running`'s (same id) is taken over with its keys; the fingerprints of the
/// result go into `carried` for the next rebuild.
pub fn issuers(
    files: Vec<JwtIssuerFile>,
    running: Option<&Carried>,
    carried: &mut Carried,
    problems: &mut Problems,
) -> Vec<Arc<Issuer>> {
    // Tokens are matched to an issuer by their `iss`: two entries for one issuer would leave
    // one of them silently unused.
    for (j, later) in files.iter().enumerate() {
        if let Some(i) = files[..j].iter().position(|f| f.issuer == later.issuer) {
            problems.add(
                &format!("jwt_issuers[{j}].issuer"),
                format!(
                    "`{}` is already the issuer of jwt_issuers[{i}] (`{}`); give each issuer one entry",
                    later.issuer, files[i].id
                ),
            );
        }
    }
    compile_list(
        files,
        "jwt_issuers",
        |f| f.id.clone(),
        |f, at, p| {
            // Keys read from a file are read again on every rebuild.
            let carriable = f.jwks_file.is_none();
            let fp = fingerprint(&f, &[f.shared_secret.as_ref()]);
            let id = f.id.clone();
            let compiled = match running.and_then(|r| r.issuer(&id, &fp)) {
                Some(issuer) if carriable => issuer,
                _ => Arc::new(issuer(f, at, p)?),
            };
            if carriable {
                carried.issuers.insert(id, (fp, compiled.clone()));
            }
            Some(compiled)
        },
        problems,
    )
}

fn issuer(file: JwtIssuerFile, at: &str, problems: &mut Problems) -> Option<Issuer> {
    let before = problems.0.len();
    if file.id.trim().is_empty() {
        problems.add(&format!("{at}.id"), "must not be empty");
    }
    if url::Url::parse(&file.issuer).is_err() {
        problems.add(
            &format!("{at}.issuer"),
            format!("`{}` is not a URL", file.issuer),
        );
    }
    let mut algorithms = Vec::new();
    for (j, name) in file.algorithms.iter().enumerate() {
        match ALGORITHMS.iter().find(|a| algorithm_name(**a) == name) {
            Some(alg) => algorithms.push(*alg),
            None => problems.add(
                &format!("{at}.algorithms[{j}]"),
                format!("`{name}` is not an accepted signature algorithm (`none` never is)"),
            ),
        }
    }
    if algorithms.is_empty() {
        problems.add(
            &format!("{at}.algorithms"),
            "at least one algorithm is needed",
        );
    }
    let hmac: Vec<Algorithm> = algorithms.iter().copied().filter(|a| is_hmac(*a)).collect();
    match (&file.shared_secret, hmac.is_empty()) {
        (None, false) => problems.add(
            &format!("{at}.algorithms"),
            "HS256/HS384/HS512 need a shared_secret",
        ),
        (Some(_), true) => problems.add(
            &format!("{at}.shared_secret"),
            "a shared secret is only used with HS256/HS384/HS512 in algorithms",
        ),
        (Some(secret), false) if secret.expose().len() < 32 => {
            problems.add(&format!("{at}.shared_secret"), "must be at least 32 bytes")
        }
        _ => {}
    }
    if file.audiences.is_empty() {
        problems.add(
            &format!("{at}.audiences"),
            "at least one audience is needed: a token for another API must not pass",
        );
    }
    if file.min_refresh > file.max_refresh {
        problems.add(&format!("{at}.min_refresh"), "must not exceed max_refresh");
    }
    if file.stale_max_age < file.max_refresh {
        problems.add(
            &format!("{at}.stale_max_age"),
            "must not be shorter than max_refresh: keys would be dropped before their refresh",
        );
    }
    let (source, initial) = match (&file.jwks_uri, &file.jwks_file) {
        (Some(_), Some(_)) => {
            problems.add(at, "give jwks_uri or jwks_file, not both");
            (KeySource::Discovery, KeySet::default())
        }
        (Some(uri), None) => {
            if !matches!(
                url::Url::parse(uri)
                    .map(|u| u.scheme().to_string())
                    .as_deref(),
                Ok("http" | "https")
            ) {
                problems.add(
                    &format!("{at}.jwks_uri"),
                    format!("`{uri}` is not an http(s) URL"),
                );
            }
            (KeySource::Uri(uri.clone()), KeySet::default())
        }
        (None, Some(path)) => {
            let keys = std::fs::read(path)
                .map_err(|e| format!("cannot read `{path}`: {e}"))
                .and_then(|bytes| KeySet::from_jwks(&bytes));
            match keys {
                Ok(keys) => (KeySource::Static, keys),
                Err(e) => {
                    problems.add(&format!("{at}.jwks_file"), e);
                    (KeySource::Static, KeySet::default())
                }
            }
        }
        (None, None) => (KeySource::Discovery, KeySet::default()),
    };
    let http = match provider_client(file.fetch_timeout.duration()) {
        Ok(client) => client,
        Err(e) => {
            problems.add(at, e);
            return None;
        }
    };
    if problems.0.len() > before {
        return None;
    }
    let policy = FetchPolicy {
        unknown_kid_cooldown: file.unknown_kid_cooldown.duration(),
        min_refresh: file.min_refresh.duration(),
        max_refresh: file.max_refresh.duration(),
        stale_max_age: file.stale_max_age.duration(),
        timeout: file.fetch_timeout.duration(),
    };
    let secret = file
        .shared_secret
        .as_ref()
        .map(|s| (s.expose().as_bytes().to_vec(), hmac));
    let keys = IssuerKeys::new(file.issuer.clone(), source, policy, http, initial, secret);
    Some(Issuer {
        id: Arc::from(file.id.as_str()),
        issuer: file.issuer,
        algorithms,
        audiences: file.audiences,
        leeway: file.leeway.0,
        required_typ: file.required_typ,
        max_token_bytes: file.max_token_bytes,
        cache_ttl: file.cache_ttl.duration(),
        keys: Arc::new(keys),
    })
}

/// Compiles `identity_headers.from_claims`; each header must be one the gateway strips.
pub fn identity_headers(
    file: &IdentityHeadersFile,
    managed: &ManagedHeaders,
    problems: &mut Problems,
) -> IdentityHeaders {
    header_mappings(
        &file.from_claims,
        file.max_value_bytes,
        "identity_headers.from_claims",
        managed,
        problems,
    )
}

/// Compiles header ← claim mappings found at `at` (global or one app's); each header must be
/// one the gateway strips.
pub fn header_mappings(
    from_claims: &std::collections::BTreeMap<String, String>,
    max_value_bytes: usize,
    at: &str,
    managed: &ManagedHeaders,
    problems: &mut Problems,
) -> IdentityHeaders {
    let mut mappings = Vec::new();
    for (header, claim) in from_claims {
        let field = format!("{at}.{header}");
        match HeaderName::from_bytes(header.as_bytes()) {
            Ok(name) if managed.is_managed(name.as_str()) => mappings.push((name, claim.clone())),
            Ok(_) => problems.add(
                &field,
                "not covered by identity_headers.strip, so a client could send it itself",
            ),
            Err(_) => problems.add(&field, "not a header name"),
        }
    }
    IdentityHeaders::new(mappings, max_value_bytes)
}

#[cfg(test)]
mod tests {
    use crate::config::from_yaml;

    #[test]
    fn issuer_defaults() {
        let gw = from_yaml(
            "
jwt_issuers:
  - {id: main, issuer: 'https://id.example.com', audiences: [api]}
apps:
  - {id: a, host: a.test, origin: {url: 'http://127.0.0.1:9'}}
",
        )
        .unwrap();
        let issuer = gw.verifier.issuers().next().unwrap();
        assert_eq!(issuer.leeway, 60);
        assert_eq!(issuer.max_token_bytes, 16384);
        assert_eq!(issuer.cache_ttl.as_secs(), 300);
        assert_eq!(issuer.algorithms.len(), 3);
        let app = gw.hosts.lookup("a.test").unwrap();
        assert_eq!(
            app.jwt_issuers.len(),
            1,
            "apps accept every issuer by default"
        );
        assert!(app.forward_authorization);
    }

    #[test]
    fn one_issuer_may_have_one_entry_only() {
        let problems = crate::config::from_yaml(
            "
jwt_issuers:
  - {id: a, issuer: 'https://id.test', audiences: [api]}
  - {id: b, issuer: 'https://other.test', audiences: [api]}
  - {id: c, issuer: 'https://id.test', audiences: [admin]}
apps: []
",
        )
        .unwrap_err()
        .to_string();
        assert!(
            problems.contains("jwt_issuers[2].issuer")
                && problems.contains("already the issuer of jwt_issuers[0] (`a`)"),
            "{problems}"
        );
        assert!(!problems.contains("jwt_issuers[1]"), "{problems}");
    }

    #[test]
    fn unsafe_issuer_settings_are_refused() {
        std::env::set_var("AUTHGATE_TEST_SHORT_SECRET", "short");
        let err = from_yaml(
            "
identity_headers:
  from_claims: {X-User-Id: sub}
jwt_issuers:
  - {id: a, issuer: 'https://a.test', algorithms: [none, RS256], audiences: [api]}
  - {id: b, issuer: 'https://b.test', algorithms: [HS256], audiences: [api]}
  - {id: c, issuer: 'https://c.test'}
  - {id: d, issuer: 'https://d.test', audiences: [api], shared_secret: 'a-secret-that-is-long-enough-to-pass'}
  - {id: e, issuer: 'https://e.test', algorithms: [HS256], audiences: [api], shared_secret: '${AUTHGATE_TEST_SHORT_SECRET}'}
  - {id: f, issuer: 'https://f.test', audiences: [api], jwks_uri: 'https://f.test/k', jwks_file: /x}
  - {id: g, issuer: 'https://g.test', audiences: [api], jwks_file: /nonexistent/jwks.json}
apps:
  - {id: x, host: x.test, origin: {url: 'http://127.0.0.1:9'}, jwt: {issuers: [nobody]}, identity_headers: {X-App-User: sub}}
",
        )
        .unwrap_err()
        .to_string();
        for field in [
            "identity_headers.from_claims.X-User-Id",
            "jwt_issuers[0].algorithms[0]",
            "jwt_issuers[1].algorithms",
            "jwt_issuers[2].audiences",
            "jwt_issuers[3].shared_secret",
            "jwt_issuers[4].shared_secret",
            "jwt_issuers[5]",
            "jwt_issuers[6].jwks_file",
            "apps[0].jwt.issuers[0]",
            "apps[0].identity_headers.X-App-User",
        ] {
            assert!(err.contains(field), "{field} missing from:\n{err}");
        }
        assert!(
            !err.contains("a-secret-that-is"),
            "secrets never appear in errors"
        );
    }
}
