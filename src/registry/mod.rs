//! Apps from two sources, one running configuration: the config file (the static base,
//! read-only through the API) plus apps created through the admin API, kept as one document
//! (`apps.json`) in the control store — `{admin.data_dir}` on a single node, or Redis shared by
//! every replica (`control.store: redis`), where each change is announced so every replica
//! rebuilds within a second, and a periodic re-read heals a missed announcement — plus the
//! active custom domains of the domain book (kept beside them, with their certificates). Every
//! change — an API call, a domain added, activated or removed, SIGHUP — rebuilds the whole
//! snapshot and swaps it in atomically; an API change that does not compile is refused and the
//! running snapshot stays. API apps are written to disk (atomically, by rename) only after they
//! compiled.
//!
//! Stored state that does not compile with the rest (written by an older version, or made
//! invalid by a config-file change) never keeps the gateway from starting or from taking
//! changes: the config file plus every stored app and domain that compiles is served, and the
//! rest is listed as [`Unserved`] — in the log, on `/readyz` and at `GET /api/unserved`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde::Serialize;
use serde_json::Value;

use crate::config::model::AppFile;
use crate::config::{parse, Gateway, Problems};
use crate::domains::certificates::Certificates;
use crate::domains::{CustomDomain, DomainBook};
use crate::route::host::canonical_host;
use crate::store::{Changes, Documents};

mod assemble;

/// The document the API apps are kept in (a JSON list).
const APPS: &str = "apps.json";

/// The channel a replica announces a change of the API apps on.
pub const CHANNEL: &str = "control";

/// A stored app or active custom domain that is not served because it does not compile with
/// the rest of the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unserved {
    /// The app (for a domain: the app it belongs to).
    pub app: String,
    /// The custom domain, when it is a domain that is not served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Why, one line per problem.
    pub problems: Vec<String>,
}

impl std::fmt::Display for Unserved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.domain {
            Some(domain) => write!(f, "custom domain `{domain}` of app `{}`", self.app)?,
            None => write!(f, "stored app `{}`", self.app)?,
        }
        write!(f, " is not served: {}", self.problems.join("; "))
    }
}

fn lines(problems: &Problems) -> Vec<String> {
    problems
        .0
        .iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect()
}

/// Why an admin API change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No app with that id.
    #[error("no app has id `{0}`")]
    NotFound(String),
    /// The id or a host name is already taken, or the app comes from the config file.
    #[error("{0}")]
    Conflict(String),
    /// The app's fields are invalid (each problem with its field path).
    #[error("invalid app")]
    Invalid(Problems),
    /// The body is not a JSON app.
    #[error("{0}")]
    Malformed(String),
    /// The data directory could not be written.
    #[error("cannot store the change: {0}")]
    Storage(String),
}

/// Where the API apps are kept, and who hears of changes to them.
pub struct ControlStore {
    /// The documents.
    pub documents: Arc<dyn Documents>,
    /// Other replicas (a shared store), told of each change.
    pub changes: Option<Arc<dyn Changes>>,
}

/// The config file plus API apps, and the snapshot they compile to.
pub struct Registry {
    config_path: PathBuf,
    domains: Arc<DomainBook>,
    store: ControlStore,
    api_apps: tokio::sync::Mutex<Vec<Value>>,
    /// The stored document as last read or written (what a change must replace).
    stored: std::sync::Mutex<Option<Vec<u8>>>,
    snapshot: Arc<ArcSwap<Gateway>>,
    certificates: Option<Arc<Certificates>>,
    unserved: ArcSwap<Vec<Unserved>>,
    /// The active domains the snapshot was built with.
    built_with: std::sync::Mutex<Vec<(String, String)>>,
}

