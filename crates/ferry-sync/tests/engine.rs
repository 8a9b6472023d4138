//! The sync engine where it lives: `ferry_sync::{survey, sync}` driven directly against a
//! simulated iPhone served in-process (ferry-sim), with the generator's `expected.json` as
//! ground truth. Plan, copy, resume after an unplug, stop vs skip per failure kind, cancel,
//! dry run, the hidden-items policy and the report's accounting against the events.
//!
//! Faults are triggered from the event sink (which the engine calls synchronously) or armed
//! in the simulator before the run; nothing waits on a sleep.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use ferry_archive::{Archive, ArchiveOptions};
use ferry_sync::plan::CopyReason;
use ferry_sync::{survey, sync, Event, Outcome, PlanOptions, SyncOptions, SyncReport};

const ASSETS: usize = 30;

fn opts() -> SyncOptions {
    SyncOptions::default()
}

/// The reconciliation adds up and each bucket is expected.json's (a run with no failures).
fn assert_reconciliation(rig: &Rig, report: &SyncReport, first_run: bool) {
    let r = &report.reconciliation;
    assert!(r.balanced(), "{r:?}");
    assert_eq!(r.assets, rig.exp.totals.assets, "{r:?}");
    assert!(r.failed.is_empty(), "{r:?}");
    let (now, earlier) = if first_run {
        (rig.class("archive"), 0)
    } else {
        (0, rig.class("archive"))
    };
    assert_eq!(
        (r.archived_new, r.archived_earlier),
        (now, earlier),
        "{r:?}"
    );
    assert_eq!(r.icloud_only, rig.class("icloud_only"), "{r:?}");
    assert_eq!(r.unavailable, rig.class("unavailable"), "{r:?}");
    assert_eq!(r.retry_later, rig.class("retry_later"), "{r:?}");
    assert_eq!(r.excluded, rig.exp.totals.exclusions, "{r:?}");
    // The iCloud-only list is expected.json's.
    let want: BTreeSet<&str> = rig
        .exp
        .assets
        .iter()
        .filter(|a| a.classification == "icloud_only")
        .map(|a| a.uuid.as_str())
        .collect();
    let got: BTreeSet<&str> = report
        .icloud_only
        .iter()
        .filter(|a| !a.original_local)
        .map(|a| a.uuid.as_str())
        .collect();
    assert_eq!(got, want, "iCloud-only list");
    assert_eq!(
        report.icloud_only_summary.files,
        rig.exp.totals.fetch_on_phone_files
    );
}

/// (uuid, role) → (afc path, size) of a plan.
fn planned(plan: &ferry_sync::Plan) -> BTreeMap<(String, String), (String, u64)> {
    plan.items
        .iter()
        .map(|i| {
            (
                (i.spec.asset_uuid.clone(), i.spec.role.as_str().to_string()),
                (i.spec.afc_path.clone(), i.spec.size),
            )
        })
        .collect()
}

