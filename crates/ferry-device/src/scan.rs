//! `scan`: snapshot the phone's Photos.sqlite, classify every asset with `ferry-photos`, and
//! cross-check each original against the phone's files over AFC (the file system wins).
//!
//! The library reader is synchronous (rusqlite), the phone is async (idevice). The whole
//! classification therefore runs in `spawn_blocking`, and the reader's two small I/O traits
//! ([`ferry_photos::snapshot::DbSource`], [`ferry_photos::MediaFs`]) are implemented over an
//! [`AfcSession`] by blocking on the runtime handle for each request. A transport failure is
//! kept aside and returned as our own [`Error`], not as a generic `io::Error`.
//!
//! No-change detection: the `(size, mtime)` of `Photos.sqlite`, `-wal` and `-shm` on the phone
//! is stored next to a private cached copy of the last verified snapshot
//! (`<cache dir>/snapshots/<udid>/`). If the phone still reports the same values, the cached
//! copy is used and nothing is read from the phone but three stats. See
//! docs/decisions/0003-snapshot-cache.md.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ferry_photos::reconcile::{asset_classification, reconcile};
use ferry_photos::record::{Availability, ResourceLocation};
use ferry_photos::snapshot::{self, DbSource, DirSource, SnapshotOptions, SourceStat};
use ferry_photos::{AfcPath, AssetRecord, MediaFs, Verdict};
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::afc::{AfcSession, FileKind, FileStat};
use crate::error::{Error, Result};
use crate::mux::{Mux, UsbDevice};
use crate::session::Session;

/// Where the library database lives under the AFC root.
pub const PHOTO_DATA: &str = "PhotoData";
/// Version of the `--json` report format (docs/cli.md).
pub const REPORT_FORMAT: u32 = 1;

/// Options for [`scan`].
#[derive(Debug, Clone, Default)]
pub struct ScanOptions {
    /// Include one row per original resource in the report.
    pub list: bool,
    /// Where to keep the cached snapshot; `None` disables no-change detection.
    pub cache_dir: Option<PathBuf>,
    /// Also copy `Photos.sqlite-shm` (off: SQLite rebuilds it, a stale one can only hurt).
    pub copy_shm: bool,
    /// Keep every asset with its verdicts in [`ScanReport::classified`] (the sync engine's
    /// input; costs memory proportional to the library).
    pub keep_assets: bool,
}

/// One asset with the file system's verdict on each of its resources (same order as
/// `record.resources`); kept with [`ScanOptions::keep_assets`].
#[derive(Debug, Clone)]
pub struct ClassifiedAsset {
    /// What the database says.
    pub record: AssetRecord,
    /// What the phone's files say, per resource.
    pub verdicts: Vec<Verdict>,
    /// The asset-level classification (`archive`, `icloud_only`, `unavailable`,
    /// `retry_later`, `excluded`).
    pub classification: &'static str,
}

/// Counts and bytes of one class of original files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileCount {
    /// Files (original resources).
    pub files: u64,
    /// Bytes (for files on the phone: their size; otherwise the database's size).
    pub bytes: u64,
}

/// Local originals: on the phone, to be archived.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LocalOriginals {
    /// Assets whose primary original is on the phone.
    pub assets: u64,
    /// Every original file on the phone.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, files that exist only on this phone (not in iCloud yet, or iCloud off).
    pub only_on_this_phone: FileCount,
}

/// Originals that are only in iCloud ("Optimize iPhone Storage").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IcloudOnly {
    /// Assets whose primary original is only in iCloud.
    pub assets: u64,
    /// Original files to download on the phone first.
    pub files: u64,
    /// Their bytes according to the database.
    pub bytes: u64,
    /// Capture date of the oldest iCloud-only asset (UTC, RFC 3339).
    pub oldest: Option<String>,
    /// Capture date of the newest.
    pub newest: Option<String>,
}

/// Where the database and the files disagree (the file decides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Disagreements {
    /// All of the below.
    pub total: u64,
    /// The database says on the phone; the file is missing.
    pub db_local_file_missing: u64,
    /// The database says not on the phone; the file is there.
    pub db_remote_file_present: u64,
    /// The file's size differs from the database's.
    pub size_mismatch: u64,
}