impl Registry {
    /// Opens the control store and returns the registry with the snapshot that includes the
    /// stored apps and active domains. Only a config file that does not compile by itself is
    /// an error; stored state that does not compile is left out and reported.
    pub async fn open(
        config_path: &Path,
        store: ControlStore,
        domains: Arc<DomainBook>,
        snapshot: Arc<ArcSwap<Gateway>>,
        certificates: Option<Arc<Certificates>>,
    ) -> Result<Registry, String> {
        let raw = store
            .documents
            .read(APPS)
            .await
            .map_err(|e| format!("cannot read the admin API's apps: {e}"))?;
        let api_apps = parse_apps(raw.as_deref())?;
        let stored = !api_apps.is_empty() || !domains.all().is_empty();
        let registry = Registry {
            config_path: config_path.to_path_buf(),
            domains,
            store,
            api_apps: tokio::sync::Mutex::new(Vec::new()),
            stored: std::sync::Mutex::new(raw),
            snapshot,
            certificates,
            unserved: ArcSwap::from_pointee(Vec::new()),
            built_with: std::sync::Mutex::new(Vec::new()),
        };
        if stored {
            let (gateway, unserved) = registry
                .build(&api_apps)
                .map_err(|p| format!("the configuration does not compile:\n{p}"))?;
            // Replicas starting with an older config file must not take other replicas'
            // domains away: only a single node cleans up at start.
            let single_node = registry.store.changes.is_none();
            registry
                .adopt(Arc::new(gateway), unserved, single_node)
                .await;
        }
        *registry.api_apps.lock().await = api_apps;
        registry.sync_certificates().await;
        Ok(registry)
    }

    /// Word of changes other replicas made (`None` on a single node, or when the store cannot
    /// subscribe now: the periodic re-read still follows them).
    pub async fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<crate::store::Change>> {
        match self.store.changes.as_ref()?.subscribe(CHANNEL).await {
            Ok(receiver) => Some(receiver),
            Err(e) => {
                tracing::warn!(error = %e, "cannot hear of other replicas' app changes; re-reading them periodically");
                None
            }
        }
    }

    /// Reads the stored apps and domains again and rebuilds when another replica changed the
    /// apps or which domains are active; serves the certificates the book names. Returns the
    /// new snapshot, if there is one.
    pub async fn resync(&self) -> Result<Option<Arc<Gateway>>, String> {
        let mut apps = self.api_apps.lock().await;
        let book_read = self.domains.refresh().await;
        let mut rebuilt = self.apply_stored(&mut apps).await?;
        if rebuilt.is_none() && self.active_changed() {
            let (gateway, unserved) = self.build(&apps).map_err(|p| p.to_string())?;
            let gateway = Arc::new(gateway);
            self.adopt(gateway.clone(), unserved, false).await;
            tracing::info!("the active custom domains changed; applied");
            rebuilt = Some(gateway);
        }
        drop(apps);
        self.sync_certificates().await;
        book_read?;
        Ok(rebuilt)
    }

    /// Whether the book's active domains differ from the ones the snapshot was built with.
    fn active_changed(&self) -> bool {
        *self.built_with.lock().unwrap_or_else(|e| e.into_inner()) != self.domains.active()
    }

    /// Serves exactly the certificates of the book's active domains.
    async fn sync_certificates(&self) {
        if let Some(certificates) = &self.certificates {
            let keys = self.snapshot.load().sessions.cookie_keys.clone();
            let loaded = certificates
                .sync(&self.domains.all(), keys.as_deref())
                .await;
            if loaded > 0 {
                tracing::info!(certificates = loaded, "issued certificates loaded");
            }
        }
    }

