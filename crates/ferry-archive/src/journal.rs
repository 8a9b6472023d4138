//! The archive journal, `DIR/.ferry/journal.jsonl`: what makes the archive self-describing.
//!
//! One JSON object per line, append-only, each line written with one `write` and synced
//! before the step it describes takes effect:
//!
//! * `phone` — a phone's UDID ↔ folder mapping (before its folder is first used);
//! * `file` — an intent to place one archived file: asset UUID, role, relative path, size,
//!   BLAKE3, phone path, capture date. Written and synced *before* the rename that gives the
//!   file its final name, so a crash anywhere leaves either an intent without a file (ignored:
//!   the rename never happened) or a file with its intent (recovered into the catalog after
//!   checking size and hash);
//! * `deleted_on_phone` — an asset was seen deleted on the phone.
//!
//! The catalog is an index over the journal: it can always be rebuilt from it
//! ([`crate::Archive::rebuild_catalog`]). A torn last line (crash mid-append) is ignored; a
//! line that does not parse is counted and skipped, never fatal.

#[cfg(test)]
use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::OFlags;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{sync_file, Durability};
use crate::error::{Error, Result};

/// Journal file name inside the metadata folder.
pub const JOURNAL_FILE: &str = "journal.jsonl";

/// One archived file, as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// The phone's UDID.
    pub udid: String,
    /// The asset UUID (`ZUUID`).
    pub uuid: String,
    /// The resource role (`primary`, `live_video`, …).
    pub role: String,
    /// Path relative to the destination, `/`-separated.
    pub path: String,
    /// The asset's date folder relative to the phone folder (`2024/01`, `unknown-date`).
    pub dir: String,
    /// The asset's base name (shared by its resources).
    pub base: String,
    /// Size in bytes.
    pub size: u64,
    /// Hash algorithm (`blake3`).
    pub hash_alg: String,
    /// Hex digest.
    pub hash: String,
    /// Path on the phone, relative to `/var/mobile/Media`.
    pub afc_path: String,
    /// The asset's original file name on the phone, if known.
    pub original_filename: Option<String>,
    /// Capture time, Unix milliseconds UTC.
    pub capture_utc_ms: Option<i64>,
    /// Capture time zone offset, seconds east of UTC.
    pub tz_offset_s: Option<i64>,
    /// How durable the write was.
    pub durability: Durability,
    /// When archived, Unix milliseconds.
    pub at_ms: i64,
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum JournalRecord {
    /// A phone and its folder.
    Phone {
        /// UDID.
        udid: String,
        /// Folder name in the destination.
        folder: String,
        /// The phone's name when recorded.
        name: String,
        /// When.
        at_ms: i64,
    },
    /// A file placed in the archive (intent written before the rename).
    File(Box<FileRecord>),
    /// An asset deleted on the phone.
    DeletedOnPhone {
        /// UDID.
        udid: String,
        /// Asset UUID.
        uuid: String,
        /// When it was seen deleted.
        at_ms: i64,
    },
}

/// The open journal (append side).
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

/// What reading the journal found.
#[derive(Debug, Default)]
pub struct JournalRead {
    /// Records with the byte offset just after each.
    pub records: Vec<(u64, JournalRecord)>,
    /// Lines that did not parse (skipped).
    pub bad_lines: usize,
    /// True if the file ended in a partial line (a crash mid-append).
    pub torn_tail: bool,
    /// Offset just after the last complete line read.
    pub end: u64,
}

impl Journal {
    /// Opens (creating if needed, owner-only) the journal `path` for appending; a link there
    /// is refused. A torn last line is closed with a newline so the next record starts on its
    /// own line.
    pub fn open(path: &Path) -> Result<Journal> {
        let (dir, name) = crate::root::open_parent(path)?;
        Journal::open_at(dir.as_fd(), path, name)
    }

    /// [`Journal::open`] of `name` in the held folder `dir` (`path` names it in messages).
    pub(crate) fn open_at(dir: BorrowedFd<'_>, path: &Path, name: &str) -> Result<Journal> {
        let mut file = crate::root::open_file_at(
            dir,
            name,
            OFlags::RDWR | OFlags::APPEND | OFlags::CREATE,
            crate::root::META_FILE_MODE,
            path,
            "open journal",
        )?;
        let mut len = file
            .metadata()
            .map_err(|e| Error::io("inspect", path, e))?
            .len();
        if len > 0 {
            let mut last = [0u8; 1];
            file.seek(SeekFrom::Start(len - 1))
                .and_then(|_| file.read_exact(&mut last))
                .map_err(|e| Error::io("read journal", path, e))?;
            if last[0] != b'\n' {
                file.write_all(b"\n")
                    .map_err(|e| Error::io_with_need("write journal", path, e, 1))?;
                sync_file(&file).map_err(|e| Error::io("sync journal", path, e))?;
                len += 1;
            }
        }
        Ok(Journal {
            file,
            path: path.to_path_buf(),
            len,
        })
    }

