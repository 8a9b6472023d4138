//! "Optimize iPhone Storage" on a phone image: `ferry-sim fetch` plays iOS downloading
//! iCloud-only originals back onto the phone, `ferry-sim offload` plays iOS purging originals
//! that are safely in iCloud. Both work on an image that is being served or not.
//!
//! What changes, per asset, in this order:
//! 1. the files (fetch writes the originals at their `afc_path`, offload deletes them; the
//!    `PhotoData/Metadata` derivatives and thumbnails are never touched);
//! 2. `Photos.sqlite`, through the WAL, in one transaction per asset: the `ZINTERNALRESOURCE`
//!    rows of those originals get `ZLOCALAVAILABILITY` 1 / −1, `ZDATASTOREKEYDATA` a locator /
//!    NULL, `ZFILEID` a new id / −1, `Z_OPT + 1` (spec §2.5, §4.4: `markAsNotLocallyAvailable`).
//!    The asset row is unchanged (spec §4.4). The connection never checkpoints (autocheckpoint
//!    off, no checkpoint on close), so the main file is never rewritten and the WAL only grows:
//!    a client copying `Photos.sqlite` + `-wal` meanwhile sees at worst a torn tail, which
//!    SQLite ignores (spec §8.2);
//! 3. `device.toml`'s `free_bytes` (replaced atomically, so the served phone re-reads a whole
//!    file).
//!
//! At the end `expected.json` is rewritten (atomically) so that it stays the ground truth.
//!
//! The bytes of a fetched original come from `ferry_phonegen::originals`: deterministic per
//! (image seed, asset UUID, role), exactly `db_size` long, with a header for the extension.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use ferry_phonegen::expected::{self, Expected, ExpectedAsset};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use crate::image::{PhoneImage, DEVICE_TOML};

/// Exit status of `fetch` when some selected assets did not fit in the free space.
pub const EXIT_DID_NOT_FIT: u8 = 3;

/// Roles that are originals iOS purges when optimizing storage. `adjustment_data` (a small
/// plist) is kept. Purging edit renders is ⚠ UNCONFIRMED (spec §4.4); the generator's
/// `edited_optimized` scenario assumes it, and so does `offload`.
const PURGEABLE_ROLES: [&str; 5] = [
    "primary",
    "live_video",
    "raw_alternate",
    "edit_render",
    "edit_live_video",
];

/// Which assets a command applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Every eligible asset.
    All,
    /// The N eligible assets with the oldest capture dates (no date sorts last).
    Count(usize),
    /// Exactly these assets (by `ZUUID`); an unknown UUID is an error.
    Uuids(Vec<String>),
    /// Eligible assets captured (UTC) before this day, `YYYY-MM-DD`.
    Before(String),
}

/// One file written or deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FileReport {
    /// Asset `ZUUID`.
    pub uuid: String,
    /// Resource role (`primary`, `live_video`, …).
    pub role: String,
    /// Path relative to `Media/`.
    pub afc_path: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the written file (fetch only).
    pub sha256: Option<String>,
}

/// An asset named with `--uuid` that the command left alone, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Skipped {
    /// Asset `ZUUID`.
    pub uuid: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What `fetch` / `offload` did (`--json` prints this).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Report {
    /// `fetch` or `offload`.
    pub command: String,
    /// Assets fetched / offloaded, in the order processed.
    pub assets: Vec<String>,
    /// Files written / deleted.
    pub files: Vec<FileReport>,
    /// Bytes written / freed.
    pub bytes: u64,
    /// Selected assets that were not fetched because they did not fit (fetch only), in order.
    pub not_fitting: Vec<String>,
    /// How many did not fit.
    pub not_fitting_count: usize,
    /// Named assets left alone.
    pub skipped: Vec<Skipped>,
    /// `device.toml` free_bytes before.
    pub free_bytes_before: u64,
    /// `device.toml` free_bytes after.
    pub free_bytes_after: u64,
}

impl Report {
    /// 0, or [`EXIT_DID_NOT_FIT`] when some assets did not fit.
    pub fn exit_code(&self) -> u8 {
        if self.not_fitting_count > 0 {
            EXIT_DID_NOT_FIT
        } else {
            0
        }
    }