fn expected_plan(rig: &Rig) -> BTreeMap<(String, String), (String, u64)> {
    rig.expected_files()
        .into_iter()
        .map(|(k, (p, s, _))| (k, (p, s)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_copy_and_a_second_plan_is_empty() {
    let rig = rig(ASSETS, 11).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    // Plan on a fresh archive: exactly expected.json's `archive` originals.
    let s = survey(&rig.phone.mux, &dev, Some(&archive), &opts())
        .await
        .unwrap();
    assert_eq!(planned(&s.plan), expected_plan(&rig));
    assert_eq!(s.plan.items.len() as u64, rig.exp.totals.archive_files);
    assert_eq!(s.plan.already_archived_files, 0);
    // Only-here files come first.
    let first_other = s.plan.items.iter().position(|i| !i.only_here);
    if let Some(k) = first_other {
        assert!(s.plan.items[k..].iter().all(|i| !i.only_here));
    }
    assert_eq!(
        s.plan.items.iter().filter(|i| i.only_here).count() as u64,
        rig.exp.totals.only_on_this_phone_files
    );

    // Copy: the archive is expected.json's content, byte for byte.
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    assert!(run.error.is_none(), "{:?}", run.report.stopped);
    assert_eq!(run.report.outcome, Outcome::Complete);
    assert_eq!(run.report.files.copied, rig.exp.totals.archive_files);
    assert_eq!(run.report.files.copied_bytes, rig.exp.totals.archive_bytes);
    assert_archive_exact(&rig);
    assert_reconciliation(&rig, &run.report, true);
    let events = rec.take();
    assert_report_matches_events(&run.report, &events);
    let phases: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Phase { phase } => Some(*phase),
            _ => None,
        })
        .collect();
    use ferry_sync::Phase::*;
    assert_eq!(
        phases,
        vec![Connecting, ReadingLibrary, Planning, Copying, Finishing]
    );
    // The report is stored in the archive and is the one returned.
    let stored: SyncReport =
        serde_json::from_slice(&std::fs::read(run.report_path.as_ref().unwrap()).unwrap()).unwrap();
    assert_eq!(stored, run.report);

    // After a complete run the plan is empty, and a second run copies nothing.
    let s = survey(&rig.phone.mux, &dev, Some(&archive), &opts())
        .await
        .unwrap();
    assert!(s.plan.items.is_empty(), "{:?}", planned(&s.plan));
    assert_eq!(s.plan.already_archived_files, rig.exp.totals.archive_files);
    let rec = Recorder::default();
    let again = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    assert_eq!(again.report.outcome, Outcome::Complete);
    assert_eq!(again.report.files.copied, 0);
    assert_eq!(
        again.report.files.already_archived,
        rig.exp.totals.archive_files
    );
    assert_reconciliation(&rig, &again.report, false);
    assert_report_matches_events(&again.report, &rec.take());
    assert_archive_exact(&rig);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_original_is_planned_as_a_new_version() {
    let rig = rig(ASSETS, 12).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let run = sync(
        &rig.phone.mux,
        &dev,
        &archive,
        &opts(),
        Recorder::default().plain(),
    )
    .await
    .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    let before = archive_files(&rig.dest);
    // The phone rewrites one original in place.
    let ((uuid, role), (rel, size, _)) = rig
        .expected_files()
        .into_iter()
        .find(|((_, role), _)| role == "primary")
        .unwrap();
    let file = rig.image.join("Media").join(&rel);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"-rewritten-by-the-phone");
    std::fs::write(&file, &bytes).unwrap();
    let s = survey(&rig.phone.mux, &dev, Some(&archive), &opts())
        .await
        .unwrap();
    assert_eq!(s.plan.items.len(), 1, "{:?}", planned(&s.plan));
    let item = &s.plan.items[0];
    assert_eq!(
        (item.spec.asset_uuid.as_str(), item.spec.role.as_str()),
        (uuid.as_str(), role.as_str())
    );
    assert_eq!(item.spec.size, bytes.len() as u64);
    assert_eq!(
        item.reason,
        CopyReason::Changed {
            archived_size: size
        }
    );
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    assert_eq!(
        (run.report.files.copied, run.report.files.new_versions),
        (1, 1)
    );
    assert_report_matches_events(&run.report, &rec.take());
    let after = archive_files(&rig.dest);
    for (p, h) in &before {
        assert_eq!(after.get(p), Some(h), "{p} changed or vanished");
    }
    assert_eq!(after.len(), before.len() + 1);

    // Rewritten again, then back to the archived bytes before its turn comes: the file is
    // re-planned at copy time and skipped, not copied.
    let archived = bytes.clone();
    bytes.extend_from_slice(b"-and-again");
    std::fs::write(&file, &bytes).unwrap();
    let rec = Recorder::default();
    let f2 = file.clone();
    let sink = rec.sink(move |e| {
        if matches!(e, Event::Planned(_)) {
            std::fs::write(&f2, &archived).unwrap();
        }
    });
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), sink)
        .await
        .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    let f = &run.report.files;
    assert_eq!((f.planned, f.copied, f.skipped), (1, 0, 1), "{f:?}");
    assert_report_matches_events(&run.report, &rec.take());
    assert_eq!(archive_files(&rig.dest), after);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_mid_copy_stops_disconnected_and_the_next_run_completes_exactly() {
    let rig = rig(ASSETS, 13).await;
    let archive = rig.archive();
    // Unplug after the database and about half of the originals went over AFC.
    let at = rig.db_bytes() + rig.exp.totals.archive_bytes / 2;
    rig.phone.sim.unplug_after(None, Some(at)).unwrap();
    let dev = rig.device().await;
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(r.stopped.as_ref().unwrap().kind, "disconnected", "{r:?}");
    assert_eq!(run.error.as_ref().unwrap().stop_kind(), "disconnected");
    assert!(
        r.files.copied > 0 && r.files.copied < r.files.planned,
        "not mid-copy: {:?}",
        r.files
    );
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert!(r.reconciliation.failed.contains_key("disconnected"));
    assert_report_matches_events(r, &rec.take());
    assert_no_partial_final_files(&rig);
    let copied_first = r.files.copied;
    drop(archive);

    // Plugged in again (a new DeviceID): the next run copies exactly what is missing.
    rig.phone.sim.replug(None).await.unwrap();
    let dev = rig.device().await;
    let archive = rig.archive();
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete, "{:?}", run.report);
    assert_eq!(
        run.report.files.copied,
        rig.exp.totals.archive_files - copied_first
    );
    assert_eq!(run.report.files.already_archived, copied_first);
    assert_report_matches_events(&run.report, &rec.take());
    assert_archive_exact(&rig);
    rig.shutdown().await;
}

