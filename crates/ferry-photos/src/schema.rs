//! Schema detection: which tables and columns this `Photos.sqlite` has.
//!
//! The reader decides every feature by table and column presence (`sqlite_master` and
//! `PRAGMA table_info`), never by iOS version: devices upgraded to a new iOS can carry an
//! unmigrated database (spec §2.1, §8.4). Core Data entity numbers are resolved from
//! `Z_PRIMARYKEY` at run time, never hard-coded (spec §2.7). The model version
//! (`Z_METADATA` → `PLModelVersion`) is read for logging only.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rusqlite::types::ValueRef;
use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Error, Result};

/// Columns the asset table must have: without them an asset cannot be located or classified.
const REQUIRED_ASSET: [&str; 7] = [
    "Z_PK",
    "ZUUID",
    "ZDIRECTORY",
    "ZFILENAME",
    "ZKIND",
    "ZTRASHEDSTATE",
    "ZSAVEDASSETTYPE",
];

/// Columns `ZINTERNALRESOURCE` must have for the local/iCloud rule (spec §4).
const REQUIRED_RESOURCE: [&str; 8] = [
    "ZASSET",
    "ZDATASTORECLASSID",
    "ZDATASTORESUBTYPE",
    "ZRESOURCETYPE",
    "ZVERSION",
    "ZRECIPEID",
    "ZLOCALAVAILABILITY",
    "ZREMOTEAVAILABILITY",
];

/// Tables whose columns we look up.
const KNOWN_TABLES: [&str; 9] = [
    "ZASSET",
    "ZGENERICASSET",
    "ZADDITIONALASSETATTRIBUTES",
    "ZINTERNALRESOURCE",
    "ZCLOUDMASTER",
    "ZASSETCONTRIBUTOR",
    "ZSHAREPARTICIPANT",
    "Z_PRIMARYKEY",
    "Z_METADATA",
];

/// What the reader found out about a database's schema.
#[derive(Debug, Clone, Serialize)]
pub struct Schema {
    /// `ZASSET` (iOS 14+) or `ZGENERICASSET` (iOS 13 and earlier).
    pub asset_table: &'static str,
    /// `PLModelVersion` from `Z_METADATA`, if present. For logging only; the iOS ↔ model
    /// version mapping is ⚠ UNCONFIRMED (spec §2.1, inferred from macOS ranges).
    pub model_version: Option<i64>,
    /// Core Data entity name → `Z_ENT` from `Z_PRIMARYKEY`.
    pub entities: BTreeMap<String, i64>,
    /// The `ZASSETCONTRIBUTOR` column pointing at the asset (`Z<AssetEnt>LIBRARYSCOPEASSETCONTRIBUTORS`),
    /// resolved through the `Asset` entity number.
    pub contributor_asset_column: Option<String>,
    #[serde(skip)]
    columns: HashMap<String, HashSet<String>>,
}

impl Schema {
    /// Detects the schema of an open database.
    pub fn detect(conn: &Connection, path: &Path) -> Result<Schema> {
        let sql_err = |e| Error::from_sqlite(path, e);
        let mut tables = HashSet::new();
        {
            let mut stmt = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
                .map_err(sql_err)?;
            let mut rows = stmt.query([]).map_err(sql_err)?;
            while let Some(row) = rows.next().map_err(sql_err)? {
                if let Ok(ValueRef::Text(t)) = row.get_ref(0) {
                    tables.insert(String::from_utf8_lossy(t).to_ascii_uppercase());
                }
            }
        }
        let asset_table = if tables.contains("ZASSET") {
            "ZASSET"
        } else if tables.contains("ZGENERICASSET") {
            "ZGENERICASSET"
        } else {
            let mut names: Vec<&String> = tables.iter().collect();
            names.sort();
            let shown: Vec<&str> = names.iter().take(12).map(|s| s.as_str()).collect();
            return Err(Error::NotPhotosDatabase {
                path: path.to_path_buf(),
                detail: if tables.is_empty() {
                    "it has no tables".to_string()
                } else {
                    format!(
                        "it has neither a ZASSET nor a ZGENERICASSET table (tables: {}{})",
                        shown.join(", "),
                        if names.len() > shown.len() {
                            ", …"
                        } else {
                            ""
                        }
                    )
                },
            });
        };

        let mut columns = HashMap::new();
        for table in KNOWN_TABLES {
            if tables.contains(table) {
                columns.insert(
                    table.to_string(),
                    table_columns(conn, table).map_err(sql_err)?,
                );
            }
        }
        let mut schema = Schema {
            asset_table,
            model_version: None,
            entities: BTreeMap::new(),
            contributor_asset_column: None,
            columns,
        };
        schema.model_version = schema.read_model_version(conn);
        schema.entities = schema.read_entities(conn).map_err(sql_err)?;
        schema.check_required(path, &tables)?;
        schema.contributor_asset_column = schema.resolve_contributor_column();
        tracing::info!(
            asset_table = schema.asset_table,
            model_version = ?schema.model_version,
            asset_entity = ?schema.entities.get("Asset"),
            "Photos.sqlite schema detected"
        );
        Ok(schema)
    }

    /// True if `table` exists.
    pub fn has_table(&self, table: &str) -> bool {
        self.columns.contains_key(table)
    }

