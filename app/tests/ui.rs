//! The app driven through `update` (every transition of the main path and the unhappy ones),
//! clicked through with `iced_test`'s Simulator (which renders the real view headless and
//! turns clicks into Messages), and one test against a stalled simulated phone showing that
//! the app keeps processing messages and that Cancel ends the run.

use std::path::PathBuf;
use std::time::Duration;

use ferry_app::backup::SyncState;
use ferry_app::library::LibraryState;
use ferry_app::phone::{PhoneState, TrustState};
use ferry_app::work::{
    self, DestInfo, DeviceUpdate, Failure, LibrarySummary, MuxKey, PhoneFacts, SyncUpdate, Trust,
};
use ferry_app::{App, Message};
use ferry_device::{ConnectionKind, UsbDevice};
use iced_test::simulator;

fn dev(id: u32) -> UsbDevice {
    UsbDevice {
        udid: "00008120-00001F156BCD56CB".into(),
        device_id: id,
        connection: ConnectionKind::Usb,
        link_speed_bps: Some(480_000_000),
        product_id: None,
        location_id: None,
    }
}

fn facts() -> PhoneFacts {
    PhoneFacts {
        name: Some("Ada’s iPhone".into()),
        model: Some("iPhone15,2".into()),
        ios: Some("17.5".into()),
        link: Some("USB 2 (480 Mbit/s)".into()),
        usb2: true,
        free_bytes: Some(12_000_000_000),
    }
}

fn not_paired() -> Failure {
    Failure {
        kind: "NotPaired".into(),
        message: "not paired".into(),
        hint: "run ferry pair".into(),
    }
}

fn summary() -> LibrarySummary {
    LibrarySummary {
        assets: 120,
        local_assets: 80,
        local_files: 103,
        local_bytes: 184_000,
        only_here_files: 2,
        only_here_bytes: 3_000,
        icloud_assets: 24,
        icloud_files: 34,
        icloud_bytes: 66_000,
        icloud_oldest: Some("2019-01-20".into()),
        icloud_newest: Some("2024-08-14".into()),
        excluded: [("trashed".to_string(), 5u64)].into_iter().collect(),
        already_archived: 0,
        new_files: 103,
        new_bytes: 184_000,
    }
}

fn report() -> ferry_sync::SyncReport {
    serde_json::from_value(serde_json::json!({
        "format": 1, "ferry_version": "0.1.0", "udid": "00008120-00001F156BCD56CB",
        "phone_name": "Ada’s iPhone", "ios_version": "17.5", "destination": "/tmp/backup",
        "phone_folder": "Ada’s iPhone", "started_at": "2026-11-22T10:00:00.000Z",
        "finished_at": "2026-11-22T10:00:03.000Z", "duration_secs": 3.0, "outcome": "complete",
        "stopped": null, "snapshot_reused": false, "snapshot_bytes": 1000,
        "reconciliation": { "assets": 120, "archived_new": 80, "archived_earlier": 0, "would_copy": 0,
            "icloud_only": 24, "unavailable": 3, "retry_later": 0,
            "excluded": { "trashed": 13 }, "failed": {} },
        "files": { "planned": 103, "planned_bytes": 184000, "copied": 103, "copied_bytes": 184000,
            "new_versions": 0, "already_archived": 0, "skipped": 0, "failed": 0 },
        "only_on_this_phone": { "assets": 2, "safe_assets": 2, "copied_files": 2,
            "message": "2 photos and videos were only on this phone; they are now safe in the backup." },
        "icloud_only_summary": { "assets": 24, "files": 34, "bytes": 66000,
            "oldest": "2019-01-20T00:00:00.000Z", "newest": "2024-08-14T00:00:00.000Z" },
        "icloud_only": [ { "uuid": "A", "name": "IMG_0042.HEIC", "created_utc": "2019-01-20T00:00:00.000Z",
            "files": 1, "bytes": 4100, "original_local": false } ],
        "unavailable": [], "failures": [], "newly_deleted_on_phone": 0,
        "phone_free_bytes": 10_000_000_000u64, "files_without_fsync": 0
    }))
    .expect("report JSON")
}

fn dest_info(initialised: bool) -> DestInfo {
    DestInfo {
        path: PathBuf::from("/tmp/backup"),
        initialised,
        free_bytes: Some(500_000_000_000),
        fs: "ext4".into(),
        fat32: false,
        busy: None,
    }
}

fn app() -> App {
    App::new(MuxKey("127.0.0.1:9".into()))
}

