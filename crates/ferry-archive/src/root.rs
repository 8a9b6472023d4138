//! The destination Ferry opened, held open: a directory handle on `DIR` and one on
//! `DIR/.ferry`, with every later file operation made *relative to those handles* (`openat`,
//! `mkdirat`, `renameat`, `unlinkat`, `fstatat`), never by re-walking the path.
//!
//! Why (issue 12): a path is only a name. If the drive is unmounted, or the folder is moved or
//! deleted while a run is in progress, the same path can name an empty mount point on the
//! system disk, or nothing. A held handle keeps naming the archive Ferry opened, so nothing
//! can be created anywhere else; and [`Root::check`] compares the path with the handle (device
//! and inode of the folder, of `.ferry` and of the marker) before each commit, so the run stops
//! with [`Error::DestinationGone`] instead of carrying on somewhere that is no longer the
//! archive.
//!
//! Ferry's own files are never reached through a link: every component below `DIR` is opened
//! with `O_NOFOLLOW` (folders with `O_DIRECTORY | O_NOFOLLOW`), so a symbolic link planted in
//! `.ferry/` or in a phone folder is refused with [`Error::UnsafePath`] naming what was found.
//! `DIR` itself is the user's choice and may be a link (e.g. `~/Backup` → `/media/…`): it is
//! resolved once, when the archive is opened, and then held.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::durable::{self, Durability};
use crate::error::{Error, Result};
use crate::marker::{MARKER_FILE, META_DIR};

/// Mode of folders Ferry creates for its own metadata (`.ferry`, `reports/…`): owner only.
pub(crate) const META_DIR_MODE: u32 = 0o700;
/// Mode of Ferry's own files (catalog, journal, lock, reports, marker): owner only.
pub(crate) const META_FILE_MODE: u32 = 0o600;
/// Mode of photo folders and files before the umask (they keep the user's umask).
pub(crate) const DATA_DIR_MODE: u32 = 0o777;
/// See [`DATA_DIR_MODE`].
pub(crate) const DATA_FILE_MODE: u32 = 0o666;

/// Device and inode: what makes a folder *this* folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    // `st_dev`/`st_ino` have different integer types on different platforms.
    #[allow(clippy::unnecessary_cast)]
    fn of(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
        }
    }
}

/// What a directory entry is, without following links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

impl Kind {
    fn of(ft: FileType) -> Kind {
        match ft {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Kind::File => "a file",
            Kind::Dir => "a folder",
            Kind::Symlink => "a symbolic link",
            Kind::Other => "a special file",
        }
    }
}

/// An opened, held destination.
#[derive(Debug)]
pub(crate) struct Root {
    path: PathBuf,
    dir: OwnedFd,
    id: FileId,
    meta: OwnedFd,
    meta_id: FileId,
    marker_id: Option<FileId>,
}

fn errno_of(e: &io::Error) -> Option<Errno> {
    e.raw_os_error().map(Errno::from_raw_os_error)
}

/// Opens a directory handle (no links followed) relative to `dir`.
fn open_dir_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// What `name` in `dir` is, without following a link; `None` if it does not exist.
pub(crate) fn kind_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<(Kind, u64)>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some((
            Kind::of(FileType::from_raw_mode(st.st_mode as _)),
            u64::try_from(st.st_size).unwrap_or(0),
        ))),
        Err(e) if e == Errno::NOENT => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// The error for a component that is not what Ferry expects (a link, a file where a folder
/// belongs, …).
fn unexpected(dir: BorrowedFd<'_>, name: &str, shown: &Path, wanted: &str) -> Error {
    let found = match kind_at(dir, name) {
        Ok(Some((k, _))) => k.describe(),
        _ => "something else",
    };
    Error::UnsafePath {
        path: shown.to_path_buf(),
        detail: format!(
            "found {found} where Ferry expects {wanted}; Ferry never follows links in its own \
             files and folders (remove or rename it)"
        ),
    }
}

