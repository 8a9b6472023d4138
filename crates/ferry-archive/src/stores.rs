//! Ferry's working metadata beside the archive: run reports (`.ferry/reports/<udid>/`) and
//! fetch plans (`.ferry/plans/<udid>.json`), written by an open archive and read lock-free by
//! `ferry status` and the app while a run holds the lock.
//!
//! Every path below `DIR` is walked without following links, reading too: a `.ferry/reports`
//! that is a link to somewhere else is refused when writing and reads as empty.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;

use crate::archive::Archive;
use crate::error::{Error, Result};
use crate::root::{self, Kind, Root};
use crate::spec::check_text;

/// Name of the newest report in each phone's report folder.
pub const LATEST_REPORT: &str = "latest.json";
const REPORTS: &str = "reports";
const PLANS: &str = "plans";
/// Reports and plans are small; anything far larger is not one of Ferry's.
const MAX_DOC: u64 = 64 << 20;

/// A UDID as a file name: anything but ASCII letters, digits and `-` becomes `_`.
pub fn safe_udid(udid: &str) -> String {
    udid.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Archive {
    /// Stores the phone's current fetch plan (JSON) as `.ferry/plans/<udid>.json`, replacing
    /// the previous plan (plans are Ferry's own working metadata, not archive content).
    pub fn store_fetch_plan(&self, udid: &str, json: &[u8]) -> Result<PathBuf> {
        check_text("UDID", udid, 128)?;
        self.writable()?;
        let root = self.held();
        let r = (|| {
            root.check()?;
            let (dir, shown) = root.meta_dir(&[PLANS])?;
            let name = format!("{}.json", safe_udid(udid));
            root::write_small_atomic_at(dir.as_fd(), &shown, &name, json)?;
            Ok(shown.join(name))
        })();
        r.map_err(|e| root.explain(e))
    }

    /// Stores a run report (JSON) for the phone `udid`: `.ferry/reports/<udid>/<time>.json`
    /// plus `latest.json` beside it. Reports are never deleted. Returns the stamped file.
    /// Nothing is written when the destination is no longer the archive that was opened
    /// ([`Error::DestinationGone`]).
    pub fn store_report(&self, udid: &str, json: &[u8]) -> Result<PathBuf> {
        check_text("UDID", udid, 128)?;
        self.writable()?;
        let root = self.held();
        let r = (|| {
            root.check()?;
            let (dir, shown) = root.meta_dir(&[REPORTS, &safe_udid(udid)])?;
            let stamp = crate::now_millis();
            let mut n = 0u32;
            let name = loop {
                let name = if n == 0 {
                    format!("{stamp}.json")
                } else {
                    format!("{stamp}-{n}.json")
                };
                if root::kind_at(dir.as_fd(), &name)
                    .map_err(|e| Error::io("inspect", &shown.join(&name), e))?
                    .is_none()
                {
                    break name;
                }
                n += 1;
            };
            root::write_small_atomic_at(dir.as_fd(), &shown, &name, json)?;
            root::write_small_atomic_at(dir.as_fd(), &shown, LATEST_REPORT, json)?;
            Ok(shown.join(name))
        })();
        r.map_err(|e| root.explain(e))
    }
}

/// The held `.ferry/<parts…>` folder of destination `dir`, for lock-free readers; `None` if
/// any part is missing or not a plain folder.
fn meta_folder(dir: &Path, parts: &[&str]) -> Option<OwnedFd> {
    let root = Root::open(dir, false).ok()?;
    Root::walk(root.meta(), &root.meta_path(), parts, false, 0)
        .ok()
        .map(|(fd, _)| fd)
}

fn read_doc(dir: std::os::fd::BorrowedFd<'_>, name: &str) -> Option<Vec<u8>> {
    let f = root::open_file_at(dir, name, OFlags::RDONLY, 0, Path::new(name), "read").ok()?;
    let mut out = Vec::new();
    f.take(MAX_DOC).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Reads phone `udid`'s fetch plan in the archive at `dir`, lock-free.
pub fn read_fetch_plan(dir: &Path, udid: &str) -> Option<Vec<u8>> {
    let plans = meta_folder(dir, &[PLANS])?;
    read_doc(plans.as_fd(), &format!("{}.json", safe_udid(udid)))
}

/// The newest `max` stored reports of phone `udid` (lock-free), newest first: the run
/// history.
pub fn recent_reports(dir: &Path, udid: &str, max: usize) -> Vec<Vec<u8>> {
    let Some(reports) = meta_folder(dir, &[REPORTS, &safe_udid(udid)]) else {
        return Vec::new();
    };
    let mut names: Vec<String> = root::list_dir(reports.as_fd())
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, k)| *k == Kind::File && n.ends_with(".json") && n != LATEST_REPORT)
        .map(|(n, _)| n)
        .collect();
    // `<ms>.json` and `<ms>-<n>.json`: newest first by the number, then the suffix.
    names.sort_by_key(|n| {
        let stem = n.trim_end_matches(".json");
        let (ms, k) = stem.split_once('-').unwrap_or((stem, "0"));
        (
            ms.parse::<u64>().unwrap_or(0),
            k.parse::<u64>().unwrap_or(0),
        )
    });
    names
        .iter()
        .rev()
        .take(max)
        .filter_map(|n| read_doc(reports.as_fd(), n))
        .collect()
}

/// Reads the newest run report of phone `udid` in the archive at `dir` without opening (or
/// locking) the archive: for `ferry status` while another run holds the lock.
pub fn read_latest_report(dir: &Path, udid: &str) -> Option<Vec<u8>> {
    let reports = meta_folder(dir, &[REPORTS, &safe_udid(udid)])?;
    read_doc(reports.as_fd(), LATEST_REPORT)
}

/// The UDIDs that have reports in the archive at `dir` (lock-free, like
/// [`read_latest_report`]).
pub fn reported_phones(dir: &Path) -> Vec<String> {
    let Some(reports) = meta_folder(dir, &[REPORTS]) else {
        return Vec::new();
    };
    let mut out: Vec<String> = root::list_dir(reports.as_fd())
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, k)| *k == Kind::Dir)
        .map(|(n, _)| n)
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udid_file_names() {
        assert_eq!(safe_udid("00008110-000A1B2C"), "00008110-000A1B2C");
        assert_eq!(safe_udid("../x/y"), "___x_y");
    }
}