/// How the database copy was obtained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SnapshotInfo {
    /// True when the phone's database was unchanged and the cached copy was used.
    pub reused: bool,
    /// Bytes read from the phone for the snapshot (0 when reused).
    pub copied_bytes: u64,
    /// Size of `Photos.sqlite` on the phone.
    pub db_bytes: u64,
    /// Size of `Photos.sqlite-wal` on the phone (0 if none).
    pub wal_bytes: u64,
    /// Copy attempts (a copy is repeated if the database changed meanwhile).
    pub attempts: u32,
}

/// One original resource (or one asset without any), with `--list`.
#[derive(Debug, Clone, Serialize)]
pub struct ScanItem {
    /// `ZUUID`.
    pub uuid: String,
    /// Asset classification: `archive`, `icloud_only`, `unavailable`, `retry_later`, `excluded`.
    pub classification: &'static str,
    /// Exclusion reason, if excluded.
    pub exclusion: Option<&'static str>,
    /// Capture time, UTC.
    pub created_utc: Option<String>,
    /// The name the user knows.
    pub original_filename: Option<String>,
    /// `primary`, `live_video`, …; `null` for an asset without resources.
    pub role: Option<&'static str>,
    /// Path under the AFC root (`dir/stem.*` when the extension is not known).
    pub path: Option<String>,
    /// `archive`, `fetch_on_phone`, `unavailable`, `retry_later`, `excluded`.
    pub action: Option<&'static str>,
    /// Size on the phone.
    pub size: Option<u64>,
    /// Size per the database.
    pub db_size: Option<u64>,
    /// Availability per the database.
    pub db_availability: Option<&'static str>,
    /// Upload state per the database.
    pub upload_state: Option<&'static str>,
    /// This file exists only on this phone.
    pub only_on_this_phone: bool,
    /// Kind of DB/file disagreement, if any.
    pub disagreement: Option<&'static str>,
}

/// The result of a scan (the `--json` document; see docs/cli.md).
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// The phone's UDID.
    pub udid: String,
    /// The phone's name.
    pub name: Option<String>,
    /// iOS version.
    pub ios_version: Option<String>,
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// iCloud Photos is on for this library.
    pub icloud_photos: bool,
    /// Assets in the library.
    pub assets: u64,
    /// Assets per classification.
    pub classifications: BTreeMap<String, u64>,
    /// On the phone.
    pub local_originals: LocalOriginals,
    /// Only in iCloud.
    pub icloud_only: IcloudOnly,
    /// Neither on the phone nor known to be in iCloud.
    pub unavailable: FileCount,
    /// iCloud-only per the database, a partial file present (download in progress).
    pub retry_later: FileCount,
    /// Excluded assets per reason.
    pub excluded: BTreeMap<String, u64>,
    /// DB/file disagreements.
    pub disagreements: Disagreements,
    /// With `--list`: every original.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ScanItem>>,
    /// With [`ScanOptions::keep_assets`]: every asset and its verdicts (not serialised).
    #[serde(skip)]
    pub classified: Vec<ClassifiedAsset>,
    /// The phone's free space per AFC, if it said.
    pub free_bytes: Option<u64>,
    /// The phone's storage capacity per AFC, if it said.
    pub capacity_bytes: Option<u64>,
}

/// `(size, mtime)` of the database files on the phone: the no-change key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbFingerprint {
    /// `Photos.sqlite`.
    pub db: Option<(u64, Option<u64>)>,
    /// `Photos.sqlite-wal`.
    pub wal: Option<(u64, Option<u64>)>,
    /// `Photos.sqlite-shm`.
    pub shm: Option<(u64, Option<u64>)>,
}

