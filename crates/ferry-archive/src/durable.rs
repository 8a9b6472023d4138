//! Low-level durable-I/O primitives used by the one audited write path
//! ([`crate::PendingFile::finish`]) and by the held destination (`crate::root`).
//!
//! * [`sync_file`]: `fsync` (`F_FULLFSYNC` on macOS through `File::sync_all`), with the
//!   macOS-exFAT fallback: ENOTTY/EINVAL/ENOTSUP → plain `fsync(2)` → if that is unsupported
//!   too, the write goes on and the weaker [`Durability`] is recorded.
//! * [`sync_dir`]: `fsync` of a directory, tolerating the same errors (restic's `fsyncDir`).
//!
//! The operations on names (create a folder, a temp file, rename without replacing, write a
//! small file atomically) are in `crate::root`, relative to the held destination.

use std::fs::File;
use std::io;
use std::path::Path;

use rustix::io::Errno;

/// How durable a written file is, as far as the drive let Ferry make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// `File::sync_all` succeeded (`fsync`; `F_FULLFSYNC` on macOS).
    Full,
    /// Only a plain `fsync(2)` worked (macOS exFAT refuses `F_FULLFSYNC`).
    FsyncOnly,
    /// The file system refused every sync (ENOTTY/EINVAL/ENOTSUP): the data is in the OS
    /// cache; eject the drive properly.
    Unsupported,
}

impl Durability {
    /// Stable name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::FsyncOnly => "fsync_only",
            Durability::Unsupported => "unsupported",
        }
    }

    /// Parses [`Durability::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Durability::Full),
            "fsync_only" => Some(Durability::FsyncOnly),
            "unsupported" => Some(Durability::Unsupported),
            _ => None,
        }
    }

    /// The weaker of two.
    pub fn min(self, other: Durability) -> Durability {
        use Durability::*;
        match (self, other) {
            (Unsupported, _) | (_, Unsupported) => Unsupported,
            (FsyncOnly, _) | (_, FsyncOnly) => FsyncOnly,
            _ => Full,
        }
    }
}

/// True for the errors that mean "sync is not supported here" rather than "sync failed".
pub fn is_sync_unsupported(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(c) if c == Errno::NOTTY.raw_os_error()
        || c == Errno::INVAL.raw_os_error()
        || c == Errno::NOTSUP.raw_os_error()
        || c == Errno::OPNOTSUPP.raw_os_error())
}

/// Syncs a file's data and metadata to the drive; see the module docs for the fallbacks.
pub fn sync_file(f: &File) -> io::Result<Durability> {
    match f.sync_all() {
        Ok(()) => Ok(Durability::Full),
        Err(e) if is_sync_unsupported(&e) => match rustix::fs::fsync(f) {
            Ok(()) => Ok(Durability::FsyncOnly),
            Err(e2) if is_sync_unsupported(&e2.into()) => Ok(Durability::Unsupported),
            Err(e2) => Err(e2.into()),
        },
        Err(e) => Err(e),
    }
}

/// Syncs a directory (its entries) to the drive. Unsupported → `Ok(Unsupported)`.
pub fn sync_dir(dir: &Path) -> io::Result<Durability> {
    let d = File::open(dir)?;
    match d.sync_all() {
        Ok(()) => Ok(Durability::Full),
        Err(e)
            if is_sync_unsupported(&e) || e.raw_os_error() == Some(Errno::BADF.raw_os_error()) =>
        {
            Ok(Durability::Unsupported)
        }
        Err(e) => Err(e),
    }
}

/// Reserves `len` bytes for `f` without changing its size (`fallocate(KEEP_SIZE)`), so a full
/// disk shows at byte 0, not at 90 %. `Ok(false)` where unsupported.
pub fn preallocate(f: &File, len: u64) -> io::Result<bool> {
    preallocate_native(f, len)
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn preallocate_native(f: &File, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(true);
    }
    match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Ok(true),
        Err(e) if e == Errno::NOSPC || e == Errno::DQUOT || e == Errno::FBIG => Err(e.into()),
        Err(_) => Ok(false),
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn preallocate_native(_f: &File, _len: u64) -> io::Result<bool> {
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_order() {
        assert_eq!(
            Durability::Full.min(Durability::FsyncOnly),
            Durability::FsyncOnly
        );
        assert_eq!(
            Durability::Unsupported.min(Durability::Full),
            Durability::Unsupported
        );
        for d in [
            Durability::Full,
            Durability::FsyncOnly,
            Durability::Unsupported,
        ] {
            assert_eq!(Durability::parse(d.as_str()), Some(d));
        }
    }

    #[test]
    fn sync_unsupported_classification() {
        for e in [Errno::NOTTY, Errno::INVAL, Errno::NOTSUP] {
            assert!(is_sync_unsupported(&io::Error::from_raw_os_error(
                e.raw_os_error()
            )));
        }
        assert!(!is_sync_unsupported(&io::Error::from_raw_os_error(
            Errno::IO.raw_os_error()
        )));
    }
}
