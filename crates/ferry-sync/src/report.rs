//! The run report: every asset accounted for, the iCloud-only list, the failures.
//!
//! The reconciliation holds by construction and is checked anyway ([`Reconciliation::balanced`]):
//!
//! ```text
//! assets in the phone's library = archived_new + archived_earlier + would_copy (dry run)
//!                               + icloud_only + unavailable + retry_later
//!                               + Σ excluded[reason] + Σ failed[reason]
//! ```
//!
//! The report is stored as JSON in the archive (`.ferry/reports/<udid>/`) and printed by the
//! front ends; its format is versioned ([`REPORT_FORMAT`], docs/cli.md).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the report's JSON format.
pub const REPORT_FORMAT: u32 = 1;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every original on the phone is in the archive.
    Complete,
    /// The run finished, but some files could not be copied (see `failures`).
    Incomplete,
    /// The run stopped early (unplugged, disk full, cancelled, …): see `stopped`.
    Stopped,
    /// `--dry-run`: nothing was copied.
    DryRun,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopInfo {
    /// Stable code: `disconnected`, `timeout`, `disk_full`, `read_only`, `cancelled`,
    /// `destination`, `phone`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: String,
    /// For `disk_full`: bytes still needed for the rest of the plan.
    pub need_bytes: Option<u64>,
}

/// Every asset of the phone's library, in exactly one bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciliation {
    /// Assets in the phone's library.
    pub assets: u64,
    /// Archived, with at least one file copied in this run.
    pub archived_new: u64,
    /// Archived by an earlier run; nothing new to copy.
    pub archived_earlier: u64,
    /// `--dry-run`: would be copied.
    pub would_copy: u64,
    /// The original is only in iCloud: fetch it on the phone.
    pub icloud_only: u64,
    /// Neither on the phone nor (as far as the database says) in iCloud.
    pub unavailable: u64,
    /// A download to the phone is in progress: picked up next time.
    pub retry_later: u64,
    /// Not backed up by design, per reason.
    pub excluded: BTreeMap<String, u64>,
    /// Could not be copied (or not yet: the run stopped), per reason.
    pub failed: BTreeMap<String, u64>,
}

impl Reconciliation {
    /// The sum of the buckets.
    pub fn accounted(&self) -> u64 {
        self.archived_new
            + self.archived_earlier
            + self.would_copy
            + self.icloud_only
            + self.unavailable
            + self.retry_later
            + self.excluded.values().sum::<u64>()
            + self.failed.values().sum::<u64>()
    }

    /// True when every asset is in exactly one bucket.
    pub fn balanced(&self) -> bool {
        self.accounted() == self.assets
    }
}

/// File-level totals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTotals {
    /// Files the plan said to copy.
    pub planned: u64,
    /// Their bytes.
    pub planned_bytes: u64,
    /// Copied into the archive in this run.
    pub copied: u64,
    /// Their bytes.
    pub copied_bytes: u64,
    /// Of the copied, new versions of files archived before (the old file is kept).
    pub new_versions: u64,
    /// Already in the archive before this run (not read again).
    pub already_archived: u64,
    /// Planned but found already archived when their turn came.
    pub skipped: u64,
    /// Planned and not copied (see `failures`).
    pub failed: u64,
}

/// Originals that exist only on this phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnlyHere {
    /// Assets with at least one such file.
    pub assets: u64,
    /// Of those, assets whose files are all in the archive now.
    pub safe_assets: u64,
    /// Such files copied in this run.
    pub copied_files: u64,
    /// The sentence for people ("37 photos were only on this phone; they are now safe").
    pub message: Option<String>,
}

/// An asset in one of the lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetRef {
    /// `ZUUID`.
    pub uuid: String,
    /// The name the user knows.
    pub name: Option<String>,
    /// Capture time, UTC.
    pub created_utc: Option<String>,
    /// Files concerned.
    pub files: u32,
    /// Their bytes (per the database for files not on the phone).
    pub bytes: u64,
    /// For the iCloud-only list: the primary original is on the phone (and archived); only
    /// some other file (a Live Photo video, an edit) is in iCloud.
    #[serde(default)]
    pub original_local: bool,
}

/// A file that was not copied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `ZUUID`.
    pub uuid: String,
    /// The asset's name.
    pub name: Option<String>,
    /// `primary`, `live_video`, …
    pub role: String,
    /// Path on the phone.
    pub afc_path: String,
    /// Stable reason code.
    pub reason: String,
    /// What happened.
    pub message: String,
}

/// Summary of the iCloud-only originals.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IcloudSummary {
    /// Assets whose original is only in iCloud.
    pub assets: u64,
    /// Files to fetch on the phone (including Live videos of local stills).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Oldest capture date.
    pub oldest: Option<String>,
    /// Newest capture date.
    pub newest: Option<String>,
}

