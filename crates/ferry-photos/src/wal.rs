//! Checks a SQLite write-ahead log (`Photos.sqlite-wal`) before the database is opened.
//!
//! SQLite is forgiving with a damaged WAL: a bad header checksum makes it ignore the whole
//! log, and a bad frame makes it ignore that frame and everything after it. Both are silent,
//! and for Photos.sqlite the WAL holds the newest assets, so "silently" means "the newest
//! photos are not backed up". This module walks the log the way SQLite's recovery does
//! (header, salts, cumulative checksums; format in sqlite.org/fileformat2.html §4) and turns
//! the dangerous cases into errors:
//!
//! * a header that SQLite would reject while frames follow → [`Error::CorruptWal`];
//! * a frame of the current generation that fails its checksum while a *committed*
//!   transaction follows it (or is itself a commit) → [`Error::CorruptWal`];
//! * a file that ends inside a frame of the live chain → [`Error::TruncatedWal`].
//!
//! Harmless cases pass: frames left over from an earlier generation (old salts), and an
//! uncommitted tail (a transaction that was being written while we copied).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

const WAL_HEADER: usize = 32;
const FRAME_HEADER: usize = 24;
const MAGIC_LE: u32 = 0x377f_0682;
const MAGIC_BE: u32 = 0x377f_0683;
const VERSION: u32 = 3_007_000;

/// What the WAL check found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WalReport {
    /// Page size from the WAL header (0 for an empty WAL).
    pub page_size: u32,
    /// Whole frames in the file.
    pub frames: u64,
    /// Frames of the current generation with valid checksums.
    pub valid_frames: u64,
    /// Frames up to and including the last valid commit frame: what SQLite will read.
    pub committed_frames: u64,
    /// Valid-salt frames after the last commit (an in-flight transaction; ignored by SQLite).
    pub uncommitted_tail: u64,
    /// Frames from an earlier WAL generation (different salts), ignored by SQLite.
    pub stale_frames: u64,
}

/// SQLite's WAL checksum over `data` (a multiple of 8 bytes), continuing from `s`.
pub(crate) fn checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for chunk in data.chunks_exact(8) {
        let (a, b) = chunk.split_at(4);
        let (x0, x1) = if big_endian {
            (be32(a), be32(b))
        } else {
            (le32(a), le32(b))
        };
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    (s1, s2)
}

fn be32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

fn le32(b: &[u8]) -> u32 {
    b.iter()
        .take(4)
        .rev()
        .fold(0u32, |acc, &x| (acc << 8) | u32::from(x))
}

/// Checks the WAL at `path`. A missing or empty file is fine (nothing un-checkpointed).
pub fn check_wal(path: &Path) -> Result<WalReport> {
    let io_err = |source| Error::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(WalReport::default()),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Ok(WalReport::default());
    }
    let corrupt = |detail: String| Error::CorruptWal {
        path: path.to_path_buf(),
        detail,
    };
    let truncated = |detail: String| Error::TruncatedWal {
        path: path.to_path_buf(),
        detail,
    };
    if len < WAL_HEADER as u64 {
        return Err(truncated(format!(
            "the file is {len} bytes, shorter than the 32-byte WAL header"
        )));
    }
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut hdr = [0u8; WAL_HEADER];
    reader.read_exact(&mut hdr).map_err(io_err)?;
    let magic = be32(&hdr[0..4]);
    if magic != MAGIC_LE && magic != MAGIC_BE {
        return Err(corrupt(format!("bad magic number {magic:#010x}")));
    }
    let big_endian = magic == MAGIC_BE;
    let version = be32(&hdr[4..8]);
    if version != VERSION {
        return Err(corrupt(format!("unknown WAL format version {version}")));
    }
    let page_size = match be32(&hdr[8..12]) {
        1 => 65536,
        p if (512..=65536).contains(&p) && p.is_power_of_two() => p,
        p => return Err(corrupt(format!("invalid page size {p}"))),
    };
    let salts = (&hdr[16..20], &hdr[20..24]);
    let salt = (be32(salts.0), be32(salts.1));
    let header_ck = checksum(big_endian, &hdr[0..24], (0, 0));
    let frame_size = FRAME_HEADER as u64 + u64::from(page_size);
    let body = len - WAL_HEADER as u64;
    let frames = body / frame_size;
    let remainder = body % frame_size;
    if header_ck != (be32(&hdr[24..28]), be32(&hdr[28..32])) {
        if frames == 0 {
            // Nothing to lose: SQLite rewrites the header on the next write.
            return Ok(WalReport {
                page_size,
                ..WalReport::default()
            });
        }
        return Err(corrupt(format!(
            "the header checksum does not match, so SQLite would ignore all {frames} frames"
        )));
    }

    let mut report = WalReport {
        page_size,
        frames,
        ..WalReport::default()
    };
    let mut frame = vec![0u8; frame_size as usize];
    let mut ck = header_ck;
    let mut index = 0u64;
    let mut chain_reaches_end = true;
    while index < frames {
        reader.read_exact(&mut frame).map_err(io_err)?;
        let (fh, page) = frame.split_at(FRAME_HEADER);
        if (be32(&fh[8..12]), be32(&fh[12..16])) != salt {
            chain_reaches_end = false;
            report.stale_frames = frames - index;
            break;
        }
        let c = checksum(big_endian, page, checksum(big_endian, &fh[0..8], ck));
        if c != (be32(&fh[16..20]), be32(&fh[20..24])) {
            chain_reaches_end = false;
            let is_commit = be32(&fh[4..8]) != 0;
            let later_commit = if is_commit {
                Some(index)
            } else {
                find_later_commit(&mut reader, &mut frame, salt, index + 1, frames)
                    .map_err(io_err)?
            };
            if let Some(at) = later_commit {
                return Err(corrupt(format!(
                    "frame {index} fails its checksum; SQLite would stop there and silently drop \
                     the transaction committed at frame {at}"
                )));
            }
            report.uncommitted_tail = frames - report.committed_frames;
            break;
        }
        ck = c;
        report.valid_frames += 1;
        if be32(&fh[4..8]) != 0 {
            report.committed_frames = report.valid_frames;
        }
        index += 1;
    }
    if chain_reaches_end {
        report.uncommitted_tail = report.valid_frames - report.committed_frames;
        if remainder != 0 {
            return Err(truncated(format!(
                "it ends {remainder} bytes into frame {frames} (frames are {frame_size} bytes)"
            )));
        }
    }
    Ok(report)
}

