//! Validated paths relative to the AFC root (`/var/mobile/Media` on the phone).
//!
//! Every path Ferry builds from `Photos.sqlite` goes through [`AfcPath`] before anyone stats,
//! reads or mirrors it. The database is data from the phone, so a `ZDIRECTORY` of
//! `../../etc` or a `ZFILENAME` with a NUL byte must become a typed error, never a file access
//! outside the Media root.

use std::fmt;

use serde::Serialize;

/// The absolute on-device prefixes that map onto the AFC root. `ZDIRECTORY` is normally
/// relative to `/var/mobile/Media`; it is absolute for a few items (spec §2.3).
const MEDIA_ROOTS: [&str; 2] = ["/var/mobile/Media/", "/private/var/mobile/Media/"];

/// Longest path we accept (bytes). AFC itself has no documented limit; APFS allows 1024 bytes
/// of path in most APIs, and a longer value in the DB is almost certainly garbage.
const MAX_LEN: usize = 1024;

/// Why a path from the database was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The column was NULL or empty.
    #[error("{0} is NULL or empty")]
    Missing(&'static str),
    /// A NUL byte: no file system accepts it, and C APIs would truncate the path there.
    #[error("path {0:?} contains a NUL byte")]
    Nul(String),
    /// Absolute and not under `/var/mobile/Media`.
    #[error("path {0:?} is absolute and outside /var/mobile/Media")]
    OutsideMedia(String),
    /// A `..` component.
    #[error("path {0:?} has a `..` component")]
    ParentDir(String),
    /// An empty or `.` component (`a//b`, `./a`).
    #[error("path {0:?} has an empty or `.` component")]
    EmptyComponent(String),
    /// A file name that contains `/`.
    #[error("file name {0:?} contains `/`")]
    SlashInName(String),
    /// Too long to be real.
    #[error("path is {0} bytes long (limit {MAX_LEN})")]
    TooLong(usize),
}

/// A path relative to the AFC root, checked: not absolute, no `..`, no `.`, no empty
/// components, no NUL, at most 1024 bytes. Components are separated by `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AfcPath(String);

impl AfcPath {
    /// Validates a relative path such as `DCIM/100APPLE/IMG_0001.HEIC`.
    pub fn new(path: &str) -> Result<Self, PathError> {
        if path.is_empty() {
            return Err(PathError::Missing("path"));
        }
        if path.len() > MAX_LEN {
            return Err(PathError::TooLong(path.len()));
        }
        if path.contains('\0') {
            return Err(PathError::Nul(path.to_string()));
        }
        if path.starts_with('/') {
            return Err(PathError::OutsideMedia(path.to_string()));
        }
        for component in path.split('/') {
            match component {
                ".." => return Err(PathError::ParentDir(path.to_string())),
                "" | "." => return Err(PathError::EmptyComponent(path.to_string())),
                _ => {}
            }
        }
        Ok(AfcPath(path.to_string()))
    }

    /// Builds `ZDIRECTORY/ZFILENAME` the way Apple's path manager does (spec §5.1): the
    /// directory is relative to `/var/mobile/Media` unless it is absolute, in which case it
    /// must lie under `/var/mobile/Media`.
    pub fn from_db(directory: Option<&str>, filename: Option<&str>) -> Result<Self, PathError> {
        let dir = match directory {
            Some(d) if !d.is_empty() => d,
            _ => return Err(PathError::Missing("ZDIRECTORY")),
        };
        let name = match filename {
            Some(f) if !f.is_empty() => f,
            _ => return Err(PathError::Missing("ZFILENAME")),
        };
        let dir = relative_dir(dir)?;
        AfcPath::new(dir)?.join(name)
    }

    /// Appends one file-name component.
    pub fn join(&self, name: &str) -> Result<Self, PathError> {
        if name.contains('/') {
            return Err(PathError::SlashInName(name.to_string()));
        }
        AfcPath::new(&format!("{}/{}", self.0, name))
    }

