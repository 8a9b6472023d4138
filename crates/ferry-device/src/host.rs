//! This computer's identity towards phones: the HostID sent in `Pair` and `StartSession`.
//!
//! The HostID is created once (an uppercase UUID v4, as libimobiledevice does), stored in
//! `<data dir>/host-id`, and reused for every pairing, so a phone sees one computer however
//! often the user re-pairs. Set `FERRY_DATA_DIR` to isolate test runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File name inside the data dir.
pub const HOST_ID_FILE: &str = "host-id";

/// Who this computer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIdentity {
    /// Uppercase UUID.
    pub host_id: String,
    /// Shown on the phone's Trust prompt list (the computer's host name).
    pub host_name: String,
    /// Where the id is stored.
    pub path: PathBuf,
}

impl HostIdentity {
    /// Loads the identity from the platform data dir, creating it on first use.
    pub fn load_or_create() -> Result<HostIdentity> {
        let dir = crate::paths::data_dir().ok_or_else(|| Error::LocalIo {
            action: "find a data directory (set HOME or FERRY_DATA_DIR) for",
            path: PathBuf::from(HOST_ID_FILE),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        Self::load_or_create_in(&dir)
    }

    /// Loads `<dir>/host-id`, creating it (and `dir`, private) if missing or unreadable as a
    /// UUID.
    pub fn load_or_create_in(dir: &Path) -> Result<HostIdentity> {
        let path = dir.join(HOST_ID_FILE);
        let host_name = host_name();
        if let Ok(text) = std::fs::read_to_string(&path) {
            let t = text.trim();
            if uuid::Uuid::parse_str(t).is_ok() {
                return Ok(HostIdentity {
                    host_id: t.to_uppercase(),
                    host_name,
                    path,
                });
            }
            tracing::warn!(path = %path.display(), "host-id file is not a UUID; creating a new one");
        }
        crate::paths::create_private_dir(dir).map_err(|e| Error::LocalIo {
            action: "create",
            path: dir.to_path_buf(),
            source: e,
        })?;
        let host_id = uuid::Uuid::new_v4().to_string().to_uppercase();
        write_atomic(&path, format!("{host_id}\n").as_bytes()).map_err(|e| Error::LocalIo {
            action: "write",
            path: path.clone(),
            source: e,
        })?;
        Ok(HostIdentity {
            host_id,
            host_name,
            path,
        })
    }
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "Ferry".to_string())
}

/// Temp file in the same dir, fsync, rename, fsync the dir.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_loads() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("nested/ferry");
        let a = HostIdentity::load_or_create_in(&dir).unwrap();
        let b = HostIdentity::load_or_create_in(&dir).unwrap();
        assert_eq!(a.host_id, b.host_id);
        assert_eq!(a.host_id, a.host_id.to_uppercase());
        assert!(uuid::Uuid::parse_str(&a.host_id).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "data dir must be private: {mode:o}");
        }
    }

    #[test]
    fn replaces_garbage() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(HOST_ID_FILE), "not a uuid").unwrap();
        let a = HostIdentity::load_or_create_in(d.path()).unwrap();
        assert!(uuid::Uuid::parse_str(&a.host_id).is_ok());
    }
}
