//! The archive: opening a destination (marker, lock, recovery), phones, and the one audited
//! write path ([`PhoneArchive::begin`] → [`PendingFile::write_chunk`] → [`PendingFile::finish`]).
//!
//! Order of a write (restic's `Save`, plus a journal intent so the archive describes itself):
//!
//! 1. `begin`: size vs the file system's limit (FAT32), free space vs size + margin, target
//!    folder created (no symlinks), temp file `.ferry-tmp-<16 hex>` created exclusively *in the
//!    target folder*, space preallocated (Linux `fallocate(KEEP_SIZE)`).
//! 2. `write_chunk`: bytes appended and hashed (BLAKE3); more bytes than the phone's stated
//!    size is an error at once; free space re-checked every 64 MiB when not preallocated.
//! 3. `finish`: byte count = stated size, mtime = capture time, fsync (tolerating
//!    unsupported), then under the archive mutex: pick the name (clash suffix only on a real
//!    clash), journal intent + sync, rename without replacing, fsync the folder, catalog row.
//!
//! Any failure before the rename removes the temp file (also on drop); a temp file left by a
//! crash is removed on the next open, which runs under the lock, so it cannot be another
//! writer's. A failure after the rename leaves a complete, synced, journaled file that the
//! next open enters into the catalog.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_photos::ResourceRole;

use crate::catalog::{Catalog, CatalogEntry, PhoneRow, CATALOG_FILE};
use crate::durable::{self, Durability};
use crate::error::{Error, Result};
use crate::fsinfo::{self, FsKind};
use crate::journal::{self, FileRecord, Journal, JournalRecord, JOURNAL_FILE};
use crate::lock::DestinationLock;
use crate::marker::{marker_path, Marker, META_DIR};
use crate::names;
use crate::testing::{step, Step};

/// Lock file name inside the metadata folder.
pub const LOCK_FILE: &str = "lock";
const WRITE_BUFFER: usize = 1 << 20;
const MAX_CLASH: u32 = 100_000;

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

struct State {
    catalog: Catalog,
    journal: Journal,
}

struct Inner {
    root: PathBuf,
    meta: PathBuf,
    marker: Marker,
    opts: ArchiveOptions,
    facts: DestinationFacts,
    report: OpenReport,
    state: Mutex<State>,
    _lock: DestinationLock,
}

