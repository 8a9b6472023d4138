//! The archive's error type.
//!
//! Policy (after rustic_core's `error.rs`): every public function returns [`Result`]; every
//! variant names the path it is about and its `Display` ends with a `hint:` telling the user
//! what to do. [`Error::scope`] separates errors that fail one file (the run may go on) from
//! errors that must stop the run (disk full, read-only, lock busy, no marker). Nothing in this
//! crate panics on data from the phone, the drive or the user.

use std::io;
use std::path::{Path, PathBuf};

use crate::fsinfo::FsKind;

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an error concerns one file or the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// Only this file failed; the sync engine may continue with the next one.
    File,
    /// Stop the run (nothing more can be written safely to this destination now).
    Run,
}

/// Everything that can go wrong in the archive.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination directory does not exist.
    #[error(
        "destination {dir} does not exist\nhint: is the drive plugged in and mounted? \
         Check the path, or create the folder and run with --init"
    )]
    DestinationMissing {
        /// The destination.
        dir: PathBuf,
    },

    /// The destination exists but is not a directory.
    #[error("destination {dir} is not a directory\nhint: give the folder on the backup drive")]
    NotADirectory {
        /// The destination.
        dir: PathBuf,
    },

    /// No Ferry marker in the destination: never initialised, or the drive is not mounted and
    /// this is the empty mount point.
    #[error(
        "{dir} is not a Ferry archive (no marker file {marker})\nhint: if this is the drive \
         you back up to, it is probably not mounted: mount it and try again. If this is a new \
         backup folder, initialise it once with `ferry sync --dest {dir} --init`"
    )]
    NotInitialised {
        /// The destination.
        dir: PathBuf,
        /// The marker path that was looked for.
        marker: PathBuf,
    },

    /// The marker exists but cannot be understood.
    #[error(
        "the Ferry marker {path} is damaged: {detail}\nhint: do not delete the archive; \
         restore the marker from a copy or run `ferry sync --dest <DIR> --init` to re-create it \
         (the catalog and files are kept)"
    )]
    MarkerDamaged {
        /// The marker file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The archive was written by a newer Ferry.
    #[error(
        "{path} uses archive format {found}; this Ferry understands up to {supported}\n\
         hint: update Ferry; nothing was written"
    )]
    UnsupportedFormat {
        /// The marker or catalog.
        path: PathBuf,
        /// The version found.
        found: i64,
        /// The newest version this build supports.
        supported: i64,
    },

    /// The catalog belongs to another archive than the marker.
    #[error(
        "the catalog {path} belongs to archive {catalog_id}, but the marker says {marker_id}\n\
         hint: the metadata folder was copied from another archive; move {path} aside and \
         Ferry rebuilds the catalog from this archive's journal"
    )]
    ArchiveIdMismatch {
        /// The catalog file.
        path: PathBuf,
        /// The id in the marker.
        marker_id: String,
        /// The id in the catalog.
        catalog_id: String,
    },

    /// Another process holds the destination's lock.
    #[error(
        "another Ferry run holds this destination ({holder}; lock file {path})\nhint: wait for \
         it to finish. The lock is an OS lock: it is released as soon as that process exits, \
         even if it was killed"
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about the holder (pid, host, start time).
        holder: String,
    },

    /// The destination is mounted read-only.
    #[error(
        "the destination is read-only: cannot write {path}\nhint: remount the drive read-write \
         (on a Mac, NTFS drives are read-only without an extra driver), then run again; files \
         already in the backup are kept and are not copied again"
    )]
    ReadOnly {
        /// The path Ferry tried to write.
        path: PathBuf,
    },

    /// Permission denied.
    #[error(
        "permission denied writing {path}\nhint: check the folder's owner and permissions, then \
         run again; files already in the backup are kept and are not copied again"
    )]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },

    /// Not enough space on the destination.
    #[error(
        "the destination is full: need {} more to write {path} and keep Ferry's margin for its \
         catalog and journal ({} free)\nhint: free space on \
         the drive or use a larger one, then run again; files already archived are safe and \
         will not be copied again",
        human_bytes(*need), human_bytes(*available)
    )]
    DiskFull {
        /// The file being written (or the metadata file).
        path: PathBuf,
        /// Bytes still missing.
        need: u64,
        /// Bytes free when the error was detected.
        available: u64,
    },

    /// The file is larger than the destination's file system allows (FAT32: 4 GiB − 1).
    #[error(
        "{name} is {} but the destination's {fs} file system stores at most {} per file\n\
         hint: reformat the drive as exFAT (or APFS/NTFS/ext4) to back up large videos; \
         this file was skipped, the others go on",
        human_bytes(*size), human_bytes(*limit)
    )]
    TooLargeForFilesystem {
        /// The file's name.
        name: String,
        /// Its size.
        size: u64,
        /// The file system.
        fs: FsKind,
        /// The largest file the file system stores.
        limit: u64,
    },

    /// The phone sent a different number of bytes than it said.
    #[error(
        "{afc_path}: the phone said {expected} bytes but sent {got}\nhint: the file changed or \
         the connection dropped; it was not archived and will be retried next run"
    )]
    SizeMismatch {
        /// The phone path.
        afc_path: String,
        /// What the phone said.
        expected: u64,
        /// What arrived.
        got: u64,
    },

    /// Input from the caller (ultimately the phone) that cannot be used.
    #[error("invalid {what}: {detail}\nhint: this is a Ferry bug or a damaged phone database")]
    InvalidInput {
        /// Which field.
        what: &'static str,
        /// Why.
        detail: String,
    },

    /// A path inside the archive that would leave it (symlink, `..`, absolute).
    #[error(
        "refusing unsafe path {path}: {detail}\nhint: something inside the archive is not what \
         Ferry created (e.g. a symbolic link); Ferry never writes outside the destination"
    )]
    UnsafePath {
        /// The path.
        path: PathBuf,
        /// Why.
        detail: String,
    },

    /// An I/O error.
    #[error("{op} {path}: {source}\nhint: check the drive (is it still connected?)")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// The catalog database failed.
    #[error(
        "catalog {path}: {source}\nhint: the files already in the backup are safe; check them \
         with `ferry verify --dest <DIR>`. The next `ferry sync` rebuilds a damaged catalog from \
         the archive's journal by itself. If this repeats, the drive's file system may not \
         support the catalog (SQLite's WAL needs shared memory, which FAT32 through FUSE lacks): \
         back up to an exFAT, APFS, NTFS or ext4 drive"
    )]
    Catalog {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },

    /// The journal could not be read or written.
    #[error("journal {path}: {detail}\nhint: check the drive; do not edit the journal by hand")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
    /// The destination is no longer the archive that was opened: the drive was unmounted or
    /// unplugged (its empty mount point is left), or the folder was moved, replaced or
    /// deleted during the run.
    #[error(
        "the backup drive went away: {dir} is no longer the archive Ferry opened ({detail})\n\
         hint: plug the drive back in and mount it at the same place, then run again. \
         Everything already copied is safe, and nothing was written anywhere else"
    )]
    DestinationGone {
        /// The destination.
        dir: PathBuf,
        /// What changed.
        detail: String,
    },
}