/// The report of one run (see the module docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncReport {
    /// [`REPORT_FORMAT`].
    pub format: u32,
    /// The Ferry version that wrote it.
    pub ferry_version: String,
    /// The phone's UDID.
    pub udid: String,
    /// The phone's name.
    pub phone_name: Option<String>,
    /// iOS version.
    pub ios_version: Option<String>,
    /// The destination folder.
    pub destination: String,
    /// The phone's folder inside the destination.
    pub phone_folder: String,
    /// Start, UTC (RFC 3339).
    pub started_at: String,
    /// End, UTC.
    pub finished_at: String,
    /// Seconds.
    pub duration_secs: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it stopped, when it did.
    pub stopped: Option<StopInfo>,
    /// Photos.sqlite was unchanged and not copied again.
    pub snapshot_reused: bool,
    /// Bytes read from the phone for the database snapshot.
    pub snapshot_bytes: u64,
    /// Every asset accounted for.
    pub reconciliation: Reconciliation,
    /// File totals.
    pub files: FileTotals,
    /// Originals that were only on this phone.
    pub only_on_this_phone: OnlyHere,
    /// The iCloud-only summary.
    pub icloud_only_summary: IcloudSummary,
    /// Every asset with an original only in iCloud (fetch these on the phone).
    pub icloud_only: Vec<AssetRef>,
    /// Assets neither on the phone nor in iCloud.
    pub unavailable: Vec<AssetRef>,
    /// Files not copied.
    pub failures: Vec<Failure>,
    /// Archived assets that are no longer in the phone's library (kept in the archive).
    pub newly_deleted_on_phone: u64,
    /// Free space on the phone, if it said.
    pub phone_free_bytes: Option<u64>,
    /// Files written without a working fsync (e.g. exFAT on macOS): noted, not an error.
    pub files_without_fsync: u64,
    /// Progress against the stored fetch plan (`ferry fetch-plan`), if there is one.
    #[serde(default)]
    pub fetch_progress: Option<crate::fetchplan::PlanProgress>,
}

impl SyncReport {
    /// Lines for people, most important first.
    pub fn summary_lines(&self) -> Vec<String> {
        let r = &self.reconciliation;
        let h = ferry_archive::human_bytes;
        let mut out = Vec::new();
        let phone = ferry_device::printable(self.phone_name.as_deref().unwrap_or("iPhone"));
        match self.outcome {
            Outcome::Complete => out.push(format!(
                "Backup of {phone} complete: every original on the phone is in {}.",
                self.destination
            )),
            Outcome::Incomplete => out.push(format!(
                "Backup of {phone} finished, but {} file(s) could not be copied (listed below).",
                self.files.failed
            )),
            Outcome::Stopped => out.push(format!(
                "Backup of {phone} stopped {}: {}",
                match self.files.copied {
                    0 => "before copying any file".to_string(),
                    n => format!("after copying {n} file(s)"),
                },
                self.stopped
                    .as_ref()
                    .map(|s| s.message.as_str())
                    .unwrap_or("unknown reason")
            )),
            Outcome::DryRun => out.push(format!(
                "Dry run for {phone}: nothing was copied. {} file(s), {} would be copied.",
                self.files.planned,
                h(self.files.planned_bytes)
            )),
        }
        if let Some(m) = &self.only_on_this_phone.message {
            out.push(m.clone());
        }
        out.push(format!(
            "Copied {} file(s), {}; {} file(s) were already in the backup.",
            self.files.copied,
            h(self.files.copied_bytes),
            self.files.already_archived + self.files.skipped
        ));
        let mut acc = vec![
            format!("{} archived now", r.archived_new),
            format!("{} archived earlier", r.archived_earlier),
        ];
        if r.would_copy > 0 {
            acc.push(format!("{} to copy", r.would_copy));
        }
        acc.push(format!("{} only in iCloud", r.icloud_only));
        if r.unavailable > 0 {
            acc.push(format!("{} unavailable", r.unavailable));
        }
        if r.retry_later > 0 {
            acc.push(format!("{} downloading on the phone", r.retry_later));
        }
        let excluded: u64 = r.excluded.values().sum();
        if excluded > 0 {
            let why: Vec<String> = r
                .excluded
                .iter()
                .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
                .collect();
            acc.push(format!("{excluded} excluded ({})", why.join(", ")));
        }
        let failed: u64 = r.failed.values().sum();
        if failed > 0 {
            let why: Vec<String> = r
                .failed
                .iter()
                .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
                .collect();
            acc.push(format!("{failed} not copied ({})", why.join(", ")));
        }
        out.push(format!(
            "All {} assets accounted for: {}.",
            r.assets,
            acc.join(", ")
        ));
        let ic = &self.icloud_only_summary;
        if ic.files > 0 {
            let range = match (&ic.oldest, &ic.newest) {
                (Some(a), Some(b)) => {
                    format!(", {} to {}", &a[..a.len().min(10)], &b[..b.len().min(10)])
                }
                _ => String::new(),
            };
            out.push(format!(
                "{} original file(s) ({}) are only in iCloud{range}: download them on the iPhone \
                 (see `ferry fetch-plan`), then sync again.",
                ic.files,
                h(ic.bytes)
            ));
        }
        if let Some(p) = &self.fetch_progress {
            out.push(format!("Fetch plan: {}.", p.line()));
        }
        if let Some(s) = &self.stopped {
            out.push(format!("hint: {}", s.hint));
        }
        out
    }
}

