//! Opening a copy of `Photos.sqlite` and streaming one [`AssetRecord`] per asset.
//!
//! Two set-based queries, one pass each (spec §8.5): a sequential scan of the class-0
//! original/edit rows of `ZINTERNALRESOURCE` (spec §4.1), sorted by asset in memory (a few MB
//! per 100k assets), then the asset table in `Z_PK` order joined with its attributes and cloud
//! master. The two are merged and each asset is handed to the caller as a finished record, so
//! records stream and memory grows only with the number of original resources. Optional
//! columns are selected only when `PRAGMA table_info` shows them ([`Schema::has`]); absent ones
//! read as NULL.
//!
//! Values are read leniently (`ValueRef`): SQLite is dynamically typed and the file comes from
//! the phone, so a text where an integer belongs becomes "unknown", never a panic.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, Row};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::path::AfcPath;
use crate::record::*;
use crate::schema::Schema;
use crate::wal::{check_wal, WalReport};

/// An open, read-only Photos database (a private copy; see [`crate::snapshot`]).
#[derive(Debug)]
pub struct PhotosDb {
    conn: Connection,
    path: PathBuf,
    schema: Schema,
    wal: WalReport,
}

/// Library-wide facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LibraryInfo {
    /// False when no asset has an iCloud GUID or a non-zero cloud state and no original is
    /// remotely available: iCloud Photos is (and was) off, every original should be local.
    pub icloud_photos_on: bool,
    /// `PLModelVersion`, for logging.
    pub model_version: Option<i64>,
}

/// Counts from a finished scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScanSummary {
    /// Records produced.
    pub assets: u64,
    /// Of which excluded by default.
    pub excluded: u64,
    /// True if the visitor stopped the scan early.
    pub stopped_early: bool,
}