/// The app's view in a window tall enough to show every part without scrolling (the real
/// window scrolls).
fn tall(app: &App) -> iced_test::Simulator<'_, Message> {
    iced_test::Simulator::with_size(
        iced_test::core::Settings::default(),
        (1024.0, 1800.0),
        app.view(),
    )
}

/// Clicks the button labelled `label` in the app's current view; returns the messages.
fn click(app: &App, label: &str) -> Vec<Message> {
    let mut ui = tall(app);
    ui.click(label)
        .unwrap_or_else(|e| panic!("no {label:?} to click: {e:?}"));
    ui.into_messages().collect()
}

fn shows(app: &App, s: &str) -> bool {
    let mut ui = tall(app);
    ui.find(s).is_ok()
}

/// A trusted phone, a summary and a ready folder.
fn ready_app() -> App {
    let mut a = app();
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    let _ = a.update(Message::DestInspected(Ok(dest_info(true))));
    a
}

#[test]
fn click_through_phone_trust_summary_destination_sync_progress_result() {
    let mut a = app();
    assert!(shows(&a, "Connect your iPhone with a cable"));

    // The phone appears: its facts are being read, trust checked.
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    assert!(matches!(
        a.phone,
        PhoneState::Connected {
            trust: TrustState::Checking,
            ..
        }
    ));
    // Not trusted yet: the exact instruction and a Trust button.
    let _ = a.update(Message::Inspected(
        1,
        Ok((facts(), Trust::Not(not_paired()))),
    ));
    assert!(shows(&a, "Ada’s iPhone"));
    assert!(shows(&a, "Connected at USB 2 speed: large libraries take hours. A USB 3 cable (iPhone 15 Pro and later) is up to 10× faster."));
    let msgs = click(&a, "Trust");
    assert!(matches!(msgs.as_slice(), [Message::Pair]), "{msgs:?}");
    for m in msgs {
        let _ = a.update(m);
    }
    assert!(a.running_cancel().is_some(), "pairing can be cancelled");
    let _ = a.update(Message::Pairing(work::PairUpdate::Step(
        "Unlock your iPhone and tap \"Trust\" … Waiting up to 120s…".into(),
    )));
    assert!(shows(
        &a,
        "Unlock your iPhone and tap \"Trust\" … Waiting up to 120s…"
    ));
    let _ = a.update(Message::Pairing(work::PairUpdate::Done(Ok(()))));
    assert!(matches!(
        a.phone,
        PhoneState::Connected {
            trust: TrustState::Checking,
            ..
        }
    ));
    // Trusted: the library is read.
    let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    assert!(matches!(a.library, LibraryState::Scanning));
    assert!(shows(&a, "Reading the photo library…"));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    assert!(shows(&a, "2 original file(s) (3.0 kB) exist only on this iPhone — not in iCloud yet. They are backed up first."));
    assert!(shows(&a, "Only in iCloud: 24 photos and videos (34 files, 66 kB, 2019-01-20 to 2024-08-14) — the iPhone must download them first."));

    // No folder yet: Sync does nothing.
    assert!(!a.can_sync());
    assert!(
        click(&a, "Sync").is_empty(),
        "Sync must be disabled without a folder"
    );

    // Pick a folder (typed), which is not a Ferry backup yet: set it up.
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Input(
        "/tmp/backup".into(),
    )));
    let msgs = click(&a, "Use this folder");
    assert_eq!(msgs.len(), 1);
    for m in msgs {
        let _ = a.update(m);
    }
    assert!(a.dest.checking);
    let _ = a.update(Message::DestInspected(Ok(dest_info(false))));
    assert!(shows(&a, "Set up this folder for Ferry"));
    for m in click(&a, "Set up this folder for Ferry") {
        let _ = a.update(m);
    }
    let _ = a.update(Message::DestInspected(Ok(dest_info(true))));
    assert!(a.can_sync());

    // Sync: progress with files, bytes, rate, ETA and the current file.
    let msgs = click(&a, "Sync");
    assert!(matches!(msgs.as_slice(), [Message::Sync]), "{msgs:?}");
    for m in msgs {
        let _ = a.update(m);
    }
    assert!(matches!(a.sync, SyncState::Running { .. }));
    let _ = a.update(Message::Syncing(SyncUpdate::Event(
        ferry_sync::Event::Progress(ferry_sync::Progress {
            files_done: 3,
            files_total: 10,
            bytes_done: 3_000_000,
            bytes_total: 10_000_000,
            rate_bps: 25_000_000.0,
            eta_secs: Some(95),
            current: Some("/DCIM/100APPLE/IMG_0004.HEIC".into()),
        }),
    )));
    assert!(shows(
        &a,
        "Copying 3/10 files · 3.0 MB of 10 MB · 25.0 MB/s · 1:35 left"
    ));
    assert!(shows(&a, "/DCIM/100APPLE/IMG_0004.HEIC"));
    assert!(!click(&a, "Cancel").is_empty());

    // The result: everything accounted for, the iCloud-only list, open the folder.
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Ok((
        Box::new(report()),
        None,
    )))));
    assert!(matches!(a.sync, SyncState::Done { .. }));
    assert!(shows(
        &a,
        "2 photos and videos were only on this phone; they are now safe in the backup."
    ));
    assert!(shows(&a, "Only in iCloud (1):"));
    assert!(shows(&a, "2019-01-20  IMG_0042.HEIC  4.1 kB"));
    let msgs = click(&a, "Open backup folder");
    assert!(matches!(msgs.as_slice(), [Message::OpenFolder]));
}

