//! Shared helpers for the integration tests: specs, deterministic contents, tree walks, and a
//! size-limited tmpfs mount (root only; failing loudly, never skipping).
#![allow(dead_code)]

use std::path::Path;

use ferry_archive::{Archive, ArchiveOptions, PhoneArchive, ResourceSpec};
use ferry_photos::ResourceRole;

pub const UDID: &str = "00008110-000A1B2C3D4E5F60";
/// 2024-01-31T23:30:00Z
pub const CAPTURE: i64 = 1_706_743_800_000;

pub fn spec(uuid: &str, role: ResourceRole, original: &str, afc: &str, size: u64) -> ResourceSpec {
    ResourceSpec {
        asset_uuid: uuid.into(),
        role,
        size,
        afc_path: afc.into(),
        original_filename: Some(original.into()),
        capture_utc_millis: Some(CAPTURE),
        tz_offset_seconds: Some(3600),
    }
}

/// Deterministic pseudo-random bytes (xorshift), different per seed.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn new_archive(dir: &Path) -> (Archive, PhoneArchive) {
    Archive::init(dir).expect("init");
    let a = Archive::open(dir, ArchiveOptions::default()).expect("open");
    let p = a.phone(UDID, "Anna's iPhone").expect("phone");
    (a, p)
}

pub fn write(
    p: &PhoneArchive,
    s: ResourceSpec,
    data: &[u8],
) -> ferry_archive::Result<ferry_archive::Archived> {
    let mut w = p.begin(s)?;
    for c in data.chunks(7919) {
        w.write_chunk(c)?;
    }
    w.finish()
}

/// Every regular file and symlink under `root`, relative, sorted.
pub fn tree(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            let p = e.path();
            if ft.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// Photo files only (no `.ferry/`).
pub fn photo_files(root: &Path) -> Vec<String> {
    tree(root)
        .into_iter()
        .filter(|p| !p.starts_with(".ferry/"))
        .collect()
}

#[allow(unused_imports)]
pub use ferry_e2e::mount::TmpfsMount;
