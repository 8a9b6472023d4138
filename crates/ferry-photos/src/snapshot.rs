//! Taking a consistent private copy of `Photos.sqlite` (+ `-wal`) from any byte source.
//!
//! iOS writes the library continuously, so a copy is taken the way spec §8.1–8.2 describes:
//!
//! 1. stat `Photos.sqlite` and `Photos.sqlite-wal` and read the 32-byte WAL header;
//! 2. copy both into a private temporary directory (the `-shm` only on request: SQLite
//!    rebuilds it from the WAL, and a stale one can only hurt);
//! 3. stat and read the header again; if anything changed (a checkpoint or WAL reset happened
//!    while copying), start over;
//! 4. check the WAL ([`crate::wal`]) and run `PRAGMA quick_check` on the copy; retry on
//!    failure, a bounded number of times.
//!
//! The source is a trait, so the same code copies over AFC (the app), from a local directory
//! (tests, simulated phone images), or from anything else.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::reader::PhotosDb;
use crate::wal::WalReport;

/// The database file name.
pub const DB_NAME: &str = "Photos.sqlite";
/// The write-ahead log.
pub const WAL_NAME: &str = "Photos.sqlite-wal";
/// The shared-memory index.
pub const SHM_NAME: &str = "Photos.sqlite-shm";

/// Size and modification time of a source file, compared before and after copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceStat {
    /// Bytes.
    pub size: u64,
    /// Modification time, if the source has one.
    pub modified: Option<SystemTime>,
}

/// Somewhere `Photos.sqlite` and its companions can be read from: the phone over AFC
/// (`PhotoData/` under the AFC root), a directory, an archive…
pub trait DbSource {
    /// A description for messages ("iPhone 00008030-…", a path).
    fn describe(&self) -> String;
    /// Size and mtime of `name`, or `None` if it does not exist.
    fn stat(&mut self, name: &str) -> io::Result<Option<SourceStat>>;
    /// Up to `len` bytes from the start of `name`.
    fn read_head(&mut self, name: &str, len: usize) -> io::Result<Vec<u8>>;
    /// Copies all of `name` into `out`, returning the byte count.
    fn copy_to(&mut self, name: &str, out: &mut dyn Write) -> io::Result<u64>;
}

/// A [`DbSource`] over a local directory holding `Photos.sqlite` (e.g. an image's
/// `Media/PhotoData`).
#[derive(Debug, Clone)]
pub struct DirSource {
    dir: PathBuf,
}

impl DirSource {
    /// Reads from `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirSource { dir: dir.into() }
    }
}

impl DbSource for DirSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn stat(&mut self, name: &str) -> io::Result<Option<SourceStat>> {
        match std::fs::metadata(self.dir.join(name)) {
            Ok(m) => Ok(Some(SourceStat {
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_head(&mut self, name: &str, len: usize) -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len);
        File::open(self.dir.join(name))?
            .take(len as u64)
            .read_to_end(&mut buf)?;
        Ok(buf)
    }

    fn copy_to(&mut self, name: &str, out: &mut dyn Write) -> io::Result<u64> {
        let mut f = File::open(self.dir.join(name))?;
        io::copy(&mut f, out)
    }
}

/// How to take the snapshot.
#[derive(Debug, Clone)]
pub struct SnapshotOptions {
    /// Attempts before giving up (at least 1).
    pub attempts: u32,
    /// Also copy `Photos.sqlite-shm` (not needed; off by default, spec §8.1).
    pub copy_shm: bool,
    /// Run `PRAGMA quick_check` on the copy.
    pub quick_check: bool,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions {
            attempts: 3,
            copy_shm: false,
            quick_check: true,
        }
    }
}

/// A verified private copy. The temporary directory is removed when this is dropped.
#[derive(Debug)]
pub struct Snapshot {
    dir: tempfile::TempDir,
    /// Attempts it took.
    pub attempts_used: u32,
    /// The WAL check of the copy.
    pub wal: WalReport,
}

impl Snapshot {
    /// The copied `Photos.sqlite`.
    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join(DB_NAME)
    }

    /// Opens the copy.
    pub fn open(&self) -> Result<PhotosDb> {
        PhotosDb::open(&self.db_path())
    }
}

