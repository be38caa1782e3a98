//! Certificates for custom domains from an ACME CA (RFC 8555) with `instant-acme`, proving
//! control by HTTP-01: the gateway itself answers `/.well-known/acme-challenge/<token>` on its
//! plain listeners while an order is open — every replica, when they share a control store.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::session::cookie::CookieKeys;
use crate::store::{Documents, Records};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
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

/// How long a shared challenge answer is kept (an order is given 90 s to be validated).
const SHARED_CHALLENGE_TTL: Duration = Duration::from_secs(600);

/// Open HTTP-01 challenges: token → key authorization, in this process and — with a shared
/// control store — in Redis, so whichever replica the CA's validation request reaches answers
/// it, not only the one that placed the order.
#[derive(Default)]
pub struct Challenges {
    local: Mutex<HashMap<String, String>>,
    shared: Option<Arc<dyn Records>>,
}

/// The store key of a challenge token.
fn shared_key(token: &str) -> String {
    format!("acme-http01:{token}")
}

/// An ACME token is base64url (RFC 8555 §8.3); anything else is not looked up.
fn is_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Challenges {
    /// Challenges answered by every replica sharing `records`.
    pub fn shared(records: Arc<dyn Records>) -> Challenges {
        Challenges {
            local: Mutex::default(),
            shared: Some(records),
        }
    }

    /// The key authorization for a challenge path's token, if an order (of any replica) is
    /// waiting for it. Paths outside the challenge prefix cost a prefix comparison.
    pub async fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        if let Some(found) = self
            .local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
        {
            return Some(found);
        }
        let shared = self.shared.as_ref().filter(|_| is_token(token))?;
        match shared.get(&shared_key(token)).await {
            Ok(found) => found.and_then(|bytes| String::from_utf8(bytes).ok()),
            Err(e) => {
                tracing::warn!(error = %e, "a shared ACME challenge cannot be looked up");
                None
            }
        }
    }

    async fn open(&self, token: String, key_authorization: String) {
        if let Some(shared) = &self.shared {
            let stored = shared
                .put(
                    &shared_key(&token),
                    key_authorization.as_bytes(),
                    SHARED_CHALLENGE_TTL,
                )
                .await;
            if let Err(e) = stored {
                tracing::warn!(error = %e, "an ACME challenge is answered by this replica only");
            }
        }
        self.local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, key_authorization);
    }

    async fn close(&self, tokens: &[String]) {
        {
            let mut map = self.local.lock().unwrap_or_else(|e| e.into_inner());
            for token in tokens {
                map.remove(token);
            }
        }
        if let Some(shared) = &self.shared {
            for token in tokens {
                // Left over, it expires on its own.
                let _ = shared.delete(&shared_key(token)).await;
            }
        }
    }
}

/// The ACME account: created once per CA and reused by every order — and by every replica
/// sharing the control store — since CAs limit how many accounts are made. Its credentials
/// (the account's private key) are a document sealed like the signing keys.
pub struct AcmeAccounts {
    documents: Arc<dyn Documents>,
    /// The store is shared (Redis): only sealed documents are accepted.
    shared: bool,
}

fn fail(what: &str, e: instant_acme::Error) -> String {
    format!("{what}: {e}")
}

fn client(settings: &AcmeSettings) -> Result<instant_acme::AccountBuilder, String> {
    match &settings.ca_root {
        Some(root) => Account::builder_with_root(root),
        None => Account::builder(),
    }
    .map_err(|e| fail("ACME client", e))
}

impl AcmeAccounts {
    /// Accounts kept in `documents`; `shared`: by every replica (Redis).
    pub fn new(documents: Arc<dyn Documents>, shared: bool) -> AcmeAccounts {
        AcmeAccounts { documents, shared }
    }