/// Scans the phone: see the module docs.
pub async fn scan(mux: &Mux, dev: &UsbDevice, opts: &ScanOptions) -> Result<ScanReport> {
    let mut session = Session::open(mux, dev).await?;
    let all = session.value(None, None).await?;
    let s = |k: &str| {
        all.as_dictionary()
            .and_then(|d| d.get(k))
            .and_then(plist::Value::as_string)
            .map(str::to_string)
    };
    let (name, ios) = (s("DeviceName"), s("ProductVersion"));
    let afc = session.afc().await?;
    let handle = Handle::current();
    let udid = dev.udid.clone();
    let opts = opts.clone();
    let mut report = tokio::task::spawn_blocking(move || scan_blocking(handle, afc, &udid, &opts))
        .await
        .map_err(|e| Error::Internal {
            during: "classifying the library".into(),
            detail: if e.is_panic() {
                "internal failure (panic)".into()
            } else {
                "cancelled".into()
            },
        })??;
    report.name = name;
    report.ios_version = ios;
    drop(session);
    Ok(report)
}

/// The `(size, mtime)` of the phone's library database files: cheap no-change detection for
/// `ferry watch` (three AFC stats; nothing is read).
pub async fn db_fingerprint(mux: &Mux, dev: &UsbDevice) -> Result<DbFingerprint> {
    let mut session = Session::open(mux, dev).await?;
    let mut afc = session.afc().await?;
    let mut one = async |name: &str| -> Result<Option<(u64, Option<u64>)>> {
        Ok(afc
            .stat(&db_file(name))
            .await?
            .map(|s| (s.size.unwrap_or(0), s.mtime_ns)))
    };
    Ok(DbFingerprint {
        db: one(snapshot::DB_NAME).await?,
        wal: one(snapshot::WAL_NAME).await?,
        shm: one(snapshot::SHM_NAME).await?,
    })
}

/// Bridges the sync reader traits to one AFC session.
struct Bridge {
    handle: Handle,
    afc: RefCell<AfcSession>,
    fatal: RefCell<Option<Error>>,
    copied: RefCell<u64>,
}

impl Bridge {
    fn keep<T>(&self, r: Result<T>) -> io::Result<T> {
        r.map_err(|e| {
            let msg = e.to_string();
            let mut f = self.fatal.borrow_mut();
            if f.is_none() {
                *f = Some(e);
            }
            io::Error::other(msg)
        })
    }

    fn stat(&self, path: &str) -> Result<Option<FileStat>> {
        let mut afc = self.afc.borrow_mut();
        self.handle.block_on(afc.stat(path))
    }

    /// Turns a reader error back into ours if the cause was the phone.
    fn take_fatal(&self, e: ferry_photos::Error) -> Error {
        self.fatal.borrow_mut().take().unwrap_or(Error::Library(e))
    }
}

fn afc_path(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

fn db_file(name: &str) -> String {
    afc_path(&format!("{PHOTO_DATA}/{name}"))
}

impl DbSource for &Bridge {
    fn describe(&self) -> String {
        format!("the iPhone's /{PHOTO_DATA}")
    }

    fn stat(&mut self, name: &str) -> io::Result<Option<SourceStat>> {
        let st = self.keep(Bridge::stat(self, &db_file(name)))?;
        Ok(st.map(|s| SourceStat {
            size: s.size.unwrap_or(0),
            modified: s
                .mtime_ns
                .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns)),
        }))
    }

    fn read_head(&mut self, name: &str, len: usize) -> io::Result<Vec<u8>> {
        let r = {
            let mut afc = self.afc.borrow_mut();
            self.handle.block_on(afc.read_head(&db_file(name), len))
        };
        self.keep(r)
    }

    fn copy_to(&mut self, name: &str, out: &mut dyn Write) -> io::Result<u64> {
        let r = {
            let mut afc = self.afc.borrow_mut();
            let mut w = SyncWriter(out);
            self.handle
                .block_on(afc.read_to(&db_file(name), &mut w, |_| {}))
        };
        let n = self.keep(r)?;
        *self.copied.borrow_mut() += n;
        Ok(n)
    }
}

impl MediaFs for Bridge {
    /// The size of the file at `path`; for a symbolic link, of the file it leads to (the
    /// phone reports a link's own size, docs/sync.md "Symbolic links").
    fn file_size(&self, path: &AfcPath) -> io::Result<Option<u64>> {
        let p = afc_path(path.as_str());
        let r = {
            let mut afc = self.afc.borrow_mut();
            self.handle.block_on(afc.stat_following(&p))
        };
        let st = match r {
            Ok(r) => r.map(|r| r.stat),
            // A link that cannot be followed is still a file the library names: it stays in
            // the plan with the link's own size, and copying it reports why it cannot be read
            // (a failure with its reason, never a silent gap).
            Err(Error::PhoneLink { .. }) => self.keep(self.stat(&p))?,
            Err(e) => return self.keep(Err(e)),
        };
        Ok(st.and_then(|s| match s.kind {
            FileKind::Dir => None,
            _ => s.size.or(Some(0)),
        }))
    }

