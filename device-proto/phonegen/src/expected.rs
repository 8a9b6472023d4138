//! `expected.json`: the ground truth for an image, built from the plan's intent and the
//! hashes of the files actually written — never by running the reader.
//!
//! The format is documented in `docs/phone-image.md`. The per-asset fields mirror what
//! `ferry-photos` reports (names shared: `local`, `icloud_only`, `in_icloud`, `primary`, …)
//! plus, per resource, what a correct backup must do (`archive` with size and SHA-256,
//! `fetch_on_phone`, `unavailable`, `excluded`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::media::PFile;
use crate::plan::{Avail, PAsset, PResource, Plan, Role, Upload, CORE_DATA_EPOCH};

/// Current `format` value.
pub const FORMAT: u32 = 1;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expected {
    /// Format version of this file.
    pub format: u32,
    /// Generator name and version.
    pub generator: String,
    /// The seed.
    pub seed: u64,
    /// `ios13` … `ios18`.
    pub schema: String,
    /// `small` or `realistic`.
    pub media_size: String,
    /// Whether iCloud Photos is on in this library.
    pub icloud_photos: bool,
    /// The requested iCloud-only fraction.
    pub icloud_only_fraction: f64,
    /// How the database is split between the main file and the WAL.
    pub wal: WalSplit,
    /// Totals.
    pub totals: Totals,
    /// One entry per asset, in `Z_PK` order.
    pub assets: Vec<ExpectedAsset>,
}

/// Main file vs. WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalSplit {
    /// Assets whose rows are checkpointed into `Photos.sqlite`.
    pub assets_in_main_file: u64,
    /// Assets inserted only in `Photos.sqlite-wal`.
    pub assets_only_in_wal: u64,
    /// Main-file assets whose state (purge, trash) changes in the WAL.
    pub assets_changed_in_wal: u64,
}

/// Totals over all assets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Assets.
    pub assets: u64,
    /// Per asset classification (`archive`, `icloud_only`, `unavailable`, `excluded`).
    pub classifications: BTreeMap<String, u64>,
    /// Per exclusion reason.
    pub exclusions: BTreeMap<String, u64>,
    /// Resources to archive, and their bytes.
    pub archive_files: u64,
    /// Bytes of the resources to archive.
    pub archive_bytes: u64,
    /// Resources the user must download on the phone first.
    pub fetch_on_phone_files: u64,
    /// Resources that are neither on the phone nor in iCloud.
    pub unavailable_files: u64,
    /// Archived resources that exist only on this phone (not uploaded / iCloud off).
    pub only_on_this_phone_files: u64,
    /// Every file under `Media/` except the database, and their bytes.
    pub media_files: u64,
    /// Bytes of those files.
    pub media_bytes: u64,
}

/// One asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedAsset {
    /// `ZUUID`.
    pub uuid: String,
    /// `photo` / `video`.
    pub kind: String,
    /// `still`, `live_photo`, `screenshot`, `video`, `screen_recording`, …
    pub subtype: String,
    /// Capture time, UTC, RFC 3339 with milliseconds; `null` if `ZDATECREATED` is NULL.
    pub created_utc: Option<String>,
    /// `ZTIMEZONEOFFSET`.
    pub tz_offset_seconds: Option<i64>,
    /// `ZORIGINALFILENAME` (exact bytes, NFD names stay NFD).
    pub original_filename: Option<String>,
    /// What the database says about the primary original.
    pub db_state: String,
    /// `archive`, `icloud_only`, `unavailable` or `excluded`.
    pub classification: String,
    /// Exclusion reason, if excluded.
    pub exclusion: Option<String>,
    /// Library flags.
    pub flags: ExpectedFlags,
    /// Original resources (primary first).
    pub resources: Vec<ExpectedResource>,
    /// The generator scenario (informational, not compared).
    pub scenario: String,
    /// Rows inserted or changed in the WAL (informational, not compared).
    pub in_wal: bool,
}

/// Library flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedFlags {
    /// In Recently Deleted.
    pub trashed: bool,
    /// In Hidden.
    pub hidden: bool,
    /// Edited.
    pub edited: bool,
    /// `ZSAVEDASSETTYPE`.
    pub saved_asset_type: Option<i64>,
    /// `ZBUNDLESCOPE` (iOS 15+; `null` before).
    pub bundle_scope: Option<i64>,
    /// `none`, `mine`, `other`.
    pub shared_library: String,
    /// `ZAVALANCHEUUID`.
    pub burst_id: Option<String>,
}

