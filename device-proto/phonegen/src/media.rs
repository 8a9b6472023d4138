//! Media file contents: a valid header for each type, deterministic filler, exact sizes.
//!
//! Files are streamed in 1 MiB chunks while their SHA-256 is computed, so a 300 MB
//! `realistic` video never sits in memory. A sparse file (`--sparse-video-bytes`) gets its
//! header written and the rest left as a hole; its hash covers the zeros the hole reads as.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// What kind of file to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MediaKind {
    Heic,
    Jpeg,
    Png,
    Mov,
    Mp4,
    /// TIFF-based RAW (DNG, ARW).
    Tiff,
    /// Literal bytes (plists).
    Literal(Vec<u8>),
}

/// One file of the image.
#[derive(Debug, Clone)]
pub(crate) struct PFile {
    /// Path relative to `Media/`.
    pub path: String,
    pub size: u64,
    pub kind: MediaKind,
    pub seed: u64,
    pub sparse: bool,
    /// Modification time, Unix seconds.
    pub mtime: i64,
}

impl PFile {
    /// Smallest size this kind can have (its header + trailer).
    pub fn min_size(kind: &MediaKind) -> u64 {
        match kind {
            MediaKind::Literal(b) => b.len() as u64,
            MediaKind::Png => 8 + 25 + 12 + 12,
            _ => 64,
        }
    }
}

/// Writes `f` under `media_root` and returns its SHA-256 (hex).
pub(crate) fn write_file(media_root: &Path, f: &PFile) -> anyhow::Result<String> {
    let path = media_root.join(&f.path);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = HashingWriter {
        inner: BufWriter::with_capacity(1 << 16, file),
        hash: Sha256::new(),
        written: 0,
    };
    if f.sparse && !matches!(f.kind, MediaKind::Literal(_)) {
        let (head, _) = header_and_trailer(f);
        out.write_all(&head)?;
        out.inner.flush()?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = f.size - head.len() as u64;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            out.hash.update(&zeros[..n]);
            left -= n as u64;
        }
        out.inner.get_ref().set_len(f.size)?;
        out.written = f.size;
    } else {
        write_body(&mut out, f)?;
    }
    out.inner.flush()?;
    let file = out.inner.into_inner().map_err(|e| e.into_error())?;
    let mtime = if f.mtime >= 0 {
        SystemTime::UNIX_EPOCH + Duration::from_secs(f.mtime as u64)
    } else {
        SystemTime::UNIX_EPOCH
    };
    file.set_modified(mtime)?;
    anyhow::ensure!(
        out.written == f.size,
        "internal error: wrote {} bytes to {}, planned {}",
        out.written,
        f.path,
        f.size
    );
    Ok(hex(&out.hash.finalize()))
}