/// An open, locked destination. Cheap to clone; `Send + Sync`: share it between copy tasks.
#[derive(Clone)]
pub struct Archive {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("root", &self.inner.root)
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

fn check_dest_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory {
            dir: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::DestinationMissing {
            dir: dir.to_path_buf(),
        }),
        Err(e) => Err(Error::io("inspect", dir, e)),
    }
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
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // One level only: never build a path on an unmounted mount point's parent.
                std::fs::create_dir(dir).map_err(|e| {
                    if e.kind() == io::ErrorKind::NotFound {
                        Error::DestinationMissing {
                            dir: dir.to_path_buf(),
                        }
                    } else {
                        Error::io("create folder", dir, e)
                    }
                })?;
                if let Some(parent) = dir.parent() {
                    let _ = durable::sync_dir(parent);
                }
            }
            Err(e) => return Err(Error::io("inspect", dir, e)),
        }
        match Marker::read(dir) {
            Ok(m) => return Ok(m),
            Err(Error::NotInitialised { .. }) => {}
            Err(e) => return Err(e),
        }
        let meta = durable::ensure_dir(dir, &[META_DIR.to_string()])?;
        let _lock = DestinationLock::acquire(&meta.join(LOCK_FILE))?;
        let mut marker = Marker::new();
        let catalog_path = meta.join(CATALOG_FILE);
        if catalog_path.exists() {
            if let Some(id) = read_catalog_archive_id(&catalog_path) {
                marker.archive_id = id;
            }
        }
        let (catalog, _) = Catalog::open(&catalog_path, &marker.archive_id)?;
        drop(catalog);
        drop(Journal::open(&meta.join(JOURNAL_FILE))?);
        durable::write_small_atomic(&marker_path(dir), marker.to_text().as_bytes())?;
        Ok(marker)
    }

    /// Opens an initialised destination for writing: checks the marker, takes the lock,
    /// opens (or rebuilds) the catalog, applies journal records a crash left unapplied, and
    /// removes leftover temp files.
    pub fn open(dir: &Path, opts: ArchiveOptions) -> Result<Archive> {
        check_dest_dir(dir)?;
        let marker = Marker::read(dir)?;
        let meta = dir.join(META_DIR);
        match std::fs::symlink_metadata(&meta) {
            Ok(m) if m.file_type().is_dir() => {}
            _ => {
                return Err(Error::UnsafePath {
                    path: meta,
                    detail: "the metadata folder is not a plain folder".into(),
                })
            }
        }
        let lock = DestinationLock::acquire(&meta.join(LOCK_FILE))?;
        let mut report = OpenReport::default();
        report.temp_files_removed += sweep_temps(&meta, 0);

        let catalog_path = meta.join(CATALOG_FILE);
        let mut reason = None;
        if opts.rebuild_catalog {
            reason = Some("requested".to_string());
        } else if !catalog_path.exists() {
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
                move_catalog_aside(&catalog_path)?;
                let (c, _) = Catalog::open(&catalog_path, &marker.archive_id)?;
                report.catalog_rebuilt = true;
                report.rebuild_reason = reason.clone();
                tracing::warn!(catalog = %catalog_path.display(), reason = ?reason, "rebuilding the catalog from the journal");
                c
            }
        };
        let journal = Journal::open(&meta.join(JOURNAL_FILE))?;
        let dir_sync = durable::sync_dir(dir).map_err(|e| Error::io("sync folder", dir, e))?;
        let fs = fsinfo::detect(dir).unwrap_or(FsKind::Other);
        let mut state = State { catalog, journal };

        let from = if report.catalog_rebuilt {
            0
        } else {
            state.catalog.journal_applied()?
        };
        // Tail recovery always re-hashes (a handful of files); a full rebuild checks sizes
        // unless asked to re-hash everything.
        let verify = !report.catalog_rebuilt || opts.verify_hashes_on_rebuild;
        replay(&mut state, dir, &meta, from, verify, &mut report)?;

        for phone in state.catalog.phones()? {
            report.temp_files_removed += sweep_temps(&dir.join(&phone.folder), 3);
        }
        if report.temp_files_removed > 0 || report.recovered_files > 0 {
            tracing::info!(?report, "recovered from an interrupted run");
        }
        Ok(Archive {
            inner: Arc::new(Inner {
                root: dir.to_path_buf(),
                meta,
                marker,
                opts,
                facts: DestinationFacts { fs, dir_sync },
                report,
                state: Mutex::new(state),
                _lock: lock,
            }),
        })
    }

    /// [`Archive::open`] with the catalog moved aside and rebuilt from the journal.
    pub fn rebuild_catalog(dir: &Path, mut opts: ArchiveOptions) -> Result<Archive> {
        opts.rebuild_catalog = true;
        Archive::open(dir, opts)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the catalog half-written (SQLite rolls
        // back an unfinished transaction), so a poisoned mutex is safe to keep using.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The destination folder.
    pub fn root(&self) -> &Path {
        &self.inner.root
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

    /// Free bytes on the destination.
    pub fn available_bytes(&self) -> Result<u64> {
        fsinfo::available_bytes(&self.inner.root)
            .map_err(|e| Error::io("statvfs", &self.inner.root, e))
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
                    let end = st.journal.append(&rec)?;
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
                    if !st.catalog.folder_taken(&cand)?
                        && std::fs::symlink_metadata(self.inner.root.join(&cand)).is_err()
                    {
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
                let end = st.journal.append(&rec)?;
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
        durable::ensure_dir(&self.inner.root, std::slice::from_ref(&row.folder))?;
        Ok(PhoneArchive {
            archive: self.clone(),
            phone: row,
        })
    }

    /// Stores the phone's current fetch plan (JSON) as `.ferry/plans/<udid>.json`, replacing
    /// the previous plan (plans are Ferry's own working metadata, not archive content).
    pub fn store_fetch_plan(&self, udid: &str, json: &[u8]) -> Result<PathBuf> {
        check_text("UDID", udid, 128)?;
        let path = fetch_plan_path(&self.inner.root, udid);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
        }
        durable::write_small_atomic(&path, json)?;
        Ok(path)
    }

    /// Stores a run report (JSON) for the phone `udid`: `.ferry/reports/<udid>/<time>.json`
    /// plus `latest.json` beside it. Reports are never deleted. Returns the stamped file.
    pub fn store_report(&self, udid: &str, json: &[u8]) -> Result<PathBuf> {
        check_text("UDID", udid, 128)?;
        let dir = reports_dir(&self.inner.root, udid);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let stamp = now_millis();
        let mut n = 0u32;
        let path = loop {
            let name = if n == 0 {
                format!("{stamp}.json")
            } else {
                format!("{stamp}-{n}.json")
            };
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_err() {
                break p;
            }
            n += 1;
        };
        durable::write_small_atomic(&path, json)?;
        durable::write_small_atomic(&dir.join(LATEST_REPORT), json)?;
        Ok(path)
    }

    /// Like [`Archive::check`], re-hashing only about `sample_percent` % of the files (chosen
    /// at random per call; 100 = all). `on_file` is called after each file with its path and
    /// size, for progress.
    pub fn verify(
        &self,
        sample_percent: f64,
        mut on_file: impl FnMut(&str, u64),
    ) -> Result<ConsistencyReport> {
        let seed = u64::try_from(now_millis()).unwrap_or(0) ^ u64::from(std::process::id());
        let pick = |path: &str| -> bool {
            if sample_percent >= 100.0 {
                return true;
            }
            let mut h = blake3::Hasher::new();
            h.update(&seed.to_le_bytes());
            h.update(path.as_bytes());
            let b = h.finalize();
            let v = u16::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1]]);
            (f64::from(v) / 65536.0) * 100.0 < sample_percent
        };
        self.check_impl(&pick, &mut on_file)
    }

    /// Compares the catalog with the files: every catalog row's file present with its size
    /// (and hash, if `verify_hashes`), and every file in the phone folders known. Read-only.
    pub fn check(&self, verify_hashes: bool) -> Result<ConsistencyReport> {
        self.check_impl(&|_| verify_hashes, &mut |_, _| {})
    }

    fn check_impl(
        &self,
        hash_this: &dyn Fn(&str) -> bool,
        on_file: &mut dyn FnMut(&str, u64),
    ) -> Result<ConsistencyReport> {
        let (entries, phones) = {
            let st = self.state();
            (st.catalog.all_entries()?, st.catalog.phones()?)
        };
        let mut rep = ConsistencyReport::default();
        let mut known = std::collections::HashSet::new();
        for e in &entries {
            known.insert(e.path.clone());
            let Ok(parts) = names::validate_relative(&e.path) else {
                rep.bad_paths.push(e.path.clone());
                continue;
            };
            let p = parts.iter().fold(self.inner.root.clone(), |p, c| p.join(c));
            rep.files_checked += 1;
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_file() => {
                    if m.len() != e.size {
                        rep.wrong_size.push(e.path.clone());
                    } else if hash_this(&e.path) {
                        rep.files_hashed += 1;
                        rep.bytes_hashed += e.size;
                        match hash_file(&p) {
                            Ok(h) if h == e.hash => {}
                            _ => rep.wrong_hash.push(e.path.clone()),
                        }
                    }
                    on_file(&e.path, e.size);
                }
                _ => rep.missing.push(e.path.clone()),
            }
        }
        for phone in phones {
            let mut found = Vec::new();
            list_files(&self.inner.root, &phone.folder, 3, &mut found);
            for rel in found {
                let name = rel.rsplit('/').next().unwrap_or("");
                if names::is_temp_name(name) {
                    rep.temp_files.push(rel);
                } else if !known.contains(&rel) {
                    rep.unknown_files.push(rel);
                }
            }
        }
        Ok(rep)
    }
}