    /// The path as a string (`DCIM/100APPLE/IMG_0001.HEIC`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The directory part, if any.
    pub fn parent(&self) -> Option<AfcPath> {
        self.0.rsplit_once('/').map(|(d, _)| AfcPath(d.to_string()))
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit_once('/').map_or(self.0.as_str(), |(_, f)| f)
    }

    /// The last component without its extension (`IMG_0001`).
    pub fn file_stem(&self) -> &str {
        split_ext(self.file_name()).0
    }

    /// The extension of the last component without the dot, if any.
    pub fn extension(&self) -> Option<&str> {
        split_ext(self.file_name()).1
    }

    /// True if the path lies inside `dir` (component-wise, so `DCIM/1` is not inside `DCIM/10`).
    pub fn is_inside(&self, dir: &str) -> bool {
        self.0
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    }

    /// True for the areas that hold derivatives, thumbnails and edit renders
    /// (`PhotoData/Metadata`, `PhotoData/Thumbnails`, `PhotoData/Mutations`); nothing there is
    /// ever a primary original (spec §0 rule 6).
    pub fn is_in_derivative_area(&self) -> bool {
        [
            "PhotoData/Metadata",
            "PhotoData/Thumbnails",
            "PhotoData/Mutations",
        ]
        .iter()
        .any(|d| self.is_inside(d))
    }
}

impl fmt::Display for AfcPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `name.ext` into (`name`, `Some("ext")`); a leading dot is not an extension.
pub(crate) fn split_ext(name: &str) -> (&str, Option<&str>) {
    match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

fn relative_dir(dir: &str) -> Result<&str, PathError> {
    if !dir.starts_with('/') {
        return Ok(dir.trim_end_matches('/'));
    }
    for root in MEDIA_ROOTS {
        if let Some(rest) = dir.strip_prefix(root) {
            return Ok(rest.trim_end_matches('/'));
        }
    }
    Err(PathError::OutsideMedia(dir.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_paths() {
        let p = AfcPath::from_db(Some("DCIM/100APPLE"), Some("IMG_0001.HEIC")).expect("valid");
        assert_eq!(p.as_str(), "DCIM/100APPLE/IMG_0001.HEIC");
        assert_eq!(p.file_stem(), "IMG_0001");
        assert_eq!(p.extension(), Some("HEIC"));
        assert_eq!(p.parent().expect("parent").as_str(), "DCIM/100APPLE");
        let abs = AfcPath::from_db(Some("/var/mobile/Media/DCIM/101APPLE/"), Some("a.JPG"))
            .expect("absolute under Media");
        assert_eq!(abs.as_str(), "DCIM/101APPLE/a.JPG");
    }

    #[test]
    fn refuses_escapes() {
        let bad = [
            (Some("../etc"), Some("passwd")),
            (Some("DCIM/../.."), Some("x")),
            (Some("/etc"), Some("passwd")),
            (Some("DCIM"), Some("a/../../b")),
            (Some("DCIM"), Some("..")),
            (Some("DCIM//100APPLE"), Some("x")),
            (Some("./DCIM"), Some("x")),
            (Some("DCIM"), Some("a\0b")),
            (None, Some("x")),
            (Some("DCIM"), None),
            (Some(""), Some("x")),
        ];
        for (d, f) in bad {
            assert!(
                AfcPath::from_db(d, f).is_err(),
                "{d:?} {f:?} must be refused"
            );
        }
        assert!(AfcPath::new(&"a/".repeat(600)).is_err());
    }

    #[test]
    fn derivative_areas() {
        let p = AfcPath::new("PhotoData/Metadata/DCIM/100APPLE/IMG_0001.JPG").expect("valid");
        assert!(p.is_in_derivative_area());
        let q = AfcPath::new("PhotoData/MetadataX/a.JPG").expect("valid");
        assert!(!q.is_in_derivative_area());
    }
}
