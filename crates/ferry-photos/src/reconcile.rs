//! Reconciling the database's view with the files on the phone (spec §4.3: the file system
//! wins).
//!
//! The reader says what the database believes; this module asks a [`MediaFs`] (AFC on a real
//! phone, a directory for simulated images and tests) what is actually there and decides, per
//! original resource, whether to archive it, ask the user to fetch it on the phone, or report it
//! as unavailable.

use std::io;
use std::path::PathBuf;

use serde::Serialize;

use crate::path::{split_ext, AfcPath};
use crate::record::{AssetRecord, Availability, OriginalResource, ResourceLocation, UploadState};

/// Read-only questions about files under the AFC root.
pub trait MediaFs {
    /// The size of a regular file, or `None` if it does not exist.
    fn file_size(&self, path: &AfcPath) -> io::Result<Option<u64>>;
    /// The names in a directory, or `None` if it does not exist.
    fn list_dir(&self, dir: &AfcPath) -> io::Result<Option<Vec<String>>>;
}

/// A [`MediaFs`] over a local directory that mirrors `/var/mobile/Media` (a phone image's
/// `Media/`).
#[derive(Debug, Clone)]
pub struct LocalMediaDir {
    root: PathBuf,
}

impl LocalMediaDir {
    /// Serves files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalMediaDir { root: root.into() }
    }

    /// The local path of an AFC path.
    pub fn local_path(&self, path: &AfcPath) -> PathBuf {
        self.root.join(path.as_str())
    }
}

impl MediaFs for LocalMediaDir {
    fn file_size(&self, path: &AfcPath) -> io::Result<Option<u64>> {
        match std::fs::metadata(self.local_path(path)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn list_dir(&self, dir: &AfcPath) -> io::Result<Option<Vec<String>>> {
        let rd = match std::fs::read_dir(self.local_path(dir)) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in rd {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(Some(names))
    }
}

/// What to do with one original resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Verdict {
    /// The file is on the phone: copy it. `provisional` when its size differs from the
    /// database's (deferred processing or an in-place rewrite): copy, and re-check next run.
    Archive {
        /// Where it is.
        path: AfcPath,
        /// Its size on the phone.
        size: u64,
        /// Size differs from the database.
        provisional: bool,
    },
    /// Not on the phone, but in iCloud: the user must download it on the phone
    /// ("fetch these on the phone" list).
    FetchOnPhone,
    /// Not on the phone and not known to be in iCloud: at risk or lost.
    Unavailable,
    /// The database says iCloud-only and a file of the wrong size is present: a download in
    /// progress. Skip and retry later.
    RetryLater,
    /// The asset is excluded by default; nothing was checked.
    Excluded,
}

impl Verdict {
    /// The stable snake_case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Archive { .. } => "archive",
            Verdict::FetchOnPhone => "fetch_on_phone",
            Verdict::Unavailable => "unavailable",
            Verdict::RetryLater => "retry_later",
            Verdict::Excluded => "excluded",
        }
    }
}

/// The asset-level outcome, from the primary original's verdict.
pub fn asset_classification(record: &AssetRecord, verdicts: &[Verdict]) -> &'static str {
    if record.exclusion.is_some() {
        return "excluded";
    }
    match verdicts.first() {
        Some(Verdict::Archive { .. }) => "archive",
        Some(Verdict::FetchOnPhone) => "icloud_only",
        Some(Verdict::RetryLater) => "retry_later",
        Some(Verdict::Unavailable) | None => "unavailable",
        Some(Verdict::Excluded) => "excluded",
    }
}

/// Decides every resource of `record` (same order as `record.resources`).
pub fn reconcile(record: &AssetRecord, fs: &dyn MediaFs) -> io::Result<Vec<Verdict>> {
    record
        .resources
        .iter()
        .map(|r| {
            if record.exclusion.is_some() {
                Ok(Verdict::Excluded)
            } else {
                reconcile_resource(r, fs)
            }
        })
        .collect()
}

/// Finds the file for `location` and its size.
pub fn locate(location: &ResourceLocation, fs: &dyn MediaFs) -> io::Result<Option<(AfcPath, u64)>> {
    match location {
        ResourceLocation::Exact(p) => Ok(fs.file_size(p)?.map(|s| (p.clone(), s))),
        ResourceLocation::AnyExtension {
            dir,
            stem,
            exclude_extensions,
        } => {
            let Some(names) = fs.list_dir(dir)? else {
                return Ok(None);
            };
            for name in names {
                let (s, ext) = split_ext(&name);
                let Some(ext) = ext else { continue };
                if s != stem
                    || exclude_extensions
                        .iter()
                        .any(|x| x.eq_ignore_ascii_case(ext))
                {
                    continue;
                }
                let Ok(p) = dir.join(&name) else { continue };
                if let Some(size) = fs.file_size(&p)? {
                    return Ok(Some((p, size)));
                }
            }
            Ok(None)
        }
    }
}

fn reconcile_resource(r: &OriginalResource, fs: &dyn MediaFs) -> io::Result<Verdict> {
    let found = locate(&r.location, fs)?;
    Ok(match found {
        Some((path, size)) => {
            let matches = r.expected_size.is_none_or(|e| e == size);
            if !matches && r.availability == Availability::IcloudOnly {
                Verdict::RetryLater
            } else {
                Verdict::Archive {
                    path,
                    size,
                    provisional: !matches,
                }
            }
        }
        // The DB may say local and be lagging a purge (Apple's own repair does the same).
        None if r.upload == UploadState::InIcloud || r.availability == Availability::IcloudOnly => {
            Verdict::FetchOnPhone
        }
        None => Verdict::Unavailable,
    })
}