/// Name of the newest report in each phone's report folder.
pub const LATEST_REPORT: &str = "latest.json";

fn reports_dir(root: &Path, udid: &str) -> PathBuf {
    root.join(META_DIR).join("reports").join(safe_udid(udid))
}

fn fetch_plan_path(root: &Path, udid: &str) -> PathBuf {
    root.join(META_DIR)
        .join("plans")
        .join(format!("{}.json", safe_udid(udid)))
}

/// Reads phone `udid`'s fetch plan in the archive at `dir`, lock-free.
pub fn read_fetch_plan(dir: &Path, udid: &str) -> Option<Vec<u8>> {
    std::fs::read(fetch_plan_path(dir, udid)).ok()
}

/// All stored reports of phone `udid`, oldest first (lock-free): the run history.
pub fn report_history(dir: &Path, udid: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(reports_dir(dir, udid))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "json")
                        && p.file_name().is_some_and(|n| n != LATEST_REPORT)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn safe_udid(udid: &str) -> String {
    udid.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Reads the newest run report of phone `udid` in the archive at `dir` without opening (or
/// locking) the archive: for `ferry status` while another run holds the lock.
pub fn read_latest_report(dir: &Path, udid: &str) -> Option<Vec<u8>> {
    std::fs::read(reports_dir(dir, udid).join(LATEST_REPORT)).ok()
}

/// The UDIDs that have reports in the archive at `dir` (lock-free, like
/// [`read_latest_report`]).
pub fn reported_phones(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir.join(META_DIR).join("reports"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn read_catalog_archive_id(path: &Path) -> Option<String> {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT value FROM meta WHERE key = 'archive_id'", [], |r| {
        r.get(0)
    })
    .ok()
}

/// Renames `catalog.sqlite` (and its `-wal`/`-shm`) to `catalog.sqlite.replaced-<ms>…`:
/// never deleted, so nothing is lost if the rebuild is wrong.
fn move_catalog_aside(path: &Path) -> Result<()> {
    let stamp = now_millis();
    for suffix in ["", "-wal", "-shm"] {
        let from = PathBuf::from(format!("{}{suffix}", path.display()));
        if std::fs::symlink_metadata(&from).is_ok() {
            let to = PathBuf::from(format!("{}.replaced-{stamp}{suffix}", path.display()));
            std::fs::rename(&from, &to).map_err(|e| Error::io("move aside", &from, e))?;
        }
    }
    if let Some(parent) = path.parent() {
        let _ = durable::sync_dir(parent);
    }
    Ok(())
}

/// Applies journal records after `from` to the catalog (see the `journal` module).
fn replay(
    st: &mut State,
    root: &Path,
    meta: &Path,
    from: u64,
    verify_hash: bool,
    report: &mut OpenReport,
) -> Result<()> {
    let read = journal::read_from(&meta.join(JOURNAL_FILE), from)?;
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
                let p = parts.iter().fold(root.to_path_buf(), |p, c| p.join(c));
                let ok = match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.file_type().is_file() && m.len() == f.size => {
                        !verify_hash || hash_file(&p).map(|h| h == f.hash).unwrap_or(false)
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
    tx.set_journal_applied(read.end)?;
    tx.commit()
}

/// Removes Ferry temp files (by exact name pattern, regular files only, no symlinks followed)
/// in `dir` and up to `depth` levels below it. Returns how many.
fn sweep_temps(dir: &Path, depth: usize) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for entry in rd.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if ft.is_file() && names::is_temp_name(&name) {
            if std::fs::remove_file(entry.path()).is_ok() {
                n += 1;
            }
        } else if ft.is_dir() && depth > 0 {
            n += sweep_temps(&entry.path(), depth - 1);
        }
    }
    n
}

fn list_files(root: &Path, rel: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(root.join(rel)) else {
        return;
    };
    for entry in rd.flatten() {
        let Ok(ft) = entry.file_type() else { continue };
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = format!("{rel}/{name}");
        if ft.is_dir() && depth > 0 {
            list_files(root, &child, depth - 1, out);
        } else if !ft.is_dir() {
            out.push(child);
        }
    }
}

/// BLAKE3 of a file, hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; WRITE_BUFFER];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

/// Result of [`Archive::check`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsistencyReport {
    /// Catalog rows looked at.
    pub files_checked: usize,
    /// Files whose content was re-hashed.
    pub files_hashed: usize,
    /// Their bytes.
    pub bytes_hashed: u64,
    /// Rows whose file is gone.
    pub missing: Vec<String>,
    /// Rows whose file has another size.
    pub wrong_size: Vec<String>,
    /// Rows whose file has another hash (only with `verify_hashes`).
    pub wrong_hash: Vec<String>,
    /// Rows with an unusable path.
    pub bad_paths: Vec<String>,
    /// Files in the phone folders that no row describes.
    pub unknown_files: Vec<String>,
    /// Ferry temp files present (only while a write is in progress, or after a crash until
    /// the next open).
    pub temp_files: Vec<String>,
}