/// A file deleted on the phone after the plan (or unreadable) fails on its own; the run goes
/// on and copies everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_or_unreadable_file_is_skipped_and_the_run_goes_on() {
    let rig = rig(ASSETS, 14).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let files = rig.expected_files();
    let mut it = files.values();
    let (gone, _, _) = it.next().unwrap().clone();
    let (unreadable, _, _) = it.next().unwrap().clone();
    let media = rig.image.join("Media");
    let (g, u) = (media.join(&gone), media.join(&unreadable));
    let rec = Recorder::default();
    let sink = rec.sink(move |e| {
        if matches!(e, Event::Planned(_)) {
            // After the scan stat'ed them: one is deleted, one becomes unreadable (a
            // directory stands where the file was).
            std::fs::remove_file(&g).unwrap();
            std::fs::remove_file(&u).unwrap();
            std::fs::create_dir(&u).unwrap();
        }
    });
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), sink)
        .await
        .unwrap();
    let r = &run.report;
    assert!(run.error.is_none(), "{:?}", r.stopped);
    assert_eq!(r.outcome, Outcome::Incomplete);
    let reasons: BTreeMap<&str, &str> = r
        .failures
        .iter()
        .map(|f| (f.afc_path.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(
        reasons,
        BTreeMap::from([
            (gone.as_str(), "gone_from_phone"),
            (unreadable.as_str(), "phone_read_error")
        ])
    );
    assert_eq!(r.files.copied, rig.exp.totals.archive_files - 2);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    // Everything else is archived exactly.
    let want = rig.expected_hashes();
    let got = archive_files(&rig.dest);
    assert_eq!(got.len() as u64, rig.exp.totals.archive_files - 2);
    assert!(got.values().all(|h| want.contains_key(h)));
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_stops_answering_stops_the_run_with_timeout() {
    let rig = rig_with(ASSETS, 15, Duration::from_secs(2), |_| {}).await;
    let archive = rig.archive();
    let at = rig.db_bytes() + rig.exp.totals.archive_bytes / 3;
    rig.phone.sim.stall_after(None, Some(at)).unwrap();
    let dev = rig.device().await;
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(r.stopped.as_ref().unwrap().kind, "timeout", "{r:?}");
    assert!(r.files.copied < r.files.planned);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    assert_no_partial_final_files(&rig);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_destination_stops_the_run_with_what_is_needed() {
    let rig = rig(ASSETS, 16).await;
    let dev = rig.device().await;
    // Less room than the first file needs: the archive keeps `min_free_bytes` free, and this
    // asks for 1 GiB more than the drive has (the margin absorbs other tests' temp files
    // coming and going on the same file system).
    let avail = rig.archive().available_bytes().unwrap();
    let archive = Archive::open(
        &rig.dest,
        ArchiveOptions {
            min_free_bytes: avail + (1 << 30),
            ..ArchiveOptions::default()
        },
    )
    .unwrap();
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), rec.plain())
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    let stop = r.stopped.as_ref().unwrap();
    assert_eq!(stop.kind, "disk_full", "{stop:?}");
    assert!(
        stop.need_bytes.unwrap() >= rig.exp.totals.archive_bytes,
        "{stop:?}"
    );
    assert_eq!(r.files.copied, 0);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_eq!(
        r.reconciliation.failed.get("disk_full"),
        Some(&rig.class("archive"))
    );
    assert_report_matches_events(r, &rec.take());
    assert!(archive_files(&rig.dest).is_empty());
    drop(archive);
    // With room, the next run completes.
    let run = sync(
        &rig.phone.mux,
        &dev,
        &rig.archive(),
        &opts(),
        Recorder::default().plain(),
    )
    .await
    .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    assert_archive_exact(&rig);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_goes_away_stops_the_run() {
    let rig = rig(ASSETS, 17).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let (dest, moved) = (rig.dest.clone(), rig.tmp.path().join("moved"));
    let once = AtomicBool::new(false);
    let rec = Recorder::default();
    let sink = rec.sink(move |e| {
        if matches!(e, Event::FileDone { .. }) && !once.swap(true, Ordering::SeqCst) {
            std::fs::rename(&dest, &moved).unwrap();
        }
    });
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), sink)
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(
        r.stopped.as_ref().unwrap().kind,
        "destination_gone",
        "{r:?}"
    );
    assert!(r.files.copied >= 1 && r.files.copied < r.files.planned);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    // Nothing was written where the destination was, and no report was stored.
    assert!(!rig.dest.exists(), "the destination was recreated");
    assert!(run.report_path.is_none());
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_stops_cancelled_and_the_next_run_completes() {
    let rig = rig(ASSETS, 18).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let o = opts();
    let token = o.cancel.clone();
    let fired = Arc::new(AtomicBool::new(false));
    let f2 = fired.clone();
    let rec = Recorder::default();
    let sink = rec.sink(move |e| {
        if matches!(e, Event::FileDone { .. }) && !f2.swap(true, Ordering::SeqCst) {
            token.cancel();
        }
    });
    let run = sync(&rig.phone.mux, &dev, &archive, &o, sink)
        .await
        .unwrap();
    assert!(fired.load(Ordering::SeqCst));
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(r.stopped.as_ref().unwrap().kind, "cancelled", "{r:?}");
    assert!(matches!(run.error, Some(ferry_sync::SyncError::Cancelled)));
    assert!(r.files.copied >= 1 && r.files.copied < r.files.planned);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    assert_no_partial_final_files(&rig);
    let copied_first = r.files.copied;
    // Resumable: a new run (new token) copies exactly the rest.
    let run = sync(
        &rig.phone.mux,
        &dev,
        &archive,
        &opts(),
        Recorder::default().plain(),
    )
    .await
    .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    assert_eq!(
        run.report.files.copied,
        rig.exp.totals.archive_files - copied_first
    );
    assert_archive_exact(&rig);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_writes_nothing_and_accounts_for_everything() {
    let rig = rig(ASSETS, 19).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let o = SyncOptions {
        dry_run: true,
        ..opts()
    };
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &o, rec.plain())
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::DryRun);
    assert!(run.error.is_none());
    assert!(
        archive_files(&rig.dest).is_empty(),
        "the dry run wrote files"
    );
    assert!(run.report_path.is_none());
    assert_eq!(r.files.planned, rig.exp.totals.archive_files);
    assert_eq!(r.files.planned_bytes, rig.exp.totals.archive_bytes);
    assert_eq!(r.files.copied, 0);
    let rec_ = &r.reconciliation;
    assert!(rec_.balanced(), "{rec_:?}");
    assert_eq!(rec_.would_copy, rig.class("archive"));
    assert_eq!(rec_.archived_new + rec_.archived_earlier, 0);
    assert_eq!(rec_.icloud_only, rig.class("icloud_only"));
    assert_eq!(rec_.excluded, rig.exp.totals.exclusions);
    assert!(rec_.failed.is_empty());
    let events = rec.take();
    assert!(!events
        .iter()
        .any(|e| matches!(e, Event::FileStarted { .. } | Event::FileDone { .. })));
    assert_report_matches_events(r, &events);
    rig.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluding_hidden_items_changes_the_plan_both_ways() {
    let rig = rig(ASSETS, 20).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let hidden: BTreeSet<&str> = rig
        .exp
        .assets
        .iter()
        .filter(|a| a.flags.hidden && a.exclusion.is_none())
        .map(|a| a.uuid.as_str())
        .collect();
    let hidden_files: BTreeSet<(String, String)> = rig
        .expected_files()
        .into_keys()
        .filter(|(u, _)| hidden.contains(u.as_str()))
        .collect();
    assert!(
        !hidden_files.is_empty(),
        "the library has no hidden original to archive"
    );
    let plan_with = |include_hidden: bool| SyncOptions {
        plan: PlanOptions { include_hidden },
        ..opts()
    };
    // Included (the default): the hidden originals are planned like the rest.
    let with = survey(&rig.phone.mux, &dev, Some(&archive), &plan_with(true))
        .await
        .unwrap();
    assert_eq!(planned(&with.plan), expected_plan(&rig));
    // Excluded: exactly those are not, and their assets are counted as excluded (hidden).
    let without = survey(&rig.phone.mux, &dev, Some(&archive), &plan_with(false))
        .await
        .unwrap();
    let mut want = expected_plan(&rig);
    want.retain(|k, _| !hidden_files.contains(k));
    assert_eq!(planned(&without.plan), want);
    let excluded_hidden: BTreeSet<&str> = without
        .plan
        .assets
        .iter()
        .filter(|a| a.exclusion.as_deref() == Some("hidden"))
        .map(|a| a.uuid.as_str())
        .collect();
    assert_eq!(excluded_hidden, hidden);
    // A run that excludes them archives everything else and accounts for them.
    let run = sync(
        &rig.phone.mux,
        &dev,
        &archive,
        &plan_with(false),
        Recorder::default().plain(),
    )
    .await
    .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Complete);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_eq!(
        r.reconciliation.excluded.get("hidden").copied(),
        Some(hidden.len() as u64)
    );
    assert_eq!(r.files.copied, want.len() as u64);
    // Switching the policy back plans exactly the hidden originals.
    let back = survey(&rig.phone.mux, &dev, Some(&archive), &plan_with(true))
        .await
        .unwrap();
    let back: BTreeSet<(String, String)> = planned(&back.plan).into_keys().collect();
    assert_eq!(back, hidden_files);
    rig.shutdown().await;
}