    /// Reads the stored apps; when they differ from what was last read or written, rebuilds
    /// with them and holds them in `apps`.
    async fn apply_stored(&self, apps: &mut Vec<Value>) -> Result<Option<Arc<Gateway>>, String> {
        let raw = self
            .store
            .documents
            .read(APPS)
            .await
            .map_err(|e| e.to_string())?;
        if raw == *self.stored.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(None);
        }
        let next = parse_apps(raw.as_deref())?;
        let (gateway, unserved) = self.build(&next).map_err(|p| p.to_string())?;
        let gateway = Arc::new(gateway);
        self.adopt(gateway.clone(), unserved, false).await;
        *apps = next;
        *self.stored.lock().unwrap_or_else(|e| e.into_inner()) = raw;
        tracing::info!(
            apps = apps.len(),
            "the stored apps changed (another replica, or an edit); applied"
        );
        Ok(Some(gateway))
    }

    /// Stored apps and domains that are not served, and why.
    pub fn unserved(&self) -> Arc<Vec<Unserved>> {
        self.unserved.load_full()
    }

    /// Swaps in a new snapshot and reports what it leaves out. With `remove_orphans` (a change
    /// made here: an app deleted, a config file reloaded) the domains of apps that no longer
    /// exist go too, with their certificates: a domain belongs to its app. A change heard from
    /// another replica never removes domains (this replica may not know a new app yet).
    async fn adopt(&self, gateway: Arc<Gateway>, unserved: Vec<Unserved>, remove_orphans: bool) {
        for item in &unserved {
            if !self.unserved.load().contains(item) {
                tracing::error!(app = %item.app, domain = item.domain.as_deref().unwrap_or("-"), problems = %item.problems.join("; "), "stored state not served");
            }
        }
        let live: Vec<String> = gateway
            .hosts
            .apps()
            .iter()
            .map(|a| a.id.to_string())
            .collect();
        let unserved_apps: Vec<&str> = unserved
            .iter()
            .filter(|u| u.domain.is_none())
            .map(|u| u.app.as_str())
            .collect();
        self.snapshot.store(gateway);
        self.unserved.store(Arc::new(unserved.clone()));
        if !remove_orphans {
            return;
        }
        let orphans = self
            .domains
            .remove_where(|d| !live.contains(&d.app) && !unserved_apps.contains(&d.app.as_str()))
            .await
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "the domains of removed apps stay in the book");
                Vec::new()
            });
        for orphan in &orphans {
            tracing::info!(domain = %orphan.domain, app = %orphan.app, "custom domain removed with its app");
        }
        self.drop_certificates(&orphans).await;
    }

    /// Removes the certificates the gateway issued for `removed` domains, so they stop being
    /// served at once (here, and on every replica as it reads the book).
    async fn drop_certificates(&self, removed: &[CustomDomain]) {
        let Some(certificates) = &self.certificates else {
            return;
        };
        for domain in removed.iter().filter(|d| d.issued_at.is_some()) {
            certificates.discard(&domain.domain).await;
        }
    }

    /// Rebuilds from the (possibly changed) config file, the stored apps and the domain book
    /// (SIGHUP, a domain activated or removed). A file that names no apps while the running
    /// one has some is refused unless it says so (`apps: []`): an editor or a config tool
    /// caught halfway through writing it would otherwise take every app away.
    pub async fn reload(&self) -> Result<Arc<Gateway>, Problems> {
        let apps = self.api_apps.lock().await;
        let running = self.snapshot.load();
        let served_from_file = running.hosts.apps().iter().any(|a| {
            !apps
                .iter()
                .any(|api| api.get("id").and_then(Value::as_str) == Some(&*a.id))
        });
        if served_from_file {
            let text = std::fs::read_to_string(&self.config_path).unwrap_or_default();
            let names_apps = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text)
                .ok()
                .is_some_and(|v| v.get("apps").is_some());
            if !names_apps {
                let mut problems = Problems::default();
                problems.add(
                    "apps",
                    "the file names no apps while the running configuration serves some; \
                     write `apps: []` to remove them all",
                );
                return Err(problems);
            }
        }
        let (gateway, unserved) = self.build(&apps)?;
        let gateway = Arc::new(gateway);
        self.adopt(gateway.clone(), unserved, true).await;
        Ok(gateway)
    }

    /// Removes a custom domain of `app` and rebuilds at once, so it stops serving the app and
    /// its certificate now and can be added again.
    pub async fn remove_domain(
        &self,
        app: &str,
        domain: &str,
    ) -> Result<(), crate::domains::DomainError> {
        let removed = self.domains.remove(app, domain).await?;
        if removed.status == crate::domains::DomainStatus::Active {
            if let Err(e) = self.resync().await {
                tracing::error!(error = %e, "configuration not rebuilt after a domain was removed");
            }
        }
        self.drop_certificates(&[removed]).await;
        Ok(())
    }

    /// Names held by custom domains (any status) of other apps than `app`, and by every
    /// domain of `app` itself that is not active yet: an app cannot take them as host names.
    fn reserved_names(&self, app: &str) -> Vec<(String, String)> {
        self.domains
            .all()
            .iter()
            .filter(|d| d.app != app || d.status != crate::domains::DomainStatus::Active)
            .map(|d| (d.domain.clone(), d.app.clone()))
            .collect()
    }

    /// Every app: (source, app as JSON).
    pub async fn list(&self) -> Vec<(&'static str, Value)> {
        let mut out = Vec::new();
        if let Ok(text) = std::fs::read_to_string(&self.config_path) {
            if let Ok(file) = parse(&text) {
                for app in file.apps {
                    if let Ok(v) = serde_json::to_value(&app) {
                        out.push(("config", v));
                    }
                }
            }
        }
        for app in self.api_apps.lock().await.iter() {
            out.push(("api", app.clone()));
        }
        out
    }

    /// One app by id.
    pub async fn get(&self, id: &str) -> Option<(&'static str, Value)> {
        self.list()
            .await
            .into_iter()
            .find(|(_, app)| app.get("id").and_then(Value::as_str) == Some(id))
    }

    /// Creates an app.
    pub async fn create(&self, app: Value) -> Result<(Arc<Gateway>, Value), ChangeError> {
        let parsed = to_app(&app).map_err(ChangeError::Malformed)?;
        let mut apps = self.api_apps.lock().await;
        self.check_conflicts(&parsed, None).await?;
        let normalised =
            serde_json::to_value(&parsed).map_err(|e| ChangeError::Malformed(e.to_string()))?;
        let mut next = apps.clone();
        next.push(normalised.clone());
        let gateway = self.commit(&mut apps, next, Some(&parsed.id)).await?;
        Ok((gateway, normalised))
    }

    /// Applies a JSON merge patch (RFC 7396) to an API app.
    pub async fn patch(
        &self,
        id: &str,
        patch: Value,
    ) -> Result<(Arc<Gateway>, Value), ChangeError> {
        let mut apps = self.api_apps.lock().await;
        let index = self.api_index(&apps, id).await?;
        let mut merged = apps[index].clone();
        merge_patch(&mut merged, &patch);
        let parsed = to_app(&merged).map_err(ChangeError::Malformed)?;
        if parsed.id != id {
            return Err(ChangeError::Conflict("an app's id cannot change".into()));
        }
        self.check_conflicts(&parsed, Some(id)).await?;
        let normalised =
            serde_json::to_value(&parsed).map_err(|e| ChangeError::Malformed(e.to_string()))?;
        let mut next = apps.clone();
        next[index] = normalised.clone();
        let gateway = self.commit(&mut apps, next, Some(id)).await?;
        Ok((gateway, normalised))
    }

    /// Deletes an API app.
    pub async fn delete(&self, id: &str) -> Result<Arc<Gateway>, ChangeError> {
        let mut apps = self.api_apps.lock().await;
        let index = self.api_index(&apps, id).await?;
        let mut next = apps.clone();
        next.remove(index);
        self.commit(&mut apps, next, None).await
    }

    async fn api_index(&self, apps: &[Value], id: &str) -> Result<usize, ChangeError> {
        if let Some(i) = apps
            .iter()
            .position(|a| a.get("id").and_then(Value::as_str) == Some(id))
        {
            return Ok(i);
        }
        let in_file = self.file_apps().iter().any(|a| a.id == id);
        Err(if in_file {
            ChangeError::Conflict(format!(
                "app `{id}` is defined in the config file; change it there"
            ))
        } else {
            ChangeError::NotFound(id.to_string())
        })
    }

    fn file_apps(&self) -> Vec<AppFile> {
        std::fs::read_to_string(&self.config_path)
            .ok()
            .and_then(|text| parse(&text).ok())
            .map(|f| f.apps)
            .unwrap_or_default()
    }

    /// 409 when another app already has this id or one of its host names.
    async fn check_conflicts(
        &self,
        app: &AppFile,
        replacing: Option<&str>,
    ) -> Result<(), ChangeError> {
        let names = |a: &AppFile| -> Vec<String> {
            std::iter::once(&a.host)
                .chain(a.custom_domains.iter())
                .filter_map(|h| canonical_host(h))
                .collect()
        };
        let mine = names(app);
        for (name, owner) in self.reserved_names(&app.id) {
            if mine.contains(&name) {
                return Err(ChangeError::Conflict(format!(
                    "`{name}` is a custom domain of app `{owner}`"
                )));
            }
        }
        let current = self.snapshot.load();
        for other in current.hosts.apps() {
            if Some(&*other.id) == replacing {
                continue;
            }
            if *other.id == *app.id {
                return Err(ChangeError::Conflict(format!(
                    "app id `{}` is taken",
                    app.id
                )));
            }
            for name in &mine {
                if current
                    .hosts
                    .lookup(name)
                    .is_some_and(|a| Arc::ptr_eq(a, &other))
                {
                    return Err(ChangeError::Conflict(format!(
                        "`{name}` is already served by app `{}`",
                        other.id
                    )));
                }
            }
        }
        Ok(())
    }

    /// Compiles `next`; on success stores it, swaps the snapshot, keeps it and tells the other
    /// replicas. The changed app must compile; stored state that did not before stays left
    /// out. A store that changed since it was read (another replica's change at the same
    /// moment) refuses the write: the change is not made, and the other one is applied.
    async fn commit(
        &self,
        apps: &mut Vec<Value>,
        next: Vec<Value>,
        changed: Option<&str>,
    ) -> Result<Arc<Gateway>, ChangeError> {
        let file_count = self.file_apps().len();
        let (gateway, unserved) = self.build(&next).map_err(|problems| {
            ChangeError::Invalid(relative_to_app(problems, file_count, &next, changed))
        })?;
        if let Some(id) = changed {
            if let Some(refused) = unserved.iter().find(|u| u.app == id && u.domain.is_none()) {
                let mut problems = Problems::default();
                for line in &refused.problems {
                    let (field, message) = line.split_once(": ").unwrap_or(("(app)", line));
                    problems.add(field, message);
                }
                return Err(ChangeError::Invalid(relative_to_app(
                    problems, file_count, &next, changed,
                )));
            }
        }
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| ChangeError::Storage(e.to_string()))?;
        let expected = self
            .stored
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let written = self
            .store
            .documents
            .replace(APPS, expected.as_deref(), &bytes)
            .await
            .map_err(|e| ChangeError::Storage(e.to_string()))?;
        if !written {
            // Someone else wrote first: take their list now, so the next try starts from it.
            if let Err(e) = self.apply_stored(apps).await {
                tracing::error!(error = %e, "the stored apps cannot be re-read");
            }
            return Err(ChangeError::Conflict(
                "the stored apps changed since they were read (another replica, or an edit); they are applied now: try again".into(),
            ));
        }
        *self.stored.lock().unwrap_or_else(|e| e.into_inner()) = Some(bytes);
        let gateway = Arc::new(gateway);
        *apps = next;
        // A deleted app's domains go with it.
        self.adopt(gateway.clone(), unserved, changed.is_none())
            .await;
        if let Some(changes) = &self.store.changes {
            if let Err(e) = changes.publish(CHANNEL, "apps").await {
                tracing::warn!(error = %e, "other replicas could not be told of an app change; they re-read it within their resync interval");
            }
        }
        Ok(gateway)
    }
}