impl ConsistencyReport {
    /// True if the catalog and the files agree exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.wrong_hash.is_empty()
            && self.bad_paths.is_empty()
            && self.unknown_files.is_empty()
            && self.temp_files.is_empty()
    }
}

fn check_text(what: &'static str, s: &str, max: usize) -> Result<()> {
    if s.is_empty() || s.len() > max || s.chars().any(char::is_control) {
        return Err(Error::InvalidInput {
            what,
            detail: format!("{s:?} (empty, longer than {max} bytes, or control characters)"),
        });
    }
    Ok(())
}

/// What the sync engine knows about one original resource it is about to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSpec {
    /// Asset UUID (`ZUUID`).
    pub asset_uuid: String,
    /// Which resource of the asset.
    pub role: ResourceRole,
    /// Size the phone reports (AFC `st_size`); the write must produce exactly this many bytes.
    pub size: u64,
    /// Path on the phone, relative to `/var/mobile/Media` (gives the extension; stored).
    pub afc_path: String,
    /// The asset's original file name (`IMG_1234.HEIC`): the base name of *all* its files.
    pub original_filename: Option<String>,
    /// Capture time, Unix milliseconds UTC.
    pub capture_utc_millis: Option<i64>,
    /// Seconds east of UTC at capture.
    pub tz_offset_seconds: Option<i64>,
}

