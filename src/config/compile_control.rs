//! Compiles the `control` section: where the admin API's apps are kept.

use super::model_control::{ControlFile, ControlStoreFile};
use super::Problems;

/// The control plane's store, compiled.
#[derive(Debug, Clone)]
pub struct ControlSettings {
    /// Redis shared by every replica; `None`: files under `admin.data_dir`.
    pub redis: Option<crate::store::redis::RedisSettings>,
    /// How long a claim on a custom domain's work lasts unrenewed.
    pub lease_ttl: std::time::Duration,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            redis: None,
            lease_ttl: std::time::Duration::from_secs(30),
        }
    }
}

/// The `control` settings; `sessions_redis` is the fallback connection.
pub fn control(
    file: &ControlFile,
    sessions: &super::model::SessionsFile,
    problems: &mut Problems,
) -> ControlSettings {
    let sessions_redis = sessions.redis.as_ref();
    let sessions_cookie_keys_missing = sessions.cookie_keys.is_empty();
    let redis = match (file.store, &file.redis, sessions_redis) {
        (ControlStoreFile::File, _, _) => None,
        (ControlStoreFile::Redis, Some(own), _) => {
            super::compile_oidc::redis_settings(own, "control.redis", problems)
        }
        (ControlStoreFile::Redis, None, Some(shared)) => {
            super::compile_oidc::redis_settings(shared, "sessions.redis", problems)
        }
        (ControlStoreFile::Redis, None, None) => {
            problems.add(
                "control.redis",
                "`store: redis` needs a Redis connection here or in sessions.redis",
            );
            None
        }
    };
    if file.store == ControlStoreFile::Redis && sessions_cookie_keys_missing {
        problems.add(
            "sessions.cookie_keys",
            "required with `control.store: redis`: the ACME account key is sealed with them",
        );
    }
    let lease_ttl = file.lease_ttl.duration();
    if !(2..=600).contains(&file.lease_ttl.0) {
        problems.add("control.lease_ttl", "must be between 2s and 10m");
    }
    ControlSettings { redis, lease_ttl }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_control_store_falls_back_to_the_sessions_connection() {
        let app = "apps: [{id: a, host: a.test, origin: {url: 'http://127.0.0.1:9'}}]\n";
        let gw = crate::config::from_yaml(app).unwrap();
        assert!(gw.control.redis.is_none(), "files by default");
        let shared = format!(
            "{app}sessions: {{cookie_keys: ['0123456789abcdef0123456789abcdef'], store: redis, \
             redis: {{url: 'redis://127.0.0.1:6379/', key_prefix: 's:'}}}}\ncontrol: {{store: redis}}\n"
        );
        let gw = crate::config::from_yaml(&shared).unwrap();
        assert_eq!(gw.control.redis.unwrap().key_prefix, "s:");
        let problems =
            crate::config::from_yaml(&format!("{app}control: {{store: redis}}\n")).unwrap_err();
        assert!(
            problems.0.iter().any(|p| p.field == "control.redis"),
            "{problems}"
        );
        let problems = crate::config::from_yaml(&format!(
            "{app}control: {{store: redis, redis: {{url: 'http://x'}}}}\n"
        ))
        .unwrap_err();
        assert!(
            problems.0.iter().any(|p| p.field == "control.redis.url"),
            "{problems}"
        );
    }
}