    /// One human-readable line.
    pub fn summary(&self) -> String {
        let verb = if self.command == "fetch" {
            "fetched"
        } else {
            "offloaded"
        };
        let mut s = format!(
            "{verb} {} asset(s): {} file(s), {} bytes; free_bytes {} -> {}",
            self.assets.len(),
            self.files.len(),
            self.bytes,
            self.free_bytes_before,
            self.free_bytes_after
        );
        if self.not_fitting_count > 0 {
            s.push_str(&format!(
                "; {} asset(s) did not fit in the free space (iOS stops downloading when the \
                 phone is full)",
                self.not_fitting_count
            ));
        }
        if !self.skipped.is_empty() {
            s.push_str(&format!("; {} skipped", self.skipped.len()));
        }
        s
    }
}

/// `ferry-sim fetch`: download iCloud-only originals onto the phone.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The phone image.
    pub image: PathBuf,
    /// Which assets.
    pub selection: Selection,
    /// Write each file progressively at this many MB/s (10^6 bytes) instead of at once.
    pub rate_mb_s: Option<f64>,
}

/// `ferry-sim offload`: purge originals that are in iCloud.
#[derive(Debug, Clone)]
pub struct OffloadOptions {
    /// The phone image.
    pub image: PathBuf,
    /// Which assets.
    pub selection: Selection,
}

/// Downloads the selected iCloud-only assets' originals; stops at the first asset that does
/// not fit in `free_bytes` (the rest are reported in `not_fitting`).
pub fn fetch(opts: &FetchOptions) -> anyhow::Result<Report> {
    if let Some(r) = opts.rate_mb_s {
        if !(r.is_finite() && r > 0.0) {
            bail!("--rate must be a positive number of MB/s, got {r}");
        }
    }
    let mut job = Job::open(&opts.image, "fetch")?;
    let eligible: Vec<usize> = (0..job.exp.assets.len())
        .filter(|&i| !fetchable(&job.exp.assets[i]).is_empty())
        .collect();
    let order = job.select(&opts.selection, &eligible, |a| {
        if a.exclusion.is_some() {
            format!("excluded ({})", a.exclusion.as_deref().unwrap_or("?"))
        } else {
            "no original of it is iCloud-only (nothing to download)".to_string()
        }
    })?;
    // Resolve every row first: a disagreement between expected.json and the database stops
    // the command before anything changed.
    let mut plan = Vec::new();
    for &i in &order {
        let a = &job.exp.assets[i];
        let mut rows = Vec::new();
        for ri in fetchable(a) {
            let r = &a.resources[ri];
            let pk = job.db.resource_pk(&a.uuid, &r.role)?;
            rows.push((ri, pk));
        }
        plan.push((i, rows));
    }
    let mut outcome = Ok(());
    for (n, (i, rows)) in plan.iter().enumerate() {
        let need = rows
            .iter()
            .map(|(ri, _)| job.exp.assets[*i].resources[*ri].db_size.unwrap_or(0))
            .sum::<u64>();
        if need > job.free {
            job.report.not_fitting = plan[n..]
                .iter()
                .map(|(i, _)| job.exp.assets[*i].uuid.clone())
                .collect();
            job.report.not_fitting_count = job.report.not_fitting.len();
            break;
        }
        if let Err(e) = job.fetch_asset(*i, rows, opts.rate_mb_s) {
            outcome = Err(e);
            break;
        }
    }
    job.finish(outcome)
}

/// Purges the selected assets' originals that are safely in iCloud.
pub fn offload(opts: &OffloadOptions) -> anyhow::Result<Report> {
    let mut job = Job::open(&opts.image, "offload")?;
    let mut eligible = Vec::new();
    let mut reasons: BTreeMap<String, String> = BTreeMap::new();
    for (i, a) in job.exp.assets.iter().enumerate() {
        match offload_precheck(a) {
            Ok(()) => eligible.push(i),
            Err(reason) => {
                reasons.insert(a.uuid.clone(), reason);
            }
        }
    }
    let order = job.select(&opts.selection, &eligible, |a| {
        reasons.get(&a.uuid).cloned().unwrap_or_default()
    })?;
    let mut outcome = Ok(());
    for i in order {
        let rows = match job.purgeable(i) {
            Ok(rows) if !rows.is_empty() => rows,
            Ok(_) => continue,
            Err(reason) => {
                let uuid = job.exp.assets[i].uuid.clone();
                job.report.skipped.push(Skipped { uuid, reason });
                continue;
            }
        };
        if let Err(e) = job.offload_asset(i, &rows) {
            outcome = Err(e);
            break;
        }
    }
    job.finish(outcome)
}

