//! Apps from two sources, one running configuration: the config file (the static base,
//! read-only through the API) plus apps created through the admin API, kept in
//! `{admin.data_dir}/apps.json`. Every change — an API call or SIGHUP — rebuilds the whole
//! snapshot from both and swaps it in atomically; a change that does not compile is refused
//! and the running snapshot stays. API apps are written to disk (atomically, by rename) only
//! after they compiled.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use crate::config::model::AppFile;
use crate::config::{compile, parse, Gateway, Problems};
use crate::route::host::canonical_host;

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

/// The config file plus API apps, and the snapshot they compile to.
pub struct Registry {
    config_path: PathBuf,
    domains: Arc<crate::domains::DomainBook>,
    store_path: PathBuf,
    api_apps: tokio::sync::Mutex<Vec<Value>>,
    snapshot: Arc<ArcSwap<Gateway>>,
}

impl Registry {
    /// Opens the store under `data_dir` and returns the registry with the snapshot that
    /// includes the stored apps.
    pub fn open(
        config_path: &Path,
        data_dir: &Path,
        domains: Arc<crate::domains::DomainBook>,
        snapshot: Arc<ArcSwap<Gateway>>,
    ) -> Result<Registry, String> {
        let store_path = data_dir.join("apps.json");
        let api_apps: Vec<Value> = match std::fs::read(&store_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a JSON list of apps: {e}", store_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", store_path.display())),
        };
        let has_active = !domains.active().is_empty();
        let registry = Registry {
            config_path: config_path.to_path_buf(),
            domains,
            store_path,
            api_apps: tokio::sync::Mutex::new(Vec::new()),
            snapshot,
        };
        if !api_apps.is_empty() || has_active {
            let gateway = registry
                .build(&api_apps)
                .map_err(|p| format!("stored apps do not compile:\n{p}"))?;
            registry.snapshot.store(Arc::new(gateway));
        }
        *registry.api_apps.try_lock().map_err(|_| "registry busy")? = api_apps;
        Ok(registry)
    }

    /// Compiles the config file plus `api_apps`.
    fn build(&self, api_apps: &[Value]) -> Result<Gateway, Problems> {
        let text = std::fs::read_to_string(&self.config_path).map_err(|e| {
            let mut p = Problems::default();
            p.add(
                "(file)",
                format!("cannot read {}: {e}", self.config_path.display()),
            );
            p
        })?;
        let mut file = parse(&text)?;
        for app in api_apps {
            file.apps.push(to_app(app).map_err(|e| {
                let mut p = Problems::default();
                p.add("(stored app)", e);
                p
            })?);
        }
        // Active custom domains serve their app.
        for (app, domain) in self.domains.active() {
            if let Some(entry) = file.apps.iter_mut().find(|a| a.id == app) {
                entry.custom_domains.push(domain);
            }
        }
        compile::compile(file)
    }

    /// Rebuilds from the (possibly changed) config file and the stored apps (SIGHUP).
    pub async fn reload(&self) -> Result<Arc<Gateway>, Problems> {
        let apps = self.api_apps.lock().await;
        let gateway = Arc::new(self.build(&apps)?);
        self.snapshot.store(gateway.clone());
        Ok(gateway)
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
        let gateway = self.commit(&mut apps, next, Some(&parsed.id))?;
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
        let gateway = self.commit(&mut apps, next, Some(id))?;
        Ok((gateway, normalised))
    }

    /// Deletes an API app.
    pub async fn delete(&self, id: &str) -> Result<Arc<Gateway>, ChangeError> {
        let mut apps = self.api_apps.lock().await;
        let index = self.api_index(&apps, id).await?;
        let mut next = apps.clone();
        next.remove(index);
        self.commit(&mut apps, next, None)
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

    /// Compiles `next`; on success stores it on disk, swaps the snapshot and keeps it.
    fn commit(
        &self,
        apps: &mut Vec<Value>,
        next: Vec<Value>,
        changed: Option<&str>,
    ) -> Result<Arc<Gateway>, ChangeError> {
        let file_count = self.file_apps().len();
        let gateway = self.build(&next).map_err(|problems| {
            ChangeError::Invalid(relative_to_app(problems, file_count, &next, changed))
        })?;
        self.persist(&next).map_err(ChangeError::Storage)?;
        let gateway = Arc::new(gateway);
        self.snapshot.store(gateway.clone());
        *apps = next;
        Ok(gateway)
    }

    fn persist(&self, apps: &[Value]) -> Result<(), String> {
        let dir = self.store_path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let tmp = self.store_path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(apps).map_err(|e| e.to_string())?;
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.store_path)
            .map_err(|e| format!("{}: {e}", self.store_path.display()))
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