impl Error {
    /// Whether the run can continue with the next file.
    pub fn scope(&self) -> ErrorScope {
        match self {
            Error::TooLargeForFilesystem { .. }
            | Error::SizeMismatch { .. }
            | Error::InvalidInput { .. } => ErrorScope::File,
            _ => ErrorScope::Run,
        }
    }

    /// Maps an I/O error to the variant that tells the user what to do (disk full,
    /// read-only, permission), else [`Error::Io`].
    pub(crate) fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
        Self::io_with_need(op, path, source, 0)
    }

    /// Like [`Error::io`], with the bytes still to be written for a disk-full message.
    pub(crate) fn io_with_need(
        op: &'static str,
        path: &Path,
        source: io::Error,
        need: u64,
    ) -> Error {
        match source.raw_os_error() {
            Some(code)
                if code == rustix::io::Errno::NOSPC.raw_os_error()
                    || code == rustix::io::Errno::DQUOT.raw_os_error() =>
            {
                let available = crate::fsinfo::available_bytes(path).unwrap_or(0);
                Error::DiskFull {
                    path: path.to_path_buf(),
                    // When the OS says "full" while statvfs disagrees (reserved blocks, quotas),
                    // the honest figure is what this file still needs.
                    need: if need > available {
                        need - available
                    } else {
                        need.max(1)
                    },
                    available,
                }
            }
            Some(code) if code == rustix::io::Errno::ROFS.raw_os_error() => Error::ReadOnly {
                path: path.to_path_buf(),
            },
            Some(code)
                if code == rustix::io::Errno::ACCESS.raw_os_error()
                    || code == rustix::io::Errno::PERM.raw_os_error() =>
            {
                Error::PermissionDenied {
                    path: path.to_path_buf(),
                }
            }
            _ => Error::Io {
                op,
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// Maps a SQLite error (SQLITE_FULL → disk full, SQLITE_READONLY → read-only).
    pub(crate) fn catalog(path: &Path, source: rusqlite::Error) -> Error {
        if let rusqlite::Error::SqliteFailure(e, _) = &source {
            match e.code {
                rusqlite::ErrorCode::DiskFull => {
                    let available = crate::fsinfo::available_bytes(path).unwrap_or(0);
                    return Error::DiskFull {
                        path: path.to_path_buf(),
                        need: 1 << 20,
                        available,
                    };
                }
                rusqlite::ErrorCode::ReadOnly => {
                    return Error::ReadOnly {
                        path: path.to_path_buf(),
                    }
                }
                _ => {}
            }
        }
        Error::Catalog {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Formats a byte count for people: `1.5 GB`, `820 kB`, `12 bytes` (SI units, like Finder and
/// GNOME Files).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} bytes");
    }
    // f64 is exact enough for display; precision loss above 2^53 bytes is irrelevant.
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 1000.0 && unit + 1 < UNITS.len() {
        v /= 1000.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_bytes_reads_well() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1500), "1.5 kB");
        assert_eq!(human_bytes(1_200_000), "1.2 MB");
        assert_eq!(human_bytes(4_294_967_295), "4.3 GB");
        assert_eq!(human_bytes(u64::MAX), "18447 PB");
    }

    #[test]
    fn enospc_becomes_disk_full_with_need() {
        let e = Error::io_with_need(
            "write",
            Path::new("/nonexistent/x"),
            io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error()),
            5_000_000,
        );
        match &e {
            Error::DiskFull { need, .. } => assert_eq!(*need, 5_000_000),
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains("need 5.0 MB more"), "{e}");
        assert_eq!(e.scope(), ErrorScope::Run);
    }

    #[test]
    fn erofs_becomes_read_only() {
        let e = Error::io(
            "create",
            Path::new("/x"),
            io::Error::from_raw_os_error(rustix::io::Errno::ROFS.raw_os_error()),
        );
        assert!(matches!(e, Error::ReadOnly { .. }));
    }
}