/// Whether expected.json says the asset's original is on the phone and in iCloud.
fn offload_precheck(a: &ExpectedAsset) -> Result<(), String> {
    if let Some(e) = &a.exclusion {
        return Err(format!("excluded ({e})"));
    }
    let Some(primary) = a.resources.first() else {
        return Err("it has no original file".into());
    };
    if primary.action != "archive" {
        return Err("its original is not on the phone".into());
    }
    if primary.upload_state != "in_icloud" {
        return Err(format!(
            "its original is not in iCloud ({}): iOS never purges an original that exists \
             only on this phone",
            primary.upload_state
        ));
    }
    Ok(())
}

fn uuid_index(e: &Expected) -> BTreeMap<&str, usize> {
    e.assets
        .iter()
        .enumerate()
        .map(|(i, a)| (a.uuid.as_str(), i))
        .collect()
}

/// Indices of the resources of `a` to download: `fetch_on_phone`, in iCloud.
fn fetchable(a: &ExpectedAsset) -> Vec<usize> {
    if a.exclusion.is_some() {
        return Vec::new();
    }
    a.resources
        .iter()
        .enumerate()
        .filter(|(_, r)| r.action == "fetch_on_phone" && r.upload_state == "in_icloud")
        .map(|(i, _)| i)
        .collect()
}

/// An open image with its ground truth, database and lock.
struct Job {
    image: PhoneImage,
    exp: Expected,
    db: Db,
    free: u64,
    report: Report,
    media_files_delta: i64,
    media_bytes_delta: i64,
    _lock: File,
}

impl Job {
    fn open(root: &Path, command: &str) -> anyhow::Result<Job> {
        let (image, spec) = PhoneImage::open(root)?;
        let state = root.join(".ferry-sim");
        std::fs::create_dir_all(state.join("tmp"))
            .with_context(|| format!("creating {}", state.join("tmp").display()))?;
        let lock = lock(&state.join("library.lock"))?;
        let exp_path = root.join("expected.json");
        if !exp_path.exists() {
            bail!(
                "{} has no expected.json: {command} needs the ground truth written by \
                 `ferry-sim make-phone` to know which originals are iCloud-only",
                root.display()
            );
        }
        let exp = expected::read(&exp_path)?;
        let db = Db::open(&image.media().join("PhotoData/Photos.sqlite"))?;
        Ok(Job {
            image,
            exp,
            db,
            free: spec.free_bytes,
            report: Report {
                command: command.into(),
                assets: Vec::new(),
                files: Vec::new(),
                bytes: 0,
                not_fitting: Vec::new(),
                not_fitting_count: 0,
                skipped: Vec::new(),
                free_bytes_before: spec.free_bytes,
                free_bytes_after: spec.free_bytes,
            },
            media_files_delta: 0,
            media_bytes_delta: 0,
            _lock: lock,
        })
    }