/// Opens folder `name` in `dir`, refusing links; creates it with `mode` when `create` and it
/// is missing (syncing `dir` so the new entry is durable).
pub(crate) fn subdir(
    dir: BorrowedFd<'_>,
    name: &str,
    create: bool,
    mode: u32,
    shown: &Path,
) -> Result<OwnedFd> {
    match open_dir_at(dir, name) {
        Ok(fd) => return Ok(fd),
        Err(e) if errno_of(&e) == Some(Errno::NOENT) && create => {}
        Err(e) if matches!(errno_of(&e), Some(Errno::LOOP | Errno::NOTDIR)) => {
            return Err(unexpected(dir, name, shown, "a folder"))
        }
        Err(e) => return Err(Error::io("open folder", shown, e)),
    }
    match rustix::fs::mkdirat(dir, name, Mode::from_raw_mode(mode as _)) {
        Ok(()) => {
            sync_dir_fd(dir).map_err(|e| Error::io("sync folder", shown, e))?;
        }
        // Created meanwhile (another task of this run): opened and checked below.
        Err(e) if e == Errno::EXIST => {}
        Err(e) => return Err(Error::io("create folder", shown, e.into())),
    }
    open_dir_at(dir, name).map_err(|e| {
        if matches!(errno_of(&e), Some(Errno::LOOP | Errno::NOTDIR)) {
            unexpected(dir, name, shown, "a folder")
        } else {
            Error::io("open folder", shown, e)
        }
    })
}

/// Syncs a held folder (its entries). Unsupported → `Ok(Unsupported)`.
pub(crate) fn sync_dir_fd(dir: BorrowedFd<'_>) -> io::Result<Durability> {
    match rustix::fs::fsync(dir) {
        Ok(()) => Ok(Durability::Full),
        Err(e) => {
            let e: io::Error = e.into();
            if durable::is_sync_unsupported(&e) || errno_of(&e) == Some(Errno::BADF) {
                Ok(Durability::Unsupported)
            } else {
                Err(e)
            }
        }
    }
}

/// Opens regular file `name` in `dir` with `flags` (plus `NOFOLLOW | CLOEXEC`); a link or a
/// non-file is refused with [`Error::UnsafePath`].
pub(crate) fn open_file_at(
    dir: BorrowedFd<'_>,
    name: &str,
    flags: OFlags,
    mode: u32,
    shown: &Path,
    op: &'static str,
) -> Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode as _),
    )
    .map_err(|e| {
        if e == Errno::LOOP {
            unexpected(dir, name, shown, "a file")
        } else {
            Error::io(op, shown, e.into())
        }
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| Error::io("inspect", shown, e.into()))?;
    if FileType::from_raw_mode(st.st_mode as _) != FileType::RegularFile {
        return Err(unexpected(dir, name, shown, "a file"));
    }
    Ok(File::from(fd))
}

/// Creates a new file `name` in `dir` (fails if anything exists under that name).
pub(crate) fn create_new_at(
    dir: BorrowedFd<'_>,
    name: &str,
    mode: u32,
    shown: &Path,
) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode as _),
    )
    .map_err(io::Error::from)?;
    let _ = shown;
    Ok(File::from(fd))
}