/// One original resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedResource {
    /// `primary`, `live_video`, `raw_alternate`, `edit_render`, `edit_live_video`, `adjustment_data`.
    pub role: String,
    /// AFC path (relative to `Media/`).
    pub afc_path: String,
    /// Size according to the database.
    pub db_size: Option<u64>,
    /// `local`, `icloud_only`, `unavailable`, `unknown`.
    pub db_availability: String,
    /// `in_icloud`, `upload_pending`, `icloud_photos_off`, `unknown`.
    pub upload_state: String,
    /// `archive`, `fetch_on_phone`, `unavailable`, `excluded`.
    pub action: String,
    /// Size of the file on disk (archive only).
    pub size: Option<u64>,
    /// SHA-256 of the file on disk (archive only).
    pub sha256: Option<String>,
}

fn avail_name(a: Avail) -> &'static str {
    match a {
        Avail::Local => "local",
        Avail::IcloudOnly => "icloud_only",
        Avail::Unavailable => "unavailable",
        Avail::Syndication => "unknown",
    }
}

fn upload_name(plan: &Plan, u: Upload) -> &'static str {
    if !plan.icloud_on {
        return "icloud_photos_off";
    }
    match u {
        Upload::InIcloud => "in_icloud",
        Upload::Pending => "upload_pending",
        Upload::Off => "icloud_photos_off",
        Upload::Unknown => "unknown",
    }
}

fn subtype_name(kind: i64, sub: i64) -> &'static str {
    match (kind, sub) {
        (_, 1) => "panorama",
        (_, 2) => "live_photo",
        (_, 10) => "screenshot",
        (1, 0) | (_, 100) => "video",
        (_, 101) => "slomo",
        (_, 102) => "timelapse",
        (_, 103) => "screen_recording",
        (0, 0) => "still",
        _ => "other",
    }
}

/// Formats Core Data seconds as UTC RFC 3339 with milliseconds.
pub(crate) fn utc(core_data: f64) -> String {
    let ms = (core_data * 1000.0).round() as i64 + CORE_DATA_EPOCH * 1000;
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil-from-days (H. Hinnant).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        sod / 3600,
        (sod % 3600) / 60,
        sod % 60,
        ms.rem_euclid(1000)
    )
}

fn resource(
    plan: &Plan,
    a: &PAsset,
    r: &PResource,
    hashes: &[String],
    files: &[PFile],
) -> ExpectedResource {
    let upload = upload_name(plan, r.upload);
    let (action, size, sha) = if a.excluded.is_some() {
        ("excluded", None, None)
    } else if let Some(f) = r.file {
        (
            "archive",
            files.get(f).map(|f| f.size),
            hashes.get(f).cloned(),
        )
    } else if upload == "in_icloud" {
        ("fetch_on_phone", None, None)
    } else {
        ("unavailable", None, None)
    };
    ExpectedResource {
        role: r.role.map_or("derivative", Role::as_str).to_string(),
        afc_path: r.path.clone(),
        db_size: Some(r.len),
        db_availability: avail_name(r.avail).to_string(),
        upload_state: upload.to_string(),
        action: action.to_string(),
        size,
        sha256: sha,
    }
}

fn asset(plan: &Plan, a: &PAsset, hashes: &[String], files: &[PFile]) -> ExpectedAsset {
    let primary = a
        .resources
        .iter()
        .find(|r| r.role == Some(Role::Primary) && r.class == 0);
    let mut resources = Vec::new();
    if let (Some(dir), Some(file)) = (&a.dir, &a.filename) {
        match primary {
            Some(r) => resources.push(resource(plan, a, r, hashes, files)),
            None => {
                // No class-0 row (shared-album store): the reader still lists the path.
                let upload = if plan.icloud_on {
                    "unknown"
                } else {
                    "icloud_photos_off"
                };
                let (action, size, sha) = if a.excluded.is_some() {
                    ("excluded", None, None)
                } else {
                    ("unavailable", None, None)
                };
                resources.push(ExpectedResource {
                    role: "primary".into(),
                    afc_path: format!("{dir}/{file}"),
                    db_size: Some(a.original_size),
                    db_availability: "unknown".into(),
                    upload_state: upload.into(),
                    action: action.into(),
                    size,
                    sha256: sha,
                });
            }
        }
        for role in [
            Role::LiveVideo,
            Role::RawAlternate,
            Role::EditRender,
            Role::EditLiveVideo,
            Role::AdjustmentData,
        ] {
            if let Some(r) = a
                .resources
                .iter()
                .find(|r| r.role == Some(role) && r.class == 0)
            {
                resources.push(resource(plan, a, r, hashes, files));
            }
        }
    }
    let classification = match (a.excluded, resources.first().map(|r| r.action.as_str())) {
        (Some(_), _) => "excluded",
        (None, Some("archive")) => "archive",
        (None, Some("fetch_on_phone")) => "icloud_only",
        _ => "unavailable",
    };
    ExpectedAsset {
        uuid: a.uuid.clone(),
        kind: if a.kind == 1 { "video" } else { "photo" }.into(),
        subtype: subtype_name(a.kind, a.subtype).into(),
        created_utc: a.created.map(utc),
        tz_offset_seconds: Some(a.tz_offset),
        original_filename: a.original_filename.clone(),
        db_state: primary.map_or("unknown", |r| avail_name(r.avail)).into(),
        classification: classification.into(),
        exclusion: a.excluded.map(str::to_string),
        flags: ExpectedFlags {
            trashed: a.trashed,
            hidden: a.hidden,
            edited: a.edited,
            saved_asset_type: Some(a.saved_type),
            bundle_scope: (plan.version >= 15).then_some(a.bundle_scope),
            shared_library: match a.spl {
                Some(true) => "mine",
                Some(false) => "other",
                None => "none",
            }
            .into(),
            burst_id: a.burst.as_ref().map(|b| b.0.clone()),
        },
        resources,
        scenario: a.scenario.into(),
        in_wal: a.in_wal,
    }
}