    fn host_path(&self, afc_path: &str) -> anyhow::Result<PathBuf> {
        let rel = Path::new(afc_path);
        if afc_path.is_empty()
            || rel.is_absolute()
            || rel
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!("expected.json names an unsafe AFC path {afc_path:?}; regenerate the image");
        }
        Ok(self.image.media().join(rel))
    }

    /// Orders the selected eligible assets (indices into `exp.assets`) oldest first.
    fn select(
        &mut self,
        sel: &Selection,
        eligible: &[usize],
        why_not: impl Fn(&ExpectedAsset) -> String,
    ) -> anyhow::Result<Vec<usize>> {
        let mut chosen: Vec<usize> = match sel {
            Selection::All | Selection::Count(_) => eligible.to_vec(),
            Selection::Before(day) => {
                check_day(day)?;
                eligible
                    .iter()
                    .copied()
                    .filter(|&i| {
                        self.exp.assets[i]
                            .created_utc
                            .as_deref()
                            .is_some_and(|c| c.get(..10).is_some_and(|d| d < day.as_str()))
                    })
                    .collect()
            }
            Selection::Uuids(uuids) => {
                let idx = uuid_index(&self.exp);
                let ok: HashSet<usize> = eligible.iter().copied().collect();
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                let mut unknown = Vec::new();
                for u in uuids {
                    match idx.get(u.as_str()) {
                        None => unknown.push(u.clone()),
                        Some(&i) if ok.contains(&i) => {
                            if seen.insert(i) {
                                out.push(i);
                            }
                        }
                        Some(&i) => self.report.skipped.push(Skipped {
                            uuid: u.clone(),
                            reason: why_not(&self.exp.assets[i]),
                        }),
                    }
                }
                if !unknown.is_empty() {
                    bail!(
                        "no asset with UUID {} in this image (see expected.json for the \
                         library's ZUUIDs); nothing was changed",
                        unknown.join(", ")
                    );
                }
                out
            }
        };
        let assets = &self.exp.assets;
        chosen.sort_by(|&a, &b| {
            let (ca, cb) = (&assets[a].created_utc, &assets[b].created_utc);
            (ca.is_none(), ca, a).cmp(&(cb.is_none(), cb, b))
        });
        if let Selection::Count(n) = sel {
            chosen.truncate(*n);
        }
        Ok(chosen)
    }

    fn fetch_asset(
        &mut self,
        i: usize,
        rows: &[(usize, i64)],
        rate: Option<f64>,
    ) -> anyhow::Result<()> {
        let seed = self.exp.seed;
        let a = self.exp.assets[i].clone();
        let mtime = a
            .created_utc
            .as_deref()
            .and_then(unix_seconds)
            .filter(|s| *s >= 0)
            .map_or(SystemTime::UNIX_EPOCH, |s| {
                SystemTime::UNIX_EPOCH + Duration::from_secs(s as u64)
            });
        let mut written = Vec::new();
        let mut bytes = 0u64;
        let mut new_files = 0i64;
        for &(ri, _) in rows {
            let r = &a.resources[ri];
            let size = r.db_size.with_context(|| {
                format!(
                    "the {} of asset {} has no ZDATALENGTH, so its size is unknown",
                    r.role, a.uuid
                )
            })?;
            let path = self.host_path(&r.afc_path)?;
            let file_seed = ferry_phonegen::originals::seed_for(seed, &a.uuid, &r.role);
            let sha = write_original(
                &path,
                &self.image.root().join(".ferry-sim/tmp"),
                &r.afc_path,
                size,
                file_seed,
                mtime,
                rate,
            )?;
            // A partial file left by an interrupted `--rate` fetch was never charged to
            // free_bytes nor counted in expected.json: the whole size is charged now.
            bytes += size;
            new_files += 1;
            written.push((ri, size, sha));
        }
        // Only once every byte of the asset is on disk does the database say so.
        let pks: Vec<i64> = rows.iter().map(|(_, pk)| *pk).collect();
        self.db
            .mark_local(&pks)
            .with_context(|| format!("updating Photos.sqlite for asset {}", a.uuid))?;
        self.free = self.free.saturating_sub(bytes);
        write_free_bytes(self.image.root(), self.free)?;
        let asset = &mut self.exp.assets[i];
        for (ri, size, sha) in written {
            let r = &mut asset.resources[ri];
            r.action = "archive".into();
            r.db_availability = "local".into();
            r.size = Some(size);
            r.sha256 = Some(sha.clone());
            self.report.files.push(FileReport {
                uuid: asset.uuid.clone(),
                role: r.role.clone(),
                afc_path: r.afc_path.clone(),
                size,
                sha256: Some(sha),
            });
        }
        self.asset_changed(i);
        self.report.assets.push(a.uuid.clone());
        self.report.bytes += bytes;
        self.media_files_delta += new_files;
        self.media_bytes_delta += bytes as i64;
        Ok(())
    }

    /// The resources of asset `i` offload may purge (index, row pk), or why none.
    fn purgeable(&self, i: usize) -> Result<Vec<(usize, i64)>, String> {
        let a = &self.exp.assets[i];
        offload_precheck(a)?;
        let mut out = Vec::new();
        for (ri, r) in a.resources.iter().enumerate() {
            if !PURGEABLE_ROLES.contains(&r.role.as_str())
                || r.action != "archive"
                || r.upload_state != "in_icloud"
            {
                continue;
            }
            match self.db.resource_row(&a.uuid, &r.role) {
                Ok(Some(row)) if row.in_cloud => out.push((ri, row.pk)),
                Ok(Some(_)) => {
                    // The database does not say iCloud has it: never purge (spec §4.2).
                    if ri == 0 {
                        return Err("Photos.sqlite does not say its original is in iCloud \
                                    (ZREMOTEAVAILABILITY/ZFINGERPRINT)"
                            .into());
                    }
                }
                Ok(None) => {
                    if ri == 0 {
                        return Err("Photos.sqlite has no row for its original".into());
                    }
                }
                Err(e) => return Err(format!("{e:#}")),
            }
        }
        Ok(out)
    }

    fn offload_asset(&mut self, i: usize, rows: &[(usize, i64)]) -> anyhow::Result<()> {
        let a = self.exp.assets[i].clone();
        let mut freed = 0u64;
        let mut removed = 0i64;
        let mut done = Vec::new();
        for &(ri, _) in rows {
            let r = &a.resources[ri];
            let path = self.host_path(&r.afc_path)?;
            let size = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    done.push((ri, 0));
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("stat {}", path.display())),
            };
            std::fs::remove_file(&path).with_context(|| format!("deleting {}", path.display()))?;
            freed += size;
            removed += 1;
            done.push((ri, size));
        }
        let pks: Vec<i64> = rows.iter().map(|(_, pk)| *pk).collect();
        self.db
            .mark_not_local(&pks)
            .with_context(|| format!("updating Photos.sqlite for asset {}", a.uuid))?;
        let spec = self.image.read_spec()?;
        self.free = self.free.saturating_add(freed).min(spec.total_bytes);
        write_free_bytes(self.image.root(), self.free)?;
        let asset = &mut self.exp.assets[i];
        for (ri, size) in done {
            let r = &mut asset.resources[ri];
            r.action = "fetch_on_phone".into();
            r.db_availability = "icloud_only".into();
            r.size = None;
            r.sha256 = None;
            self.report.files.push(FileReport {
                uuid: asset.uuid.clone(),
                role: r.role.clone(),
                afc_path: r.afc_path.clone(),
                size,
                sha256: None,
            });
        }
        self.asset_changed(i);
        self.report.assets.push(a.uuid.clone());
        self.report.bytes += freed;
        self.media_files_delta -= removed;
        self.media_bytes_delta -= freed as i64;
        Ok(())
    }

    /// Re-derives an asset's `db_state` and `classification` after its resources changed.
    fn asset_changed(&mut self, i: usize) {
        let a = &mut self.exp.assets[i];
        if let Some(p) = a.resources.first() {
            if p.role == "primary" {
                a.db_state = p.db_availability.clone();
            }
        }
        a.classification = expected::classification(a).into();
        a.in_wal = true;
    }

    /// Writes expected.json (whatever was done so far) and returns the report or `outcome`'s
    /// error.
    fn finish(mut self, outcome: anyhow::Result<()>) -> anyhow::Result<Report> {
        self.db.close()?;
        if !self.report.assets.is_empty() {
            let t = &self.exp.totals;
            let media_files = (t.media_files as i64 + self.media_files_delta).max(0) as u64;
            let media_bytes = (t.media_bytes as i64 + self.media_bytes_delta).max(0) as u64;
            self.exp.totals = expected::totals(&self.exp.assets, media_files, media_bytes);
            let in_main = (self.exp.wal.assets_in_main_file as usize).min(self.exp.assets.len());
            self.exp.wal.assets_changed_in_wal = self.exp.assets[..in_main]
                .iter()
                .filter(|a| a.in_wal)
                .count() as u64;
            let root = self.image.root();
            let tmp = root.join(".ferry-sim/tmp/expected.json");
            expected::write(&tmp, &self.exp)?;
            std::fs::rename(&tmp, root.join("expected.json"))
                .with_context(|| format!("replacing {}", root.join("expected.json").display()))?;
        }
        self.report.free_bytes_after = self.free;
        outcome.map(|()| self.report)
    }
}

