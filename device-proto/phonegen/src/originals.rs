//! Bytes of originals that reach the phone after the image was written: `ferry-sim fetch`
//! plays iOS downloading an iCloud-only original ("Optimize iPhone Storage") and needs the
//! file's content to be deterministic, so that tests can predict its SHA-256.
//!
//! The content is made exactly like the generator's own media files (`media`): a valid
//! header for the type named by the file's extension, ChaCha8 filler, a trailer, the exact
//! size asked for. The filler seed comes from the image seed, the asset UUID and the
//! resource role ([`seed_for`]), so the same image and asset always get the same bytes.

use std::io::Write;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

use crate::media::{self, MediaKind, PFile};

/// The filler seed of a fetched original: the first 8 bytes of
/// SHA-256(`"ferry-fetch"`, image seed, UUID, role).
pub fn seed_for(image_seed: u64, uuid: &str, role: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(b"ferry-fetch\0");
    h.update(image_seed.to_le_bytes());
    h.update(uuid.as_bytes());
    h.update([0]);
    h.update(role.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

const PLIST_HEAD: &str =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\">\n<dict/>\n";
const PLIST_TAIL: &str = "</plist>\n";

/// The kind of file an AFC path's extension names; `None` when the extension is unknown or
/// the size is too small for that kind's header (the content is then plain filler).
fn kind_for(afc_path: &str, size: u64) -> Option<MediaKind> {
    let ext = afc_path.rsplit_once('.')?.1.to_ascii_lowercase();
    let kind = match ext.as_str() {
        "heic" | "heif" => MediaKind::Heic,
        "jpg" | "jpeg" => MediaKind::Jpeg,
        "png" => MediaKind::Png,
        "mov" => MediaKind::Mov,
        "mp4" | "m4v" => MediaKind::Mp4,
        "dng" | "arw" | "cr2" | "cr3" | "nef" | "tif" | "tiff" => MediaKind::Tiff,
        "plist" | "aae" => {
            let fixed = (PLIST_HEAD.len() + PLIST_TAIL.len()) as u64;
            if size < fixed {
                return None;
            }
            let pad = usize::try_from(size - fixed).ok()?;
            let mut b = PLIST_HEAD.as_bytes().to_vec();
            b.extend(std::iter::repeat_n(b' ', pad));
            b.extend_from_slice(PLIST_TAIL.as_bytes());
            MediaKind::Literal(b)
        }
        _ => return None,
    };
    (size >= PFile::min_size(&kind)).then_some(kind)
}

/// Writes the `size` bytes of the original at `afc_path` (its extension picks the header)
/// with filler from `seed` to `out`, in writes of at most 1 MiB, and returns their SHA-256
/// (lower-case hex).
pub fn write_original<W: Write>(
    out: &mut W,
    afc_path: &str,
    size: u64,
    seed: u64,
) -> std::io::Result<String> {
    let mut w = Hashing {
        inner: out,
        hash: Sha256::new(),
    };
    match kind_for(afc_path, size) {
        Some(kind) => {
            let f = PFile {
                path: afc_path.to_string(),
                size,
                kind,
                seed,
                sparse: false,
                mtime: 0,
            };
            media::write_body(&mut w, &f)?;
        }
        None => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut left = size;
            let mut buf = vec![0u8; left.min(1 << 20) as usize];
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                rng.fill_bytes(&mut buf[..n]);
                w.write_all(&buf[..n])?;
                left -= n as u64;
            }
        }
    }
    Ok(media::hex(&w.hash.finalize()))
}

struct Hashing<'a, W: Write> {
    inner: &'a mut W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_size_magic_and_determinism() {
        for (path, magic) in [
            ("DCIM/100APPLE/IMG_0001.HEIC", &b"ftypheic"[..]),
            ("DCIM/100APPLE/IMG_0001.JPG", &[0xFF, 0xD8][..]),
            ("DCIM/100APPLE/IMG_0001.PNG", &b"\x89PNG"[..]),
            ("DCIM/100APPLE/IMG_0001.MOV", &b"ftypqt"[..]),
            ("x/Adjustments.plist", &b"<?xml"[..]),
            ("x/y.bin", &b""[..]),
        ] {
            let mut a = Vec::new();
            let sha =
                write_original(&mut a, path, 5000, seed_for(1, "U", "primary")).expect("write");
            assert_eq!(a.len(), 5000, "{path}");
            let found = a
                .windows(magic.len().max(1))
                .take(16)
                .any(|w| magic.is_empty() || w == magic);
            assert!(found, "{path}: no {magic:?} header");
            let mut b = Vec::new();
            assert_eq!(
                write_original(&mut b, path, 5000, seed_for(1, "U", "primary")).expect("write"),
                sha
            );
            assert_eq!(a, b);
            let mut c = Vec::new();
            write_original(&mut c, path, 5000, seed_for(2, "U", "primary")).expect("write");
            if !path.ends_with(".plist") {
                assert_ne!(a, c, "{path}: the seed must matter");
            }
        }
        let mut tiny = Vec::new();
        write_original(&mut tiny, "a.HEIC", 10, 1).expect("write");
        assert_eq!(tiny.len(), 10);
    }
}