/// The stored list of API apps (none when there is no document).
fn parse_apps(raw: Option<&[u8]>) -> Result<Vec<Value>, String> {
    match raw {
        None => Ok(Vec::new()),
        Some(bytes) => serde_json::from_slice(bytes)
            .map_err(|e| format!("the stored {APPS} is not a JSON list of apps: {e}")),
    }
}

fn to_app(value: &Value) -> Result<AppFile, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

/// Problems of the changed app, with `apps[N].` removed so they name the app's own fields.
fn relative_to_app(
    problems: Problems,
    file_count: usize,
    next: &[Value],
    changed: Option<&str>,
) -> Problems {
    let index = changed.and_then(|id| {
        next.iter()
            .position(|a| a.get("id").and_then(Value::as_str) == Some(id))
    });
    let Some(index) = index else {
        return problems;
    };
    let prefix = format!("apps[{}]", file_count + index);
    Problems(
        problems
            .0
            .into_iter()
            .map(|mut p| {
                if let Some(rest) = p.field.strip_prefix(&prefix) {
                    p.field = rest.trim_start_matches('.').to_string();
                    if p.field.is_empty() {
                        p.field = "(app)".into();
                    }
                }
                p
            })
            .collect(),
    )
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(fields) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(map) = target {
                for (k, v) in fields {
                    if v.is_null() {
                        map.remove(k);
                    } else {
                        merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let mut doc = serde_json::json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &serde_json::json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, serde_json::json!({"a": "z", "c": {"d": "e"}}));
        merge_patch(&mut doc, &serde_json::json!({"routes": [1]}));
        assert_eq!(doc["routes"], serde_json::json!([1]));
    }
}
