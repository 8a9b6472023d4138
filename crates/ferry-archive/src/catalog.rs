//! The catalog, `DIR/.ferry/catalog.sqlite`: an index over the journal, keyed by phone +
//! asset UUID + resource role.
//!
//! SQLite (rusqlite, bundled) in WAL mode with `synchronous=FULL`, schema version in
//! `PRAGMA user_version` and in the `meta` table. Tables:
//!
//! * `phones` — UDID → folder (unique case-insensitively), last known name;
//! * `assets` — per phone + UUID: date folder and base name (unique per folder,
//!   case-insensitively: a base belongs to one asset, so a Live Photo's still and video keep
//!   the same name), `deleted_on_phone_ms`;
//! * `files` — one row per archived file: role, state (`archived`, or `superseded` by a newer
//!   version of the same resource), path (unique case- and normalisation-insensitively), size,
//!   hash algorithm + hash, phone path, capture date, durability, timestamps.
//!
//! Rows are only ever added or marked; nothing is deleted (append-only archive).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::durable::Durability;
use crate::error::{Error, Result};
use crate::journal::FileRecord;
use crate::names::fold_key;

/// The catalog schema version this build writes.
pub const SCHEMA_VERSION: i64 = 1;
/// Catalog file name inside the metadata folder.
pub const CATALOG_FILE: &str = "catalog.sqlite";

const SCHEMA: &str = "
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE phones(
  id INTEGER PRIMARY KEY,
  udid TEXT NOT NULL UNIQUE,
  folder TEXT NOT NULL,
  folder_key TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL
);
CREATE TABLE assets(
  phone_id INTEGER NOT NULL REFERENCES phones(id),
  uuid TEXT NOT NULL,
  dir TEXT NOT NULL,
  base TEXT NOT NULL,
  base_key TEXT NOT NULL,
  first_archived_ms INTEGER NOT NULL,
  deleted_on_phone_ms INTEGER,
  PRIMARY KEY(phone_id, uuid),
  UNIQUE(phone_id, dir, base_key)
);
CREATE TABLE files(
  id INTEGER PRIMARY KEY,
  phone_id INTEGER NOT NULL,
  uuid TEXT NOT NULL,
  role TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('archived', 'superseded')),
  path TEXT NOT NULL,
  path_key TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL CHECK (size >= 0),
  hash_alg TEXT NOT NULL,
  hash TEXT NOT NULL,
  afc_path TEXT NOT NULL,
  original_filename TEXT,
  capture_utc_ms INTEGER,
  tz_offset_s INTEGER,
  durability TEXT NOT NULL,
  archived_ms INTEGER NOT NULL,
  recovered INTEGER NOT NULL DEFAULT 0,
  FOREIGN KEY(phone_id, uuid) REFERENCES assets(phone_id, uuid)
);
CREATE UNIQUE INDEX files_current ON files(phone_id, uuid, role) WHERE state = 'archived';
CREATE INDEX files_hash ON files(hash);
";

/// A phone known to the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneRow {
    /// Catalog id.
    pub id: i64,
    /// UDID.
    pub udid: String,
    /// Folder name inside the destination.
    pub folder: String,
    /// Last known name.
    pub name: String,
}

/// File state in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    /// The current archived copy of this resource.
    Archived,
    /// An older version, kept (a newer one of the same asset and role was archived).
    Superseded,
}

/// One catalog row, as the sync engine and `ferry status` see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CatalogEntry {
    /// Asset UUID.
    pub uuid: String,
    /// Resource role name (`primary`, `live_video`, … — `ResourceRole::as_str`).
    pub role: String,
    /// State.
    pub state: FileState,
    /// Path relative to the destination (`/`-separated).
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Hash algorithm (`blake3`).
    pub hash_alg: String,
    /// Hex digest.
    pub hash: String,
    /// Path on the phone.
    pub afc_path: String,
    /// Original file name.
    pub original_filename: Option<String>,
    /// Capture time, Unix ms UTC.
    pub capture_utc_ms: Option<i64>,
    /// When archived, Unix ms.
    pub archived_ms: i64,
    /// Durability of the write.
    pub durability: Durability,
    /// When the asset was seen deleted on the phone, if it was.
    pub deleted_on_phone_ms: Option<i64>,
    /// True if the row was recovered from the journal after a crash or rebuild.
    pub recovered: bool,
}

