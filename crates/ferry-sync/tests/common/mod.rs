//! Shared setup of the engine tests: a generated phone image (with its `expected.json` ground
//! truth) served in-process by ferry-sim and paired (`ferry_device::sim`), an archive in a temp
//! dir, and a sink that records every event and can act on one (cancel, unplug, delete …).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_archive::{Archive, ArchiveOptions};
use ferry_device::sim::SimPhone;
use ferry_phonegen::expected::Expected;
use ferry_sim::sim::PhoneConfig;
use ferry_sync::{Event, ProgressSink, SyncReport};

/// A phone, its ground truth and a destination.
pub struct Rig {
    pub tmp: tempfile::TempDir,
    pub image: PathBuf,
    pub exp: Expected,
    pub phone: SimPhone,
    pub dest: PathBuf,
}

/// Generates a library of `assets` assets (seed `seed`), serves it with `tweak` applied and
/// pairs. `timeout` is the client's I/O timeout.
pub async fn rig_with(
    assets: usize,
    seed: u64,
    timeout: Duration,
    tweak: impl FnOnce(&mut PhoneConfig),
) -> Rig {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("phone");
    let mut g = ferry_phonegen::MakePhoneArgs::new(&image);
    g.assets = assets;
    g.seed = seed;
    ferry_phonegen::run(&g).unwrap();
    let exp: Expected =
        serde_json::from_slice(&std::fs::read(image.join("expected.json")).unwrap()).unwrap();
    let mut pc = PhoneConfig::new(&image);
    tweak(&mut pc);
    let phone = ferry_device::sim::serve_paired(pc, tmp.path(), timeout, |_| {})
        .await
        .unwrap();
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    Archive::init(&dest).unwrap();
    Rig {
        tmp,
        image,
        exp,
        phone,
        dest,
    }
}

pub async fn rig(assets: usize, seed: u64) -> Rig {
    rig_with(assets, seed, Duration::from_secs(30), |_| {}).await
}

impl Rig {
    pub fn archive(&self) -> Archive {
        Archive::open(&self.dest, ArchiveOptions::default()).unwrap()
    }

    /// The device as usbmuxd lists it now (a replug gives it a new DeviceID).
    pub async fn device(&self) -> ferry_device::UsbDevice {
        self.phone.mux.list().await.unwrap().remove(0)
    }

    /// Bytes the scan reads over AFC for the database (Photos.sqlite + -wal).
    pub fn db_bytes(&self) -> u64 {
        let db = self.image.join("Media/PhotoData");
        std::fs::metadata(db.join("Photos.sqlite")).unwrap().len()
            + std::fs::metadata(db.join("Photos.sqlite-wal"))
                .map(|m| m.len())
                .unwrap_or(0)
    }

    /// Every archive-class resource of non-excluded assets: (uuid, role) → (afc_path, size, sha256).
    pub fn expected_files(&self) -> BTreeMap<(String, String), (String, u64, String)> {
        let mut m = BTreeMap::new();
        for a in self.exp.assets.iter().filter(|a| a.exclusion.is_none()) {
            for r in a.resources.iter().filter(|r| r.action == "archive") {
                m.insert(
                    (a.uuid.clone(), r.role.clone()),
                    (
                        r.afc_path.clone(),
                        r.size.unwrap(),
                        r.sha256.clone().unwrap(),
                    ),
                );
            }
        }
        m
    }

    /// The multiset of SHA-256 expected.json says the archive must hold.
    pub fn expected_hashes(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for (_, _, h) in self.expected_files().into_values() {
            *m.entry(h).or_default() += 1;
        }
        m
    }

    /// Expected number of assets per classification.
    pub fn class(&self, c: &str) -> u64 {
        self.exp.totals.classifications.get(c).copied().unwrap_or(0)
    }

    pub async fn shutdown(self) {
        self.phone.sim.shutdown().await;
    }
}

/// Every file under `dest` outside `.ferry/`: relative path → SHA-256.
pub fn archive_files(dest: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![dest.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dest).unwrap().to_string_lossy().into_owned();
            if rel == ".ferry" {
                continue;
            }
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(p);
            } else {
                assert!(ft.is_file(), "{rel} is not a regular file");
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, format!("{:x}", sha2::Sha256::digest(&bytes)));
            }
        }
    }
    out
}

pub fn is_temp(rel: &str) -> bool {
    ferry_archive::names::is_temp_name(rel.rsplit('/').next().unwrap_or(""))
}

/// The archive holds exactly expected.json's originals, byte for byte, and no temp file.
pub fn assert_archive_exact(rig: &Rig) {
    let files = archive_files(&rig.dest);
    let temps: Vec<_> = files.keys().filter(|k| is_temp(k)).collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for h in files.values() {
        *got.entry(h.clone()).or_default() += 1;
    }
    assert_eq!(
        got,
        rig.expected_hashes(),
        "archive content vs expected.json"
    );
}