    /// Appends one record and syncs it; returns the offset just after it.
    pub fn append(&mut self, rec: &JournalRecord) -> Result<u64> {
        let mut line = serde_json::to_vec(rec).map_err(|e| Error::Journal {
            path: self.path.clone(),
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        if let Err(e) = self.file.write_all(&line) {
            // A partial line may be on disk: close it so later records parse.
            let _ = self.file.write_all(b"\n");
            self.len = self.file.metadata().map(|m| m.len()).unwrap_or(self.len);
            return Err(Error::io_with_need(
                "write journal",
                &self.path,
                e,
                line.len() as u64,
            ));
        }
        sync_file(&self.file).map_err(|e| Error::io("sync journal", &self.path, e))?;
        self.len += line.len() as u64;
        Ok(self.len)
    }

    /// Current length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Reads the records after byte `from` (0 = all). A missing journal reads as empty; a link
/// is refused.
pub fn read_from(path: &Path, from: u64) -> Result<JournalRead> {
    let (dir, name) = crate::root::open_parent(path)?;
    read_from_at(dir.as_fd(), path, name, from)
}

/// [`read_from`] of `name` in the held folder `dir`.
pub(crate) fn read_from_at(
    dir: BorrowedFd<'_>,
    path: &Path,
    name: &str,
    from: u64,
) -> Result<JournalRead> {
    let mut out = JournalRead::default();
    if crate::root::kind_at(dir, name)
        .map_err(|e| Error::io("inspect", path, e))?
        .is_none()
    {
        return Ok(out);
    }
    let mut f = crate::root::open_file_at(dir, name, OFlags::RDONLY, 0, path, "open journal")?;
    let len = f
        .metadata()
        .map_err(|e| Error::io("inspect", path, e))?
        .len();
    if from >= len {
        return Ok(out);
    }
    f.seek(SeekFrom::Start(from))
        .map_err(|e| Error::io("read journal", path, e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| Error::io("read journal", path, e))?;
    let mut offset = from;
    out.end = from;
    let mut rest: &[u8] = &buf;
    while !rest.is_empty() {
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            out.torn_tail = true;
            break;
        };
        let line = &rest[..nl];
        offset += nl as u64 + 1;
        rest = &rest[nl + 1..];
        out.end = offset;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            continue;
        }
        match serde_json::from_slice::<JournalRecord>(line) {
            Ok(r) => out.records.push((offset, r)),
            Err(e) => {
                tracing::warn!(journal = %path.display(), offset, "skipping unreadable journal line: {e}");
                out.bad_lines += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phone(n: &str) -> JournalRecord {
        JournalRecord::Phone {
            udid: n.into(),
            folder: n.into(),
            name: n.into(),
            at_ms: 1,
        }
    }

    #[test]
    fn append_read_and_torn_tail() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(JOURNAL_FILE);
        let mut j = Journal::open(&p).unwrap();
        let off1 = j.append(&phone("a")).unwrap();
        j.append(&phone("b")).unwrap();
        drop(j);
        // A crash mid-append leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(br#"{"type":"phone","udid":"c""#).unwrap();
        drop(f);
        let r = read_from(&p, 0).unwrap();
        assert_eq!(r.records.len(), 2);
        assert!(r.torn_tail);
        assert_eq!(r.records[0].0, off1);
        let r = read_from(&p, off1).unwrap();
        assert_eq!(r.records.len(), 1);
        // Reopening closes the torn line; the next record parses and the torn one is skipped.
        let mut j = Journal::open(&p).unwrap();
        j.append(&phone("d")).unwrap();
        let r = read_from(&p, 0).unwrap();
        assert_eq!(r.records.len(), 3);
        assert_eq!(r.bad_lines, 1);
        assert!(!r.torn_tail);
        assert_eq!(r.records[2].1, phone("d"));
    }
}