    fn list_dir(&self, dir: &AfcPath) -> io::Result<Option<Vec<String>>> {
        let r = {
            let mut afc = self.afc.borrow_mut();
            self.handle.block_on(afc.list(&afc_path(dir.as_str())))
        };
        let mut names = self.keep(r)?;
        if let Some(n) = names.as_mut() {
            n.sort();
        }
        Ok(names)
    }
}

/// Writes to a sync writer from async code that runs on a blocking thread.
struct SyncWriter<'a>(&'a mut dyn Write);

impl tokio::io::AsyncWrite for SyncWriter<'_> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::task::Poll::Ready(self.0.write(buf))
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(self.0.flush())
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

fn fingerprint(bridge: &Bridge) -> Result<DbFingerprint> {
    let one = |name: &str| -> Result<Option<(u64, Option<u64>)>> {
        Ok(bridge
            .stat(&db_file(name))?
            .map(|s| (s.size.unwrap_or(0), s.mtime_ns)))
    };
    Ok(DbFingerprint {
        db: one(snapshot::DB_NAME)?,
        wal: one(snapshot::WAL_NAME)?,
        shm: one(snapshot::SHM_NAME)?,
    })
}

/// The cached copy of one phone's database.
struct Cache {
    dir: PathBuf,
}

const FINGERPRINT_FILE: &str = "fingerprint.json";

impl Cache {
    fn for_phone(root: &Path, udid: &str) -> Cache {
        // UDIDs are hex and dashes; anything else is replaced so a hostile value cannot
        // escape the cache dir.
        let safe: String = udid
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Cache {
            dir: root.join("snapshots").join(safe),
        }
    }

    fn matches(&self, fp: &DbFingerprint) -> bool {
        let Ok(text) = std::fs::read_to_string(self.dir.join(FINGERPRINT_FILE)) else {
            return false;
        };
        let Ok(old) = serde_json::from_str::<DbFingerprint>(&text) else {
            return false;
        };
        tracing::debug!(?old, new = ?fp, "comparing the database fingerprint with the cache");
        old == *fp
            && self.dir.join(snapshot::DB_NAME).is_file()
            && (fp.wal.is_none() || self.dir.join(snapshot::WAL_NAME).is_file())
    }

    /// Replaces the cache with the snapshot's files (new dir, then rename over the old one).
    fn store(&self, snap: &snapshot::Snapshot, fp: &DbFingerprint) -> io::Result<()> {
        let parent = self.dir.parent().unwrap_or(Path::new("."));
        crate::paths::create_private_dir(parent)?;
        let tmp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(parent)?;
        let db = snap.db_path();
        let src_dir = db.parent().unwrap_or(Path::new("."));
        for name in [snapshot::DB_NAME, snapshot::WAL_NAME] {
            let from = src_dir.join(name);
            if from.is_file() {
                std::fs::copy(&from, tmp.path().join(name))?;
            }
        }
        let json = serde_json::to_vec(fp).map_err(io::Error::other)?;
        std::fs::write(tmp.path().join(FINGERPRINT_FILE), json)?;
        let old = parent.join(format!(".old-{}", std::process::id()));
        if self.dir.exists() {
            std::fs::rename(&self.dir, &old)?;
        }
        let kept = tmp.keep();
        std::fs::rename(&kept, &self.dir)?;
        let _ = std::fs::remove_dir_all(old);
        Ok(())
    }
}

