//! The destination marker, `DIR/.ferry/archive.toml`: format version + archive id.
//!
//! Ferry writes to a destination only if this file exists (Syncthing's `.stfolder` idea): an
//! unmounted drive's empty mount point has no marker, so a nightly run cannot fill the
//! internal disk instead. The marker is written last during initialisation, so "marker
//! present" implies the metadata folder is complete.

use std::io::Read;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Name of the metadata folder inside the destination.
pub const META_DIR: &str = ".ferry";
/// Name of the marker file inside [`META_DIR`].
pub const MARKER_FILE: &str = "archive.toml";
/// The archive format this build writes and understands.
pub const FORMAT_VERSION: i64 = 1;

/// Contents of the marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    /// Archive format version ([`FORMAT_VERSION`]).
    pub format: i64,
    /// Random id of this archive (UUID v4); the catalog must carry the same.
    pub archive_id: String,
    /// When the destination was initialised (UTC, RFC 3339).
    pub created_utc: String,
    /// Content hash algorithm of the catalog and journal.
    pub hash: String,
}

const HEADER: &str = "# This folder is a Ferry photo archive (https://example.invalid/ferry).\n\
# Do not delete this file: without it Ferry refuses to write here, which protects an\n\
# unmounted drive's empty mount point. Files in this archive are never deleted by Ferry.\n";

impl Marker {
    /// A new marker with a fresh id.
    pub fn new() -> Marker {
        Marker {
            format: FORMAT_VERSION,
            archive_id: uuid::Uuid::new_v4().to_string(),
            created_utc: ferry_photos::record::format_utc_millis(crate::now_millis()),
            hash: crate::HASH_ALGORITHM.to_string(),
        }
    }

    /// The marker's text.
    pub fn to_text(&self) -> String {
        // Serialising four plain fields cannot fail; fall back to a hand-written form anyway.
        let body = toml::to_string(self).unwrap_or_else(|_| {
            format!(
                "format = {}\narchive_id = \"{}\"\ncreated_utc = \"{}\"\nhash = \"{}\"\n",
                self.format, self.archive_id, self.created_utc, self.hash
            )
        });
        format!("{HEADER}{body}")
    }

    /// Parses and checks a marker's text.
    pub fn parse(path: &Path, text: &str) -> Result<Marker> {
        let m: Marker = toml::from_str(text).map_err(|e| Error::MarkerDamaged {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if m.format > FORMAT_VERSION || m.format < 1 {
            return Err(Error::UnsupportedFormat {
                path: path.to_path_buf(),
                found: m.format,
                supported: FORMAT_VERSION,
            });
        }
        if uuid::Uuid::parse_str(&m.archive_id).is_err() {
            return Err(Error::MarkerDamaged {
                path: path.to_path_buf(),
                detail: format!("archive_id {:?} is not a UUID", m.archive_id),
            });
        }
        Ok(m)
    }

    /// Reads the marker of destination `dir`: [`Error::NotInitialised`] if absent. Neither
    /// `.ferry` nor the marker is read through a link ([`Error::UnsafePath`]).
    pub fn read(dir: &Path) -> Result<Marker> {
        let root = crate::root::Root::open(dir, false)?;
        Marker::read_at(root.meta(), dir)
    }

    /// Reads the marker in the held metadata folder `meta` of destination `dir`.
    pub(crate) fn read_at(meta: BorrowedFd<'_>, dir: &Path) -> Result<Marker> {
        let path = marker_path(dir);
        if crate::root::kind_at(meta, MARKER_FILE)
            .map_err(|e| Error::io("inspect", &path, e))?
            .is_none()
        {
            return Err(Error::NotInitialised {
                dir: dir.to_path_buf(),
                marker: path,
            });
        }
        let mut f = crate::root::open_file_at(
            meta,
            MARKER_FILE,
            rustix::fs::OFlags::RDONLY,
            0,
            &path,
            "read",
        )?;
        let mut bytes = Vec::new();
        // A marker is a few hundred bytes; anything much larger is not one.
        f.by_ref()
            .take(64 * 1024)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read", &path, e))?;
        match String::from_utf8(bytes) {
            Ok(text) => Marker::parse(&path, &text),
            Err(_) => Err(Error::MarkerDamaged {
                path,
                detail: "not UTF-8 text".into(),
            }),
        }
    }
}

impl Default for Marker {
    fn default() -> Self {
        Marker::new()
    }
}

/// `DIR/.ferry/archive.toml`.
pub fn marker_path(dir: &Path) -> PathBuf {
    dir.join(META_DIR).join(MARKER_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let m = Marker::new();
        let t = m.to_text();
        assert!(t.starts_with("# This folder is a Ferry photo archive"));
        assert_eq!(Marker::parse(Path::new("m"), &t).unwrap(), m);
    }

    #[test]
    fn refuses_newer_and_damaged() {
        let mut m = Marker::new();
        m.format = 99;
        let e = Marker::parse(Path::new("m"), &m.to_text()).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedFormat { found: 99, .. }),
            "{e}"
        );
        let e = Marker::parse(Path::new("m"), "garbage = = =").unwrap_err();
        assert!(matches!(e, Error::MarkerDamaged { .. }), "{e}");
        let e = Marker::parse(
            Path::new("m"),
            "format = 1\narchive_id = \"x\"\ncreated_utc = \"\"\nhash = \"blake3\"\n",
        )
        .unwrap_err();
        assert!(matches!(e, Error::MarkerDamaged { .. }), "{e}");
    }

    #[test]
    fn missing_marker_says_what_to_do() {
        let d = tempfile::tempdir().unwrap();
        let e = Marker::read(d.path()).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("--init") && s.contains("mount"), "{s}");
    }
}