/// Takes an exclusive lock on the image so that two fetch/offload runs never interleave.
fn lock(path: &Path) -> anyhow::Result<File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: flock on a descriptor we own; no memory is shared.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        bail!(
            "another `ferry-sim fetch` or `offload` is running on this image ({} is locked); \
             wait for it to finish",
            path.display()
        );
    }
    Ok(f)
}

fn check_day(day: &str) -> anyhow::Result<()> {
    let b = day.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (1..=12).contains(&day[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&day[8..10].parse::<u32>().unwrap_or(0));
    if !ok {
        bail!("--before wants a date as YYYY-MM-DD (e.g. 2023-06-01), got {day:?}");
    }
    Ok(())
}

/// Unix seconds of an RFC 3339 UTC time as expected.json writes it (`2023-05-01T12:00:00.250Z`).
fn unix_seconds(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    // Days from civil (H. Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Writes one original at `path`. Without a rate the file is written in the image's private
/// `.ferry-sim/tmp/` and renamed into place, so it appears whole. With a rate it is written
/// under its final name, progressively: a client listing the directory mid-download sees a
/// growing file. That is how iOS is assumed to download (⚠ inferred, not documented: Apple's
/// CPL download path is not in the spec's sources).
fn write_original(
    path: &Path,
    tmp_dir: &Path,
    afc_path: &str,
    size: u64,
    seed: u64,
    mtime: SystemTime,
    rate_mb_s: Option<f64>,
) -> anyhow::Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let (target, sha) = match rate_mb_s {
        Some(rate) => {
            // A download makes a new file (⚠ inferred, as above): a symlink left at the
            // original's path is replaced, never written through (it may point anywhere, even
            // out of the image). The whole-file path below replaces it by its rename.
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                std::fs::remove_file(path)
                    .with_context(|| format!("replacing the symlink {}", path.display()))?;
            }
            let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let bytes_per_s = rate * 1e6;
            let mut w = Paced {
                inner: f,
                bytes_per_s,
                chunk: ((bytes_per_s / 20.0) as usize).clamp(512, 1 << 20),
                start: Instant::now(),
                written: 0,
            };
            let sha = ferry_phonegen::originals::write_original(&mut w, afc_path, size, seed)
                .with_context(|| format!("writing {}", path.display()))?;
            (w.inner, sha)
        }
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = tmp_dir.join(format!("fetch-{}-{name}", std::process::id()));
            let f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = BufWriter::with_capacity(1 << 16, f);
            let sha = ferry_phonegen::originals::write_original(&mut w, afc_path, size, seed)
                .with_context(|| format!("writing {}", tmp.display()))?;
            let f = w
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("moving {} to {}", tmp.display(), path.display()))?;
            (f, sha)
        }
    };
    target
        .set_modified(mtime)
        .with_context(|| format!("setting the mtime of {}", path.display()))?;
    Ok(sha)
}