fn scan_blocking(
    handle: Handle,
    afc: AfcSession,
    udid: &str,
    opts: &ScanOptions,
) -> Result<ScanReport> {
    let bridge = Bridge {
        handle,
        afc: RefCell::new(afc),
        fatal: RefCell::new(None),
        copied: RefCell::new(0),
    };
    let before = fingerprint(&bridge)?;
    let Some((db_bytes, _)) = before.db else {
        return Err(Error::PhoneFile {
            op: "find",
            path: db_file(snapshot::DB_NAME),
            reason: "it does not exist: is this an iPhone with the Photos app set up?".into(),
        });
    };
    let cache = opts.cache_dir.as_deref().map(|d| Cache::for_phone(d, udid));
    let snap_opts = SnapshotOptions {
        copy_shm: opts.copy_shm,
        ..SnapshotOptions::default()
    };
    let mut reused = false;
    let snap = match cache.as_ref().filter(|c| c.matches(&before)) {
        Some(c) => match snapshot::take_snapshot(&mut DirSource::new(&c.dir), &snap_opts) {
            Ok(s) => {
                reused = true;
                tracing::info!(dir = %c.dir.display(), "Photos.sqlite unchanged; using the cached copy");
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cached snapshot unusable; copying again");
                None
            }
        },
        None => None,
    };
    let snap = match snap {
        Some(s) => s,
        None => {
            let mut src = &bridge;
            let s =
                snapshot::take_snapshot(&mut src, &snap_opts).map_err(|e| bridge.take_fatal(e))?;
            if let Some(c) = &cache {
                let after = fingerprint(&bridge)?;
                if after == before {
                    if let Err(e) = c.store(&s, &after) {
                        tracing::warn!(error = %e, dir = %c.dir.display(), "could not cache the snapshot");
                    }
                }
            }
            s
        }
    };
    let db = snap.open()?;
    let info = db.library_info()?;
    let mut report = ScanReport {
        format: REPORT_FORMAT,
        udid: udid.to_string(),
        name: None,
        ios_version: None,
        snapshot: SnapshotInfo {
            reused,
            copied_bytes: *bridge.copied.borrow(),
            db_bytes,
            wal_bytes: before.wal.map(|w| w.0).unwrap_or(0),
            attempts: snap.attempts_used,
        },
        icloud_photos: info.icloud_photos_on,
        assets: 0,
        classifications: BTreeMap::new(),
        local_originals: LocalOriginals::default(),
        icloud_only: IcloudOnly::default(),
        unavailable: FileCount::default(),
        retry_later: FileCount::default(),
        excluded: BTreeMap::new(),
        disagreements: Disagreements::default(),
        items: opts.list.then(Vec::new),
        classified: Vec::new(),
        free_bytes: None,
        capacity_bytes: None,
    };
    let mut icloud_range: Option<(i64, String, i64, String)> = None;
    let mut failure: Option<Error> = None;
    db.scan(|asset| {
        let verdicts = match reconcile(&asset, &bridge) {
            Ok(v) => v,
            Err(e) => {
                failure = Some(bridge.fatal.borrow_mut().take().unwrap_or(Error::Internal {
                    during: "checking files on the iPhone".into(),
                    detail: e.to_string(),
                }));
                return ControlFlow::Break(());
            }
        };
        let class = asset_classification(&asset, &verdicts);
        report.assets += 1;
        *report.classifications.entry(class.to_string()).or_default() += 1;
        if let Some(ex) = &asset.exclusion {
            *report.excluded.entry(ex.as_str().to_string()).or_default() += 1;
        }
        match class {
            "archive" => report.local_originals.assets += 1,
            "icloud_only" => {
                report.icloud_only.assets += 1;
                if let (Some(ms), Some(text)) = (asset.created_unix_millis(), asset.created_utc()) {
                    let r = icloud_range.get_or_insert((ms, text.clone(), ms, text.clone()));
                    if ms < r.0 {
                        (r.0, r.1) = (ms, text.clone());
                    }
                    if ms > r.2 {
                        (r.2, r.3) = (ms, text);
                    }
                }
            }
            _ => {}
        }
        for (res, v) in asset.resources.iter().zip(&verdicts) {
            let only_here = matches!(v, Verdict::Archive { .. }) && res.only_on_this_phone();
            let disagreement = match v {
                Verdict::Excluded => None,
                Verdict::Archive {
                    provisional: true, ..
                }
                | Verdict::RetryLater => Some("size_mismatch"),
                Verdict::Archive { .. }
                    if matches!(
                        res.availability,
                        Availability::IcloudOnly | Availability::Unavailable
                    ) =>
                {
                    Some("db_remote_file_present")
                }
                Verdict::FetchOnPhone | Verdict::Unavailable
                    if res.availability == Availability::Local =>
                {
                    Some("db_local_file_missing")
                }
                _ => None,
            };
            match disagreement {
                Some("size_mismatch") => report.disagreements.size_mismatch += 1,
                Some("db_remote_file_present") => report.disagreements.db_remote_file_present += 1,
                Some("db_local_file_missing") => report.disagreements.db_local_file_missing += 1,
                _ => {}
            }
            if disagreement.is_some() {
                report.disagreements.total += 1;
            }
            let db_size = res.expected_size;
            let size = match v {
                Verdict::Archive { size, .. } => {
                    report.local_originals.files += 1;
                    report.local_originals.bytes += size;
                    if only_here {
                        report.local_originals.only_on_this_phone.files += 1;
                        report.local_originals.only_on_this_phone.bytes += size;
                    }
                    Some(*size)
                }
                Verdict::FetchOnPhone => {
                    report.icloud_only.files += 1;
                    report.icloud_only.bytes += db_size.unwrap_or(0);
                    None
                }
                Verdict::Unavailable => {
                    report.unavailable.files += 1;
                    report.unavailable.bytes += db_size.unwrap_or(0);
                    None
                }
                Verdict::RetryLater => {
                    report.retry_later.files += 1;
                    report.retry_later.bytes += db_size.unwrap_or(0);
                    None
                }
                Verdict::Excluded => None,
            };
            if let Some(items) = report.items.as_mut() {
                let path = match v {
                    Verdict::Archive { path, .. } => Some(path.as_str().to_string()),
                    _ => Some(location_text(&res.location)),
                };
                items.push(ScanItem {
                    uuid: asset.uuid.clone(),
                    classification: class,
                    exclusion: asset.exclusion.as_ref().map(|e| e.as_str()),
                    created_utc: asset.created_utc(),
                    original_filename: asset.original_filename.clone(),
                    role: Some(res.role.as_str()),
                    path,
                    action: Some(v.as_str()),
                    size,
                    db_size,
                    db_availability: Some(res.availability.as_str()),
                    upload_state: Some(res.upload.as_str()),
                    only_on_this_phone: only_here,
                    disagreement,
                });
            }
        }
        if asset.resources.is_empty() {
            if let Some(items) = report.items.as_mut() {
                items.push(ScanItem {
                    uuid: asset.uuid.clone(),
                    classification: class,
                    exclusion: asset.exclusion.as_ref().map(|e| e.as_str()),
                    created_utc: asset.created_utc(),
                    original_filename: asset.original_filename.clone(),
                    role: None,
                    path: None,
                    action: None,
                    size: None,
                    db_size: None,
                    db_availability: None,
                    upload_state: None,
                    only_on_this_phone: false,
                    disagreement: None,
                });
            }
        }
        if opts.keep_assets {
            report.classified.push(ClassifiedAsset {
                record: asset,
                verdicts,
                classification: class,
            });
        }
        ControlFlow::Continue(())
    })
    .map_err(|e| bridge.take_fatal(e))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let info = {
        let mut afc = bridge.afc.borrow_mut();
        bridge.handle.block_on(afc.device_info())
    };
    match info {
        Ok(map) => {
            report.free_bytes = map.get("FSFreeBytes").and_then(|v| v.parse().ok());
            report.capacity_bytes = map.get("FSTotalBytes").and_then(|v| v.parse().ok());
        }
        Err(e) => tracing::debug!(error = %e, "the iPhone did not report its free space"),
    }
    if let Some((_, oldest, _, newest)) = icloud_range {
        report.icloud_only.oldest = Some(oldest);
        report.icloud_only.newest = Some(newest);
    }
    Ok(report)
}

fn location_text(l: &ResourceLocation) -> String {
    match l {
        ResourceLocation::Exact(p) => p.as_str().to_string(),
        ResourceLocation::AnyExtension { dir, stem, .. } => format!("{}/{stem}.*", dir.as_str()),
    }
}