/// Scans frames `from..frames` for a commit frame carrying the current salts.
fn find_later_commit(
    reader: &mut impl Read,
    frame: &mut [u8],
    salt: (u32, u32),
    from: u64,
    frames: u64,
) -> std::io::Result<Option<u64>> {
    for i in from..frames {
        reader.read_exact(frame)?;
        let fh = &frame[..FRAME_HEADER];
        if (be32(&fh[8..12]), be32(&fh[12..16])) == salt && be32(&fh[4..8]) != 0 {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a WAL with `n` frames of page size 512, commit on frames in `commits`.
    fn build(n: u32, commits: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut hdr = Vec::new();
        hdr.extend_from_slice(&MAGIC_LE.to_be_bytes());
        hdr.extend_from_slice(&VERSION.to_be_bytes());
        hdr.extend_from_slice(&512u32.to_be_bytes());
        hdr.extend_from_slice(&0u32.to_be_bytes());
        hdr.extend_from_slice(&7u32.to_be_bytes());
        hdr.extend_from_slice(&9u32.to_be_bytes());
        let mut ck = checksum(false, &hdr, (0, 0));
        hdr.extend_from_slice(&ck.0.to_be_bytes());
        hdr.extend_from_slice(&ck.1.to_be_bytes());
        out.extend_from_slice(&hdr);
        for i in 0..n {
            let mut fh = Vec::new();
            fh.extend_from_slice(&(i + 1).to_be_bytes());
            let commit = if commits.contains(&i) { i + 1 } else { 0 };
            fh.extend_from_slice(&commit.to_be_bytes());
            fh.extend_from_slice(&7u32.to_be_bytes());
            fh.extend_from_slice(&9u32.to_be_bytes());
            let page = vec![(i % 251) as u8; 512];
            ck = checksum(false, &page, checksum(false, &fh[0..8], ck));
            fh.extend_from_slice(&ck.0.to_be_bytes());
            fh.extend_from_slice(&ck.1.to_be_bytes());
            out.extend_from_slice(&fh);
            out.extend_from_slice(&page);
        }
        out
    }

    fn check_bytes(bytes: &[u8]) -> Result<WalReport> {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("x-wal");
        std::fs::write(&p, bytes).expect("write");
        check_wal(&p)
    }

    #[test]
    fn valid_wal() {
        let r = check_bytes(&build(4, &[1, 3])).expect("valid");
        assert_eq!((r.frames, r.valid_frames, r.committed_frames), (4, 4, 4));
        let r = check_bytes(&build(4, &[1])).expect("uncommitted tail is fine");
        assert_eq!((r.committed_frames, r.uncommitted_tail), (2, 2));
    }

    #[test]
    fn truncated_mid_frame() {
        let w = build(4, &[1, 3]);
        let err = check_bytes(&w[..w.len() - 100]).expect_err("truncated");
        assert!(matches!(err, Error::TruncatedWal { .. }), "{err}");
        assert!(matches!(
            check_bytes(&w[..20]),
            Err(Error::TruncatedWal { .. })
        ));
    }

    #[test]
    fn corrupt_frame_before_commit() {
        let mut w = build(4, &[1, 3]);
        w[32 + 24 + 10] ^= 0xff; // page of frame 0
        assert!(matches!(check_bytes(&w), Err(Error::CorruptWal { .. })));
        let mut h = build(4, &[3]);
        h[17] ^= 1; // salt → header checksum mismatch
        assert!(matches!(check_bytes(&h), Err(Error::CorruptWal { .. })));
    }

    #[test]
    fn torn_uncommitted_tail_is_harmless() {
        let mut w = build(4, &[1]);
        let last = w.len() - 5;
        w[last] ^= 0xff;
        let r = check_bytes(&w).expect("tail");
        assert_eq!(r.committed_frames, 2);
    }
}