#[test]
fn unplug_mid_sync_says_so_and_the_replugged_phone_carries_on() {
    let mut a = ready_app();
    let _ = a.update(Message::Sync);
    assert!(matches!(a.sync, SyncState::Running { .. }));
    let _ = a.update(Message::Device(DeviceUpdate::Detached(1)));
    assert!(matches!(a.phone, PhoneState::Waiting));
    assert!(shows(&a, "The iPhone was disconnected. Plug it back in to continue — nothing already copied is lost."));
    // The stopped run's own ending does not hide the message.
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Err(Failure {
        kind: "disconnected".into(),
        message: "gone".into(),
        hint: "replug".into(),
    }))));
    assert!(matches!(a.sync, SyncState::Interrupted { .. }));
    // Back (new device id): checked again, ready to continue.
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(2))));
    assert!(matches!(
        a.phone,
        PhoneState::Connected {
            trust: TrustState::Checking,
            ..
        }
    ));
    assert!(matches!(a.sync, SyncState::Idle));
    assert!(a.resume, "the same phone is back: the run will continue");
    let _ = a.update(Message::Inspected(2, Ok((facts(), Trust::Trusted))));
    assert!(
        matches!(a.library, LibraryState::Ready(_)) && a.library_refreshing,
        "the summary stays on screen while it is read again"
    );
    assert!(shows(&a, "Updating against the backup folder…"));
    assert!(
        matches!(a.sync, SyncState::Idle),
        "no sync before the library is read"
    );
    let _ = a.update(Message::Surveyed(Ok(summary())));
    assert!(
        matches!(a.sync, SyncState::Running { .. }),
        "the interrupted run continues by itself"
    );
    assert!(!a.resume);
}

#[test]
fn trust_problems_and_missing_usbmuxd_give_the_exact_instruction() {
    let mut a = app();
    let _ = a.update(Message::Device(DeviceUpdate::MuxDown(Failure {
        kind: "Usbmuxd".into(),
        message: "cannot reach usbmuxd".into(),
        hint: "install usbmuxd".into(),
    })));
    assert!(shows(&a, "install usbmuxd"));
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    for (kind, says, button) in [
        ("TrustDenied", "Trust was denied — unplug the iPhone, plug it back in and tap Trust.", "Try again"),
        ("Locked", "The iPhone is locked with its passcode. Unlock it and keep it unlocked.", "Try again"),
        ("TrustRevoked", "The iPhone no longer trusts this computer (its trust settings were reset). Press Trust and tap \"Trust\" on the phone.", "Trust"),
    ] {
        let f = Failure { kind: kind.into(), message: kind.into(), hint: String::new() };
        let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Not(f)))));
        assert!(shows(&a, says), "{kind}");
        assert!(matches!(click(&a, button).as_slice(), [Message::Pair]), "{kind}");
    }
    // A stale inspection of an earlier attachment is ignored.
    let _ = a.update(Message::Inspected(7, Ok((facts(), Trust::Trusted))));
    assert!(!matches!(
        a.phone,
        PhoneState::Connected {
            trust: TrustState::Trusted,
            ..
        }
    ));
}

#[test]
fn a_busy_or_unusable_folder_is_explained_and_sync_stays_off() {
    let mut a = ready_app();
    let _ = a.update(Message::DestInspected(Err(Failure {
        kind: "busy".into(),
        message: "another Ferry run holds this destination (pid 42)".into(),
        hint: "wait for it to finish".into(),
    })));
    assert!(shows(
        &a,
        "another Ferry run holds this destination (pid 42) — wait for it to finish"
    ));
    assert!(!a.can_sync());
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Input(
        "relative/path".into(),
    )));
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Use));
    assert!(shows(&a, "give the full path of the backup folder (starting with /) — for example /media/you/Backup/iPhone"));
}