/// The destination turns read-only under the run (here: the folder the next file goes to is
/// a read-only mount; a whole drive cannot be remounted read-only while the catalog is open
/// for writing): the run stops with `read_only`, and the files before it are archived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_destination_stops_the_run() {
    let rig = rig(ASSETS, 22).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let s = survey(&rig.phone.mux, &dev, Some(&archive), &opts())
        .await
        .unwrap();
    let folder_of = |i: &ferry_sync::plan::PlanItem| {
        ferry_archive::names::date_folder(i.spec.capture_utc_millis, i.spec.tz_offset_seconds)
    };
    // The first file whose date folder no earlier file uses.
    let k = (1..s.plan.items.len())
        .find(|&k| {
            let f = folder_of(&s.plan.items[k]);
            s.plan.items[..k].iter().all(|i| folder_of(i) != f)
        })
        .expect("the plan spans one date folder only");
    let phones = archive.phones().unwrap();
    let mut ro = rig.dest.join(&phones[0].folder);
    for part in folder_of(&s.plan.items[k]) {
        ro.push(part);
    }
    let ro_mount = ReadOnlyMount::new(&ro);
    let o = SyncOptions { jobs: 1, ..opts() };
    let rec = Recorder::default();
    let run = sync(&rig.phone.mux, &dev, &archive, &o, rec.plain())
        .await
        .unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(r.stopped.as_ref().unwrap().kind, "read_only", "{r:?}");
    assert_eq!(r.files.copied, k as u64, "the files before it are archived");
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    assert_no_partial_final_files(&rig);
    drop(ro_mount);
    rig.shutdown().await;
}

