//! The file model of the control plane's store: where apps made through the admin API live
//! (see [`super::model`] for the conventions).

use serde::Deserialize;

use super::duration::Seconds;
use super::model::RedisFile;

/// Where the admin API's apps, the custom domains and their certificates are kept, and so
/// which replicas share them.
#[derive(schemars::JsonSchema, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlFile {
    /// `file`: `admin.data_dir` (apps.json, domains.json) and `tls.certs_dir`, this node only.
    /// `redis`: in Redis, shared by every replica — any replica takes admin API calls, every
    /// one applies each change within a second, and one at a time works on each custom domain.
    /// Default: `file`. Read at start-up.
    pub store: ControlStoreFile,
    /// The Redis connection for `store: redis`. Default: `sessions.redis`.
    pub redis: Option<RedisFile>,
    /// How long a replica's claim on a custom domain's work (checking its records, ordering
    /// its certificate) lasts without being renewed; the holder renews it every third of
    /// this while it works, so a replica that dies has its work taken over this long after.
    /// 2s to 10m. Default: 30s.
    pub lease_ttl: Seconds,
}

impl Default for ControlFile {
    fn default() -> Self {
        ControlFile {
            store: ControlStoreFile::default(),
            redis: None,
            lease_ttl: Seconds(30),
        }
    }
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