/// The real sync work against a stalled simulated phone: while the phone hangs, the app keeps
/// handling messages, and Cancel ends the run with a clear state.
#[test]
fn a_stalled_phone_does_not_freeze_the_app_and_cancel_ends_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    // Private host identity and caches for this test.
    std::env::set_var("FERRY_DATA_DIR", tmp.path().join("data"));
    std::env::set_var("FERRY_CACHE_DIR", tmp.path().join("cache"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let image = tmp.path().join("phone");
        let mut g = ferry_phonegen::MakePhoneArgs::new(&image);
        g.assets = 20;
        ferry_phonegen::run(&g).unwrap();
        let sim = ferry_sim::sim::Simulator::start(ferry_sim::sim::SimConfig {
            phones: vec![ferry_sim::sim::PhoneConfig::new(&image)],
            listen: "127.0.0.1:0".parse().unwrap(),
            state: Some(tmp.path().join("sim")),
        })
        .await
        .unwrap();
        let key = MuxKey(sim.addr().to_string());
        let mux = key.mux().unwrap();
        let d = mux.list().await.unwrap().remove(0);
        let host = ferry_device::HostIdentity::load_or_create().unwrap();
        ferry_device::pair(
            &mux,
            &d,
            &host,
            &ferry_device::PairOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        let dest = tmp.path().join("backup");
        ferry_archive::Archive::init(&dest).unwrap();

        let mut a = App::new(key.clone());
        let _ = a.update(Message::Device(DeviceUpdate::Attached(d.clone())));
        let _ = a.update(Message::Inspected(
            d.device_id,
            Ok((facts(), Trust::Trusted)),
        ));
        let _ = a.update(Message::DestInspected(Ok(DestInfo {
            path: dest.clone(),
            ..dest_info(true)
        })));
        sim.stall(None, true).unwrap();
        let _ = a.update(Message::Sync);
        let token = a
            .running_cancel()
            .expect("a running sync has a cancel token");
        // The same work the Sync task runs, with the app's token.
        let mut stream = Box::pin(work::sync(key, d, dest, token));
        use futures::StreamExt;
        // The phone is stalled: nothing finishes, but the app still answers messages.
        let first = tokio::time::timeout(Duration::from_millis(1500), async {
            loop {
                match stream.next().await {
                    Some(SyncUpdate::Done(r)) => return Some(r),
                    Some(u) => {
                        let _ = a.update(Message::Syncing(u));
                    }
                    None => return None,
                }
            }
        })
        .await;
        assert!(
            first.is_err(),
            "the run ended although the phone is stalled"
        );
        let _ = a.update(Message::Settings(ferry_app::settings::Message::Appearance(
            ferry_config::Appearance::Dark,
        )));
        assert_eq!(
            a.theme(),
            Some(iced::Theme::Dark),
            "update still runs while the phone hangs"
        );
        // Cancel: the run ends promptly, and the app shows it.
        let _ = a.update(Message::Cancel);
        let done = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match stream.next().await {
                    Some(SyncUpdate::Done(r)) => return r,
                    Some(_) => {}
                    None => panic!("stream ended without Done"),
                }
            }
        })
        .await
        .expect("Cancel did not end the run");
        let cancelled = match &done {
            Err(f) => f.kind == "cancelled",
            Ok((_, Some(f))) => f.kind == "cancelled",
            Ok(_) => false,
        };
        assert!(cancelled, "{done:?}");
        let _ = a.update(Message::Syncing(SyncUpdate::Done(done)));
        assert!(!matches!(a.sync, SyncState::Running { .. }));
        sim.stall(None, false).unwrap();
        sim.shutdown().await;
    });
}