/// A phone whose name is blank is recorded as "iPhone" by a run; planning without copying
/// (`survey`: `ferry fetch-plan`, the app's summary) must record the same name, not flip it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survey_and_sync_record_the_same_name_for_a_phone_with_a_blank_name() {
    let tmp = tempfile::tempdir().unwrap();
    let image = tmp.path().join("phone");
    let mut g = ferry_phonegen::MakePhoneArgs::new(&image);
    g.assets = 5;
    g.name = Some("   ".into());
    ferry_phonegen::run(&g).unwrap();
    let phone = ferry_device::sim::serve_paired(
        ferry_sim::sim::PhoneConfig::new(&image),
        tmp.path(),
        Duration::from_secs(30),
        |_| {},
    )
    .await
    .unwrap();
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    Archive::init(&dest).unwrap();
    let archive = Archive::open(&dest, ArchiveOptions::default()).unwrap();
    let run = sync(
        &phone.mux,
        &phone.device,
        &archive,
        &opts(),
        Recorder::default().plain(),
    )
    .await
    .unwrap();
    assert_eq!(run.report.outcome, Outcome::Complete);
    let after_sync = archive.phones().unwrap();
    survey(&phone.mux, &phone.device, Some(&archive), &opts())
        .await
        .unwrap();
    let after_survey = archive.phones().unwrap();
    assert_eq!(
        after_survey
            .iter()
            .map(|p| (&p.folder, &p.name))
            .collect::<Vec<_>>(),
        after_sync
            .iter()
            .map(|p| (&p.folder, &p.name))
            .collect::<Vec<_>>(),
    );
    phone.sim.shutdown().await;
}