/// A writer that passes at most `chunk` bytes per write straight to the file and sleeps to
/// hold `bytes_per_s`.
struct Paced {
    inner: File,
    bytes_per_s: f64,
    chunk: usize,
    start: Instant,
    written: u64,
}

impl Write for Paced {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.chunk);
        self.inner.write_all(&buf[..n])?;
        self.written += n as u64;
        let due = self.start + Duration::from_secs_f64(self.written as f64 / self.bytes_per_s);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Replaces the `free_bytes = N` line of device.toml, atomically (write + rename), keeping
/// every other line as it was.
fn write_free_bytes(root: &Path, free: u64) -> anyhow::Result<()> {
    let path = root.join(DEVICE_TOML);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut found = false;
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let key = line.split('=').next().unwrap_or("").trim();
        if !found && key == "free_bytes" && line.contains('=') {
            found = true;
            out.push_str(&format!("free_bytes = {free}\n"));
        } else {
            out.push_str(line);
        }
    }
    if !found {
        bail!("{} has no `free_bytes = N` line to update", path.display());
    }
    let tmp = root.join(".ferry-sim/tmp").join(DEVICE_TOML);
    std::fs::write(&tmp, out).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// A `ZINTERNALRESOURCE` row of an original.
struct ResourceRow {
    pk: i64,
    /// `ZREMOTEAVAILABILITY >= 1 AND ZFINGERPRINT IS NOT NULL` (spec §4.2 isInCloud).
    in_cloud: bool,
}

/// The phone's Photos.sqlite, opened in place for writing through the WAL.
struct Db {
    conn: Option<Connection>,
    path: PathBuf,
    asset_table: &'static str,
    has_target: bool,
    had_shm: bool,
    /// `ZUUID` → asset `Z_PK`, read once (ZUUID has no index).
    asset_pk: std::collections::HashMap<String, i64>,
    next_file_id: Option<i64>,
}

