//! Documents in a directory, for a single node that must keep them across restarts: one file
//! per document, replaced atomically (written beside, synced, renamed over), readable by the
//! gateway's user only.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{Documents, StoreError, StoreResult};

/// [`Documents`] as files under one directory.
pub struct FileDocuments {
    dir: PathBuf,
    /// One writer at a time in this process (the compare and the rename are one step).
    writing: tokio::sync::Mutex<()>,
}

impl FileDocuments {
    /// Documents under `dir` (created on the first write).
    pub fn new(dir: &Path) -> FileDocuments {
        FileDocuments {
            dir: dir.to_path_buf(),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// The file of `key`: letters, digits, `-`, `_` and `.` as they are, any other byte as
    /// `%XX`, so two keys never share a file and none leaves the directory.
    fn path(&self, key: &str) -> PathBuf {
        let mut name = String::with_capacity(key.len());
        for b in key.bytes() {
            if b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_')
                || (b == b'.' && !name.is_empty())
            {
                name.push(b as char);
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        self.dir.join(name)
    }
}

fn failed(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
}

fn read_file(path: &Path) -> StoreResult<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(failed("cannot read", path, e)),
    }
}

/// Writes `bytes` to `path` whole: beside it under a unique name, synced, renamed over;
/// readable by the gateway's user only.
pub fn write_file(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| failed("cannot create", dir, e))?;
    let temporary = path.with_extension(format!("tmp-{}", super::random_token()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temporary).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(e) = written.and_then(|_| std::fs::rename(&temporary, path)) {
        let _ = std::fs::remove_file(&temporary);
        return Err(failed("cannot write", path, e));
    }
    Ok(())
}

#[async_trait]
impl Documents for FileDocuments {
    async fn read(&self, key: &str) -> StoreResult<Option<Vec<u8>>> {
        read_file(&self.path(key))
    }

    async fn replace(&self, key: &str, expected: Option<&[u8]>, new: &[u8]) -> StoreResult<bool> {
        let _one_writer = self.writing.lock().await;
        let path = self.path(key);
        if read_file(&path)?.as_deref() != expected {
            return Ok(false);
        }
        write_file(&path, new)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_documents_conformance_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileDocuments::new(&dir.path().join("nested"));
        super::super::conformance::documents(&store, "file").await;
    }

    #[tokio::test]
    async fn keys_stay_in_the_directory_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileDocuments::new(dir.path());
        for key in ["../escape", "a/b", ".hidden", "ok-key_1.json"] {
            assert!(store.replace(key, None, b"x").await.unwrap());
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["%2E.%2Fescape", "%2Ehidden", "a%2Fb", "ok-key_1.json"]
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("ok-key_1.json"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