#[test]
fn autopilot_presses_trust_set_up_and_sync_once_each() {
    let mut a = app();
    a.autopilot = true;
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    let _ = a.update(Message::Inspected(
        1,
        Ok((facts(), Trust::Not(not_paired()))),
    ));
    assert!(matches!(a.autopilot_next(), Some(Message::Pair)));
    let _ = a.update(Message::Pair);
    assert!(
        a.autopilot_next().is_none(),
        "pairing in progress: nothing to press"
    );
    let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    let _ = a.update(Message::DestInspected(Ok(dest_info(false))));
    assert!(
        a.autopilot_next().is_none(),
        "the library summary comes first, then the folder is set up"
    );
    let _ = a.update(Message::Surveyed(Ok(summary())));
    assert!(matches!(
        a.autopilot_next(),
        Some(Message::Dest(ferry_app::destination::Message::Init))
    ));
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Init));
    assert!(a.autopilot_next().is_none(), "set-up in progress");
    let _ = a.update(Message::DestInspected(Ok(dest_info(true))));
    assert!(
        a.autopilot_next().is_none(),
        "the library is read again against the folder: Sync waits for it"
    );
    let _ = a.update(Message::Surveyed(Ok(summary())));
    assert!(matches!(a.autopilot_next(), Some(Message::Sync)));
    let _ = a.update(Message::Sync);
    assert!(a.autopilot_next().is_none());
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Ok((
        Box::new(report()),
        None,
    )))));
    assert!(a.autopilot_next().is_none(), "one sync, not a loop");
}

#[test]
fn result_shows_the_fetch_plan_and_settings_validate_before_applying() {
    let mut a = ready_app();
    let _ = a.update(Message::Sync);
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Ok((
        Box::new(report()),
        None,
    )))));
    // 10 GB free, 2 GB kept: the one iCloud-only original fits in a single batch.
    let plan = a.fetch_plan.as_ref().expect("a fetch plan after the run");
    assert_eq!(plan.batches.len(), 1);
    assert!(shows(
        &a,
        "Batch 1 of 1: 1 items, 4.1 kB (2019-01-20 – 2019-01-20)"
    ));
    let _ = a.update(Message::History(vec![work::PastRun {
        finished_at: "2026-11-22T10:00:03.000Z".into(),
        outcome: "complete".into(),
        copied: 103,
    }]));
    assert!(shows(&a, "2026-11-22T10:00:03.000Z  complete  103 copied"));

    // Settings (behind a button): a bad time is caught before anything is written.
    assert!(
        !shows(&a, "Back up every night at"),
        "settings start closed"
    );
    for m in click(&a, "Settings…") {
        let _ = a.update(m);
    }
    assert!(shows(&a, "Back up every night at"));
    use ferry_app::settings::Message as S;
    // The settings part on its own (below the fold of the scrolled window).
    let click_settings = |a: &App, label: &str| -> Vec<Message> {
        let mut ui = simulator(a.settings.view());
        ui.click(label)
            .unwrap_or_else(|e| panic!("no {label:?}: {e:?}"));
        ui.into_messages().map(Message::Settings).collect()
    };
    let shows_settings = |a: &App, s: &str| simulator(a.settings.view()).find(s).is_ok();
    for m in click_settings(&a, "Back up every night at") {
        let _ = a.update(m);
    }
    assert!(a.settings.nightly);
    let _ = a.update(Message::Settings(S::At("25:99".into())));
    for m in click_settings(&a, "Apply") {
        let _ = a.update(m);
    }
    assert!(!a.settings.applying);
    assert!(shows(
        &a,
        "\"25:99\" is not a time: write it as HH:MM, e.g. 02:30"
    ));
    let _ = a.update(Message::Settings(S::At("02:30".into())));
    let _ = a.update(Message::Settings(S::Apply));
    assert!(
        a.settings.applying,
        "a valid request is applied in the background"
    );
    let _ = a.update(Message::SettingsApplied(Ok("installed".into())));
    assert!(!a.settings.applying);
    assert!(shows_settings(&a, "installed"));
    assert_eq!(a.theme(), None, "by default the colours follow the system");
    for m in click_settings(&a, "Dark") {
        let _ = a.update(m);
    }
    assert_eq!(a.theme(), Some(iced::Theme::Dark));
    for m in click_settings(&a, "Like the system") {
        let _ = a.update(m);
    }
    assert_eq!(a.theme(), None);
}

fn other_dev(id: u32) -> UsbDevice {
    UsbDevice {
        udid: "00008030-000A1B2C3D4E5F60".into(),
        ..dev(id)
    }
}