impl ResourceSpec {
    /// Builds a spec from the reader's record, one of its resources, the resolved phone path
    /// (for `AnyExtension` locations, after listing) and the size from AFC `stat`.
    pub fn from_record(
        record: &ferry_photos::AssetRecord,
        resource: &ferry_photos::OriginalResource,
        afc_path: &str,
        size: u64,
    ) -> ResourceSpec {
        let original = record.original_filename.clone().or_else(|| {
            record
                .primary()
                .and_then(|p| p.location.exact())
                .map(|p| p.as_str().rsplit('/').next().unwrap_or("").to_string())
        });
        ResourceSpec {
            asset_uuid: record.uuid.clone(),
            role: resource.role,
            size,
            afc_path: afc_path.to_string(),
            original_filename: original,
            capture_utc_millis: record.created_unix_millis(),
            tz_offset_seconds: record.tz_offset_seconds,
        }
    }

    fn validate(&self) -> Result<()> {
        check_text("asset UUID", &self.asset_uuid, 256)?;
        if self.afc_path.len() > 4096 || self.afc_path.contains('\0') {
            return Err(Error::InvalidInput {
                what: "phone path",
                detail: format!("{:?}", self.afc_path),
            });
        }
        if i64::try_from(self.size).is_err() {
            return Err(Error::InvalidInput {
                what: "size",
                detail: self.size.to_string(),
            });
        }
        Ok(())
    }

    /// The asset's base name (before any clash suffix).
    pub fn base_name(&self) -> String {
        let src = self
            .original_filename
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or(&self.afc_path);
        names::base_from_original(src)
    }

    /// (role suffix, extension) of this resource's file name.
    pub fn name_parts(&self) -> (&'static str, Option<String>) {
        let afc_ext = names::extension_of(&self.afc_path);
        match self.role {
            ResourceRole::Primary => {
                let orig_ext = self
                    .original_filename
                    .as_deref()
                    .and_then(names::extension_of);
                let ext = match (orig_ext, afc_ext) {
                    (Some(o), Some(a)) if o.eq_ignore_ascii_case(&a) => Some(o),
                    (_, Some(a)) => Some(a),
                    (o, None) => o,
                };
                ("", ext)
            }
            ResourceRole::LiveVideo => ("", afc_ext.or_else(|| Some("MOV".into()))),
            ResourceRole::RawAlternate => ("", afc_ext),
            ResourceRole::EditRender => ("_edited", afc_ext),
            ResourceRole::EditLiveVideo => ("_edited", afc_ext.or_else(|| Some("MOV".into()))),
            ResourceRole::AdjustmentData => ("", Some("AAE".into())),
        }
    }

    fn mtime(&self) -> Option<SystemTime> {
        let ms = self.capture_utc_millis?;
        if ms >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_millis(ms.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
        }
    }
}

/// The archive of one phone.
#[derive(Debug, Clone)]
pub struct PhoneArchive {
    archive: Archive,
    phone: PhoneRow,
}

/// How a finished write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteOutcome {
    /// A new file is in the archive.
    New,
    /// A new version of a resource archived before (the old file is kept, marked superseded).
    NewVersion,
    /// The same bytes were already archived for this resource: nothing was written.
    AlreadyArchived,
}

/// A file in the archive, as returned by [`PendingFile::finish`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Archived {
    /// Path relative to the destination.
    pub rel_path: String,
    /// Absolute path.
    pub path: PathBuf,
    /// Size.
    pub size: u64,
    /// BLAKE3, hex.
    pub blake3: String,
    /// Durability achieved.
    pub durability: Durability,
    /// What happened.
    pub outcome: WriteOutcome,
}

impl PhoneArchive {
    /// The phone's folder name inside the destination.
    pub fn folder(&self) -> &str {
        &self.phone.folder
    }

    /// The phone's UDID.
    pub fn udid(&self) -> &str {
        &self.phone.udid
    }

    /// The archive this phone belongs to.
    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// The current archived copy of a resource, if any (the sync engine's diff).
    pub fn lookup(&self, asset_uuid: &str, role: ResourceRole) -> Result<Option<CatalogEntry>> {
        self.archive
            .state()
            .catalog
            .current(self.phone.id, asset_uuid, role.as_str())
    }

    /// Every file of this phone (archived and superseded), in archive order.
    pub fn entries(&self) -> Result<Vec<CatalogEntry>> {
        self.archive.state().catalog.entries(self.phone.id)
    }

