//! Small, deterministic phone images (`device.toml` + `Media/`) in a temp dir.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// The UDID of the standard test phone (modern dashed 25-char form).
pub const UDID: &str = "00008030-001A2B3C4D5E802E";
/// The UDID of the second phone in multi-phone tests.
pub const UDID2: &str = "00008101-000A1B2C3D4E5F6A";

/// The file larger than 9 MiB (not a multiple of 1 MiB or 4 MiB).
pub const BIG_FILE: &str = "DCIM/100APPLE/IMG_0003.MOV";
pub const BIG_FILE_LEN: usize = 9 * 1024 * 1024 + 1_234_567;
/// A small JPEG, also the target of the in-Media symlink.
pub const SMALL_JPEG: &str = "DCIM/100APPLE/IMG_0001.JPG";
/// A file with a non-ASCII (NFC, multi-byte UTF-8) name.
pub const NON_ASCII_FILE: &str = "DCIM/100APPLE/Café_写真_0005.JPG";
/// A symlink inside Media pointing (relatively) at [`SMALL_JPEG`].
pub const SYMLINK: &str = "PhotoData/latest.JPG";
pub const SYMLINK_TARGET: &str = "../DCIM/100APPLE/IMG_0001.JPG";
/// A symlink inside Media that points outside it (hostile images only).
pub const ESCAPE_SYMLINK: &str = "DCIM/escape.txt";
/// Content of the secret file that lives next to Media/ (must never be served).
pub const SECRET: &[u8] = b"FERRY-SECRET-must-never-leave-the-host\n";
/// mtime set on every regular file of the image, in nanoseconds since the epoch.
pub const MTIME_NS: u64 = 1_700_000_000_123_456_789;

/// Identity written to `device.toml`.
#[derive(Clone, Debug)]
pub struct PhoneSpec {
    pub udid: String,
    pub name: String,
    pub product_type: String,
    pub product_version: String,
    pub build_version: String,
    pub serial_number: String,
    pub total_bytes: u64,
    pub free_bytes: u64,
}

impl Default for PhoneSpec {
    fn default() -> Self {
        Self {
            udid: UDID.into(),
            // Real device names carry a typographic apostrophe.
            name: "Ada’s iPhone".into(),
            product_type: "iPhone12,1".into(),
            product_version: "17.6.1".into(),
            build_version: "21G93".into(),
            serial_number: "F2LXK0ABCD12".into(),
            total_bytes: 128_000_000_000,
            free_bytes: 37_654_321_152,
        }
    }
}

impl PhoneSpec {
    pub fn second() -> Self {
        Self {
            udid: UDID2.into(),
            name: "Second iPhone".into(),
            product_type: "iPhone13,2".into(),
            serial_number: "G7QXK1EFGH34".into(),
            total_bytes: 64_000_000_000,
            free_bytes: 1_000_000_000,
            ..Self::default()
        }
    }

    fn to_toml(&self) -> String {
        format!(
            "udid = {:?}\nname = {:?}\nproduct_type = {:?}\nproduct_version = {:?}\n\
             build_version = {:?}\nserial_number = {:?}\ntotal_bytes = {}\nfree_bytes = {}\n",
            self.udid,
            self.name,
            self.product_type,
            self.product_version,
            self.build_version,
            self.serial_number,
            self.total_bytes,
            self.free_bytes
        )
    }
}

/// What kind of entry a path in `Media/` is (from `symlink_metadata`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File { len: u64, sha256: String },
    Dir,
    Symlink { target: String },
}

/// A phone image in a temp dir. Removed on drop.
#[derive(Debug)]
pub struct PhoneImage {
    dir: tempfile::TempDir,
    pub spec: PhoneSpec,
}

/// Deterministic pseudo-random bytes (xorshift64*), seeded by name.
pub fn det_bytes(seed_name: &str, len: usize, magic: &[u8]) -> Vec<u8> {
    let mut seed: u64 = 0xcbf2_9ce4_8422_2325;
    for b in seed_name.bytes() {
        seed ^= u64::from(b);
        seed = seed.wrapping_mul(0x0100_0000_01b3);
    }
    if seed == 0 {
        seed = 1;
    }
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic[..magic.len().min(len)]);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        let v = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
        let bytes = v.to_le_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&bytes[..n]);
    }
    out
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_file(media: &Path, rel: &str, bytes: &[u8]) -> io::Result<()> {
    let path = media.join(rel);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(&path, bytes)?;
    let f = fs::File::options().write(true).open(&path)?;
    let mtime = UNIX_EPOCH + Duration::from_nanos(MTIME_NS);
    f.set_times(
        fs::FileTimes::new()
            .set_modified(mtime)
            .set_accessed(SystemTime::now()),
    )?;
    Ok(())
}

impl PhoneImage {
    /// The standard image: a few JPEG/HEIC/MOV/PNG files with deterministic content (one
    /// larger than 9 MiB), a non-ASCII name, a second DCIM folder, `PhotoData/`, an empty directory,
    /// an empty file and a relative symlink inside `Media/`.
    pub fn standard() -> Self {
        Self::build(PhoneSpec::default(), false)
    }