impl Db {
    fn open(path: &Path) -> anyhow::Result<Db> {
        if !path.exists() {
            bail!(
                "{} does not exist: the image has no photo library",
                path.display()
            );
        }
        let shm = shm_path(path);
        let had_shm = shm.exists();
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .with_context(|| format!("opening {}", path.display()))?;
        // Never checkpoint: the main file stays as it is and the WAL only grows, as on a phone
        // between checkpoints; a reader copying db + WAL meanwhile is safe (spec §8.2).
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!(
                "{} is in {mode} journal mode, not WAL as on iOS; changes cannot go through \
                 the WAL. Regenerate the image with `ferry-sim make-phone`",
                path.display()
            );
        }
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")?;
        let has = |t: &str| -> rusqlite::Result<bool> {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n > 0)
        };
        let asset_table = if has("ZASSET")? {
            "ZASSET"
        } else if has("ZGENERICASSET")? {
            "ZGENERICASSET"
        } else {
            bail!(
                "{} has neither ZASSET nor ZGENERICASSET: not a Photos library",
                path.display()
            );
        };
        if !has("ZINTERNALRESOURCE")? {
            bail!(
                "{} has no ZINTERNALRESOURCE table (iOS 11 or older is not supported)",
                path.display()
            );
        }
        let cols: HashSet<String> = {
            let mut st = conn.prepare("SELECT name FROM pragma_table_info('ZINTERNALRESOURCE')")?;
            let rows = st.query_map([], |r| r.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for c in [
            "ZLOCALAVAILABILITY",
            "ZREMOTEAVAILABILITY",
            "ZDATASTORECLASSID",
            "ZDATASTORESUBTYPE",
            "ZVERSION",
            "ZRECIPEID",
            "ZDATASTOREKEYDATA",
            "ZFILEID",
            "ZFINGERPRINT",
        ] {
            if !cols.contains(c) {
                bail!(
                    "{}: ZINTERNALRESOURCE has no {c} column; this schema is not supported",
                    path.display()
                );
            }
        }
        let asset_pk = {
            let mut st = conn.prepare(&format!(
                "SELECT ZUUID, Z_PK FROM {asset_table} WHERE ZUUID IS NOT NULL"
            ))?;
            let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        Ok(Db {
            asset_pk,
            conn: Some(conn),
            path: path.to_path_buf(),
            asset_table,
            has_target: cols.contains("ZLOCALAVAILABILITYTARGET"),
            had_shm,
            next_file_id: None,
        })
    }

    fn conn(&self) -> anyhow::Result<&Connection> {
        self.conn
            .as_ref()
            .context("internal error: Photos.sqlite already closed")
    }

    /// The original resource row of `role` for the asset `uuid` (spec §4.1).
    fn resource_row(&self, uuid: &str, role: &str) -> anyhow::Result<Option<ResourceRow>> {
        let cond = match role {
            "primary" => {
                "r.ZVERSION = 0 AND r.ZRECIPEID = 0 AND (r.ZDATASTORESUBTYPE = 1 OR \
                 (r.ZDATASTORESUBTYPE = 0 AND r.ZRESOURCETYPE = CASE a.ZKIND WHEN 1 THEN 1 ELSE 0 END))"
            }
            "live_video" => {
                "r.ZVERSION = 0 AND r.ZRECIPEID = 0 AND (r.ZDATASTORESUBTYPE = 18 OR \
                 (r.ZDATASTORESUBTYPE = 0 AND r.ZRESOURCETYPE = 3))"
            }
            "raw_alternate" => "r.ZVERSION = 0 AND r.ZRECIPEID = 0 AND r.ZDATASTORESUBTYPE = 17",
            "edit_render" => "r.ZVERSION = 2 AND r.ZDATASTORESUBTYPE IN (2, 16)",
            "edit_live_video" => "r.ZVERSION = 2 AND r.ZDATASTORESUBTYPE = 19",
            "adjustment_data" => "r.ZVERSION = 2 AND r.ZDATASTORESUBTYPE = 13",
            other => bail!("expected.json names an unknown resource role {other:?}"),
        };
        let sql = format!(
            "SELECT r.Z_PK, COALESCE(r.ZREMOTEAVAILABILITY, 0) >= 1 AND r.ZFINGERPRINT IS NOT NULL \
             FROM ZINTERNALRESOURCE r JOIN {t} a ON a.Z_PK = r.ZASSET \
             WHERE r.ZASSET = ?1 AND r.ZDATASTORECLASSID = 0 AND {cond} \
             ORDER BY r.ZDATASTORESUBTYPE <> 0 DESC, r.ZDATALENGTH DESC LIMIT 1",
            t = self.asset_table
        );
        let Some(&apk) = self.asset_pk.get(uuid) else {
            return Ok(None);
        };
        let row = self
            .conn()?
            .query_row(&sql, [apk], |r| {
                Ok(ResourceRow {
                    pk: r.get(0)?,
                    in_cloud: r.get(1)?,
                })
            })
            .optional()
            .with_context(|| format!("reading {}", self.path.display()))?;
        Ok(row)
    }

    fn resource_pk(&self, uuid: &str, role: &str) -> anyhow::Result<i64> {
        match self.resource_row(uuid, role)? {
            Some(r) => Ok(r.pk),
            None => bail!(
                "Photos.sqlite has no ZINTERNALRESOURCE row for the {role} of asset {uuid}, \
                 but expected.json lists one: the image is inconsistent; regenerate it with \
                 `ferry-sim make-phone`. Nothing was changed"
            ),
        }
    }

    /// Marks the rows local, in one transaction (spec §4.2: ZLOCALAVAILABILITY = 1 with a
    /// locator in ZDATASTOREKEYDATA and a file id).
    fn mark_local(&mut self, pks: &[i64]) -> anyhow::Result<()> {
        let mut next = match self.next_file_id {
            Some(n) => n,
            None => self.conn()?.query_row(
                "SELECT COALESCE(MAX(ZFILEID), 1000000) FROM ZINTERNALRESOURCE",
                [],
                |r| r.get::<_, i64>(0),
            )?,
        };
        let target = if self.has_target {
            ", ZLOCALAVAILABILITYTARGET = 0"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE ZINTERNALRESOURCE SET ZLOCALAVAILABILITY = 1, ZDATASTOREKEYDATA = ?1, \
             ZFILEID = ?2, Z_OPT = COALESCE(Z_OPT, 0) + 1{target} WHERE Z_PK = ?3"
        );
        let conn = self.conn.as_mut().context("internal error: closed")?;
        let tx = conn.transaction()?;
        for &pk in pks {
            next += 1;
            // Opaque locator (spec §8.7): only NULL / non-NULL matters; same shape as phonegen.
            let key = vec![
                0x03,
                0x00,
                (pk >> 24) as u8,
                (pk >> 16) as u8,
                (pk >> 8) as u8,
                pk as u8,
            ];
            tx.execute(&sql, rusqlite::params![key, next, pk])?;
        }
        tx.commit()?;
        self.next_file_id = Some(next);
        Ok(())
    }

    /// Marks the rows not local, in one transaction (Apple's `markAsNotLocallyAvailable`,
    /// spec §4.4).
    fn mark_not_local(&mut self, pks: &[i64]) -> anyhow::Result<()> {
        let conn = self.conn.as_mut().context("internal error: closed")?;
        let tx = conn.transaction()?;
        for &pk in pks {
            tx.execute(
                "UPDATE ZINTERNALRESOURCE SET ZLOCALAVAILABILITY = -1, ZDATASTOREKEYDATA = NULL, \
                 ZFILEID = -1, Z_OPT = COALESCE(Z_OPT, 0) + 1 WHERE Z_PK = ?1",
                [pk],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Closes without a checkpoint and removes the `-shm` SQLite created (a reader rebuilds
    /// it; a stale one only hurts, spec §8.1).
    fn close(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.conn.take() {
            c.close()
                .map_err(|(_, e)| e)
                .with_context(|| format!("closing {}", self.path.display()))?;
            let shm = shm_path(&self.path);
            if !self.had_shm && shm.exists() {
                std::fs::remove_file(&shm)
                    .with_context(|| format!("removing {}", shm.display()))?;
            }
        }
        Ok(())
    }
}

impl Drop for Db {
    /// An early return (bad selection, inconsistent image) still closes without a checkpoint
    /// and removes the `-shm`.
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::warn!("{e:#}");
        }
    }
}

fn shm_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-shm");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_to_unix() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(unix_seconds("2001-01-01T00:00:00.000Z"), Some(978_307_200));
        assert_eq!(
            unix_seconds("2023-05-01T12:00:00.250Z"),
            Some(1_682_942_400)
        );
        assert_eq!(unix_seconds("garbage"), None);
    }

    #[test]
    fn day_format() {
        assert!(check_day("2023-06-01").is_ok());
        for bad in [
            "2023-6-1",
            "2023-13-01",
            "20230601",
            "2023-06-00",
            "abcd-ef-gh",
        ] {
            assert!(check_day(bad).is_err(), "{bad}");
        }
    }
}