/// Builds the ground truth.
pub(crate) fn build(plan: &Plan, hashes: &[String], header: Expected) -> Expected {
    let files = &plan.files;
    let assets: Vec<ExpectedAsset> = plan
        .assets
        .iter()
        .map(|a| asset(plan, a, hashes, files))
        .collect();
    let t = totals(
        &assets,
        files.len() as u64,
        files.iter().map(|f| f.size).sum(),
    );
    let changed = plan.assets[..plan.wal_start]
        .iter()
        .filter(|a| a.in_wal)
        .count() as u64;
    Expected {
        wal: WalSplit {
            assets_in_main_file: plan.wal_start as u64,
            assets_only_in_wal: (plan.assets.len() - plan.wal_start) as u64,
            assets_changed_in_wal: changed,
        },
        totals: t,
        assets,
        ..header
    }
}

/// The totals over `assets`; `media_files`/`media_bytes` (every file under `Media/` except the
/// database) cannot be derived from the assets and are passed in.
pub fn totals(assets: &[ExpectedAsset], media_files: u64, media_bytes: u64) -> Totals {
    let mut t = Totals {
        assets: assets.len() as u64,
        media_files,
        media_bytes,
        ..Totals::default()
    };
    for a in assets {
        *t.classifications
            .entry(a.classification.clone())
            .or_default() += 1;
        if let Some(e) = &a.exclusion {
            *t.exclusions.entry(e.clone()).or_default() += 1;
        }
        for r in &a.resources {
            match r.action.as_str() {
                "archive" => {
                    t.archive_files += 1;
                    t.archive_bytes += r.size.unwrap_or(0);
                    if r.db_availability == "local"
                        && matches!(
                            r.upload_state.as_str(),
                            "upload_pending" | "icloud_photos_off"
                        )
                    {
                        t.only_on_this_phone_files += 1;
                    }
                }
                "fetch_on_phone" => t.fetch_on_phone_files += 1,
                "unavailable" => t.unavailable_files += 1,
                _ => {}
            }
        }
    }
    t
}

/// The asset classification that follows from its resources: `excluded` if it has an
/// exclusion, else what its primary's action says (`archive`, `icloud_only` for
/// `fetch_on_phone`, otherwise `unavailable`).
pub fn classification(a: &ExpectedAsset) -> &'static str {
    match (&a.exclusion, a.resources.first().map(|r| r.action.as_str())) {
        (Some(_), _) => "excluded",
        (None, Some("archive")) => "archive",
        (None, Some("fetch_on_phone")) => "icloud_only",
        _ => "unavailable",
    }
}

/// Writes `expected.json`: the header pretty-printed, then one asset per line (diffable and
/// compact for 100k assets).
pub fn write(path: &Path, e: &Expected) -> anyhow::Result<()> {
    let mut head = e.clone();
    head.assets = Vec::new();
    let head = serde_json::to_string_pretty(&head)?;
    let head = head
        .trim_end()
        .strip_suffix("\"assets\": []\n}")
        .context("internal error: unexpected JSON layout")?;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    out.write_all(head.as_bytes())?;
    out.write_all(b"\"assets\": [\n")?;
    for (i, a) in e.assets.iter().enumerate() {
        out.write_all(b"    ")?;
        serde_json::to_writer(&mut out, a)?;
        out.write_all(if i + 1 < e.assets.len() {
            b",\n"
        } else {
            b"\n"
        })?;
    }
    out.write_all(b"  ]\n}\n")?;
    out.flush()?;
    Ok(())
}

/// Reads an `expected.json`.
pub fn read(path: &Path) -> anyhow::Result<Expected> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    serde_json::from_reader(std::io::BufReader::new(f))
        .with_context(|| format!("parsing {}", path.display()))
}