impl PhotosDb {
    /// Opens the database at `path` read-only. The `-wal` next to it is checked first (see
    /// [`crate::wal`]) and then used by SQLite; the file is never opened with `immutable=1`,
    /// which would silently ignore the WAL. The directory must be writable (SQLite needs a
    /// `-shm` for a WAL database), so open a private copy, not the phone's file.
    pub fn open(path: &Path) -> Result<PhotosDb> {
        if let Err(e) = std::fs::metadata(path) {
            return Err(Error::Io {
                action: "opening",
                path: path.to_path_buf(),
                source: e,
            });
        }
        let wal = check_wal(&sibling(path, "-wal"))?;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|source| Error::Open {
            path: path.to_path_buf(),
            source,
        })?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| Error::from_sqlite(path, e))?;
        let schema = Schema::detect(&conn, path)?;
        Ok(PhotosDb {
            conn,
            path: path.to_path_buf(),
            schema,
            wal,
        })
    }

    /// The detected schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// What the WAL check found.
    pub fn wal_report(&self) -> &WalReport {
        &self.wal
    }

    /// Runs `PRAGMA quick_check`; damage becomes [`Error::Corrupt`].
    pub fn quick_check(&self) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("PRAGMA quick_check(5)")
            .map_err(|e| self.sql_err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql_err(e))?;
        let mut problems = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.sql_err(e))? {
            if let Some(t) = text(row, 0) {
                if t != "ok" {
                    problems.push(t);
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Corrupt {
                path: self.path.clone(),
                detail: format!("quick_check: {}", problems.join("; ")),
            })
        }
    }

    /// Library-wide facts (one cheap query).
    pub fn library_info(&self) -> Result<LibraryInfo> {
        let t = self.schema.asset_table;
        let mut parts = Vec::new();
        if self.schema.has(t, "ZCLOUDASSETGUID") {
            parts.push(format!(
                "EXISTS(SELECT 1 FROM {t} WHERE ZCLOUDASSETGUID IS NOT NULL)"
            ));
        }
        if self.schema.has(t, "ZCLOUDLOCALSTATE") {
            parts.push(format!(
                "EXISTS(SELECT 1 FROM {t} WHERE ZCLOUDLOCALSTATE <> 0)"
            ));
        }
        parts.push(
            "EXISTS(SELECT 1 FROM ZINTERNALRESOURCE WHERE ZDATASTORECLASSID = 0 \
             AND ZREMOTEAVAILABILITY >= 1)"
                .to_string(),
        );
        let sql = format!("SELECT {}", parts.join(" OR "));
        let on: i64 = self
            .conn
            .query_row(&sql, [], |row| Ok(int(row, 0).unwrap_or(0)))
            .map_err(|e| self.sql_err(e))?;
        Ok(LibraryInfo {
            icloud_photos_on: on != 0,
            model_version: self.schema.model_version,
        })
    }

    /// Reads every asset into memory. Prefer [`PhotosDb::scan`] for large libraries.
    pub fn read_all(&self) -> Result<Vec<AssetRecord>> {
        let mut out = Vec::new();
        self.scan(|r| {
            out.push(r);
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Streams one record per asset, in `Z_PK` order, to `visit`. Return
    /// `ControlFlow::Break(())` to stop early.
    pub fn scan(
        &self,
        mut visit: impl FnMut(AssetRecord) -> ControlFlow<()>,
    ) -> Result<ScanSummary> {
        let ctx = Context {
            icloud_on: self.library_info()?.icloud_photos_on,
            contributors: self.contributors()?,
        };
        let resources = self.original_resources()?;
        let sql = self.asset_query();
        tracing::debug!(%sql, "asset query");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql_err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql_err(e))?;
        let mut summary = ScanSummary::default();
        // Both sides are ordered by asset Z_PK: walk the resource list alongside the assets.
        let mut next = 0usize;
        while let Some(row) = rows.next().map_err(|e| self.sql_err(e))? {
            let pk = int(row, A_PK).unwrap_or(i64::MIN);
            let mut pending = Pending::from_row(pk, row);
            while let Some((asset, _)) = resources.get(next) {
                if *asset > pk {
                    break;
                }
                if *asset == pk {
                    pending.add(resources[next].1.clone());
                }
                next += 1;
            }
            let record = pending.finish(&ctx);
            summary.assets += 1;
            if record.exclusion.is_some() {
                summary.excluded += 1;
            }
            if visit(record).is_break() {
                summary.stopped_early = true;
                break;
            }
        }
        Ok(summary)
    }

    /// The class-0 original and current-edit rows of `ZINTERNALRESOURCE`, sorted by asset.
    ///
    /// One sequential scan of the table is much cheaper than an index lookup per asset on a
    /// large library (spec §8.5). Memory is ~50 bytes per original resource (a few MB per
    /// 100k assets); derivative and thumbnail rows are filtered out by SQLite.
    fn original_resources(&self) -> Result<Vec<(i64, ResRow)>> {
        let s = &self.schema;
        let r = |c: &str| s.col("ZINTERNALRESOURCE", "r", c);
        let fp = if s.has("ZINTERNALRESOURCE", "ZFINGERPRINT") {
            "(r.ZFINGERPRINT IS NOT NULL)".to_string()
        } else {
            // Without the column we cannot apply the fingerprint condition; assume it holds.
            "1".to_string()
        };
        let cols = [
            "r.ZASSET".to_string(),
            r("ZDATASTORESUBTYPE"),
            r("ZRESOURCETYPE"),
            r("ZVERSION"),
            r("ZRECIPEID"),
            r("ZLOCALAVAILABILITY"),
            r("ZREMOTEAVAILABILITY"),
            r("ZDATALENGTH"),
            fp,
            r("ZCLOUDLOCALSTATE"),
        ];
        // Class 0 = the primary (CPL) store; version 0 + recipe 0 = originals, version 2 =
        // the current edit (spec §4.1). Odd recipes (derivatives) never qualify.
        let sql = format!(
            "SELECT {} FROM ZINTERNALRESOURCE r WHERE r.ZASSET IS NOT NULL \
             AND r.ZDATASTORECLASSID = 0 AND ((r.ZVERSION = 0 AND r.ZRECIPEID = 0) OR r.ZVERSION = 2)",
            cols.join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql_err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql_err(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.sql_err(e))? {
            if let Some(asset) = int(row, 0) {
                out.push((asset, ResRow::from_row(row)));
            }
        }
        // Stable: rows of one asset keep their table order.
        out.sort_by_key(|(asset, _)| *asset);
        Ok(out)
    }

    fn sql_err(&self, e: rusqlite::Error) -> Error {
        Error::from_sqlite(&self.path, e)
    }

    /// Asset `Z_PK` → Shared Library contributor (iOS 16+).
    fn contributors(&self) -> Result<HashMap<i64, SharedLibrary>> {
        let mut out = HashMap::new();
        let Some(col) = self.schema.contributor_asset_column.as_deref() else {
            return Ok(out);
        };
        let sql = if self.schema.has("ZASSETCONTRIBUTOR", "ZPARTICIPANT")
            && self.schema.has("ZSHAREPARTICIPANT", "ZISCURRENTUSER")
            && self.schema.has("ZSHAREPARTICIPANT", "Z_PK")
        {
            format!(
                "SELECT c.{col}, p.ZISCURRENTUSER FROM ZASSETCONTRIBUTOR c \
                 LEFT JOIN ZSHAREPARTICIPANT p ON p.Z_PK = c.ZPARTICIPANT"
            )
        } else {
            format!("SELECT c.{col}, NULL FROM ZASSETCONTRIBUTOR c")
        };
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.sql_err(e))?;
        let mut rows = stmt.query([]).map_err(|e| self.sql_err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.sql_err(e))? {
            let Some(asset) = int(row, 0) else { continue };
            let this = match int(row, 1) {
                Some(1) => SharedLibrary::Mine,
                Some(0) => SharedLibrary::Other,
                _ => SharedLibrary::Unknown,
            };
            let entry = out.entry(asset).or_insert(this);
            // Any contribution by the current user makes it "mine"; otherwise a known other
            // participant beats unknown.
            *entry = match (*entry, this) {
                (SharedLibrary::Mine, _) | (_, SharedLibrary::Mine) => SharedLibrary::Mine,
                (SharedLibrary::Other, _) | (_, SharedLibrary::Other) => SharedLibrary::Other,
                (e, _) => e,
            };
        }
        Ok(out)
    }

    fn asset_query(&self) -> String {
        let s = &self.schema;
        let t = s.asset_table;
        let a = |c: &str| s.col(t, "a", c);
        let aa_join =
            if s.has("ZADDITIONALASSETATTRIBUTES", "Z_PK") && s.has(t, "ZADDITIONALATTRIBUTES") {
                Some("LEFT JOIN ZADDITIONALASSETATTRIBUTES aa ON aa.Z_PK = a.ZADDITIONALATTRIBUTES")
            } else if s.has("ZADDITIONALASSETATTRIBUTES", "ZASSET") {
                Some("LEFT JOIN ZADDITIONALASSETATTRIBUTES aa ON aa.ZASSET = a.Z_PK")
            } else {
                None
            };
        let aa = |c: &str| {
            if aa_join.is_some() {
                s.col("ZADDITIONALASSETATTRIBUTES", "aa", c)
            } else {
                "NULL".to_string()
            }
        };
        let cm_join = s.has("ZCLOUDMASTER", "Z_PK")
            && s.has("ZCLOUDMASTER", "ZORIGINALFILENAME")
            && s.has(t, "ZMASTER");
        let mut edited = Vec::new();
        if s.has(t, "ZADJUSTMENTSSTATE") {
            edited.push("COALESCE(a.ZADJUSTMENTSSTATE > 0, 0)");
        }
        if s.has(t, "ZHASADJUSTMENTS") {
            edited.push("COALESCE(a.ZHASADJUSTMENTS = 1, 0)");
        }
        let edited = if edited.is_empty() {
            "NULL".to_string()
        } else {
            format!("({})", edited.join(" OR "))
        };
        let cols = [
            "a.Z_PK".to_string(),
            a("ZUUID"),
            a("ZDIRECTORY"),
            a("ZFILENAME"),
            a("ZKIND"),
            a("ZKINDSUBTYPE"),
            a("ZTRASHEDSTATE"),
            a("ZSAVEDASSETTYPE"),
            a("ZBUNDLESCOPE"),
            a("ZHIDDEN"),
            a("ZDATECREATED"),
            a("ZAVALANCHEUUID"),
            a("ZAVALANCHEPICKTYPE"),
            edited,
            a("ZACTIVELIBRARYSCOPEPARTICIPATIONSTATE"),
            if s.has(t, "ZCLOUDASSETGUID") {
                "(a.ZCLOUDASSETGUID IS NOT NULL)".to_string()
            } else {
                "NULL".to_string()
            },
            a("ZDEFERREDPROCESSINGNEEDED"),
            aa("ZORIGINALFILENAME"),
            aa("ZORIGINALFILESIZE"),
            aa("ZTIMEZONEOFFSET"),
            aa("ZTIMEZONENAME"),
            if cm_join {
                "cm.ZORIGINALFILENAME".to_string()
            } else {
                "NULL".to_string()
            },
        ];
        let mut sql = format!("SELECT {} FROM {t} a", cols.join(", "));
        if let Some(j) = aa_join {
            sql.push(' ');
            sql.push_str(j);
        }
        if cm_join {
            sql.push_str(" LEFT JOIN ZCLOUDMASTER cm ON cm.Z_PK = a.ZMASTER");
        }
        sql.push_str(" ORDER BY a.Z_PK");
        sql
    }
}

/// `path` + suffix (`Photos.sqlite` → `Photos.sqlite-wal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

// Column indexes of the asset query.
const A_PK: usize = 0;
const A_UUID: usize = 1;
const A_DIR: usize = 2;
const A_FILE: usize = 3;
const A_KIND: usize = 4;
const A_SUB: usize = 5;
const A_TRASH: usize = 6;
const A_SAVED: usize = 7;
const A_BUNDLE: usize = 8;
const A_HIDDEN: usize = 9;
const A_DATE: usize = 10;
const A_BURST: usize = 11;
const A_PICK: usize = 12;
const A_EDITED: usize = 13;
const A_SPL: usize = 14;
const A_GUID: usize = 15;
const A_DEFERRED: usize = 16;
const AA_NAME: usize = 17;
const AA_SIZE: usize = 18;
const AA_TZ: usize = 19;
const AA_TZNAME: usize = 20;
const CM_NAME: usize = 21;
// Column indexes of the resource query.
const R_SUB: usize = 1;
const R_TYPE: usize = 2;
const R_VERSION: usize = 3;
const R_RECIPE: usize = 4;
const R_LA: usize = 5;
const R_RA: usize = 6;
const R_LEN: usize = 7;
const R_FP: usize = 8;
const R_CLOUD: usize = 9;

fn int(row: &Row<'_>, i: usize) -> Option<i64> {
    match row.get_ref(i) {
        Ok(ValueRef::Integer(v)) => Some(v),
        Ok(ValueRef::Real(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 => {
            Some(f as i64)
        }
        _ => None,
    }
}

fn real(row: &Row<'_>, i: usize) -> Option<f64> {
    match row.get_ref(i) {
        Ok(ValueRef::Integer(v)) => Some(v as f64),
        Ok(ValueRef::Real(f)) if f.is_finite() => Some(f),
        _ => None,
    }
}

/// Text; `Err` for text that is not UTF-8 (so paths are never silently altered).
fn strict_text(row: &Row<'_>, i: usize) -> Result<Option<String>, ()> {
    match row.get_ref(i) {
        Ok(ValueRef::Text(t)) => String::from_utf8(t.to_vec()).map(Some).map_err(|_| ()),
        _ => Ok(None),
    }
}

/// Text, lossily decoded (names shown to the user).
fn text(row: &Row<'_>, i: usize) -> Option<String> {
    match row.get_ref(i) {
        Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
        _ => None,
    }
}

struct Context {
    icloud_on: bool,
    contributors: HashMap<i64, SharedLibrary>,
}

/// One class-0 `ZINTERNALRESOURCE` row of interest.
///
/// Small enums are kept as `i32` (a value outside that range is as unknown as NULL), so a
/// library's worth of rows stays compact.
#[derive(Debug, Clone)]
struct ResRow {
    subtype: Option<i32>,
    rtype: Option<i32>,
    version: Option<i32>,
    recipe: Option<i32>,
    la: Option<i32>,
    ra: Option<i32>,
    len: Option<i64>,
    fp: bool,
    cloud: Option<i32>,
}

fn small(row: &Row<'_>, i: usize) -> Option<i32> {
    int(row, i).and_then(|v| i32::try_from(v).ok())
}

impl ResRow {
    fn from_row(row: &Row<'_>) -> ResRow {
        ResRow {
            subtype: small(row, R_SUB),
            rtype: small(row, R_TYPE),
            version: small(row, R_VERSION),
            recipe: small(row, R_RECIPE),
            la: small(row, R_LA),
            ra: small(row, R_RA),
            len: int(row, R_LEN),
            fp: int(row, R_FP).unwrap_or(0) != 0,
            cloud: small(row, R_CLOUD),
        }
    }

    /// Spec §4.2, per row.
    fn availability(&self) -> Availability {
        match self.la {
            Some(1) => Availability::Local,
            Some(-32_768) => Availability::Unknown,
            Some(la) if la <= -1 => match self.ra {
                Some(ra) if ra >= 1 && self.fp => Availability::IcloudOnly,
                Some(ra) if ra >= 1 => Availability::Unknown,
                Some(_) => Availability::Unavailable,
                None => Availability::Unknown,
            },
            _ => Availability::Unknown,
        }
    }

    /// ⚠ UNCONFIRMED rule, see [`UploadState`].
    fn upload(&self, icloud_on: bool) -> UploadState {
        if !icloud_on {
            return UploadState::IcloudPhotosOff;
        }
        if (self.ra.is_some_and(|ra| ra >= 1) && self.fp) || self.cloud == Some(3) {
            return UploadState::InIcloud;
        }
        if self.la == Some(1) && (self.ra == Some(0) || matches!(self.cloud, Some(0 | 1))) {
            return UploadState::UploadPending;
        }
        UploadState::Unknown
    }

    fn size(&self) -> Option<u64> {
        self.len.and_then(|l| u64::try_from(l).ok())
    }
}

/// The best row for a role: most available first, CPL-typed before the subtype-0 fallback,
/// then the largest (spec §4.1 "prefer subtype 1, then the largest ZDATALENGTH").
fn best(rows: &[ResRow]) -> Option<&ResRow> {
    rows.iter().min_by_key(|r| {
        (
            r.availability(),
            r.subtype == Some(0),
            std::cmp::Reverse(r.len.unwrap_or(-1)),
        )
    })
}

/// An asset whose resource rows are still being collected.
struct Pending {
    pk: i64,
    uuid: Result<Option<String>, ()>,
    dir: Result<Option<String>, ()>,
    file: Result<Option<String>, ()>,
    kind: AssetKind,
    subtype: AssetSubtype,
    trashed: Option<i64>,
    saved: Option<i64>,
    bundle: Option<i64>,
    hidden: Option<i64>,
    date: Option<f64>,
    burst: Option<String>,
    pick: Option<i64>,
    edited: Option<i64>,
    spl_active: Option<i64>,
    icloud_asset: Option<i64>,
    deferred: Option<i64>,
    original_filename: Option<String>,
    original_size: Option<i64>,
    tz: Option<i64>,
    tz_name: Option<String>,
    primary: Vec<ResRow>,
    live: Vec<ResRow>,
    raw: Vec<ResRow>,
    render: Vec<(ResRow, bool)>,
    live_render: Vec<ResRow>,
    adjustments: Vec<ResRow>,
}

impl Pending {
    fn from_row(pk: i64, row: &Row<'_>) -> Pending {
        let kind = AssetKind::from_db(int(row, A_KIND));
        Pending {
            pk,
            uuid: strict_text(row, A_UUID),
            dir: strict_text(row, A_DIR),
            file: strict_text(row, A_FILE),
            kind,
            subtype: AssetSubtype::from_db(kind, int(row, A_SUB)),
            trashed: int(row, A_TRASH),
            saved: int(row, A_SAVED),
            bundle: int(row, A_BUNDLE),
            hidden: int(row, A_HIDDEN),
            date: real(row, A_DATE),
            burst: text(row, A_BURST),
            pick: int(row, A_PICK),
            edited: int(row, A_EDITED),
            spl_active: int(row, A_SPL),
            icloud_asset: int(row, A_GUID),
            deferred: int(row, A_DEFERRED),
            original_filename: text(row, AA_NAME).or_else(|| text(row, CM_NAME)),
            original_size: int(row, AA_SIZE),
            tz: int(row, AA_TZ),
            tz_name: text(row, AA_TZNAME),
            primary: Vec::new(),
            live: Vec::new(),
            raw: Vec::new(),
            render: Vec::new(),
            live_render: Vec::new(),
            adjustments: Vec::new(),
        }
    }

    /// Sorts a resource row into its role (spec §4.1). The subtype-0 branches are the
    /// fallback for libraries that never had iCloud Photos on (⚠ UNCONFIRMED, spec §4.1/§10).
    fn add(&mut self, r: ResRow) {
        let sub = r.subtype.unwrap_or(-1);
        let rtype = r.rtype.unwrap_or(-1);
        let recipe = r.recipe.unwrap_or(-1);
        match r.version {
            Some(0) => {
                let primary_type = if self.kind == AssetKind::Video { 1 } else { 0 };
                if sub == 1 || (sub == 0 && rtype == primary_type) {
                    self.primary.push(r);
                } else if sub == 18 || (sub == 0 && rtype == 3) {
                    self.live.push(r);
                } else if sub == 17 {
                    self.raw.push(r);
                }
            }
            Some(2) => {
                if sub == 2 || (sub == 0 && rtype == 0 && recipe == 65938) {
                    self.render.push((r, false));
                } else if sub == 16
                    || (sub == 0 && rtype == 1 && matches!(recipe, 131_072 | 131_075))
                {
                    self.render.push((r, true));
                } else if sub == 19 || (sub == 0 && rtype == 3 && recipe == 131_272) {
                    self.live_render.push(r);
                } else if sub == 13 || (sub == 0 && matches!(rtype, 6 | 8) && recipe == 0) {
                    self.adjustments.push(r);
                }
            }
            _ => {}
        }
    }

    fn exclusion(&self, path: &Result<AfcPath, Exclusion>) -> Option<Exclusion> {
        let saved = self.saved;
        let bundle = self.bundle;
        if self.trashed.is_some_and(|t| t != 0) {
            return Some(Exclusion::Trashed);
        }
        if saved == Some(4) || bundle == Some(2) {
            return Some(Exclusion::SharedAlbum);
        }
        if saved == Some(8) || bundle == Some(1) {
            return Some(Exclusion::IcloudLink);
        }
        if saved == Some(12) || bundle == Some(3) {
            return Some(Exclusion::SharedWithYou);
        }
        if saved == Some(9) {
            return Some(Exclusion::Placeholder);
        }
        match &self.uuid {
            Ok(Some(u)) if !u.is_empty() => {}
            Ok(_) => return Some(Exclusion::BadRow("ZUUID is NULL".into())),
            Err(()) => return Some(Exclusion::BadRow("ZUUID is not UTF-8".into())),
        }
        path.as_ref().err().cloned()
    }

    fn path(&self) -> Result<AfcPath, Exclusion> {
        let (Ok(dir), Ok(file)) = (&self.dir, &self.file) else {
            return Err(Exclusion::InvalidPath(
                "ZDIRECTORY or ZFILENAME is not UTF-8".into(),
            ));
        };
        let p =
            AfcPath::from_db(dir.as_deref(), file.as_deref()).map_err(|e| Exclusion::path(&e))?;
        if p.is_in_derivative_area() {
            return Err(Exclusion::InvalidPath(format!(
                "{p} is in a derivative area (Metadata/Thumbnails/Mutations), never an original"
            )));
        }
        Ok(p)
    }

    fn finish(self, ctx: &Context) -> AssetRecord {
        let path = self.path();
        let exclusion = self.exclusion(&path);
        let primary_row = best(&self.primary);
        let db_state = primary_row.map_or(Availability::Unknown, ResRow::availability);
        let mut resources = Vec::new();
        if let Ok(path) = &path {
            resources = self.resources(path, primary_row, ctx);
        }
        let shared_library = if self.spl_active == Some(1) {
            ctx.contributors
                .get(&self.pk)
                .copied()
                .unwrap_or(SharedLibrary::Unknown)
        } else {
            SharedLibrary::None
        };
        AssetRecord {
            pk: self.pk,
            uuid: self.uuid.ok().flatten().unwrap_or_default(),
            kind: self.kind,
            subtype: self.subtype,
            created_core_data: self.date,
            tz_offset_seconds: self.tz,
            tz_name: self.tz_name,
            original_filename: self.original_filename,
            db_state,
            exclusion,
            resources,
            flags: LibraryFlags {
                trashed: self.trashed.is_some_and(|t| t != 0),
                hidden: self.hidden == Some(1),
                edited: self.edited.is_some_and(|e| e != 0),
                saved_asset_type: self.saved,
                bundle_scope: self.bundle,
                shared_library,
                burst_id: self.burst,
                burst_pick_type: self.pick,
                deferred_processing: self.deferred.is_some_and(|d| d != 0),
                icloud_asset: self.icloud_asset.is_some_and(|g| g != 0),
            },
        }
    }

    fn resources(
        &self,
        path: &AfcPath,
        primary: Option<&ResRow>,
        ctx: &Context,
    ) -> Vec<OriginalResource> {
        let mut out = Vec::new();
        let make = |role, location, row: &ResRow| OriginalResource {
            role,
            location,
            expected_size: row.size(),
            availability: row.availability(),
            upload: row.upload(ctx.icloud_on),
        };
        // The primary is listed even without a resource row: the file decides then.
        out.push(OriginalResource {
            role: ResourceRole::Primary,
            location: ResourceLocation::Exact(path.clone()),
            expected_size: primary
                .and_then(ResRow::size)
                .or_else(|| self.original_size.and_then(|s| u64::try_from(s).ok())),
            availability: primary.map_or(Availability::Unknown, ResRow::availability),
            upload: match primary {
                Some(r) => r.upload(ctx.icloud_on),
                None if !ctx.icloud_on => UploadState::IcloudPhotosOff,
                None => UploadState::Unknown,
            },
        });
        let Some(dir) = path.parent() else { return out };
        let stem = path.file_stem().to_string();
        let primary_ext = path.extension().unwrap_or("").to_string();
        if let Some(r) = best(&self.live) {
            if let Ok(p) = dir.join(&format!("{stem}.MOV")) {
                out.push(make(ResourceRole::LiveVideo, ResourceLocation::Exact(p), r));
            }
        }
        if let Some(r) = best(&self.raw) {
            // ⚠ UNCONFIRMED on device: the alternate sits beside the primary as <stem>.<ext>
            // (spec §5.5); the extension is not in the database in a form we trust.
            let loc = ResourceLocation::AnyExtension {
                dir: dir.clone(),
                stem: stem.clone(),
                exclude_extensions: vec![primary_ext.clone(), "MOV".into(), "AAE".into()],
            };
            out.push(make(ResourceRole::RawAlternate, loc, r));
        }
        // Edits live in PhotoData/Mutations/<ZDIRECTORY>/<stem>/Adjustments/ (spec §5.3).
        let Ok(adj) = AfcPath::new(&format!("PhotoData/Mutations/{dir}/{stem}/Adjustments")) else {
            return out;
        };
        let render = self.render.iter().min_by_key(|(r, _)| {
            (
                r.availability(),
                r.subtype == Some(0),
                std::cmp::Reverse(r.len),
            )
        });
        if let Some((r, is_video)) = render {
            let loc = if *is_video {
                adj.join("FullSizeRender.mov").map(ResourceLocation::Exact)
            } else {
                // FullSizeRender.jpg before iOS 17, .HEIC after (⚠ UNCONFIRMED); list it.
                Ok(ResourceLocation::AnyExtension {
                    dir: adj.clone(),
                    stem: "FullSizeRender".into(),
                    exclude_extensions: vec!["mov".into()],
                })
            };
            if let Ok(loc) = loc {
                out.push(make(ResourceRole::EditRender, loc, r));
            }
        }
        if let Some(r) = best(&self.live_render) {
            if let Ok(p) = adj.join("FullSizeRender.mov") {
                out.push(make(
                    ResourceRole::EditLiveVideo,
                    ResourceLocation::Exact(p),
                    r,
                ));
            }
        }
        if let Some(r) = best(&self.adjustments) {
            if let Ok(p) = adj.join("Adjustments.plist") {
                out.push(make(
                    ResourceRole::AdjustmentData,
                    ResourceLocation::Exact(p),
                    r,
                ));
            }
        }
        out
    }
}
