//! The archive: opening a destination (marker, lock, recovery) and its phones. The write path
//! is in [`crate::write`], reports and plans in [`crate::stores`], verification in
//! [`crate::check`].
//!
//! An open archive *holds* its destination ([`crate::root`]): a handle on `DIR` and on
//! `DIR/.ferry`, every file reached relative to them without following links, and the path
//! compared with the handle before each commit. An unmounted drive's empty mount point, a
//! folder moved or deleted mid-run: the run stops with [`Error::DestinationGone`] and nothing
//! is created anywhere else.
//!
//! Opening for writing ([`Archive::open`]) takes the destination lock, applies journal records
//! a crash left unapplied, and removes leftover temp files. Opening for reading
//! ([`Archive::open_read_only`], for `ferry status` and `ferry verify`) writes nothing at all,
//! so it works on a full or read-only drive.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::OFlags;

use crate::catalog::{Catalog, CatalogEntry, PhoneRow, CATALOG_FILE};
use crate::durable::Durability;
use crate::error::{Error, Result};
use crate::fsinfo::{self, FsKind};
use crate::journal::{self, Journal, JournalRecord, JOURNAL_FILE};
use crate::lock::{self, DestinationLock};
use crate::marker::{Marker, MARKER_FILE, META_DIR};
use crate::names;
use crate::root::{self, Kind, Root, META_DIR_MODE, META_FILE_MODE};
use crate::spec::check_text;
use crate::write::PhoneArchive;

/// Lock file name inside the metadata folder.
pub const LOCK_FILE: &str = "lock";
pub(crate) const MAX_CLASH: u32 = 100_000;
/// The catalog's SQLite companions, which must not be links either.
const CATALOG_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// Who holds destination `dir`'s lock right now ("pid 42 host nas since …"), or `None` when no
/// Ferry run is using it. A hint for screens; see [`crate::lock::holder`].
pub fn destination_holder(dir: &Path) -> Option<String> {
    crate::lock::holder(&dir.join(META_DIR).join(LOCK_FILE))
}

/// Tunables of an open archive.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// Space that must stay free after a file is written (room for the catalog and journal).
    /// Default 32 MiB.
    pub min_free_bytes: u64,
    /// Reserve each file's space before writing it (Linux). Default true.
    pub preallocate: bool,
    /// Re-check free space every this many bytes when not preallocated. Default 64 MiB.
    pub space_check_interval: u64,
    /// Move the catalog aside and rebuild it from the journal. Default false (it is rebuilt
    /// automatically when missing or damaged).
    pub rebuild_catalog: bool,
    /// When rebuilding, also re-hash every file (reads the whole archive). Default false:
    /// presence and size are checked.
    pub verify_hashes_on_rebuild: bool,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            min_free_bytes: 32 << 20,
            preallocate: true,
            space_check_interval: 64 << 20,
            rebuild_catalog: false,
            verify_hashes_on_rebuild: false,
        }
    }
}

/// What opening the archive found and repaired.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct OpenReport {
    /// The catalog was (re)built from the journal.
    pub catalog_rebuilt: bool,
    /// Why, if it was.
    pub rebuild_reason: Option<String>,
    /// Files entered into the catalog from the journal (after a crash, or on rebuild).
    pub recovered_files: usize,
    /// Journal intents without a matching file (a crash before the rename; harmless).
    pub dangling_intents: usize,
    /// Unreadable journal lines skipped.
    pub journal_bad_lines: usize,
    /// Leftover temp files of an interrupted run that were removed.
    pub temp_files_removed: usize,
}

/// Facts about the destination's file system.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DestinationFacts {
    /// The file system type.
    pub fs: FsKind,
    /// Whether folder fsync works (probed at open).
    pub dir_sync: Durability,
}

/// Whether a drive can take a backup now ([`Archive::drive_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum DriveState {
    /// Mounted read-only: nothing can be backed up until it is remounted read-write.
    ReadOnly,
    /// Less free space than a write needs.
    Full {
        /// Bytes free.
        available: u64,
    },
    /// Room to write.
    Writable {
        /// Bytes free.
        available: u64,
    },
}

pub(crate) struct State {
    pub(crate) catalog: Catalog,
    /// `None` when opened read-only.
    pub(crate) journal: Option<Journal>,
}

impl State {
    /// The journal of an archive opened for writing.
    pub(crate) fn journal(&mut self) -> Result<&mut Journal> {
        self.journal.as_mut().ok_or_else(read_only_error)
    }
}