    /// Records that an asset was deleted on the phone. Nothing is removed from the archive.
    /// Returns false if the asset was never archived (nothing to mark).
    pub fn mark_deleted_on_phone(&self, asset_uuid: &str) -> Result<bool> {
        check_text("asset UUID", asset_uuid, 256)?;
        let mut st = self.archive.state();
        if st.catalog.asset_place(self.phone.id, asset_uuid)?.is_none() {
            return Ok(false);
        }
        let now = now_millis();
        let end = st.journal.append(&JournalRecord::DeletedOnPhone {
            udid: self.phone.udid.clone(),
            uuid: asset_uuid.into(),
            at_ms: now,
        })?;
        let tx = st.catalog.tx()?;
        let known = tx.mark_deleted(self.phone.id, asset_uuid, now)?;
        tx.set_journal_applied(end)?;
        tx.commit()?;
        Ok(known)
    }

    /// Starts writing one resource: checks the size limit and free space, creates the temp
    /// file in the target folder. Feed it with [`PendingFile::write_chunk`], then call
    /// [`PendingFile::finish`]. Dropping it unfinished removes the temp file.
    pub fn begin(&self, spec: ResourceSpec) -> Result<PendingFile> {
        spec.validate()?;
        let inner = &self.archive.inner;
        let (_, ext) = spec.name_parts();
        if let Some(limit) = inner.facts.fs.max_file_size() {
            if spec.size > limit {
                return Err(Error::TooLargeForFilesystem {
                    name: names::file_name(&spec.base_name(), 0, "", ext.as_deref()),
                    size: spec.size,
                    fs: inner.facts.fs,
                    limit,
                });
            }
        }
        let dir_rel = match self
            .archive
            .state()
            .catalog
            .asset_place(self.phone.id, &spec.asset_uuid)?
        {
            Some((dir, _)) => dir,
            None => names::date_folder(spec.capture_utc_millis, spec.tz_offset_seconds).join("/"),
        };
        let parts = dir_parts(&self.phone.folder, &dir_rel)?;
        let target_dir = durable::ensure_dir(&inner.root, &parts)?;
        let available = fsinfo::available_bytes(&target_dir)
            .map_err(|e| Error::io("statvfs", &target_dir, e))?;
        let needed = spec.size.saturating_add(inner.opts.min_free_bytes);
        if available < needed {
            return Err(Error::DiskFull {
                path: target_dir.join(names::file_name(&spec.base_name(), 0, "", ext.as_deref())),
                need: needed - available,
                available,
            });
        }
        let temp_path = target_dir.join(names::temp_name());
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp_path)
            .map_err(|e| Error::io_with_need("create", &temp_path, e, spec.size))?;
        let mut pending = PendingFile {
            phone: self.clone(),
            dir_rel,
            temp_path,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher: blake3::Hasher::new(),
            written: 0,
            preallocated: false,
            next_space_check: inner.opts.space_check_interval,
            spec,
        };
        step(Step::TempCreated);
        if inner.opts.preallocate {
            if let Some(w) = pending.file.as_ref() {
                pending.preallocated = durable::preallocate(w.get_ref(), pending.spec.size)
                    .map_err(|e| {
                        Error::io_with_need("reserve space for", &pending.temp_path, e, needed)
                    })?;
            }
        }
        Ok(pending)
    }

    /// Convenience: [`begin`](Self::begin), copy everything from `reader`, then
    /// [`finish`](PendingFile::finish).
    pub fn store_reader(&self, spec: ResourceSpec, mut reader: impl Read) -> Result<Archived> {
        let afc = spec.afc_path.clone();
        let mut pending = self.begin(spec)?;
        let mut buf = vec![0u8; WRITE_BUFFER];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "read from the phone",
                        path: PathBuf::from(afc),
                        source: e,
                    })
                }
            };
            pending.write_chunk(&buf[..n])?;
        }
        pending.finish()
    }
}

fn dir_parts(folder: &str, dir_rel: &str) -> Result<Vec<String>> {
    let rel = format!("{folder}/{dir_rel}");
    names::validate_relative(&rel)
        .map(|p| p.into_iter().map(str::to_string).collect())
        .map_err(|detail| Error::UnsafePath {
            path: PathBuf::from(rel),
            detail,
        })
}

/// A file being written: a temp file in its target folder, never under a final name until
/// [`finish`](Self::finish) succeeds. Dropping it removes the temp file.
pub struct PendingFile {
    phone: PhoneArchive,
    spec: ResourceSpec,
    dir_rel: String,
    temp_path: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    written: u64,
    preallocated: bool,
    next_space_check: u64,
}

impl std::fmt::Debug for PendingFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingFile")
            .field("temp_path", &self.temp_path)
            .field("written", &self.written)
            .field("size", &self.spec.size)
            .finish()
    }
}