#[test]
fn the_stages_of_the_main_path_in_order_and_the_autopilot_waits_for_each_picture() {
    let shots = tempfile::tempdir().unwrap();
    let mut a = app();
    a.autopilot = true;
    a.shots = Some(shots.path().to_path_buf());
    let mut seen = vec![a.current_stage()];
    let mut step = |a: &mut App, m: Message| {
        let _ = a.update(m);
        if seen.last() != Some(&a.current_stage()) {
            seen.push(a.current_stage());
        }
        // Stand in for the runtime: the stage was drawn and photographed.
        if let Some(p) = a.shot_pending.clone() {
            assert_eq!(p.stage, a.current_stage());
            assert!(
                a.autopilot_next().is_none(),
                "the autopilot waits for the picture of {:?}",
                p.stage
            );
            let _ = a.update(Message::Frame);
            let _ = a.update(Message::Frame);
            let _ = a.update(Message::ShotSaved(p.stage, Ok(PathBuf::from("x.png"))));
            assert!(a.shot_pending.is_none());
        }
    };
    step(&mut a, Message::Device(DeviceUpdate::Attached(dev(1))));
    step(
        &mut a,
        Message::Inspected(1, Ok((facts(), Trust::Not(not_paired())))),
    );
    assert!(matches!(a.autopilot_next(), Some(Message::Pair)));
    step(&mut a, Message::Pair);
    step(&mut a, Message::Pairing(work::PairUpdate::Done(Ok(()))));
    step(&mut a, Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    step(&mut a, Message::DestInspected(Ok(dest_info(false))));
    step(&mut a, Message::Surveyed(Ok(summary())));
    step(&mut a, Message::Dest(ferry_app::destination::Message::Init));
    step(&mut a, Message::DestInspected(Ok(dest_info(true))));
    step(&mut a, Message::Surveyed(Ok(summary())));
    step(&mut a, Message::Sync);
    step(
        &mut a,
        Message::Syncing(SyncUpdate::Event(ferry_sync::Event::Progress(
            ferry_sync::Progress::default(),
        ))),
    );
    step(
        &mut a,
        Message::Syncing(SyncUpdate::Done(Ok((Box::new(report()), None)))),
    );
    use ferry_app::Stage::*;
    assert_eq!(
        seen,
        vec![
            NoPhone,
            Checking,
            TrustNeeded,
            TrustPending,
            Checking,
            Scanning,
            Library,
            Scanning,
            Ready,
            Starting,
            Syncing,
            Result
        ]
    );
    assert_eq!(
        a.shots_taken,
        vec![TrustNeeded, TrustPending, Library, Ready, Syncing, Result],
        "every stage a person sees is photographed once, blinks are not"
    );
}

#[test]
fn the_keyboard_map() {
    use ferry_app::{shortcut, Shortcut};
    use iced::keyboard::{key::Named, Key, Modifiers};
    let ch = |c: &str| Key::Character(c.into());
    let none = Modifiers::empty();
    assert_eq!(
        shortcut(&Key::Named(Named::Enter), none),
        Some(Shortcut::Primary)
    );
    assert_eq!(shortcut(&Key::Named(Named::Enter), Modifiers::CTRL), None);
    assert_eq!(
        shortcut(&Key::Named(Named::Escape), none),
        Some(Shortcut::Cancel)
    );
    assert_eq!(
        shortcut(&Key::Named(Named::Tab), none),
        Some(Shortcut::NextField)
    );
    assert_eq!(
        shortcut(&Key::Named(Named::Tab), Modifiers::SHIFT),
        Some(Shortcut::PreviousField)
    );
    assert_eq!(
        shortcut(&Key::Named(Named::F5), none),
        Some(Shortcut::Rescan)
    );
    let cmd = Modifiers::COMMAND;
    assert_eq!(shortcut(&ch("o"), cmd), Some(Shortcut::ChooseFolder));
    assert_eq!(
        shortcut(&ch("O"), cmd | Modifiers::SHIFT),
        Some(Shortcut::OpenBackup)
    );
    assert_eq!(shortcut(&ch("r"), cmd), Some(Shortcut::Rescan));
    assert_eq!(shortcut(&ch("o"), none), None, "plain letters are text");
    assert_eq!(shortcut(&ch("x"), cmd), None);
}

#[test]
fn the_whole_backup_without_a_mouse() {
    use ferry_app::Shortcut;
    let mut a = app();
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    let _ = a.update(Message::Inspected(
        1,
        Ok((facts(), Trust::Not(not_paired()))),
    ));
    let _ = a.update(Message::Key(Shortcut::Primary));
    assert!(
        matches!(
            a.phone,
            PhoneState::Connected {
                trust: TrustState::Pairing(_),
                ..
            }
        ),
        "Enter presses Trust"
    );
    let pairing = a.running_cancel().expect("pairing can be cancelled");
    let _ = a.update(Message::Key(Shortcut::Cancel));
    assert!(pairing.is_cancelled(), "Esc cancels pairing");
    let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    let _ = a.update(Message::Key(Shortcut::ChooseFolder));
    assert!(a.dest.choosing, "Ctrl+O opens the folder dialog");
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Chosen(Ok(
        Some(PathBuf::from("/tmp/backup")),
    ))));
    assert!(!a.dest.choosing);
    assert_eq!(a.dest.path_input, "/tmp/backup");
    assert!(a.dest.checking, "the chosen folder is checked");
    let _ = a.update(Message::DestInspected(Ok(dest_info(false))));
    let _ = a.update(Message::Key(Shortcut::Primary));
    assert!(a.dest.checking, "Enter sets the folder up");
    let _ = a.update(Message::DestInspected(Ok(dest_info(true))));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    let _ = a.update(Message::Key(Shortcut::Primary));
    assert!(
        matches!(a.sync, SyncState::Running { .. }),
        "Enter starts the sync"
    );
    let run = a.running_cancel().expect("a sync can be cancelled");
    let _ = a.update(Message::Key(Shortcut::Primary));
    assert!(!run.is_cancelled(), "Enter during a sync does nothing");
    let _ = a.update(Message::Key(Shortcut::Cancel));
    assert!(run.is_cancelled(), "Esc cancels the sync");
}