/// Nothing partial under a final name: every file is some complete expected original, at
/// most as often as expected.json has it.
pub fn assert_no_partial_final_files(rig: &Rig) {
    let want = rig.expected_hashes();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (rel, h) in archive_files(&rig.dest) {
        assert!(!is_temp(&rel), "temp file left: {rel}");
        assert!(
            want.contains_key(&h),
            "{rel} is under a final name but is not a complete original"
        );
        *seen.entry(h).or_default() += 1;
    }
    for (h, n) in seen {
        assert!(n <= want[&h], "{h} archived {n} times");
    }
}

/// Records every event; `on_event` may act on one (it runs inside the engine's sink).
#[derive(Clone, Default)]
pub struct Recorder {
    pub events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    pub fn sink(&self, on_event: impl Fn(&Event) + Send + Sync + 'static) -> ProgressSink {
        let events = self.events.clone();
        Arc::new(move |e: Event| {
            on_event(&e);
            events.lock().unwrap().push(e);
        })
    }

    pub fn plain(&self) -> ProgressSink {
        self.sink(|_| {})
    }

    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

/// The report's counts equal the events the run emitted.
pub fn assert_report_matches_events(report: &SyncReport, events: &[Event]) {
    let f = &report.files;
    let planned: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Planned(s) => Some(s),
            _ => None,
        })
        .collect();
    assert_eq!(planned.len(), 1, "one Planned event");
    let p = planned[0];
    assert_eq!(p.files, f.planned, "planned files");
    assert_eq!(p.bytes, f.planned_bytes, "planned bytes");
    assert_eq!(p.already_archived_files, f.already_archived);
    assert_eq!(p.assets, report.reconciliation.assets);
    let done: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::FileDone { size, .. } => Some(*size),
            _ => None,
        })
        .collect();
    assert_eq!(
        done.len() as u64,
        f.copied,
        "FileDone events vs files.copied"
    );
    assert_eq!(done.iter().sum::<u64>(), f.copied_bytes, "FileDone bytes");
    let skipped = events
        .iter()
        .filter(|e| matches!(e, Event::FileSkipped { .. }))
        .count() as u64;
    assert_eq!(skipped, f.skipped, "FileSkipped events");
    // Each per-file failure event is in the report's failures with its reason; the rest of
    // the failures are the files a stop left uncopied (reason = the stop's kind).
    let mut failed_events: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::FileFailed { name, reason, .. } => {
                Some((name.trim_start_matches('/').to_string(), reason.clone()))
            }
            _ => None,
        })
        .collect();
    failed_events.sort();
    let stop_kind = report.stopped.as_ref().map(|s| s.kind.clone());
    let mut listed: Vec<(String, String)> = report
        .failures
        .iter()
        .filter(|x| Some(&x.reason) != stop_kind.as_ref())
        .map(|x| {
            (
                x.afc_path.trim_start_matches('/').to_string(),
                x.reason.clone(),
            )
        })
        .collect();
    listed.sort();
    assert_eq!(
        failed_events, listed,
        "FileFailed events vs report failures"
    );
    assert_eq!(f.failed, report.failures.len() as u64);
    if report.outcome == ferry_sync::Outcome::DryRun {
        // Nothing was attempted.
        assert_eq!((f.copied, f.skipped, f.failed), (0, 0, 0), "{f:?}");
        assert!(!events.iter().any(|e| matches!(e, Event::Progress(_))));
        return;
    }
    let stop_left = report.failures.len() - listed.len();
    assert_eq!(
        f.copied + f.skipped + listed.len() as u64 + stop_left as u64,
        f.planned,
        "every planned file ended one way: {f:?}"
    );
    // The last progress snapshot counts the files that ended (copied, skipped, failed).
    if let Some(last) = events.iter().rev().find_map(|e| match e {
        Event::Progress(p) => Some(p),
        _ => None,
    }) {
        assert_eq!(last.files_total, f.planned);
        assert_eq!(last.bytes_total, f.planned_bytes);
        if report.stopped.is_none() {
            assert_eq!(last.files_done, f.planned, "{last:?}");
            assert_eq!(last.bytes_done, f.planned_bytes, "{last:?}");
        }
    }
}

/// A read-only tmpfs mounted on `dir` (created); unmounted on drop. Needs root (or
/// CAP_SYS_ADMIN): without it the test fails saying so, never skips. `chmod` is no substitute,
/// root ignores permission bits.
pub struct ReadOnlyMount {
    pub dir: PathBuf,
}

impl ReadOnlyMount {
    pub fn new(dir: &Path) -> ReadOnlyMount {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "ro,size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .expect("running mount(8)");
        assert!(
            out.status.success(),
            "this test needs a read-only mount and could not mount one at {} (run the tests \
             as root, or in a container with CAP_SYS_ADMIN): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        ReadOnlyMount {
            dir: dir.to_path_buf(),
        }
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
