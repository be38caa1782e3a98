//! The file model of the control plane's store: where apps made through the admin API live
//! (see [`super::model`] for the conventions).

use serde::Deserialize;

use super::model::RedisFile;

/// Where the admin API's apps are kept, and so which replicas share them.
#[derive(schemars::JsonSchema, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ControlFile {
    /// `file`: `admin.data_dir/apps.json`, this node only. `redis`: in Redis, shared by every
    /// replica — any replica takes admin API calls and every one applies each change within a
    /// second. Default: `file`. Read at start-up.
    pub store: ControlStoreFile,
    /// The Redis connection for `store: redis`. Default: `sessions.redis`.
    pub redis: Option<RedisFile>,
}

/// A control-plane store.
#[derive(schemars::JsonSchema, Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ControlStoreFile {
    /// Files under `admin.data_dir`.
    #[default]
    File,
    /// Redis, shared by every replica.
    Redis,
}