    /// The standard image plus traps for path-jail tests: a secret file next to `Media/`
    /// and a symlink inside `Media/` pointing at it.
    pub fn hostile() -> Self {
        Self::build(PhoneSpec::default(), true)
    }

    /// A small image with another identity (for multi-phone tests).
    pub fn second() -> Self {
        Self::build(PhoneSpec::second(), false)
    }

    fn build(spec: PhoneSpec, hostile: bool) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-phone-")
            .tempdir()
            .unwrap_or_else(|e| panic!("creating a temp dir for the phone image: {e}"));
        let img = Self { dir, spec };
        img.populate(hostile)
            .unwrap_or_else(|e| panic!("writing phone image in {}: {e}", img.root().display()));
        img
    }

    fn populate(&self, hostile: bool) -> io::Result<()> {
        fs::write(self.root().join("device.toml"), self.spec.to_toml())?;
        let m = self.media();
        let jpeg = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00";
        let heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic";
        let mov = b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ";
        let png = b"\x89PNG\r\n\x1a\n";
        let u = &self.spec.udid;
        write_file(&m, SMALL_JPEG, &det_bytes(&format!("{u}/1"), 180_000, jpeg))?;
        write_file(
            &m,
            "DCIM/100APPLE/IMG_0002.HEIC",
            &det_bytes(&format!("{u}/2"), 1_300_000, heic),
        )?;
        write_file(
            &m,
            BIG_FILE,
            &det_bytes(&format!("{u}/3"), BIG_FILE_LEN, mov),
        )?;
        write_file(
            &m,
            "DCIM/100APPLE/IMG_0004.AAE",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<plist version=\"1.0\"><dict/></plist>\n",
        )?;
        write_file(
            &m,
            NON_ASCII_FILE,
            &det_bytes(&format!("{u}/5"), 70_001, jpeg),
        )?;
        write_file(
            &m,
            "DCIM/101APPLE/IMG_0101.PNG",
            &det_bytes(&format!("{u}/101"), 50_000, png),
        )?;
        write_file(
            &m,
            "PhotoData/Photos.sqlite",
            &det_bytes(&format!("{u}/db"), 65_536, b"SQLite format 3\0"),
        )?;
        write_file(&m, "Downloads/empty.plist", b"")?;
        fs::create_dir_all(m.join("Books"))?;
        std::os::unix::fs::symlink(SYMLINK_TARGET, m.join(SYMLINK))?;
        if hostile {
            fs::write(self.root().join("secret.txt"), SECRET)?;
            std::os::unix::fs::symlink("../../secret.txt", m.join(ESCAPE_SYMLINK))?;
            let abs = self.root().join("secret.txt");
            std::os::unix::fs::symlink(&abs, m.join("DCIM/escape_abs.txt"))?;
        }
        Ok(())
    }

    /// The image directory (holds `device.toml` and `Media/`).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The AFC root.
    pub fn media(&self) -> PathBuf {
        self.root().join("Media")
    }

    /// Bytes of a file under `Media/` (path relative to Media, no leading slash).
    pub fn read(&self, rel: &str) -> Vec<u8> {
        let p = self.media().join(rel);
        fs::read(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
    }

    /// Every entry under `Media/`, keyed by its AFC path (`/DCIM/100APPLE/IMG_0001.JPG`),
    /// without following symlinks.
    pub fn tree(&self) -> BTreeMap<String, EntryKind> {
        let mut out = BTreeMap::new();
        walk(&self.media(), "", &mut out)
            .unwrap_or_else(|e| panic!("walking {}: {e}", self.media().display()));
        out
    }

    /// Names (not `.`/`..`) in a directory of `Media/`.
    pub fn list(&self, rel: &str) -> Vec<String> {
        let p = self.media().join(rel);
        let mut v: Vec<String> = fs::read_dir(&p)
            .unwrap_or_else(|e| panic!("listing {}: {e}", p.display()))
            .map(|e| {
                e.unwrap_or_else(|e| panic!("listing {}: {e}", p.display()))
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        v.sort();
        v
    }
}

fn walk(dir: &Path, afc_prefix: &str, out: &mut BTreeMap<String, EntryKind>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let afc_path = format!("{afc_prefix}/{name}");
        let md = fs::symlink_metadata(entry.path())?;
        let ft = md.file_type();
        if ft.is_symlink() {
            let target = fs::read_link(entry.path())?;
            out.insert(
                afc_path,
                EntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                },
            );
        } else if ft.is_dir() {
            out.insert(afc_path.clone(), EntryKind::Dir);
            walk(&entry.path(), &afc_path, out)?;
        } else {
            let bytes = fs::read(entry.path())?;
            out.insert(
                afc_path,
                EntryKind::File {
                    len: md.len(),
                    sha256: sha256_hex(&bytes),
                },
            );
        }
    }
    Ok(())
}
