//! An issuer's JWKS, fetched and kept fresh.
//!
//! - Keys are fetched before first use (a warm-up at start-up and after each reload) and
//!   refreshed in the background before they expire: the JWKS response's
//!   `Cache-Control: max-age` is honoured within `[min_refresh, max_refresh]`.
//! - A token whose `kid` is unknown triggers at most one fetch per cooldown for the issuer;
//!   concurrent misses wait for that one fetch and share its result, success or failure,
//!   instead of starting their own (so a hanging endpoint costs a request at most one
//!   `fetch_timeout`).
//! - Keys are refreshed before they can go stale, and fetched at once when they have.
//! - If the JWKS endpoint is down or returns junk, the last good keys keep serving
//!   (stale-if-error) until they are `stale_max_age` old; each failure is logged and counted.
//! - Discovery (`/.well-known/openid-configuration`) must name the configured issuer, or its
//!   `jwks_uri` is not used. The HTTP client never follows redirects.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;

use super::keys::KeySet;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `jwks_uri` from the issuer's discovery document.
    Discovery,
    /// An explicit JWKS URL.
    Uri(String),
    /// A local JWKS file, read when the configuration is loaded.
    Static,
}

/// Timing of fetches.
#[derive(Debug, Clone, Copy)]
pub struct FetchPolicy {
    /// Shortest interval between fetches triggered by unknown `kid`s.
    pub unknown_kid_cooldown: Duration,
    /// Refresh no sooner than this, whatever `max-age` says.
    pub min_refresh: Duration,
    /// Refresh at least this often.
    pub max_refresh: Duration,
    /// Last good keys are dropped once this old and not refreshed.
    pub stale_max_age: Duration,
    /// Timeout of each HTTP request.
    pub timeout: Duration,
}

/// The keys in force and when they were fetched.
#[derive(Debug)]
pub struct KeyState {
    /// The usable keys.
    pub keys: KeySet,
    fetched_at: Option<Instant>,
    refresh_at: Instant,
}

#[derive(Default)]
struct FetchBook {
    /// The last fetch an unknown `kid` caused; scheduled refreshes do not count, so a key
    /// rotated in just after a refresh is still picked up at once.
    last_unknown_kid_fetch: Option<Instant>,
    /// The last fetch made because no key was held at all (first use, or the endpoint down).
    last_empty_fetch: Option<Instant>,
    jwks_uri: Option<String>,
}

/// While an issuer has no key at all, fetches on demand at most this often.
const EMPTY_REFETCH: Duration = Duration::from_secs(1);

/// One issuer's keys and the machinery that keeps them current.
pub struct IssuerKeys {
    issuer: String,
    source: KeySource,
    policy: FetchPolicy,
    http: reqwest::Client,
    secret: Option<(Vec<u8>, Vec<Algorithm>)>,
    state: ArcSwap<KeyState>,
    book: tokio::sync::Mutex<FetchBook>,
    refreshing: AtomicBool,
    fetches: AtomicU64,
    failures: AtomicU64,
    /// Fetches finished (either way): a caller that waited for the fetch lock while one
    /// finished takes its result instead of starting another.
    completed: AtomicU64,
    /// Why the last fetch failed, until one succeeds (for readiness).
    last_failure: std::sync::Mutex<Option<String>>,
}

impl IssuerKeys {
    /// Keys for `issuer` from `source`. `initial` holds the keys of a static source (empty
    /// otherwise); `secret` adds a shared-secret key for HMAC algorithms.
    pub fn new(
        issuer: String,
        source: KeySource,
        policy: FetchPolicy,
        http: reqwest::Client,
        initial: KeySet,
        secret: Option<(Vec<u8>, Vec<Algorithm>)>,
    ) -> IssuerKeys {
        let mut keys = initial;
        if let Some((secret, algs)) = &secret {
            keys.add_secret(secret, algs.clone());
        }
        let now = Instant::now();
        let fetched_at = matches!(source, KeySource::Static).then_some(now);
        IssuerKeys {
            issuer,
            source,
            policy,
            http,
            secret,
            state: ArcSwap::from_pointee(KeyState {
                keys,
                fetched_at,
                refresh_at: now,
            }),
            book: tokio::sync::Mutex::new(FetchBook::default()),
            refreshing: AtomicBool::new(false),
            fetches: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            last_failure: std::sync::Mutex::new(None),
        }
    }