    /// True if `table.column` exists.
    pub fn has(&self, table: &str, column: &str) -> bool {
        self.columns
            .get(table)
            .is_some_and(|cols| cols.contains(column))
    }

    /// `alias.column` if the column exists, else `NULL` (for building SELECT lists).
    pub(crate) fn col(&self, table: &str, alias: &str, column: &str) -> String {
        if self.has(table, column) {
            format!("{alias}.{column}")
        } else {
            "NULL".to_string()
        }
    }

    fn check_required(&self, path: &Path, tables: &HashSet<String>) -> Result<()> {
        let mut missing = Vec::new();
        for c in REQUIRED_ASSET {
            if !self.has(self.asset_table, c) {
                missing.push(format!("{}.{c}", self.asset_table));
            }
        }
        let mut note = None;
        if self.has_table("ZINTERNALRESOURCE") {
            for c in REQUIRED_RESOURCE {
                if !self.has("ZINTERNALRESOURCE", c) {
                    missing.push(format!("ZINTERNALRESOURCE.{c}"));
                }
            }
            if self.has("ZINTERNALRESOURCE", "ZDATASTOREID")
                && !self.has("ZINTERNALRESOURCE", "ZDATASTORECLASSID")
            {
                note = Some("ZDATASTOREID instead of ZDATASTORECLASSID looks like iOS 12".into());
            }
        } else {
            missing.push("ZINTERNALRESOURCE (table)".to_string());
            if tables.contains("ZCLOUDRESOURCE") {
                note = Some(
                    "ZCLOUDRESOURCE without ZINTERNALRESOURCE looks like iOS 11 or older".into(),
                );
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(Error::UnsupportedSchema {
            path: PathBuf::from(path),
            missing,
            model_version: self.model_version,
            note,
        })
    }

    fn read_model_version(&self, conn: &Connection) -> Option<i64> {
        if !self.has("Z_METADATA", "Z_PLIST") || !self.has("Z_METADATA", "Z_VERSION") {
            return None;
        }
        let blob: Vec<u8> = conn
            .query_row(
                "SELECT Z_PLIST FROM Z_METADATA ORDER BY Z_VERSION DESC LIMIT 1",
                [],
                |row| match row.get_ref(0)? {
                    ValueRef::Blob(b) => Ok(b.to_vec()),
                    _ => Ok(Vec::new()),
                },
            )
            .ok()?;
        // The blob comes from the phone: a few hundred bytes of binary plist can expand to
        // millions of values or nest deep enough to overflow the stack (plist_bounds).
        if let Err(e) = plist_bounds::check(&blob, plist_bounds::Limits::DEFAULT) {
            tracing::warn!(error = %e, "Z_METADATA plist refused; model version unknown");
            return None;
        }
        let value = plist::Value::from_reader(std::io::Cursor::new(blob)).ok()?;
        let v = value.as_dictionary()?.get("PLModelVersion")?;
        v.as_signed_integer()
            .or_else(|| v.as_unsigned_integer().and_then(|u| i64::try_from(u).ok()))
    }

    fn read_entities(&self, conn: &Connection) -> rusqlite::Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        if !self.has("Z_PRIMARYKEY", "Z_ENT") || !self.has("Z_PRIMARYKEY", "Z_NAME") {
            return Ok(out);
        }
        let mut stmt = conn.prepare("SELECT Z_ENT, Z_NAME FROM Z_PRIMARYKEY")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            if let (ValueRef::Integer(ent), ValueRef::Text(name)) =
                (row.get_ref(0)?, row.get_ref(1)?)
            {
                out.insert(String::from_utf8_lossy(name).into_owned(), ent);
            }
        }
        Ok(out)
    }

    /// `ZASSETCONTRIBUTOR.Z<n>LIBRARYSCOPEASSETCONTRIBUTORS`, where `<n>` is the `Asset`
    /// entity. Falls back to the only column matching the pattern (spec §2.7).
    fn resolve_contributor_column(&self) -> Option<String> {
        let cols = self.columns.get("ZASSETCONTRIBUTOR")?;
        if let Some(ent) = self.entities.get("Asset") {
            let name = format!("Z{ent}LIBRARYSCOPEASSETCONTRIBUTORS");
            if cols.contains(&name) {
                return Some(name);
            }
        }
        let mut matches: Vec<&String> = cols
            .iter()
            .filter(|c| {
                c.strip_prefix('Z')
                    .and_then(|r| r.strip_suffix("LIBRARYSCOPEASSETCONTRIBUTORS"))
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
            .collect();
        matches.sort();
        match matches.as_slice() {
            [one] => {
                tracing::warn!(column = %one, "Asset entity not in Z_PRIMARYKEY; using the only contributor column");
                Some((*one).clone())
            }
            _ => None,
        }
    }
}

fn table_columns(conn: &Connection, table: &str) -> rusqlite::Result<HashSet<String>> {
    // `table` comes from KNOWN_TABLES, never from the database.
    let mut stmt = conn.prepare(&format!("PRAGMA table_info(\"{table}\")"))?;
    let mut rows = stmt.query([])?;
    let mut out = HashSet::new();
    while let Some(row) = rows.next()? {
        if let ValueRef::Text(name) = row.get_ref(1)? {
            out.insert(String::from_utf8_lossy(name).to_ascii_uppercase());
        }
    }
    Ok(out)
}