#[test]
fn the_folder_dialog_fills_the_path_and_a_cancelled_dialog_changes_nothing() {
    let mut a = ready_app();
    for m in click(&a, "Choose…") {
        let _ = a.update(m);
    }
    assert!(a.dest.choosing);
    assert!(shows(&a, "Choosing…"), "one dialog at a time");
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Chosen(Ok(
        None,
    ))));
    assert!(!a.dest.choosing);
    assert_eq!(
        a.dest.info,
        Some(Ok(dest_info(true))),
        "cancelled: the folder stays"
    );
    assert!(a.can_sync());
    // No dialog on this system: said so, and the typed path still works.
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Choose));
    let _ = a.update(Message::Dest(ferry_app::destination::Message::Chosen(Err(
        Failure {
            kind: "no_dialog".into(),
            message: "this system has no folder dialog (no desktop portal, no zenity)".into(),
            hint: "type the folder's full path and press Enter".into(),
        },
    ))));
    assert!(shows(&a, "No folder dialog: this system has no folder dialog (no desktop portal, no zenity) — type the folder's full path and press Enter"));
    assert!(a.can_sync());
}

#[test]
fn a_folder_dialog_needs_a_session_bus_or_zenity_on_linux() {
    use std::ffi::OsStr;
    use work::dialog_available;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir_all(&run).unwrap();
    let path_without = std::env::join_paths([&bin]).unwrap();
    if cfg!(target_os = "macos") {
        assert!(dialog_available(None, None, None));
        return;
    }
    assert!(!dialog_available(None, None, None));
    assert!(!dialog_available(
        Some(OsStr::new("")),
        Some(&run),
        Some(&path_without)
    ));
    assert!(dialog_available(
        Some(OsStr::new("unix:path=/run/user/1000/bus")),
        None,
        None
    ));
    std::fs::write(run.join("bus"), b"").unwrap();
    assert!(
        dialog_available(None, Some(&run), None),
        "$XDG_RUNTIME_DIR/bus"
    );
    std::fs::write(bin.join("zenity"), b"#!/bin/sh\n").unwrap();
    assert!(
        dialog_available(None, None, Some(&path_without)),
        "zenity on PATH"
    );
}

#[test]
fn a_folder_in_use_by_another_run_is_waited_for_then_the_sync_starts() {
    let mut a = ready_app();
    let holder = "pid 4242 host nas since 2026-11-22T02:30:00.000Z";
    let _ = a.update(Message::DestInspected(Ok(DestInfo {
        busy: Some(holder.into()),
        ..dest_info(true)
    })));
    assert!(shows(
        &a,
        &format!(
            "Another Ferry run is using this folder right now ({holder}). Sync waits for it and then starts by itself."
        )
    ));
    assert!(a.can_sync(), "Sync can be pressed: it waits");
    for m in click(&a, "Sync") {
        let _ = a.update(m);
    }
    assert!(matches!(a.sync, SyncState::WaitingForFolder { .. }));
    assert_eq!(a.current_stage(), ferry_app::Stage::WaitingForFolder);
    assert!(shows(&a, &format!("Another Ferry backup is using this folder right now ({holder}) — the nightly mirror or a `ferry sync` in a terminal. Your backup starts by itself as soon as it finishes.")));
    let _ = a.update(Message::DestFree(Ok(())));
    assert!(
        matches!(a.sync, SyncState::Running { .. }),
        "the folder is free: the sync starts by itself"
    );

    // A run that took the folder between the check and the start: also waited for.
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Err(Failure {
        kind: "busy".into(),
        message: "another Ferry run holds this destination (pid 7)".into(),
        hint: "wait".into(),
    }))));
    assert!(matches!(a.sync, SyncState::WaitingForFolder { .. }));
    let wait = a.running_cancel().expect("the wait can be cancelled");
    for m in click(&a, "Cancel") {
        let _ = a.update(m);
    }
    assert!(wait.is_cancelled());
    let _ = a.update(Message::DestFree(Err(Failure {
        kind: "cancelled".into(),
        message: "stopped waiting".into(),
        hint: String::new(),
    })));
    assert!(matches!(a.sync, SyncState::Idle));
}