/// The only-here sentence.
pub fn only_here_message(assets: u64, safe: u64, dry_run: bool) -> Option<String> {
    if assets == 0 {
        return None;
    }
    let photos = if assets == 1 {
        "photo or video was"
    } else {
        "photos and videos were"
    };
    Some(if dry_run {
        format!(
            "{assets} {} only on this phone (not in iCloud); they will be copied first.",
            if assets == 1 {
                "photo or video is"
            } else {
                "photos and videos are"
            }
        )
    } else if safe == assets {
        let now = if assets == 1 { "it is" } else { "they are" };
        format!("{assets} {photos} only on this phone; {now} now safe in the backup.")
    } else {
        let left = assets - safe;
        let is = |n: u64| if n == 1 { "is" } else { "are" };
        format!(
            "{assets} {photos} only on this phone; {safe} {} now safe, {left} {} not yet \
             (see the failures below) — keep the phone until {} safe too.",
            is(safe),
            is(left),
            if left == 1 { "it is" } else { "they are" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciliation_sums_every_bucket() {
        let mut r = Reconciliation {
            assets: 10,
            archived_new: 2,
            archived_earlier: 1,
            would_copy: 0,
            icloud_only: 3,
            unavailable: 1,
            retry_later: 0,
            ..Default::default()
        };
        r.excluded.insert("trashed".into(), 2);
        assert!(!r.balanced());
        r.failed.insert("gone_from_phone".into(), 1);
        assert!(r.balanced());
        r.failed.insert("disconnected".into(), 1);
        assert!(!r.balanced());
    }

    fn stopped_report(copied: u64) -> SyncReport {
        SyncReport {
            format: REPORT_FORMAT,
            ferry_version: "0".into(),
            udid: "U".into(),
            phone_name: Some("Ada's iPhone".into()),
            ios_version: None,
            destination: "/media/backup".into(),
            phone_folder: "Ada's iPhone".into(),
            started_at: String::new(),
            finished_at: String::new(),
            duration_secs: 1.0,
            outcome: Outcome::Stopped,
            stopped: Some(StopInfo {
                kind: "read_only".into(),
                message: "the destination is read-only: cannot write /media/backup/x".into(),
                hint: "remount the drive read-write".into(),
                need_bytes: None,
            }),
            snapshot_reused: false,
            snapshot_bytes: 0,
            reconciliation: Reconciliation::default(),
            files: FileTotals {
                planned: 30,
                copied,
                copied_bytes: copied * 1000,
                ..FileTotals::default()
            },
            only_on_this_phone: OnlyHere::default(),
            icloud_only_summary: IcloudSummary::default(),
            icloud_only: Vec::new(),
            unavailable: Vec::new(),
            failures: Vec::new(),
            newly_deleted_on_phone: 0,
            phone_free_bytes: None,
            files_without_fsync: 0,
            fetch_progress: None,
        }
    }

    #[test]
    fn a_stopped_summary_says_how_many_files_were_copied_before_the_stop() {
        let lines = stopped_report(20).summary_lines();
        assert!(lines[0].contains("after copying 20 file(s)"), "{lines:?}");
        let lines = stopped_report(0).summary_lines();
        assert!(lines[0].contains("before copying any file"), "{lines:?}");
        for l in stopped_report(20).summary_lines() {
            assert!(!l.contains("nothing was changed"), "{l}");
        }
    }

    #[test]
    fn only_here_sentences() {
        assert_eq!(only_here_message(0, 0, false), None);
        assert_eq!(
            only_here_message(37, 37, false).unwrap(),
            "37 photos and videos were only on this phone; they are now safe in the backup."
        );
        assert_eq!(
            only_here_message(1, 1, false).unwrap(),
            "1 photo or video was only on this phone; it is now safe in the backup."
        );
        assert!(only_here_message(3, 1, false)
            .unwrap()
            .contains("1 is now safe, 2 are not yet"));
        assert!(only_here_message(2, 1, false)
            .unwrap()
            .contains("1 is now safe, 1 is not yet (see the failures below) — keep the phone until it is safe too."));
        assert!(only_here_message(2, 0, false)
            .unwrap()
            .contains("0 are now safe, 2 are not yet"));
        assert!(only_here_message(1, 0, true)
            .unwrap()
            .contains("will be copied first"));
    }
}