#[derive(Debug, PartialEq, Eq)]
struct State {
    db: Option<SourceStat>,
    wal: Option<SourceStat>,
    wal_head: Vec<u8>,
}

/// Copies `Photos.sqlite` (+ `-wal`) from `source` into a private temp directory, verifies
/// the copy, and retries while the source keeps changing. See the module docs.
pub fn take_snapshot(source: &mut dyn DbSource, opts: &SnapshotOptions) -> Result<Snapshot> {
    let name = source.describe();
    let src_err = |file: &str, e: io::Error| Error::Source {
        name: file.to_string(),
        source_name: name.clone(),
        source: e,
    };
    let dir = tempfile::Builder::new()
        .prefix("ferry-photos-")
        .tempdir()
        .map_err(|e| Error::Io {
            action: "creating a temporary directory in",
            path: std::env::temp_dir(),
            source: e,
        })?;
    let attempts = opts.attempts.max(1);
    let mut last_err = None;
    let mut previous: Option<State> = None;
    let mut changed_every_time = true;
    let mut damaged_copies = 0u32;
    for attempt in 1..=attempts {
        let before = read_state(source).map_err(|e| src_err(WAL_NAME, e))?;
        if before.db.is_none() {
            return Err(src_err(
                DB_NAME,
                io::Error::new(io::ErrorKind::NotFound, "Photos.sqlite does not exist"),
            ));
        }
        for f in [DB_NAME, WAL_NAME, SHM_NAME] {
            let _ = std::fs::remove_file(dir.path().join(f));
        }
        copy_file(source, DB_NAME, dir.path()).map_err(|e| src_err(DB_NAME, e))?;
        if before.wal.is_some() {
            copy_file(source, WAL_NAME, dir.path()).map_err(|e| src_err(WAL_NAME, e))?;
        }
        if opts.copy_shm
            && source
                .stat(SHM_NAME)
                .map_err(|e| src_err(SHM_NAME, e))?
                .is_some()
        {
            copy_file(source, SHM_NAME, dir.path()).map_err(|e| src_err(SHM_NAME, e))?;
        }
        let after = read_state(source).map_err(|e| src_err(WAL_NAME, e))?;
        let stable = before == after && copied_sizes_match(dir.path(), &after);
        if previous.as_ref() == Some(&after) {
            changed_every_time = false;
        }
        previous = Some(after);
        if !stable {
            tracing::info!(attempt, "Photos.sqlite changed while copying; retrying");
            continue;
        }
        match verify(dir.path(), opts) {
            Ok(wal) => {
                return Ok(Snapshot {
                    dir,
                    attempts_used: attempt,
                    wal,
                })
            }
            Err(e) if e.is_retryable() => {
                tracing::info!(attempt, error = %e, "copy failed verification; retrying");
                changed_every_time = false;
                damaged_copies += 1;
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match last_err {
        Some(e) if !changed_every_time => Err(e.in_copies_of(&name, damaged_copies)),
        _ => Err(Error::SourceKeptChanging {
            source_name: name,
            attempts,
        }),
    }
}

fn read_state(source: &mut dyn DbSource) -> io::Result<State> {
    let db = source.stat(DB_NAME)?;
    let wal = source.stat(WAL_NAME)?;
    let wal_head = if wal.is_some_and(|w| w.size > 0) {
        source.read_head(WAL_NAME, 32)?
    } else {
        Vec::new()
    };
    Ok(State { db, wal, wal_head })
}

fn copied_sizes_match(dir: &Path, state: &State) -> bool {
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).ok();
    state.db.map(|s| s.size) == size(DB_NAME) && state.wal.map(|s| s.size) == size(WAL_NAME)
}

fn copy_file(source: &mut dyn DbSource, name: &str, dir: &Path) -> io::Result<u64> {
    let mut out = BufWriter::new(File::create(dir.join(name))?);
    let n = source.copy_to(name, &mut out)?;
    out.flush()?;
    Ok(n)
}

fn verify(dir: &Path, opts: &SnapshotOptions) -> Result<WalReport> {
    let db = PhotosDb::open(&dir.join(DB_NAME))?;
    if opts.quick_check {
        db.quick_check()?;
    }
    Ok(db.wal_report().clone())
}