/// A file that changes size while it is read is read again once with its new size; one that
/// keeps changing fails on its own (`size_changed_during_copy`) and the run goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changing_while_read_is_read_again_once_then_given_up() {
    let rig = rig(ASSETS, 23).await;
    let dev = rig.device().await;
    let archive = rig.archive();
    let files = rig.expected_files();
    let mut it = files.values();
    let (once, _, _) = it.next().unwrap().clone();
    let (always, _, _) = it.next().unwrap().clone();
    let media = rig.image.join("Media");
    let (once_file, always_file) = (media.join(&once), media.join(&always));
    let (once_name, always_name) = (format!("/{once}"), format!("/{always}"));
    let changed_once = AtomicBool::new(false);
    let of = once_file.clone();
    let append = |p: &std::path::Path| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(b"-the-phone-is-still-writing").unwrap();
    };
    let rec = Recorder::default();
    let sink = rec.sink(move |e| {
        // Between the size check and the read: the phone writes more.
        if let Event::FileStarted { name, .. } = e {
            if *name == once_name && !changed_once.swap(true, Ordering::SeqCst) {
                append(&of);
            }
            if *name == always_name {
                append(&always_file);
            }
        }
    });
    let run = sync(&rig.phone.mux, &dev, &archive, &opts(), sink)
        .await
        .unwrap();
    let r = &run.report;
    assert!(run.error.is_none(), "{:?}", r.stopped);
    assert_eq!(r.outcome, Outcome::Incomplete);
    let reasons: Vec<(&str, &str)> = r
        .failures
        .iter()
        .map(|f| (f.afc_path.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(reasons, vec![(always.as_str(), "size_changed_during_copy")]);
    assert_eq!(r.files.copied, rig.exp.totals.archive_files - 1);
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    let events = rec.take();
    let starts = |n: &str| {
        events
            .iter()
            .filter(|e| matches!(e, Event::FileStarted { name, .. } if name.trim_start_matches('/') == n))
            .count()
    };
    // Each attempt announces itself: two reads of each, no third.
    assert_eq!(
        (starts(&once), starts(&always)),
        (2, 2),
        "FileStarted per attempt"
    );
    assert_report_matches_events(r, &events);
    // The file that changed once is archived with its new bytes.
    let new_hash = {
        use sha2::Digest;
        format!(
            "{:x}",
            sha2::Sha256::digest(std::fs::read(&once_file).unwrap())
        )
    };
    assert!(
        archive_files(&rig.dest).values().any(|h| *h == new_hash),
        "the re-read file is not archived with its new content"
    );
    rig.shutdown().await;
}

/// Cancel is honoured while the phone hangs mid-copy (long before the I/O timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_the_phone_hangs_ends_the_run_promptly() {
    let rig = rig_with(ASSETS, 24, Duration::from_secs(120), |_| {}).await;
    let archive = rig.archive();
    let at = rig.db_bytes() + rig.exp.totals.archive_bytes / 3;
    rig.phone.sim.stall_after(None, Some(at)).unwrap();
    let dev = rig.device().await;
    let o = opts();
    let token = o.cancel.clone();
    let sim = &rig.phone.sim;
    let cancel_when_stalled = async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !sim.status()[0].stalled {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the phone never stalled"
            );
            tokio::time::sleep(Duration::from_millis(5)).await; // polling interval, not a wait
        }
        token.cancel();
    };
    let rec = Recorder::default();
    let both = async {
        tokio::join!(
            sync(&rig.phone.mux, &dev, &archive, &o, rec.plain()),
            cancel_when_stalled
        )
    };
    let (run, ()) = tokio::time::timeout(Duration::from_secs(30), both)
        .await
        .expect("the run did not end after Cancel while the phone hangs");
    let run = run.unwrap();
    let r = &run.report;
    assert_eq!(r.outcome, Outcome::Stopped);
    assert_eq!(r.stopped.as_ref().unwrap().kind, "cancelled", "{r:?}");
    assert!(r.reconciliation.balanced(), "{:?}", r.reconciliation);
    assert_report_matches_events(r, &rec.take());
    assert_no_partial_final_files(&rig);
    rig.shutdown().await;
}