/// The real wait against a real lock held by an open archive in this process.
#[test]
fn wait_for_dest_returns_when_the_other_run_lets_go() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backup");
    ferry_archive::Archive::init(&dest).unwrap();
    let held =
        ferry_archive::Archive::open(&dest, ferry_archive::ArchiveOptions::default()).unwrap();
    assert!(ferry_archive::destination_holder(&dest).is_some());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cancel = tokio_util::sync::CancellationToken::new();
        let mut wait = Box::pin(work::wait_for_dest(dest.clone(), cancel.clone()));
        let early = tokio::time::timeout(Duration::from_millis(300), &mut wait).await;
        assert!(early.is_err(), "returned while the folder is held");
        drop(held);
        let r = tokio::time::timeout(Duration::from_secs(10), &mut wait)
            .await
            .expect("the wait did not notice the release");
        assert!(r.is_ok(), "{r:?}");
        // And a cancelled wait ends at once with `cancelled`.
        let _again =
            ferry_archive::Archive::open(&dest, ferry_archive::ArchiveOptions::default()).unwrap();
        cancel.cancel();
        let r = tokio::time::timeout(
            Duration::from_secs(10),
            work::wait_for_dest(dest.clone(), cancel),
        )
        .await
        .expect("a cancelled wait ends");
        assert_eq!(r.map_err(|f| f.kind), Err("cancelled".to_string()));
    });
}

#[test]
fn two_phones_one_shown_the_other_a_switch_away() {
    let mut a = app();
    let _ = a.update(Message::Device(DeviceUpdate::Attached(dev(1))));
    let _ = a.update(Message::Inspected(1, Ok((facts(), Trust::Trusted))));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    let _ = a.update(Message::Device(DeviceUpdate::Attached(other_dev(2))));
    assert_eq!(
        a.phone.device().map(|d| d.device_id),
        Some(1),
        "the first stays shown"
    );
    assert!(shows(&a, "1 more iPhone(s) connected:"));
    assert!(shows(&a, "iPhone 00008030-000A1B2C3D4E5F60"));
    for m in click(&a, "Show this iPhone") {
        let _ = a.update(m);
    }
    assert_eq!(a.phone.device().map(|d| d.device_id), Some(2));
    assert!(
        matches!(a.library, LibraryState::None),
        "the first phone's summary is not shown for the second"
    );
    assert_eq!(
        a.others.iter().map(|d| d.device_id).collect::<Vec<_>>(),
        vec![1]
    );
    // While a backup runs, no switching.
    let _ = a.update(Message::Inspected(2, Ok((facts(), Trust::Trusted))));
    let _ = a.update(Message::Surveyed(Ok(summary())));
    let _ = a.update(Message::DestInspected(Ok(dest_info(true))));
    let _ = a.update(Message::Sync);
    assert!(shows(
        &a,
        "1 more iPhone(s) connected (switch when this backup has finished):"
    ));
    let _ = a.update(Message::SwitchPhone(dev(1).udid));
    assert_eq!(a.phone.device().map(|d| d.device_id), Some(2));
    let _ = a.update(Message::Cancel);
    let _ = a.update(Message::Syncing(SyncUpdate::Done(Ok((
        Box::new(report()),
        None,
    )))));
    // The shown phone is unplugged: the other one is shown.
    let _ = a.update(Message::Device(DeviceUpdate::Detached(2)));
    assert_eq!(a.phone.device().map(|d| d.device_id), Some(1));
    assert!(a.others.is_empty());
    let _ = a.update(Message::Device(DeviceUpdate::Detached(1)));
    assert_eq!(a.phone, PhoneState::Waiting);
}
