//! Certificates for custom domains from an ACME CA (RFC 8555) with `instant-acme`, proving
//! control by HTTP-01: the gateway itself answers `/.well-known/acme-challenge/<token>` on its
//! plain listeners while an order is open.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};

/// The path prefix of HTTP-01 challenges.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// ACME settings.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL.
    pub directory_url: String,
    /// A PEM root to trust for the CA's own HTTPS (test CAs); default: the system's roots.
    pub ca_root: Option<PathBuf>,
    /// Renew a certificate this long after it was issued.
    pub renew_after: Duration,
    /// First retry delay after a failed order (doubles per failure, at most an hour).
    pub retry_after: Duration,
}

/// Open HTTP-01 challenges: token → key authorization.
#[derive(Default)]
pub struct Challenges(Mutex<HashMap<String, String>>);

impl Challenges {
    /// The key authorization for a challenge path's token, if an order is waiting for it.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }

    fn open(&self, token: String, key_authorization: String) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, key_authorization);
    }

    fn close(&self, tokens: &[String]) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for token in tokens {
            map.remove(token);
        }
    }
}

/// Orders a certificate for `domain`; returns (PEM chain, PEM private key) or a readable
/// reason.
pub async fn issue(
    settings: &AcmeSettings,
    challenges: &Challenges,
    domain: &str,
) -> Result<(String, String), String> {
    let mut tokens = Vec::new();
    let result = order(settings, challenges, domain, &mut tokens).await;
    challenges.close(&tokens);
    result
}

async fn order(
    settings: &AcmeSettings,
    challenges: &Challenges,
    domain: &str,
    tokens: &mut Vec<String>,
) -> Result<(String, String), String> {
    let fail = |what: &str, e: instant_acme::Error| format!("{what}: {e}");
    let builder = match &settings.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    }
    .map_err(|e| fail("ACME client", e))?;
    let (account, _credentials) = builder
        .create(
            &NewAccount {
                contact: &[],
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            settings.directory_url.clone(),
            None,
        )
        .await
        .map_err(|e| fail("ACME account", e))?;
    let identifiers = [Identifier::Dns(domain.to_string())];
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| fail("ACME order", e))?;
    let mut authorizations = order.authorizations();
    while let Some(result) = authorizations.next().await {
        let mut authz = result.map_err(|e| fail("ACME authorization", e))?;
        match authz.status {
            AuthorizationStatus::Pending => {}
            AuthorizationStatus::Valid => continue,
            other => return Err(format!("ACME authorization is {other:?}")),
        }
        let mut challenge = authz
            .challenge(ChallengeType::Http01)
            .ok_or("the CA offers no HTTP-01 challenge")?;
        let token = challenge.token.clone();
        challenges.open(
            token.clone(),
            challenge.key_authorization().as_str().to_string(),
        );
        tokens.push(token);
        challenge
            .set_ready()
            .await
            .map_err(|e| fail("ACME challenge", e))?;
    }
    let patience = RetryPolicy::new().timeout(Duration::from_secs(90));
    let status = order
        .poll_ready(&patience)
        .await
        .map_err(|e| fail("ACME validation", e))?;
    if status != OrderStatus::Ready {
        return Err(format!(
            "the CA did not validate {domain} (order {status:?})"
        ));
    }
    let key = order
        .finalize()
        .await
        .map_err(|e| fail("ACME finalize", e))?;
    let chain = order
        .poll_certificate(&patience)
        .await
        .map_err(|e| fail("ACME certificate", e))?;
    Ok((chain, key))
}