/// Renames `from` (in `from_dir`) to `to` (in `to_dir`) unless `to` exists: then
/// `Err(AlreadyExists)` and nothing is replaced. Falls back like [`durable`] explains:
/// `renameat2(RENAME_NOREPLACE)` → `linkat` + `unlinkat` → check, then `renameat` (safe
/// against other Ferry writers because the caller holds the destination lock).
pub(crate) fn rename_noreplace_at(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> io::Result<()> {
    match native_noreplace(from_dir, from, to_dir, to) {
        Ok(()) => return Ok(()),
        Err(e) if e == Errno::EXIST => return Err(io::ErrorKind::AlreadyExists.into()),
        Err(e) if e != Errno::NOSYS && !durable::is_sync_unsupported(&e.into()) => {
            return Err(e.into())
        }
        Err(_) => {}
    }
    match rustix::fs::linkat(from_dir, from, to_dir, to, AtFlags::empty()) {
        Ok(()) => {
            rustix::fs::unlinkat(from_dir, from, AtFlags::empty())?;
            return Ok(());
        }
        Err(e) if e == Errno::EXIST => return Err(io::ErrorKind::AlreadyExists.into()),
        Err(_) => {}
    }
    if kind_at(to_dir, to)?.is_some() {
        return Err(io::ErrorKind::AlreadyExists.into());
    }
    Ok(rustix::fs::renameat(from_dir, from, to_dir, to)?)
}

#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn native_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &str,
    to_dir: BorrowedFd<'_>,
    to: &str,
) -> std::result::Result<(), Errno> {
    rustix::fs::renameat_with(
        from_dir,
        from,
        to_dir,
        to,
        rustix::fs::RenameFlags::NOREPLACE,
    )
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn native_noreplace(
    _from_dir: BorrowedFd<'_>,
    _from: &str,
    _to_dir: BorrowedFd<'_>,
    _to: &str,
) -> std::result::Result<(), Errno> {
    Err(Errno::NOSYS)
}

/// Writes a small file of Ferry's own atomically and durably in held folder `dir`: temp →
/// write → sync → rename over `name` (the only replacing rename in the crate, for Ferry's own
/// metadata: marker, latest report, fetch plan) → sync the folder. `name` itself, if present,
/// must be a plain file (a link there is refused, not replaced silently).
pub(crate) fn write_small_atomic_at(
    dir: BorrowedFd<'_>,
    dir_shown: &Path,
    name: &str,
    contents: &[u8],
) -> Result<()> {
    let shown = dir_shown.join(name);
    if let Some((k, _)) = kind_at(dir, name).map_err(|e| Error::io("inspect", &shown, e))? {
        if k != Kind::File {
            return Err(unexpected(dir, name, &shown, "a file"));
        }
    }
    let tmp = crate::names::temp_name();
    let tmp_shown = dir_shown.join(&tmp);
    let result = (|| -> Result<()> {
        let mut f = create_new_at(dir, &tmp, META_FILE_MODE, &tmp_shown)
            .map_err(|e| Error::io("create", &tmp_shown, e))?;
        f.write_all(contents)
            .map_err(|e| Error::io_with_need("write", &tmp_shown, e, contents.len() as u64))?;
        durable::sync_file(&f).map_err(|e| Error::io("sync", &tmp_shown, e))?;
        drop(f);
        rustix::fs::renameat(dir, tmp.as_str(), dir, name)
            .map_err(|e| Error::io("rename", &shown, e.into()))?;
        sync_dir_fd(dir).map_err(|e| Error::io("sync folder", dir_shown, e))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp.as_str(), AtFlags::empty());
    }
    result
}

/// The entries of a held folder: (name, kind). Names that are not UTF-8 are returned lossily
/// converted only for reporting; `.` and `..` are skipped.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(String, Kind)>> {
    let mut rd = rustix::fs::Dir::read_from(dir)?;
    let mut out = Vec::new();
    while let Some(entry) = rd.read() {
        let entry = entry?;
        let raw = entry.file_name().to_bytes();
        if raw == b"." || raw == b".." {
            continue;
        }
        let name = OsString::from_vec(raw.to_vec())
            .to_string_lossy()
            .into_owned();
        let kind = match entry.file_type() {
            FileType::Unknown => match kind_at(dir, &name) {
                Ok(Some((k, _))) => k,
                _ => Kind::Other,
            },
            ft => Kind::of(ft),
        };
        out.push((name, kind));
    }
    Ok(out)
}

/// Opens the folder holding `path` (following links above it: that part is the caller's
/// path) and returns it with the file name, for a no-follow open of the file itself.
pub(crate) fn open_parent(path: &Path) -> Result<(OwnedFd, &str)> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidInput {
            what: "path",
            detail: path.display().to_string(),
        })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let fd = rustix::fs::openat(
        CWD,
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open folder", parent, e.into()))?;
    Ok((fd, name))
}