fn read_only_error() -> Error {
    Error::InvalidInput {
        what: "operation",
        detail: "this archive was opened read-only (for status or verify)".into(),
    }
}

pub(crate) struct Inner {
    pub(crate) root: Root,
    pub(crate) meta: PathBuf,
    pub(crate) marker: Marker,
    pub(crate) opts: ArchiveOptions,
    pub(crate) facts: DestinationFacts,
    pub(crate) report: OpenReport,
    pub(crate) state: Mutex<State>,
    _lock: Option<DestinationLock>,
}

/// An open, locked destination. Cheap to clone; `Send + Sync`: share it between copy tasks.
#[derive(Clone)]
pub struct Archive {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("root", &self.inner.root.path())
            .field("archive_id", &self.inner.marker.archive_id)
            .finish()
    }
}

pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Creates `dir` if it is missing and its parent exists (one level only: never build a path
/// on an unmounted mount point's parent).
fn create_destination(dir: &Path) -> Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => {
            if let Some(parent) = dir.parent() {
                let _ = crate::durable::sync_dir(parent);
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::DestinationMissing {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("create folder", dir, e)),
    }
}

/// Refuses a catalog (or its `-wal`/`-shm`/`-journal`) that is not a plain file, and creates
/// a missing catalog owner-only so that SQLite gives its companions the same mode. Returns
/// whether the catalog existed and whether it has a `-wal` file.
fn prepare_catalog(root: &Root, create: bool) -> Result<(bool, bool)> {
    let meta = root.meta();
    let shown = root.meta_path();
    let mut existed = false;
    let mut has_wal = false;
    for suffix in std::iter::once("").chain(CATALOG_COMPANIONS) {
        let name = format!("{CATALOG_FILE}{suffix}");
        let p = shown.join(&name);
        match root::kind_at(meta, &name).map_err(|e| Error::io("inspect", &p, e))? {
            None => {}
            Some((Kind::File, _)) => {
                existed |= suffix.is_empty();
                has_wal |= suffix == "-wal";
            }
            Some(_) => {
                // open_file_at names what it found.
                root::open_file_at(meta, &name, OFlags::RDONLY, 0, &p, "open")?;
            }
        }
    }
    if create && !existed {
        let p = shown.join(CATALOG_FILE);
        drop(root::open_file_at(
            meta,
            CATALOG_FILE,
            OFlags::RDWR | OFlags::CREATE,
            META_FILE_MODE,
            &p,
            "create",
        )?);
    }
    Ok((existed, has_wal))
}

impl Archive {
    /// Initialises `dir` as a Ferry archive (creating `dir` itself if its parent exists).
    /// Idempotent: an existing marker is returned unchanged. A metadata folder without a
    /// marker (damaged) gets a new marker that keeps the catalog's archive id.
    pub fn init(dir: &Path) -> Result<Marker> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::NotADirectory {
                    dir: dir.to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_destination(dir)?,
            Err(e) => return Err(Error::io("inspect", dir, e)),
        }
        let root = Root::open(dir, true)?;
        let meta = root.meta_path();
        match Marker::read_at(root.meta(), dir) {
            Ok(m) => return Ok(m),
            Err(Error::NotInitialised { .. }) => {}
            Err(e) => return Err(e),
        }
        let _lock = DestinationLock::acquire_at(
            root.meta(),
            LOCK_FILE,
            &meta.join(LOCK_FILE),
            lock::Mode::Exclusive,
        )?;
        // Another `--init` may have finished while this one waited for the lock.
        match Marker::read_at(root.meta(), dir) {
            Ok(m) => return Ok(m),
            Err(Error::NotInitialised { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut marker = Marker::new();
        let (existed, _) = prepare_catalog(&root, false)?;
        let catalog_path = meta.join(CATALOG_FILE);
        if existed {
            if let Some(id) = read_catalog_archive_id(&catalog_path) {
                marker.archive_id = id;
            }
        }
        prepare_catalog(&root, true)?;
        let (catalog, _) = Catalog::open(&catalog_path, &marker.archive_id)?;
        drop(catalog);
        drop(Journal::open_at(
            root.meta(),
            &meta.join(JOURNAL_FILE),
            JOURNAL_FILE,
        )?);
        root::write_small_atomic_at(root.meta(), &meta, MARKER_FILE, marker.to_text().as_bytes())?;
        Ok(marker)
    }

    /// Opens an initialised destination for writing: checks the marker, takes the lock,
    /// opens (or rebuilds) the catalog, applies journal records a crash left unapplied, and
    /// removes leftover temp files.
    pub fn open(dir: &Path, opts: ArchiveOptions) -> Result<Archive> {
        let mut root = Root::open(dir, false)?;
        let marker = Marker::read_at(root.meta(), dir)?;
        root.pin_marker()?;
        let meta = root.meta_path();
        Root::restrict(root.meta(), META_DIR_MODE);
        let lock = DestinationLock::acquire_at(
            root.meta(),
            LOCK_FILE,
            &meta.join(LOCK_FILE),
            lock::Mode::Exclusive,
        )?;
        let mut report = OpenReport {
            temp_files_removed: sweep_temps(root.meta(), 0),
            ..OpenReport::default()
        };

        let catalog_path = meta.join(CATALOG_FILE);
        let (existed, _) = prepare_catalog(&root, false)?;
        let mut reason = None;
        if opts.rebuild_catalog {
            reason = Some("requested".to_string());
        } else if !existed {
            reason = Some("catalog missing".to_string());
        }
        let mut catalog = None;
        if reason.is_none() {
            match Catalog::open(&catalog_path, &marker.archive_id) {
                Ok((c, _)) => match c.quick_check() {
                    Ok(true) => catalog = Some(c),
                    Ok(false) => reason = Some("catalog failed quick_check".into()),
                    Err(e) => reason = Some(format!("catalog unreadable: {e}")),
                },
                Err(e @ (Error::ArchiveIdMismatch { .. } | Error::UnsupportedFormat { .. })) => {
                    return Err(e)
                }
                Err(
                    e @ (Error::ReadOnly { .. }
                    | Error::DiskFull { .. }
                    | Error::PermissionDenied { .. }),
                ) => return Err(e),
                Err(e) => reason = Some(format!("catalog unreadable: {e}")),
            }
        }
        let catalog = match catalog {
            Some(c) => c,
            None => {
                move_catalog_aside(&root)?;
                prepare_catalog(&root, true)?;
                let (c, _) = Catalog::open(&catalog_path, &marker.archive_id)?;
                report.catalog_rebuilt = true;
                report.rebuild_reason = reason.clone();
                tracing::warn!(catalog = %catalog_path.display(), reason = ?reason, "rebuilding the catalog from the journal");
                c
            }
        };
        let journal = Journal::open_at(root.meta(), &meta.join(JOURNAL_FILE), JOURNAL_FILE)?;
        let dir_sync =
            root::sync_dir_fd(root.dir()).map_err(|e| Error::io("sync folder", dir, e))?;
        let fs = fsinfo::detect_fd(root.dir()).unwrap_or(FsKind::Other);
        let mut state = State {
            catalog,
            journal: Some(journal),
        };

        let from = if report.catalog_rebuilt {
            0
        } else {
            state.catalog.journal_applied()?
        };
        // Tail recovery always re-hashes (a handful of files); a full rebuild checks sizes
        // unless asked to re-hash everything.
        let verify = !report.catalog_rebuilt || opts.verify_hashes_on_rebuild;
        replay(&mut state, &root, from, verify, true, &mut report)?;

        for phone in state.catalog.phones()? {
            let shown = dir.join(&phone.folder);
            match root::subdir(root.dir(), &phone.folder, false, 0, &shown) {
                Ok(fd) => report.temp_files_removed += sweep_temps(fd.as_fd(), 3),
                Err(Error::UnsafePath { detail, .. }) => {
                    tracing::warn!(folder = %shown.display(), "not sweeping temp files: {detail}")
                }
                Err(_) => {}
            }
        }
        if report.temp_files_removed > 0 || report.recovered_files > 0 {
            tracing::info!(?report, "recovered from an interrupted run");
        }
        Ok(Archive {
            inner: Arc::new(Inner {
                root,
                meta,
                marker,
                opts,
                facts: DestinationFacts { fs, dir_sync },
                report,
                state: Mutex::new(state),
                _lock: Some(lock),
            }),
        })
    }

    /// Opens an initialised destination for reading only (`ferry status`, `ferry verify`):
    /// nothing on the drive is created, changed or removed, so it works on a full or
    /// read-only drive. Readers share the lock with each other, never with a run that writes
    /// ([`Error::Busy`]). A catalog that is missing, damaged, or behind the journal (a run
    /// crashed) is rebuilt in memory from the journal for this reading only; the next run
    /// that writes repairs it on the drive.
    pub fn open_read_only(dir: &Path) -> Result<Archive> {
        let mut root = Root::open(dir, false)?;
        let marker = Marker::read_at(root.meta(), dir)?;
        root.pin_marker()?;
        let meta = root.meta_path();
        let lock = match root::kind_at(root.meta(), LOCK_FILE)
            .map_err(|e| Error::io("inspect", &meta.join(LOCK_FILE), e))?
        {
            None => None,
            Some(_) => Some(DestinationLock::acquire_at(
                root.meta(),
                LOCK_FILE,
                &meta.join(LOCK_FILE),
                lock::Mode::Shared,
            )?),
        };
        let catalog_path = meta.join(CATALOG_FILE);
        let (existed, has_wal) = prepare_catalog(&root, false)?;
        let journal_len = match root::kind_at(root.meta(), JOURNAL_FILE)
            .map_err(|e| Error::io("inspect", &meta.join(JOURNAL_FILE), e))?
        {
            None => 0,
            Some((Kind::File, len)) => len,
            // Not a plain file: open_file_at says what it is.
            Some(_) => {
                let f = root::open_file_at(
                    root.meta(),
                    JOURNAL_FILE,
                    OFlags::RDONLY,
                    0,
                    &meta.join(JOURNAL_FILE),
                    "open journal",
                )?;
                f.metadata().map(|m| m.len()).unwrap_or(0)
            }
        };
        let mut report = OpenReport::default();
        let on_drive = if existed {
            match Catalog::open_read_only(&catalog_path, &marker.archive_id, has_wal) {
                Ok(c) => match (c.quick_check(), c.journal_applied()) {
                    (Ok(true), Ok(applied)) if applied >= journal_len => Ok(c),
                    (Ok(true), Ok(_)) => Err("the last run did not finish".to_string()),
                    (Ok(false), _) => Err("catalog failed quick_check".into()),
                    (Err(e), _) | (_, Err(e)) => Err(format!("catalog unreadable: {e}")),
                },
                Err(e @ (Error::ArchiveIdMismatch { .. } | Error::UnsupportedFormat { .. })) => {
                    return Err(e)
                }
                Err(e) => Err(format!("catalog unreadable: {e}")),
            }
        } else {
            Err("catalog missing".to_string())
        };
        let catalog = match on_drive {
            Ok(c) => c,
            Err(reason) => {
                let mut state = State {
                    catalog: Catalog::open_memory(&catalog_path, &marker.archive_id)?,
                    journal: None,
                };
                report.catalog_rebuilt = true;
                report.rebuild_reason = Some(reason);
                replay(&mut state, &root, 0, false, false, &mut report)?;
                state.catalog
            }
        };
        let fs = fsinfo::detect_fd(root.dir()).unwrap_or(FsKind::Other);
        Ok(Archive {
            inner: Arc::new(Inner {
                root,
                meta,
                marker,
                opts: ArchiveOptions::default(),
                facts: DestinationFacts {
                    fs,
                    dir_sync: Durability::Unsupported,
                },
                report,
                state: Mutex::new(State {
                    catalog,
                    journal: None,
                }),
                _lock: lock,
            }),
        })
    }

    /// [`Archive::open`] with the catalog moved aside and rebuilt from the journal.
    pub fn rebuild_catalog(dir: &Path, mut opts: ArchiveOptions) -> Result<Archive> {
        opts.rebuild_catalog = true;
        Archive::open(dir, opts)
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the catalog half-written (SQLite rolls
        // back an unfinished transaction), so a poisoned mutex is safe to keep using.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The held destination.
    pub(crate) fn held(&self) -> &Root {
        &self.inner.root
    }

    /// `Ok` for an archive opened for writing.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.inner._lock.is_some() && self.state().journal.is_some() {
            Ok(())
        } else {
            Err(read_only_error())
        }
    }

    /// The destination folder.
    pub fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// The metadata folder (`DIR/.ferry`).
    pub fn metadata_dir(&self) -> &Path {
        &self.inner.meta
    }

    /// The marker (archive id, format).
    pub fn marker(&self) -> &Marker {
        &self.inner.marker
    }

    /// What opening found and repaired.
    pub fn open_report(&self) -> &OpenReport {
        &self.inner.report
    }

    /// File system facts.
    pub fn facts(&self) -> &DestinationFacts {
        &self.inner.facts
    }

    /// Is the destination still the archive that was opened? [`Error::DestinationGone`] when
    /// the drive was unmounted or the folder moved, replaced or deleted.
    pub fn check_present(&self) -> Result<()> {
        self.inner.root.check()
    }

    /// Whether the drive can take a backup now: read-only, full (less free than the margin a
    /// write needs), or writable. For `ferry status` and the app, which read a drive that
    /// may be either.
    pub fn drive_state(&self) -> Result<DriveState> {
        let st = rustix::fs::fstatvfs(self.inner.root.dir()).map_err(|e| {
            self.inner
                .root
                .explain(Error::io("statvfs", self.root(), e.into()))
        })?;
        let available = st.f_bavail.saturating_mul(st.f_frsize);
        Ok(
            if st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY) {
                DriveState::ReadOnly
            } else if available < ArchiveOptions::default().min_free_bytes {
                DriveState::Full { available }
            } else {
                DriveState::Writable { available }
            },
        )
    }

    /// Free bytes on the destination.
    pub fn available_bytes(&self) -> Result<u64> {
        self.inner.root.available_bytes().map_err(|e| {
            self.inner
                .root
                .explain(Error::io("statvfs", self.root(), e))
        })
    }

    /// Phones known to this archive.
    pub fn phones(&self) -> Result<Vec<PhoneRow>> {
        self.state().catalog.phones()
    }

    /// Every file of every phone, in archive order.
    pub fn all_entries(&self) -> Result<Vec<CatalogEntry>> {
        self.state().catalog.all_entries()
    }

    /// The archive of one phone, registering it on first use. Its folder is named after
    /// `device_name` the first time and never changes (a renamed phone keeps its folder: the
    /// UDID is the key).
    pub fn phone(&self, udid: &str, device_name: &str) -> Result<PhoneArchive> {
        check_text("udid", udid, 256)?;
        self.writable()?;
        let root = self.held();
        self.phone_inner(udid, device_name)
            .map_err(|e| root.explain(e))
    }

    fn phone_inner(&self, udid: &str, device_name: &str) -> Result<PhoneArchive> {
        let root = self.held();
        root.check()?;
        let mut st = self.state();
        let now = now_millis();
        let row = match st.catalog.phone_by_udid(udid)? {
            Some(row) => {
                if row.name != device_name {
                    let rec = JournalRecord::Phone {
                        udid: udid.into(),
                        folder: row.folder.clone(),
                        name: device_name.into(),
                        at_ms: now,
                    };
                    let end = st.journal()?.append(&rec)?;
                    let tx = st.catalog.tx()?;
                    tx.upsert_phone(udid, &row.folder, device_name, now)?;
                    tx.set_journal_applied(end)?;
                    tx.commit()?;
                }
                row
            }
            None => {
                let mut base = names::sanitize_component_max(device_name, 100);
                if base == names::FALLBACK_NAME {
                    base = "iPhone".into();
                }
                let mut folder = None;
                for n in 1..=MAX_CLASH {
                    let cand = if n == 1 {
                        base.clone()
                    } else {
                        format!("{base} ({n})")
                    };
                    let on_drive = root::kind_at(root.dir(), &cand)
                        .map_err(|e| Error::io("inspect", &root.path().join(&cand), e))?;
                    if !st.catalog.folder_taken(&cand)? && on_drive.is_none() {
                        folder = Some(cand);
                        break;
                    }
                }
                let folder = folder.ok_or_else(|| Error::InvalidInput {
                    what: "device name",
                    detail: "no free folder name".into(),
                })?;
                let rec = JournalRecord::Phone {
                    udid: udid.into(),
                    folder: folder.clone(),
                    name: device_name.into(),
                    at_ms: now,
                };
                let end = st.journal()?.append(&rec)?;
                let tx = st.catalog.tx()?;
                let id = tx.upsert_phone(udid, &folder, device_name, now)?;
                tx.set_journal_applied(end)?;
                tx.commit()?;
                PhoneRow {
                    id,
                    udid: udid.into(),
                    folder,
                    name: device_name.into(),
                }
            }
        };
        drop(st);
        root.data_dir(&[row.folder.as_str()])?;
        Ok(PhoneArchive::new(self.clone(), row))
    }
}

fn read_catalog_archive_id(path: &Path) -> Option<String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NOFOLLOW,
    )
    .ok()?;
    conn.query_row("SELECT value FROM meta WHERE key = 'archive_id'", [], |r| {
        r.get(0)
    })
    .ok()
}