    /// How many JWKS fetches were attempted.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Usable keys held now (stale ones included).
    pub fn key_count(&self) -> usize {
        self.state.load().keys.len()
    }

    /// How long ago the keys in force were fetched (`None`: never, or a static source).
    pub fn key_age(&self) -> Option<Duration> {
        self.state.load().fetched_at.map(|t| t.elapsed())
    }

    /// How many fetches failed.
    pub fn failure_count(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Whether tokens can be verified now: `Ok` with what is held, or `Err` with why not. Like
    /// [`IssuerKeys::current`], starts a refresh when one is due, so an endpoint that comes
    /// back is noticed without waiting for a token.
    pub fn health(self: &Arc<Self>) -> Result<String, String> {
        let held = self.current().keys.len();
        let failure = self.last_failure.lock().map(|f| f.clone()).unwrap_or(None);
        match (held, failure) {
            (0, Some(why)) => Err(format!("no usable key: {why}")),
            (0, None) => Err("no usable key yet (first fetch pending)".into()),
            (n, Some(why)) => Ok(format!("{n} key(s), last good ones ({why})")),
            (n, None) => Ok(format!("{n} key(s)")),
        }
    }

    /// The keys in force, or an empty set once the last good keys are too old. Starts a
    /// background refresh when the keys are due for one — or have gone stale, whatever the
    /// schedule said.
    pub fn current(self: &Arc<Self>) -> Arc<KeyState> {
        let state = self.state.load_full();
        let now = Instant::now();
        let too_old = state
            .fetched_at
            .is_some_and(|t| now.duration_since(t) > self.policy.stale_max_age);
        if !matches!(self.source, KeySource::Static)
            && (now >= state.refresh_at || too_old)
            && !self.refreshing.swap(true, Ordering::AcqRel)
        {
            let this = self.clone();
            tokio::spawn(async move {
                this.refresh().await;
                this.refreshing.store(false, Ordering::Release);
            });
        }
        if too_old {
            return Arc::new(KeyState {
                keys: KeySet::default(),
                fetched_at: state.fetched_at,
                refresh_at: state.refresh_at,
            });
        }
        state
    }

    /// Called for a token whose `kid` is unknown: fetches unless a fetch happened within the
    /// cooldown. Concurrent callers share one fetch.
    ///
    /// While no key is held at all (the first token raced the start-up fetch, or the endpoint
    /// has never answered), fetches are limited to one a second instead, and do not use up the
    /// unknown-`kid` cooldown — so a key rotated in right after start-up is still picked up.
    pub async fn refresh_for_unknown_kid(self: &Arc<Self>, kid: Option<&str>) -> Arc<KeyState> {
        if !matches!(self.source, KeySource::Static) {
            let seen = self.completed.load(Ordering::Acquire);
            let mut book = self.book.lock().await;
            // A fetch that finished while this caller waited answers it too, success or
            // failure: a hanging endpoint costs each request at most one fetch timeout.
            if self.completed.load(Ordering::Acquire) != seen {
                return self.current();
            }
            // The keys as served (stale ones count as none), so a stale key is fetched anew.
            let held = self.current();
            let now_known = kid.is_some_and(|k| held.keys.has_kid(k));
            if !now_known {
                let empty = held.keys.is_empty();
                let (last, interval) = if empty {
                    (
                        book.last_empty_fetch,
                        EMPTY_REFETCH.min(self.policy.unknown_kid_cooldown),
                    )
                } else {
                    (
                        book.last_unknown_kid_fetch,
                        self.policy.unknown_kid_cooldown,
                    )
                };
                if last.is_none_or(|t| t.elapsed() >= interval) {
                    drop(held);
                    self.fetch(&mut book).await;
                    // Stamped when the fetch ends, so the interval is counted from its result.
                    let done = Some(Instant::now());
                    if empty {
                        book.last_empty_fetch = done;
                    } else {
                        book.last_unknown_kid_fetch = done;
                    }
                }
            }
        }
        self.current()
    }

    /// Fetches now (warm-up and scheduled refresh), unless a fetch finished while this one
    /// waited for its turn.
    pub async fn refresh(&self) {
        if matches!(self.source, KeySource::Static) {
            return;
        }
        let seen = self.completed.load(Ordering::Acquire);
        let mut book = self.book.lock().await;
        if self.completed.load(Ordering::Acquire) != seen {
            return;
        }
        self.fetch(&mut book).await;
    }

    async fn fetch(&self, book: &mut FetchBook) {
        let now = Instant::now();
        self.fetches.fetch_add(1, Ordering::Relaxed);
        match self.download(book).await {
            Ok((mut keys, max_age)) => {
                if let Some((secret, algs)) = &self.secret {
                    keys.add_secret(secret, algs.clone());
                }
                let lifetime = max_age
                    .unwrap_or(self.policy.max_refresh)
                    .clamp(self.policy.min_refresh, self.policy.max_refresh);
                // Refresh at four fifths of the keys' lifetime: before they expire, not after,
                // and before they could go stale.
                let every = (lifetime - lifetime / 5)
                    .min(self.policy.stale_max_age - self.policy.stale_max_age / 5);
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), "JWKS fetched");
                if let Ok(mut failure) = self.last_failure.lock() {
                    *failure = None;
                }
                self.state.store(Arc::new(KeyState {
                    keys,
                    fetched_at: Some(now),
                    refresh_at: now + every,
                }));
            }
            Err(why) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut failure) = self.last_failure.lock() {
                    *failure = Some(why.clone());
                }
                let previous = self.state.load_full();
                tracing::warn!(
                    issuer = %self.issuer,
                    why,
                    serving_stale = !previous.keys.is_empty(),
                    "JWKS fetch failed; keeping the last good keys"
                );
                let retry = self.policy.min_refresh.min(Duration::from_secs(30));
                self.state.store(Arc::new(KeyState {
                    keys: previous.keys.clone(),
                    fetched_at: previous.fetched_at,
                    refresh_at: now + retry,
                }));
            }
        }
        self.completed.fetch_add(1, Ordering::AcqRel);
    }

    async fn download(&self, book: &mut FetchBook) -> Result<(KeySet, Option<Duration>), String> {
        let uri = match (&self.source, &book.jwks_uri) {
            (KeySource::Uri(uri), _) => uri.clone(),
            (KeySource::Discovery, Some(uri)) => uri.clone(),
            (KeySource::Discovery, None) => {
                let uri = self.discover().await?;
                book.jwks_uri = Some(uri.clone());
                uri
            }
            (KeySource::Static, _) => return Err("static keys are not fetched".into()),
        };
        let (body, headers) = self.get(&uri).await?;
        let keys = KeySet::from_jwks(&body)?;
        if keys.is_empty() {
            return Err("the JWKS has no usable key".into());
        }
        Ok((keys, max_age(&headers)))
    }

    async fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("discovery document: {e}"))?;
        let issuer = doc.get("issuer").and_then(|v| v.as_str());
        if issuer != Some(self.issuer.as_str()) {
            return Err(format!(
                "discovery names issuer {issuer:?}, not the configured `{}`",
                self.issuer
            ));
        }
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .ok_or_else(|| "discovery document has no jwks_uri".into())
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, http::HeaderMap), String> {
        const MAX_BODY: usize = 1024 * 1024;
        let resp = self
            .http
            .get(url)
            .timeout(self.policy.timeout)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: status {}", resp.status()));
        }
        let headers = resp.headers().clone();
        let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        if body.len() > MAX_BODY {
            return Err(format!("GET {url}: body over {MAX_BODY} bytes"));
        }
        Ok((body.to_vec(), headers))
    }
}

/// `max-age` of a `Cache-Control` header, if any.
fn max_age(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim().parse::<u64>().ok())
                .flatten()
        })
        .map(Duration::from_secs)
        .next()
}

/// The HTTP client used to reach identity providers: bounded timeouts, no redirects.
pub fn provider_client(timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .user_agent(concat!("authgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_cache_control() {
        let mut h = http::HeaderMap::new();
        h.insert("cache-control", "public, max-age=600".parse().unwrap());
        assert_eq!(max_age(&h), Some(Duration::from_secs(600)));
        h.insert("cache-control", "no-store".parse().unwrap());
        assert_eq!(max_age(&h), None);
    }
}
