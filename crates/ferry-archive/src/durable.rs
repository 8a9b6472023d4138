//! Low-level durable-I/O primitives used by the one audited write path
//! ([`crate::PendingFile::finish`]) and by the marker write. Nothing else in the crate
//! renames, creates or syncs files on the destination.
//!
//! * [`sync_file`]: `fsync` (`F_FULLFSYNC` on macOS through `File::sync_all`), with the
//!   macOS-exFAT fallback: ENOTTY/EINVAL/ENOTSUP → plain `fsync(2)` → if that is unsupported
//!   too, the write goes on and the weaker [`Durability`] is recorded.
//! * [`sync_dir`]: `fsync` of a directory, tolerating the same errors (restic's `fsyncDir`).
//! * [`rename_noreplace`]: `renameat2(RENAME_NOREPLACE)` on Linux, `renamex_np(RENAME_EXCL)`
//!   on macOS; where the file system does not support it, `link` + `unlink`; where links are
//!   not supported either (FAT, exFAT), a check-then-rename that is only safe because the
//!   caller holds the destination lock (documented in the decision record).
//! * [`ensure_dir`]: creates missing directories one by one, `fsync`s each parent, and
//!   refuses symbolic links so nothing is ever written outside the destination.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::error::{Error, Result};

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

/// Renames `from` to `to` unless `to` exists. `Err(AlreadyExists)` if it does; `to` is never
/// replaced. Both must be in the same directory, which the caller holds the lock on.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    match rename_noreplace_native(from, to) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        Err(e)
            if !is_sync_unsupported(&e)
                && e.raw_os_error() != Some(Errno::NOSYS.raw_os_error()) =>
        {
            return Err(e)
        }
        Err(_) => {}
    }
    // No native no-replace rename on this file system: hard link (fails if `to` exists), then
    // drop the temp name.
    match std::fs::hard_link(from, to) {
        Ok(()) => {
            std::fs::remove_file(from)?;
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
        Err(_) => {}
    }
    // No links either (FAT/exFAT on some kernels): check, then rename. Safe against other
    // Ferry writers because the caller holds the destination lock; a non-Ferry process
    // creating exactly this name in between is the only remaining race.
    if std::fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, to)
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn rename_noreplace_native(from: &Path, to: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(|e| {
        if e == Errno::EXIST {
            io::Error::from(io::ErrorKind::AlreadyExists)
        } else {
            e.into()
        }
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn rename_noreplace_native(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(Errno::NOSYS.raw_os_error()))
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

/// Makes sure `root/parts…` exists as real directories (no symlinks), creating what is
/// missing and syncing each parent after a creation. Returns the full path.
pub fn ensure_dir(root: &Path, parts: &[String]) -> Result<PathBuf> {
    let mut cur = root.to_path_buf();
    for part in parts {
        let next = cur.join(part);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                return Err(Error::UnsafePath {
                    path: next,
                    detail: "exists and is not a directory (a symbolic link or a file)".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                match std::fs::create_dir(&next) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        // Raced with ourselves? Re-check it is a real directory.
                        let m = std::fs::symlink_metadata(&next)
                            .map_err(|e| Error::io("inspect", &next, e))?;
                        if !m.file_type().is_dir() {
                            return Err(Error::UnsafePath {
                                path: next,
                                detail: "exists and is not a directory".into(),
                            });
                        }
                    }
                    Err(e) => return Err(Error::io("create folder", &next, e)),
                }
                sync_dir(&cur).map_err(|e| Error::io("sync folder", &cur, e))?;
            }
            Err(e) => return Err(Error::io("inspect", &next, e)),
        }
        cur = next;
    }
    Ok(cur)
}

/// Writes a small file atomically and durably: temp in the same directory → write → sync →
/// rename over `path` (the only replacing rename in the crate: used for the marker, which is
/// Ferry's own metadata) → sync the directory.
pub fn write_small_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().ok_or_else(|| Error::UnsafePath {
        path: path.to_path_buf(),
        detail: "no parent directory".into(),
    })?;
    let tmp = dir.join(crate::names::temp_name());
    let result = (|| -> Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io("create", &tmp, e))?;
        f.write_all(contents)
            .map_err(|e| Error::io_with_need("write", &tmp, e, contents.len() as u64))?;
        sync_file(&f).map_err(|e| Error::io("sync", &tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| Error::io("rename", path, e))?;
        sync_dir(dir).map_err(|e| Error::io("sync folder", dir, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noreplace_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&a, b"new").unwrap();
        std::fs::write(&b, b"old").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"old");
        assert_eq!(std::fs::read(&a).unwrap(), b"new");
        let c = d.path().join("c");
        rename_noreplace(&a, &c).unwrap();
        assert!(!a.exists());
        assert_eq!(std::fs::read(&c).unwrap(), b"new");
    }

    #[test]
    fn ensure_dir_refuses_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), d.path().join("phone")).unwrap();
        let e = ensure_dir(d.path(), &["phone".into(), "2024".into()]).unwrap_err();
        assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let p = ensure_dir(d.path(), &["real".into(), "2024".into(), "01".into()]).unwrap();
        assert!(p.is_dir());
    }

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

    #[test]
    fn atomic_small_write_replaces() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        write_small_atomic(&p, b"one").unwrap();
        write_small_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
