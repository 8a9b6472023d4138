//! Comparing the catalog with the files on the drive (`ferry verify`, tests): every row's file
//! present with its size (and hash when asked), every file in the phone folders known.
//! Read-only, and it walks the archive through the held destination without following any
//! link: a link planted in a phone folder is reported as an unknown file, never entered.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use crate::archive::Archive;
use crate::error::Result;
use crate::names;
use crate::root::{self, Kind, Root};

const READ_BUFFER: usize = 1 << 20;

/// Result of [`Archive::check`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ConsistencyReport {
    /// Catalog rows looked at.
    pub files_checked: usize,
    /// Files whose content was re-hashed.
    pub files_hashed: usize,
    /// Their bytes.
    pub bytes_hashed: u64,
    /// Rows whose file is gone.
    pub missing: Vec<String>,
    /// Rows whose file has another size.
    pub wrong_size: Vec<String>,
    /// Rows whose file has another hash (only with `verify_hashes`).
    pub wrong_hash: Vec<String>,
    /// Rows with an unusable path.
    pub bad_paths: Vec<String>,
    /// Files in the phone folders that no row describes.
    pub unknown_files: Vec<String>,
    /// Ferry temp files present (only while a write is in progress, or after a crash until
    /// the next open).
    pub temp_files: Vec<String>,
}

impl ConsistencyReport {
    /// True if the catalog and the files agree exactly.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.wrong_hash.is_empty()
            && self.bad_paths.is_empty()
            && self.unknown_files.is_empty()
            && self.temp_files.is_empty()
    }
}

impl Archive {
    /// Like [`Archive::check`], re-hashing only about `sample_percent` % of the files (chosen
    /// at random per call; 100 = all). `on_file` is called after each file with its path and
    /// size, for progress.
    pub fn verify(
        &self,
        sample_percent: f64,
        mut on_file: impl FnMut(&str, u64),
    ) -> Result<ConsistencyReport> {
        let seed = u64::try_from(crate::now_millis()).unwrap_or(0) ^ u64::from(std::process::id());
        let pick = |path: &str| -> bool {
            if sample_percent >= 100.0 {
                return true;
            }
            let mut h = blake3::Hasher::new();
            h.update(&seed.to_le_bytes());
            h.update(path.as_bytes());
            let b = h.finalize();
            let v = u16::from_le_bytes([b.as_bytes()[0], b.as_bytes()[1]]);
            (f64::from(v) / 65536.0) * 100.0 < sample_percent
        };
        self.check_impl(&pick, &mut on_file)
    }

    /// Compares the catalog with the files: every catalog row's file present with its size
    /// (and hash, if `verify_hashes`), and every file in the phone folders known. Read-only.
    pub fn check(&self, verify_hashes: bool) -> Result<ConsistencyReport> {
        self.check_impl(&|_| verify_hashes, &mut |_, _| {})
    }

    fn check_impl(
        &self,
        hash_this: &dyn Fn(&str) -> bool,
        on_file: &mut dyn FnMut(&str, u64),
    ) -> Result<ConsistencyReport> {
        let (entries, phones) = {
            let st = self.state();
            (st.catalog.all_entries()?, st.catalog.phones()?)
        };
        let root = self.held();
        let mut rep = ConsistencyReport::default();
        let mut known = std::collections::HashSet::new();
        for e in &entries {
            known.insert(e.path.clone());
            let Ok(parts) = names::validate_relative(&e.path) else {
                rep.bad_paths.push(e.path.clone());
                continue;
            };
            rep.files_checked += 1;
            match root.lookup(&parts) {
                Some((Kind::File, len)) => {
                    if len != e.size {
                        rep.wrong_size.push(e.path.clone());
                    } else if hash_this(&e.path) {
                        rep.files_hashed += 1;
                        rep.bytes_hashed += e.size;
                        match hash_archived(root, &parts) {
                            Ok(h) if h == e.hash => {}
                            _ => rep.wrong_hash.push(e.path.clone()),
                        }
                    }
                    on_file(&e.path, e.size);
                }
                _ => rep.missing.push(e.path.clone()),
            }
        }
        root.check()?;
        for phone in phones {
            let mut found = Vec::new();
            if let Ok(dir) = root::subdir(
                root.dir(),
                &phone.folder,
                false,
                0,
                &root.path().join(&phone.folder),
            ) {
                list_files(dir.as_fd(), &phone.folder, 3, &mut found);
            }
            for rel in found {
                let name = rel.rsplit('/').next().unwrap_or("");
                if names::is_temp_name(name) {
                    rep.temp_files.push(rel);
                } else if !known.contains(&rel) {
                    rep.unknown_files.push(rel);
                }
            }
        }
        Ok(rep)
    }
}

/// Every non-folder below held folder `dir` (named `rel`), up to `depth` levels down; folders
/// that are links are listed as files, never entered.
fn list_files(dir: BorrowedFd<'_>, rel: &str, depth: usize, out: &mut Vec<String>) {
    let Ok(entries) = root::list_dir(dir) else {
        return;
    };
    for (name, kind) in entries {
        let child = format!("{rel}/{name}");
        if kind == Kind::Dir && depth > 0 {
            if let Ok(sub) = root::subdir(dir, &name, false, 0, Path::new(&child)) {
                list_files(sub.as_fd(), &child, depth - 1, out);
            }
        } else if kind != Kind::Dir {
            out.push(child);
        }
    }
}

/// BLAKE3 of an archived file (archive-relative `parts`, no links followed), hex.
pub(crate) fn hash_archived(root: &Root, parts: &[&str]) -> Result<String> {
    let mut f = root.open_data_file(parts)?;
    hash_reader(&mut f).map_err(|e| crate::Error::io("read", &root.path().join(parts.join("/")), e))
}

/// BLAKE3 of a file, hex.
pub fn hash_file(path: &Path) -> io::Result<String> {
    hash_reader(&mut File::open(path)?)
}

fn hash_reader(f: &mut File) -> io::Result<String> {
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}