/// Writes the whole content of the non-sparse file `f` to `out`: header, deterministic filler
/// from `f.seed` (1 MiB writes at most), trailer.
pub(crate) fn write_body<W: Write>(out: &mut W, f: &PFile) -> std::io::Result<()> {
    let (head, tail) = header_and_trailer(f);
    out.write_all(&head)?;
    if let MediaKind::Literal(_) = f.kind {
        // The header is the whole file.
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(f.seed);
    let mut left = f.size - head.len() as u64 - tail.len() as u64;
    let mut buf = vec![0u8; (left.min(1 << 20)) as usize];
    let mut crc = Crc32::new();
    crc.update(&head[head.len().saturating_sub(4)..]); // PNG: CRC covers the chunk type
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        if f.kind == MediaKind::Png {
            crc.update(&buf[..n]);
        }
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    if f.kind == MediaKind::Png {
        let mut t = crc.finish().to_be_bytes().to_vec();
        t.extend_from_slice(&tail[4..]);
        out.write_all(&t)?;
    } else {
        out.write_all(&tail)?;
    }
    Ok(())
}

struct HashingWriter {
    inner: BufWriter<File>,
    hash: Sha256,
    written: u64,
}

impl Write for HashingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn be32(v: u64) -> [u8; 4] {
    (v.min(u64::from(u32::MAX)) as u32).to_be_bytes()
}

/// The header (written first) and trailer (written last) of a file. For PNG the trailer is
/// `crc(4) + IEND chunk`; the CRC placeholder is replaced by the real CRC.
fn header_and_trailer(f: &PFile) -> (Vec<u8>, Vec<u8>) {
    let size = f.size;
    match &f.kind {
        MediaKind::Literal(b) => (b.clone(), Vec::new()),
        MediaKind::Heic => {
            let mut h = Vec::new();
            h.extend_from_slice(&be32(24));
            h.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
            h.extend_from_slice(&be32(size - 24));
            h.extend_from_slice(b"mdat");
            (h, Vec::new())
        }
        MediaKind::Mov | MediaKind::Mp4 => {
            let mut h = Vec::new();
            if f.kind == MediaKind::Mov {
                h.extend_from_slice(&be32(20));
                h.extend_from_slice(b"ftypqt  \0\0\0\0qt  ");
            } else {
                h.extend_from_slice(&be32(24));
                h.extend_from_slice(b"ftypmp42\0\0\0\0isommp42");
            }
            h.extend_from_slice(&be32(8));
            h.extend_from_slice(b"wide");
            let rest = size - h.len() as u64;
            if rest > u64::from(u32::MAX) {
                h.extend_from_slice(&1u32.to_be_bytes());
                h.extend_from_slice(b"mdat");
                h.extend_from_slice(&rest.to_be_bytes());
            } else {
                h.extend_from_slice(&be32(rest));
                h.extend_from_slice(b"mdat");
            }
            (h, Vec::new())
        }
        MediaKind::Jpeg => {
            let mut h = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
            h.extend_from_slice(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
            let comment = b"ferry-phonegen synthetic image";
            h.extend_from_slice(&[0xFF, 0xFE]);
            h.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
            h.extend_from_slice(comment);
            (h, vec![0xFF, 0xD9])
        }
        MediaKind::Png => {
            let mut h = b"\x89PNG\r\n\x1a\n".to_vec();
            let mut ihdr = b"IHDR".to_vec();
            ihdr.extend_from_slice(&1170u32.to_be_bytes());
            ihdr.extend_from_slice(&2532u32.to_be_bytes());
            ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
            h.extend_from_slice(&13u32.to_be_bytes());
            h.extend_from_slice(&ihdr);
            let mut c = Crc32::new();
            c.update(&ihdr);
            h.extend_from_slice(&c.finish().to_be_bytes());
            // A private ancillary chunk carrying the filler; its type is the last 4 header bytes.
            let data_len = size - h.len() as u64 - 8 - 4 - 12;
            h.extend_from_slice(&be32(data_len));
            h.extend_from_slice(b"feRy");
            let mut t = vec![0, 0, 0, 0];
            t.extend_from_slice(&0u32.to_be_bytes());
            t.extend_from_slice(b"IEND");
            t.extend_from_slice(&[0xAE, 0x42, 0x60, 0x82]);
            (h, t)
        }
        MediaKind::Tiff => {
            // Little-endian TIFF with one empty IFD.
            let h = vec![b'I', b'I', 42, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            (h, Vec::new())
        }
    }
}

/// CRC-32 (IEEE), as PNG uses.
struct Crc32 {
    table: [u32; 256],
    value: u32,
}

impl Crc32 {
    fn new() -> Self {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        Crc32 {
            table,
            value: 0xFFFF_FFFF,
        }
    }
    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.value =
                self.table[((self.value ^ u32::from(b)) & 0xFF) as usize] ^ (self.value >> 8);
        }
    }
    fn finish(&self) -> u32 {
        self.value ^ 0xFFFF_FFFF
    }
}