/// `path` for an SQLite `file:` URI: every byte outside the unreserved set and `/` is
/// percent-encoded, so `?`, `#` and `%` in a folder name stay part of the path.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The open catalog.
#[derive(Debug)]
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

fn i(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Catalog {
    /// Opens or creates the catalog. Returns the catalog and whether it was created.
    ///
    /// SQLite opens the file by path, so the archive checks first that neither it nor its
    /// `-wal`/`-shm` is a link, and SQLite is told not to follow one either
    /// (`SQLITE_OPEN_NOFOLLOW`). Once open, SQLite writes through the descriptors it holds.
    pub fn open(path: &Path, archive_id: &str) -> Result<(Catalog, bool)> {
        let existed = path.exists();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX
                | OpenFlags::SQLITE_OPEN_NOFOLLOW,
        )
        .map_err(|e| Error::catalog(path, e))?;
        let c = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        c.pragma()?;
        c.setup(archive_id).map(|created| (c, created || !existed))
    }

    /// Opens an existing catalog for reading only: nothing is written, not even the `-wal` or
    /// `-shm` files, so it works on a read-only or full drive. Without a `-wal` file (a run
    /// that ended cleanly) the file is complete and is opened `immutable`; with one, SQLite's
    /// read-only WAL mode is used.
    pub fn open_read_only(path: &Path, archive_id: &str, has_wal: bool) -> Result<Catalog> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW
            | OpenFlags::SQLITE_OPEN_URI;
        let uri = format!(
            "file:{}{}",
            uri_path(path),
            if has_wal { "" } else { "?immutable=1" }
        );
        let conn = Connection::open_with_flags(&uri, flags).map_err(|e| Error::catalog(path, e))?;
        let c = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        if c.version()? == 0 {
            return Err(Error::InvalidInput {
                what: "catalog",
                detail: format!("{} is empty (never set up)", path.display()),
            });
        }
        c.check_archive_id(archive_id)?;
        Ok(c)
    }

    /// A catalog in memory (for reading an archive whose catalog cannot be used or written:
    /// it is rebuilt from the journal here and thrown away afterwards). `path` names the
    /// on-drive catalog in messages.
    pub fn open_memory(path: &Path, archive_id: &str) -> Result<Catalog> {
        let conn = Connection::open_in_memory().map_err(|e| Error::catalog(path, e))?;
        let c = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        c.conn
            .execute_batch("PRAGMA foreign_keys = ON;")
            .map_err(|e| c.err(e))?;
        c.setup(archive_id)?;
        Ok(c)
    }

    /// Creates the schema in a new catalog, or checks an existing one's version and archive
    /// id. Returns whether it was created.
    fn setup(&self, archive_id: &str) -> Result<bool> {
        let created = self.version()? == 0;
        if created {
            let tx_sql = format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            );
            self.conn.execute_batch(&tx_sql).map_err(|e| self.err(e))?;
            self.set_meta("archive_id", archive_id)?;
            self.set_meta("schema_version", &SCHEMA_VERSION.to_string())?;
            self.set_meta("hash_algorithm", crate::HASH_ALGORITHM)?;
            self.set_meta("journal_applied", "0")?;
        } else {
            self.check_archive_id(archive_id)?;
        }
        Ok(created)
    }

    /// The schema version (`PRAGMA user_version`; 0 for an empty file); newer than this build
    /// understands is [`Error::UnsupportedFormat`].
    fn version(&self) -> Result<i64> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if version > SCHEMA_VERSION {
            return Err(Error::UnsupportedFormat {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        Ok(version)
    }

    /// [`Error::ArchiveIdMismatch`] unless the catalog belongs to archive `archive_id`.
    fn check_archive_id(&self, archive_id: &str) -> Result<()> {
        let id = self.meta("archive_id")?.unwrap_or_default();
        if id != archive_id {
            return Err(Error::ArchiveIdMismatch {
                path: self.path.clone(),
                marker_id: archive_id.to_string(),
                catalog_id: id,
            });
        }
        Ok(())
    }

    fn pragma(&self) -> Result<()> {
        // WAL: readers (ferry status) never block the writer; FULL: a committed row survives
        // power loss (the journal would restore it anyway).
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(catalog = %self.path.display(), "journal_mode is {mode}, not WAL");
        }
        self.conn
            .execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
            .map_err(|e| self.err(e))?;
        self.conn
            .busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> Error {
        Error::catalog(&self.path, e)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Quick structural check (`PRAGMA quick_check`).
    pub fn quick_check(&self) -> Result<bool> {
        let r: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(r == "ok")
    }

    /// A `meta` value.
    pub fn meta(&self, key: &str) -> Result<Option<String>> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Byte offset of the journal up to which every record is reflected here.
    pub fn journal_applied(&self) -> Result<u64> {
        Ok(self
            .meta("journal_applied")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Starts a transaction.
    pub fn tx(&mut self) -> Result<Tx<'_>> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| Error::catalog(&path, e))?;
        Ok(Tx { tx, path })
    }

    /// The phone with this UDID.
    pub fn phone_by_udid(&self, udid: &str) -> Result<Option<PhoneRow>> {
        self.conn
            .query_row(
                "SELECT id, udid, folder, name FROM phones WHERE udid = ?1",
                [udid],
                phone_row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// All phones.
    pub fn phones(&self) -> Result<Vec<PhoneRow>> {
        let mut st = self
            .conn
            .prepare("SELECT id, udid, folder, name FROM phones ORDER BY id")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], phone_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// True if a phone folder with this fold key exists.
    pub fn folder_taken(&self, folder: &str) -> Result<bool> {
        self.exists(
            "SELECT 1 FROM phones WHERE folder_key = ?1",
            &fold_key(folder),
        )
    }

    /// True if an archived or superseded file has this path (case/normalisation-insensitive).
    pub fn path_taken(&self, rel_path: &str) -> Result<bool> {
        self.exists(
            "SELECT 1 FROM files WHERE path_key = ?1",
            &fold_key(rel_path),
        )
    }

    fn exists(&self, sql: &str, arg: &str) -> Result<bool> {
        self.conn
            .query_row(sql, [arg], |_| Ok(()))
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    /// The asset's (date folder, base), if any of its files was archived.
    pub fn asset_place(&self, phone_id: i64, uuid: &str) -> Result<Option<(String, String)>> {
        self.conn
            .query_row(
                "SELECT dir, base FROM assets WHERE phone_id = ?1 AND uuid = ?2",
                params![phone_id, uuid],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// True if another asset of this phone already uses `base` in `dir`.
    pub fn base_taken(&self, phone_id: i64, dir: &str, base: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM assets WHERE phone_id = ?1 AND dir = ?2 AND base_key = ?3",
                params![phone_id, dir, fold_key(base)],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .map_err(|e| self.err(e))
    }

    /// The current (`archived`) entry of a resource.
    pub fn current(&self, phone_id: i64, uuid: &str, role: &str) -> Result<Option<CatalogEntry>> {
        let sql = format!("{ENTRY_SELECT} WHERE f.phone_id = ?1 AND f.uuid = ?2 AND f.role = ?3 AND f.state = 'archived'");
        self.conn
            .query_row(&sql, params![phone_id, uuid, role], entry_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Every file of a phone (archived and superseded), in archive order.
    pub fn entries(&self, phone_id: i64) -> Result<Vec<CatalogEntry>> {
        let sql = format!("{ENTRY_SELECT} WHERE f.phone_id = ?1 ORDER BY f.id");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([phone_id], entry_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Every file of every phone.
    pub fn all_entries(&self) -> Result<Vec<CatalogEntry>> {
        let sql = format!("{ENTRY_SELECT} ORDER BY f.id");
        let mut st = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], entry_row)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

const ENTRY_SELECT: &str = "SELECT f.uuid, f.role, f.state, f.path, f.size, f.hash_alg, f.hash,
  f.afc_path, f.original_filename, f.capture_utc_ms, f.archived_ms, f.durability,
  a.deleted_on_phone_ms, f.recovered
  FROM files f JOIN assets a ON a.phone_id = f.phone_id AND a.uuid = f.uuid";

fn phone_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PhoneRow> {
    Ok(PhoneRow {
        id: r.get(0)?,
        udid: r.get(1)?,
        folder: r.get(2)?,
        name: r.get(3)?,
    })
}

fn entry_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CatalogEntry> {
    let state: String = r.get(2)?;
    let size: i64 = r.get(4)?;
    let durability: String = r.get(11)?;
    Ok(CatalogEntry {
        uuid: r.get(0)?,
        role: r.get(1)?,
        state: if state == "superseded" {
            FileState::Superseded
        } else {
            FileState::Archived
        },
        path: r.get(3)?,
        size: u64::try_from(size).unwrap_or(0),
        hash_alg: r.get(5)?,
        hash: r.get(6)?,
        afc_path: r.get(7)?,
        original_filename: r.get(8)?,
        capture_utc_ms: r.get(9)?,
        archived_ms: r.get(10)?,
        durability: Durability::parse(&durability).unwrap_or(Durability::Unsupported),
        deleted_on_phone_ms: r.get(12)?,
        recovered: r.get::<_, i64>(13)? != 0,
    })
}

/// A catalog transaction.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    path: PathBuf,
}

/// What applying a file record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new row.
    Inserted,
    /// The path already had a row: nothing changed.
    AlreadyPresent,
}

impl Tx<'_> {
    fn err(&self, e: rusqlite::Error) -> Error {
        Error::catalog(&self.path, e)
    }

    /// Commits.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        self.tx.commit().map_err(|e| Error::catalog(&path, e))
    }

    /// Records the journal offset reflected by this transaction.
    pub fn set_journal_applied(&self, offset: u64) -> Result<()> {
        self.tx
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'journal_applied'",
                [offset.to_string()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Inserts or updates a phone; returns its id.
    pub fn upsert_phone(&self, udid: &str, folder: &str, name: &str, at_ms: i64) -> Result<i64> {
        self.tx
            .execute(
                "INSERT INTO phones(udid, folder, folder_key, name, first_seen_ms, last_seen_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                 ON CONFLICT(udid) DO UPDATE SET name = excluded.name,
                   last_seen_ms = max(last_seen_ms, excluded.last_seen_ms)",
                params![udid, folder, fold_key(folder), name, at_ms],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .query_row("SELECT id FROM phones WHERE udid = ?1", [udid], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
    }

    /// Applies one file record: asset row if new, older version superseded, file row.
    pub fn apply_file(&self, phone_id: i64, rec: &FileRecord, recovered: bool) -> Result<Applied> {
        let path_key = fold_key(&rec.path);
        let present = self
            .tx
            .query_row(
                "SELECT 1 FROM files WHERE path_key = ?1",
                [&path_key],
                |_| Ok(()),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if present.is_some() {
            return Ok(Applied::AlreadyPresent);
        }
        self.tx
            .execute(
                "INSERT OR IGNORE INTO assets(phone_id, uuid, dir, base, base_key, first_archived_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![phone_id, rec.uuid, rec.dir, rec.base, fold_key(&rec.base), rec.at_ms],
            )
            .map_err(|e| self.err(e))?;
        // A base clash with another asset (possible only for hand-edited journals) leaves no
        // asset row; give this asset a row keyed on its own path so the file is still indexed.
        self.tx
            .execute(
                "INSERT OR IGNORE INTO assets(phone_id, uuid, dir, base, base_key, first_archived_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![phone_id, rec.uuid, rec.dir, rec.base, path_key, rec.at_ms],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .execute(
                "UPDATE files SET state = 'superseded'
                 WHERE phone_id = ?1 AND uuid = ?2 AND role = ?3 AND state = 'archived'",
                params![phone_id, rec.uuid, rec.role],
            )
            .map_err(|e| self.err(e))?;
        self.tx
            .execute(
                "INSERT INTO files(phone_id, uuid, role, state, path, path_key, size, hash_alg,
                   hash, afc_path, original_filename, capture_utc_ms, tz_offset_s, durability,
                   archived_ms, recovered)
                 VALUES (?1, ?2, ?3, 'archived', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
                params![
                    phone_id,
                    rec.uuid,
                    rec.role,
                    rec.path,
                    path_key,
                    i(rec.size),
                    rec.hash_alg,
                    rec.hash,
                    rec.afc_path,
                    rec.original_filename,
                    rec.capture_utc_ms,
                    rec.tz_offset_s,
                    rec.durability.as_str(),
                    rec.at_ms,
                    recovered as i64,
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(Applied::Inserted)
    }

    /// Marks an asset deleted on the phone (first time only). Returns true if the asset is
    /// in the catalog.
    pub fn mark_deleted(&self, phone_id: i64, uuid: &str, at_ms: i64) -> Result<bool> {
        let n = self
            .tx
            .execute(
                "UPDATE assets SET deleted_on_phone_ms = coalesce(deleted_on_phone_ms, ?3)
                 WHERE phone_id = ?1 AND uuid = ?2",
                params![phone_id, uuid, at_ms],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }
}