/// Renames `catalog.sqlite` (and its `-wal`/`-shm`) to `catalog.sqlite.replaced-<ms>…`:
/// never deleted, so nothing is lost if the rebuild is wrong.
fn move_catalog_aside(root: &Root) -> Result<()> {
    let stamp = now_millis();
    let meta = root.meta();
    for suffix in ["", "-wal", "-shm"] {
        let from = format!("{CATALOG_FILE}{suffix}");
        let shown = root.meta_path().join(&from);
        if root::kind_at(meta, &from)
            .map_err(|e| Error::io("inspect", &shown, e))?
            .is_some()
        {
            let to = format!("{CATALOG_FILE}.replaced-{stamp}{suffix}");
            rustix::fs::renameat(meta, from.as_str(), meta, to.as_str())
                .map_err(|e| Error::io("move aside", &shown, e.into()))?;
        }
    }
    let _ = root::sync_dir_fd(meta);
    Ok(())
}

/// Applies journal records after `from` to the catalog (see the `journal` module).
///
/// `commit` false (reading only): the records are applied to the in-memory catalog and the
/// journal is not touched.
fn replay(
    st: &mut State,
    root: &Root,
    from: u64,
    verify_hash: bool,
    commit: bool,
    report: &mut OpenReport,
) -> Result<()> {
    let read = journal::read_from_at(
        root.meta(),
        &root.meta_path().join(JOURNAL_FILE),
        JOURNAL_FILE,
        from,
    )?;
    report.journal_bad_lines += read.bad_lines;
    if read.records.is_empty() {
        return Ok(());
    }
    // A path can appear in several intents only if earlier ones never got their file (crash
    // before the rename, then the name was reused): the last one wins.
    let mut last_for_path: HashMap<String, usize> = HashMap::new();
    for (i, (_, rec)) in read.records.iter().enumerate() {
        if let JournalRecord::File(f) = rec {
            last_for_path.insert(names::fold_key(&f.path), i);
        }
    }
    let mut phone_ids: HashMap<String, i64> = st
        .catalog
        .phones()?
        .into_iter()
        .map(|p| (p.udid, p.id))
        .collect();
    let tx = st.catalog.tx()?;
    for (i, (_, rec)) in read.records.iter().enumerate() {
        match rec {
            JournalRecord::Phone {
                udid,
                folder,
                name,
                at_ms,
            } => {
                if names::validate_relative(folder).map(|p| p.len()) != Ok(1) {
                    report.journal_bad_lines += 1;
                    continue;
                }
                let id = tx.upsert_phone(udid, folder, name, *at_ms)?;
                phone_ids.insert(udid.clone(), id);
            }
            JournalRecord::File(f) => {
                if last_for_path.get(&names::fold_key(&f.path)) != Some(&i) {
                    report.dangling_intents += 1;
                    continue;
                }
                let Some(&phone_id) = phone_ids.get(&f.udid) else {
                    report.journal_bad_lines += 1;
                    continue;
                };
                let Ok(parts) = names::validate_relative(&f.path) else {
                    report.journal_bad_lines += 1;
                    continue;
                };
                let ok = match root.lookup(&parts) {
                    Some((Kind::File, len)) if len == f.size => {
                        !verify_hash
                            || crate::check::hash_archived(root, &parts)
                                .map(|h| h == f.hash)
                                .unwrap_or(false)
                    }
                    _ => false,
                };
                if !ok {
                    report.dangling_intents += 1;
                    continue;
                }
                if tx.apply_file(phone_id, f, true)? == crate::catalog::Applied::Inserted {
                    report.recovered_files += 1;
                }
            }
            JournalRecord::DeletedOnPhone { udid, uuid, at_ms } => {
                if let Some(&phone_id) = phone_ids.get(udid) {
                    tx.mark_deleted(phone_id, uuid, *at_ms)?;
                }
            }
        }
    }
    if commit {
        tx.set_journal_applied(read.end)?;
    }
    tx.commit()
}

/// Removes Ferry temp files (by exact name pattern, regular files only) in held folder `dir`
/// and up to `depth` levels below it, never entering a link. Returns how many.
fn sweep_temps(dir: std::os::fd::BorrowedFd<'_>, depth: usize) -> usize {
    let Ok(entries) = root::list_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for (name, kind) in entries {
        if kind == Kind::File && names::is_temp_name(&name) {
            if rustix::fs::unlinkat(dir, name.as_str(), rustix::fs::AtFlags::empty()).is_ok() {
                n += 1;
            }
        } else if kind == Kind::Dir && depth > 0 {
            if let Ok(sub) = root::subdir(dir, &name, false, 0, Path::new(&name)) {
                n += sweep_temps(sub.as_fd(), depth - 1);
            }
        }
    }
    n
}