impl Root {
    /// Opens destination `path` and its metadata folder. With `create_meta`, a missing
    /// `.ferry` is created (owner-only); without it, a missing `.ferry` is
    /// [`Error::NotInitialised`].
    pub(crate) fn open(path: &Path, create_meta: bool) -> Result<Root> {
        let dir = rustix::fs::openat(
            CWD,
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::NOENT => Error::DestinationMissing {
                dir: path.to_path_buf(),
            },
            Errno::NOTDIR => Error::NotADirectory {
                dir: path.to_path_buf(),
            },
            e => Error::io("open", path, e.into()),
        })?;
        let id =
            FileId::of(&rustix::fs::fstat(&dir).map_err(|e| Error::io("inspect", path, e.into()))?);
        let meta_shown = path.join(META_DIR);
        let meta = match subdir(
            dir.as_fd(),
            META_DIR,
            create_meta,
            META_DIR_MODE,
            &meta_shown,
        ) {
            Err(Error::Io { source, .. })
                if !create_meta && source.kind() == io::ErrorKind::NotFound =>
            {
                return Err(Error::NotInitialised {
                    dir: path.to_path_buf(),
                    marker: meta_shown.join(MARKER_FILE),
                })
            }
            other => other?,
        };
        let meta_id = FileId::of(
            &rustix::fs::fstat(&meta).map_err(|e| Error::io("inspect", &meta_shown, e.into()))?,
        );
        Ok(Root {
            path: path.to_path_buf(),
            dir,
            id,
            meta,
            meta_id,
            marker_id: None,
        })
    }

    /// The destination as the user named it (for messages).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// `DIR/.ferry` as a path (for messages).
    pub(crate) fn meta_path(&self) -> PathBuf {
        self.path.join(META_DIR)
    }

    /// The held destination folder.
    pub(crate) fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// The held metadata folder.
    pub(crate) fn meta(&self) -> BorrowedFd<'_> {
        self.meta.as_fd()
    }

    /// Remembers the marker file (read through the held metadata folder) so that
    /// [`Root::check`] notices it being replaced or removed.
    pub(crate) fn pin_marker(&mut self) -> Result<()> {
        let st = rustix::fs::statat(&self.meta, MARKER_FILE, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("inspect", &self.meta_path().join(MARKER_FILE), e.into()))?;
        self.marker_id = Some(FileId::of(&st));
        Ok(())
    }

    /// Is the destination still the archive that was opened? The path must still lead to the
    /// held folder (same device and inode: not an empty mount point after an unmount, not
    /// moved or deleted), holding the same `.ferry` folder and marker. `Err(DestinationGone)`
    /// otherwise.
    pub(crate) fn check(&self) -> Result<()> {
        let gone = |detail: String| Error::DestinationGone {
            dir: self.path.clone(),
            detail,
        };
        match rustix::fs::stat(&self.path) {
            Ok(st) if FileId::of(&st) == self.id => {}
            Ok(_) => {
                return Err(gone(
                    "the path now leads to another folder (the drive was unmounted, or the \
                     folder was moved or replaced)"
                        .into(),
                ))
            }
            Err(e) => {
                return Err(gone(format!(
                    "the folder can no longer be reached: {}",
                    io::Error::from(e)
                )))
            }
        }
        match rustix::fs::statat(&self.dir, META_DIR, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileId::of(&st) == self.meta_id => {}
            _ => {
                return Err(gone(format!(
                    "its metadata folder {META_DIR} was removed or replaced"
                )))
            }
        }
        if let Some(marker) = self.marker_id {
            match rustix::fs::statat(&self.meta, MARKER_FILE, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileId::of(&st) == marker => {}
                _ => {
                    return Err(gone(format!(
                        "its marker {META_DIR}/{MARKER_FILE} was removed or replaced"
                    )))
                }
            }
        }
        Ok(())
    }

    /// `err`, or [`Error::DestinationGone`] when the destination is no longer there (an I/O
    /// error is often the first sign of an unplugged drive or a dead FUSE mount).
    pub(crate) fn explain(&self, err: Error) -> Error {
        if matches!(
            err,
            Error::DestinationGone { .. } | Error::InvalidInput { .. }
        ) {
            return err;
        }
        match self.check() {
            Err(gone) => gone,
            Ok(()) => err,
        }
    }

    /// Opens (creating with `mode` where missing, when `create`) the folders `parts` below
    /// held folder `base`, one component at a time, refusing links. `base_shown` names `base`.
    pub(crate) fn walk(
        base: BorrowedFd<'_>,
        base_shown: &Path,
        parts: &[&str],
        create: bool,
        mode: u32,
    ) -> Result<(OwnedFd, PathBuf)> {
        let mut shown = base_shown.to_path_buf();
        let mut cur: Option<OwnedFd> = None;
        for part in parts {
            shown.push(part);
            let parent = cur.as_ref().map(|f| f.as_fd()).unwrap_or(base);
            let next = subdir(parent, part, create, mode, &shown)?;
            cur = Some(next);
        }
        let fd = match cur {
            Some(fd) => fd,
            None => rustix::io::fcntl_dupfd_cloexec(base, 0)
                .map_err(|e| Error::io("open folder", base_shown, e.into()))?,
        };
        Ok((fd, shown))
    }

    /// Opens (creating where missing) photo folders `parts` below the destination.
    pub(crate) fn data_dir(&self, parts: &[&str]) -> Result<(OwnedFd, PathBuf)> {
        Self::walk(self.dir(), &self.path, parts, true, DATA_DIR_MODE)
    }

    /// Opens (creating where missing, owner-only) folders `parts` below `.ferry`.
    pub(crate) fn meta_dir(&self, parts: &[&str]) -> Result<(OwnedFd, PathBuf)> {
        Self::walk(self.meta(), &self.meta_path(), parts, true, META_DIR_MODE)
    }

    /// What the archive-relative path `parts` (folders…, file) is, without following any
    /// link on the way; `None` when it (or a folder on the way) does not exist or a folder on
    /// the way is not a plain folder.
    pub(crate) fn lookup(&self, parts: &[&str]) -> Option<(Kind, u64)> {
        let (last, dirs) = parts.split_last()?;
        let (dir, _) = Self::walk(self.dir(), &self.path, dirs, false, 0).ok()?;
        kind_at(dir.as_fd(), last).ok().flatten()
    }

    /// Opens the archived file at archive-relative `parts` for reading, no links followed.
    pub(crate) fn open_data_file(&self, parts: &[&str]) -> Result<File> {
        let Some((last, dirs)) = parts.split_last() else {
            return Err(Error::InvalidInput {
                what: "archive path",
                detail: "empty".into(),
            });
        };
        let (dir, shown) = Self::walk(self.dir(), &self.path, dirs, false, 0)?;
        open_file_at(
            dir.as_fd(),
            last,
            OFlags::RDONLY,
            0,
            &shown.join(last),
            "open",
        )
    }

    /// Free bytes on the destination's file system.
    pub(crate) fn available_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::fstatvfs(&self.dir)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Sets owner-only permissions on a metadata file or folder; file systems without
    /// permissions (exFAT, FAT) refuse, which is fine.
    pub(crate) fn restrict(fd: BorrowedFd<'_>, mode: u32) {
        if let Err(e) = rustix::fs::fchmod(fd, Mode::from_raw_mode(mode as _)) {
            tracing::debug!("could not set mode {mode:o}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};

    #[test]
    fn walk_refuses_links_and_creates_folders() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = Root::open(d.path(), true).unwrap();
        symlink(outside.path(), d.path().join("phone")).unwrap();
        let e = root.data_dir(&["phone", "2024"]).unwrap_err();
        assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        let (_, shown) = root.data_dir(&["real", "2024", "01"]).unwrap();
        assert!(shown.is_dir());
        let mode = std::fs::metadata(d.path().join(".ferry"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn check_notices_a_moved_or_deleted_folder() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("dest");
        std::fs::create_dir(&dest).unwrap();
        let root = Root::open(&dest, true).unwrap();
        root.check().unwrap();
        std::fs::rename(&dest, d.path().join("moved")).unwrap();
        let e = root.check().unwrap_err();
        assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
        // An empty folder under the old name (an unmounted drive's mount point) is not it.
        std::fs::create_dir(&dest).unwrap();
        let e = root.check().unwrap_err();
        assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
        // Nothing is created through the old path: the held folder is the moved one.
        let (_, _) = root.data_dir(&["phone"]).unwrap();
        assert!(d.path().join("moved/phone").is_dir());
        assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 0);
    }

    #[test]
    fn small_atomic_write_replaces_but_refuses_a_link() {
        let d = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = Root::open(d.path(), true).unwrap();
        let meta = root.meta_path();
        write_small_atomic_at(root.meta(), &meta, "m", b"one").unwrap();
        write_small_atomic_at(root.meta(), &meta, "m", b"two").unwrap();
        assert_eq!(std::fs::read(meta.join("m")).unwrap(), b"two");
        let mode = std::fs::metadata(meta.join("m"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let target = outside.path().join("victim");
        std::fs::write(&target, b"keep").unwrap();
        symlink(&target, meta.join("l")).unwrap();
        let e = write_small_atomic_at(root.meta(), &meta, "l", b"evil").unwrap_err();
        assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn noreplace_at_never_overwrites() {
        let d = tempfile::tempdir().unwrap();
        let root = Root::open(d.path(), true).unwrap();
        std::fs::write(d.path().join("a"), b"new").unwrap();
        std::fs::write(d.path().join("b"), b"old").unwrap();
        let e = rename_noreplace_at(root.dir(), "a", root.dir(), "b").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(d.path().join("b")).unwrap(), b"old");
        rename_noreplace_at(root.dir(), "a", root.dir(), "c").unwrap();
        assert_eq!(std::fs::read(d.path().join("c")).unwrap(), b"new");
    }
}