impl PendingFile {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size the phone stated.
    pub fn expected_size(&self) -> u64 {
        self.spec.size
    }

    /// Appends the next chunk from the phone.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<()> {
        let total = self.written.saturating_add(data.len() as u64);
        if total > self.spec.size {
            return Err(Error::SizeMismatch {
                afc_path: self.spec.afc_path.clone(),
                expected: self.spec.size,
                got: total,
            });
        }
        let remaining = self.spec.size - self.written;
        let Some(w) = self.file.as_mut() else {
            return Err(Error::Io {
                op: "write",
                path: self.temp_path.clone(),
                source: io::Error::other("file already closed after an earlier error"),
            });
        };
        if let Err(e) = w.write_all(data) {
            self.file = None;
            return Err(Error::io_with_need("write", &self.temp_path, e, remaining));
        }
        self.hasher.update(data);
        self.written = total;
        step(Step::ChunkWritten);
        if !self.preallocated && self.written >= self.next_space_check {
            let interval = self.phone.archive.inner.opts.space_check_interval.max(1);
            self.next_space_check = self.written.saturating_add(interval);
            let left = self.spec.size - self.written;
            let available = fsinfo::available_bytes(&self.temp_path).unwrap_or(u64::MAX);
            if available < left {
                self.file = None;
                return Err(Error::DiskFull {
                    path: self.temp_path.clone(),
                    need: left - available,
                    available,
                });
            }
        }
        Ok(())
    }

    /// Discards the write (same as dropping it).
    pub fn abort(self) {}

    /// Checks the byte count, syncs, and gives the file its final name; then records it.
    pub fn finish(mut self) -> Result<Archived> {
        if self.written != self.spec.size {
            return Err(Error::SizeMismatch {
                afc_path: self.spec.afc_path.clone(),
                expected: self.spec.size,
                got: self.written,
            });
        }
        let Some(w) = self.file.take() else {
            return Err(Error::Io {
                op: "finish",
                path: self.temp_path.clone(),
                source: io::Error::other("file already closed after an earlier error"),
            });
        };
        let file = w.into_inner().map_err(|e| {
            Error::io_with_need("write", &self.temp_path, e.into_error(), self.spec.size)
        })?;
        if let Some(t) = self.spec.mtime() {
            // Metadata never fails a copy (FAT, network file systems may refuse).
            if let Err(e) = file.set_modified(t) {
                tracing::debug!(path = %self.temp_path.display(), "could not set mtime: {e}");
            }
        }
        let file_durability =
            durable::sync_file(&file).map_err(|e| Error::io("sync", &self.temp_path, e))?;
        drop(file);
        step(Step::FileSynced);
        let hash = self.hasher.finalize().to_hex().to_string();
        self.commit(hash, file_durability)
    }

    fn commit(&mut self, hash: String, file_durability: Durability) -> Result<Archived> {
        let archive = self.phone.archive.clone();
        let inner = &archive.inner;
        let phone = &self.phone.phone;
        let role = self.spec.role.as_str();
        let durability = file_durability.min(inner.facts.dir_sync);
        let mut st = archive.state();

        if let Some(existing) = st.catalog.current(phone.id, &self.spec.asset_uuid, role)? {
            let present = names::validate_relative(&existing.path)
                .ok()
                .map(|p| p.iter().fold(inner.root.clone(), |p, c| p.join(c)))
                .and_then(|p| std::fs::symlink_metadata(&p).ok().map(|m| (p, m)));
            if let Some((path, m)) = present {
                if existing.hash == hash
                    && existing.size == self.spec.size
                    && m.len() == existing.size
                {
                    let _ = std::fs::remove_file(&self.temp_path);
                    return Ok(Archived {
                        rel_path: existing.path,
                        path,
                        size: existing.size,
                        blake3: hash,
                        durability: existing.durability,
                        outcome: WriteOutcome::AlreadyArchived,
                    });
                }
            }
        }
        let place = st.catalog.asset_place(phone.id, &self.spec.asset_uuid)?;
        let (dir_rel, base, asset_new) = match place {
            Some((d, b)) => (d, b, false),
            None => (self.dir_rel.clone(), self.spec.base_name(), true),
        };
        let parts = dir_parts(&phone.folder, &dir_rel)?;
        let final_dir = durable::ensure_dir(&inner.root, &parts)?;
        let (suffix, ext) = self.spec.name_parts();
        let had_version = st
            .catalog
            .current(phone.id, &self.spec.asset_uuid, role)?
            .is_some();

        for n in 0..MAX_CLASH {
            let (asset_base, name) = if asset_new {
                let b = if n == 0 {
                    base.clone()
                } else {
                    format!("{base} ({n})")
                };
                if st.catalog.base_taken(phone.id, &dir_rel, &b)? {
                    continue;
                }
                let name = names::file_name(&b, 0, suffix, ext.as_deref());
                (b, name)
            } else {
                (
                    base.clone(),
                    names::file_name(&base, n, suffix, ext.as_deref()),
                )
            };
            let rel = format!("{}/{dir_rel}/{name}", phone.folder);
            if st.catalog.path_taken(&rel)? {
                continue;
            }
            let final_path = final_dir.join(&name);
            if std::fs::symlink_metadata(&final_path).is_ok() {
                continue;
            }
            let rec = FileRecord {
                udid: phone.udid.clone(),
                uuid: self.spec.asset_uuid.clone(),
                role: role.to_string(),
                path: rel.clone(),
                dir: dir_rel.clone(),
                base: asset_base,
                size: self.spec.size,
                hash_alg: crate::HASH_ALGORITHM.to_string(),
                hash: hash.clone(),
                afc_path: self.spec.afc_path.clone(),
                original_filename: self.spec.original_filename.clone(),
                capture_utc_ms: self.spec.capture_utc_millis,
                tz_offset_s: self.spec.tz_offset_seconds,
                durability,
                at_ms: now_millis(),
            };
            let end = st
                .journal
                .append(&JournalRecord::File(Box::new(rec.clone())))?;
            step(Step::JournalWritten);
            match durable::rename_noreplace(&self.temp_path, &final_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io("rename", &final_path, e)),
            }
            // From here on the temp name is gone: Drop must not look for it.
            self.temp_path = PathBuf::new();
            step(Step::Renamed);
            durable::sync_dir(&final_dir).map_err(|e| Error::io("sync folder", &final_dir, e))?;
            step(Step::DirSynced);
            let tx = st.catalog.tx()?;
            tx.apply_file(phone.id, &rec, false)?;
            tx.set_journal_applied(end)?;
            tx.commit()?;
            step(Step::CatalogCommitted);
            return Ok(Archived {
                rel_path: rel,
                path: final_path,
                size: self.spec.size,
                blake3: hash,
                durability,
                outcome: if had_version {
                    WriteOutcome::NewVersion
                } else {
                    WriteOutcome::New
                },
            });
        }
        Err(Error::InvalidInput {
            what: "file name",
            detail: format!("more than {MAX_CLASH} files named like {base}"),
        })
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_chunk(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.temp_path.as_os_str().is_empty() {
            if let Err(e) = std::fs::remove_file(&self.temp_path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %self.temp_path.display(), "could not remove temp file: {e}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(uuid: &str, role: ResourceRole, name: &str, afc: &str, size: u64) -> ResourceSpec {
        ResourceSpec {
            asset_uuid: uuid.into(),
            role,
            size,
            afc_path: afc.into(),
            original_filename: Some(name.into()),
            capture_utc_millis: Some(1_706_743_800_000),
            tz_offset_seconds: Some(3600),
        }
    }

    #[test]
    fn name_parts_per_role() {
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.HEIC",
            "DCIM/100APPLE/IMG_1.HEIC",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("HEIC".into())));
        let s = spec(
            "u",
            ResourceRole::LiveVideo,
            "IMG_1.HEIC",
            "DCIM/100APPLE/IMG_1.MOV",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("MOV".into())));
        let s = spec(
            "u",
            ResourceRole::EditRender,
            "IMG_1.HEIC",
            "PhotoData/Mutations/x/FullSizeRender.jpg",
            1,
        );
        assert_eq!(s.name_parts(), ("_edited", Some("jpg".into())));
        let s = spec(
            "u",
            ResourceRole::AdjustmentData,
            "IMG_1.HEIC",
            "x/Adjustments.plist",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("AAE".into())));
        // Stored under another extension than the original name says: the bytes win.
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.HEIC",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("HEIC".into())));
        let s = spec(
            "u",
            ResourceRole::Primary,
            "IMG_1.jpeg",
            "DCIM/IMG_1.JPEG",
            1,
        );
        assert_eq!(s.name_parts(), ("", Some("jpeg".into())));
    }

    #[test]
    fn mtime_from_capture() {
        let mut s = spec("u", ResourceRole::Primary, "a.jpg", "a.jpg", 1);
        assert_eq!(
            s.mtime(),
            Some(UNIX_EPOCH + Duration::from_millis(1_706_743_800_000))
        );
        s.capture_utc_millis = Some(-1000);
        assert_eq!(s.mtime(), UNIX_EPOCH.checked_sub(Duration::from_secs(1)));
        s.capture_utc_millis = None;
        assert_eq!(s.mtime(), None);
    }
}