    /// The document of the account at the CA of `directory_url`.
    fn document(directory_url: &str) -> String {
        let digest =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, directory_url.as_bytes());
        let hex: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("acme-account-{hex}")
    }

    async fn stored(
        &self,
        settings: &AcmeSettings,
        name: &str,
        cookie_keys: Option<&CookieKeys>,
    ) -> Result<(Option<Vec<u8>>, Option<Account>), String> {
        let raw = self
            .documents
            .read(name)
            .await
            .map_err(|e| format!("ACME account store: {e}"))?;
        let Some(bytes) = raw.as_deref() else {
            return Ok((raw, None));
        };
        let Some(credentials) =
            crate::store::sealed::open::<AccountCredentials>(bytes, name, cookie_keys, self.shared)
        else {
            tracing::error!("the stored ACME account cannot be opened; another is created");
            return Ok((raw, None));
        };
        match client(settings)?.from_credentials(credentials).await {
            Ok(account) => Ok((raw, Some(account))),
            Err(e) => {
                tracing::warn!(error = %e, "the CA refused the stored ACME account; another is created");
                Ok((raw, None))
            }
        }
    }

    /// The account to order with: the stored one, else a new one (stored, unless another
    /// replica stored one first, which is then used).
    pub async fn account(
        &self,
        settings: &AcmeSettings,
        cookie_keys: Option<&CookieKeys>,
    ) -> Result<Account, String> {
        let name = Self::document(&settings.directory_url);
        let (raw, stored) = self.stored(settings, &name, cookie_keys).await?;
        if let Some(account) = stored {
            return Ok(account);
        }
        let (account, credentials) = client(settings)?
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
        let bytes = crate::store::sealed::seal(&credentials, &name, cookie_keys)?;
        match self.documents.replace(&name, raw.as_deref(), &bytes).await {
            Ok(true) => {
                tracing::info!("ACME account created and stored");
                Ok(account)
            }
            // Another replica stored one meanwhile: everyone uses that one.
            Ok(false) => match self.stored(settings, &name, cookie_keys).await? {
                (_, Some(theirs)) => Ok(theirs),
                (_, None) => Ok(account),
            },
            Err(e) => {
                tracing::warn!(error = %e, "the new ACME account could not be stored; used for this order only");
                Ok(account)
            }
        }
    }
}

/// Orders a certificate for `domain` with the account from `accounts`; returns (PEM chain,
/// PEM private key) or a readable reason.
pub async fn issue(
    settings: &AcmeSettings,
    challenges: &Challenges,
    accounts: &AcmeAccounts,
    cookie_keys: Option<&CookieKeys>,
    domain: &str,
) -> Result<(String, String), String> {
    let account = accounts.account(settings, cookie_keys).await?;
    let mut tokens = Vec::new();
    let result = order(account, challenges, domain, &mut tokens).await;
    challenges.close(&tokens).await;
    result
}

async fn order(
    account: Account,
    challenges: &Challenges,
    domain: &str,
    tokens: &mut Vec<String>,
) -> Result<(String, String), String> {
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
        challenges
            .open(
                token.clone(),
                challenge.key_authorization().as_str().to_string(),
            )
            .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_challenge_opened_by_one_replica_is_answered_by_another() {
        let store: Arc<dyn Records> = Arc::new(crate::store::memory::MemoryStore::new());
        let (placing, other) = (
            Challenges::shared(store.clone()),
            Challenges::shared(store.clone()),
        );
        let path = format!("{CHALLENGE_PREFIX}tok-EN_1");
        assert_eq!(other.answer(&path).await, None);
        placing
            .open("tok-EN_1".into(), "tok-EN_1.thumb".into())
            .await;
        assert_eq!(other.answer(&path).await.as_deref(), Some("tok-EN_1.thumb"));
        assert_eq!(
            placing.answer(&path).await.as_deref(),
            Some("tok-EN_1.thumb")
        );
        // What is not a token is never looked up; other paths are not challenges.
        assert_eq!(other.answer(&format!("{CHALLENGE_PREFIX}../x")).await, None);
        assert_eq!(other.answer("/tok-EN_1").await, None);
        placing.close(&["tok-EN_1".into()]).await;
        assert_eq!(other.answer(&path).await, None, "closed everywhere");
        // Without a shared store, only the placing process answers.
        let alone = Challenges::default();
        alone.open("t".into(), "t.k".into()).await;
        assert_eq!(other.answer(&format!("{CHALLENGE_PREFIX}t")).await, None);
    }
}
