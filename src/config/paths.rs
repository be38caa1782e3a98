//! Relative paths written in a configuration file are relative to the file, not to wherever
//! the gateway was started from: `certs_dir: certs` next to `/etc/authgate/authgate.yaml` is
//! `/etc/authgate/certs`. Paths left at their defaults stay relative to the working directory
//! (the service's state directory), and every path is made absolute here, so problems and logs
//! name the directory actually used.

use std::path::{Path, PathBuf};

use super::lines::Lines;
use super::model::FileConfig;

/// The absolute directory of the configuration file at `config`.
pub fn dir_of(config: &Path) -> PathBuf {
    let absolute = if config.is_absolute() {
        config.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(config))
            .unwrap_or_else(|_| config.to_path_buf())
    };
    absolute
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

/// Makes every path in `file` absolute: written ones against `config_dir`, defaults against
/// the working directory.
pub fn resolve(file: &mut FileConfig, config_dir: &Path, lines: &Lines) {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    let fix = |written: &mut String, field: &str| {
        let base = if lines.written(field) {
            config_dir
        } else {
            cwd.as_path()
        };
        let path = Path::new(written.as_str());
        if path.is_relative() && !written.is_empty() {
            *written = base.join(path).display().to_string();
        }
    };
    fix(&mut file.tls.certs_dir, "tls.certs_dir");
    fix(&mut file.admin.data_dir, "admin.data_dir");
    if let Some(dir) = &mut file.pages.templates_dir {
        fix(dir, "pages.templates_dir");
    }
    for (i, issuer) in file.jwt_issuers.iter_mut().enumerate() {
        if let Some(jwks) = &mut issuer.jwks_file {
            fix(jwks, &format!("jwt_issuers[{i}].jwks_file"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_paths_follow_the_file_and_defaults_the_working_directory() {
        let text = "tls: {certs_dir: certs}\njwt_issuers:\n  - {id: a, issuer: 'https://a.test', jwks_file: keys/a.json, audiences: [x]}\n  - {id: b, issuer: 'https://b.test', jwks_file: /abs/b.json, audiences: [x]}\n";
        let mut file = super::super::parse(text).unwrap();
        resolve(&mut file, Path::new("/etc/authgate"), &Lines::of(text));
        assert_eq!(file.tls.certs_dir, "/etc/authgate/certs");
        assert_eq!(
            file.jwt_issuers[0].jwks_file.as_deref(),
            Some("/etc/authgate/keys/a.json")
        );
        assert_eq!(
            file.jwt_issuers[1].jwks_file.as_deref(),
            Some("/abs/b.json")
        );
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(file.admin.data_dir, cwd.join("data").display().to_string());
    }

    #[test]
    fn the_directory_of_a_relative_config_path_is_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            dir_of(Path::new("config/authgate.yaml")),
            cwd.join("config")
        );
        assert_eq!(
            dir_of(Path::new("/etc/authgate/a.yaml")),
            Path::new("/etc/authgate")
        );
    }
}
