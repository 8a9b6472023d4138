//! `ferry sync | status | verify | demo` end to end: the real binary against `ferry-sim serve`.
//!
//! Ground truth is the generator's `expected.json`: every original it marks `archive` must be
//! in the archive with its SHA-256, nothing else may be, the reconciliation must add up to the
//! asset count and the iCloud-only list must be expected.json's. Faults: a full, a read-only
//! and an uninitialised destination, two concurrent runs, Ctrl-C, and hostile database rows.
//! The unplug and `kill -9` trials are in `torture.rs`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::Value;

fn pair(sim: &Sim, home: &Home) {
    ferry(sim, home, &["pair"]).ok();
}

/// The archive holds exactly the expected originals, byte for byte, and no temp file.
fn assert_archive_exact(dest: &Path, exp: &Value) {
    let files = archive_files(dest);
    let temps: Vec<_> = files.keys().filter(|k| is_temp(k)).collect();
    assert!(temps.is_empty(), "temp files left: {temps:?}");
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for h in files.values() {
        *got.entry(h.clone()).or_default() += 1;
    }
    let want = expected_hashes(exp);
    if got != want {
        let missing: Vec<_> = want.keys().filter(|h| !got.contains_key(*h)).collect();
        let extra: Vec<_> = files
            .iter()
            .filter(|(_, h)| !want.contains_key(*h))
            .map(|(p, _)| p)
            .collect();
        panic!(
            "archive differs from expected.json: {} files vs {} expected; missing hashes {missing:?}; \
             unexpected files {extra:?}",
            files.len(),
            want.values().sum::<usize>()
        );
    }
}

/// No file under a final name is partial: each one is some expected original, complete.
fn assert_no_partial_final_files(dest: &Path, exp: &Value) {
    let want = expected_hashes(exp);
    for (rel, h) in archive_files(dest) {
        if is_temp(&rel) {
            continue;
        }
        assert!(
            want.contains_key(&h),
            "{rel} is under a final name but is not a complete original"
        );
    }
}

fn check_reconciliation(report: &Value, exp: &Value, first_run: bool) {
    let t = &exp["totals"];
    let rec = &report["reconciliation"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let cls = |k: &str| n(&t["classifications"][k]);
    assert_eq!(rec["assets"], t["assets"], "{rec}");
    check_sum(report);
    assert!(rec["failed"].as_object().unwrap().is_empty(), "{rec}");
    let archived = if first_run {
        n(&rec["archived_new"])
    } else {
        n(&rec["archived_earlier"])
    };
    assert_eq!(archived, cls("archive"), "{rec}");
    assert_eq!(n(&rec["icloud_only"]), cls("icloud_only"), "{rec}");
    assert_eq!(n(&rec["unavailable"]), cls("unavailable"), "{rec}");
    assert_eq!(n(&rec["retry_later"]), cls("retry_later"), "{rec}");
    assert_eq!(rec["excluded"], t["exclusions"], "{rec}");
    // The iCloud-only list is expected.json's.
    let want: BTreeSet<&str> = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["classification"] == "icloud_only")
        .map(|a| a["uuid"].as_str().unwrap())
        .collect();
    let got: BTreeSet<&str> = report["icloud_only"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["original_local"] == false)
        .map(|a| a["uuid"].as_str().unwrap())
        .collect();
    assert_eq!(got, want, "iCloud-only list");
    assert_eq!(
        report["icloud_only_summary"]["files"], t["fetch_on_phone_files"],
        "{}",
        report["icloud_only_summary"]
    );
}

fn sync_json(sim: &Sim, home: &Home, dest: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["sync", "--dest", dest.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    ferry(sim, home, &args)
}

/// First run copies exactly the expected originals; the second copies nothing and does not
/// re-read Photos.sqlite; status and verify agree.
fn full_and_incremental(img: &Path) {
    let exp = expected(img);
    let sim = start(img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();

    let r = sync_json(&sim, &home, &dest, &["--init"]);
    r.ok();
    let report = r.json();
    assert_eq!(report["outcome"], "complete", "{report}");
    assert_eq!(report["snapshot_reused"], false);
    check_reconciliation(&report, &exp, true);
    assert_eq!(
        report["files"]["copied"], exp["totals"]["archive_files"],
        "{}",
        report["files"]
    );
    assert_eq!(
        report["files"]["copied_bytes"],
        exp["totals"]["archive_bytes"]
    );
    assert_archive_exact(&dest, &exp);
    let before = archive_files(&dest);

    // The report is stored in the archive.
    let latest = dest
        .join(".ferry/reports")
        .join(udid_of(img))
        .join("latest.json");
    let stored: Value = serde_json::from_slice(&std::fs::read(&latest).unwrap()).unwrap();
    assert_eq!(stored["reconciliation"], report["reconciliation"]);

    let r2 = sync_json(&sim, &home, &dest, &[]);
    r2.ok();
    let second = r2.json();
    assert_eq!(second["files"]["copied"], 0, "{}", second["files"]);
    assert_eq!(
        second["snapshot_reused"], true,
        "Photos.sqlite was pulled again"
    );
    assert_eq!(second["snapshot_bytes"], 0);
    check_reconciliation(&second, &exp, false);
    assert_eq!(
        archive_files(&dest),
        before,
        "the second run changed the archive"
    );

    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    st.ok();
    let st = st.json();
    assert_eq!(st["phones"][0]["udid"], udid_of(img).as_str());
    assert_eq!(st["phones"][0]["files"], exp["totals"]["archive_files"]);
    assert_eq!(st["phones"][0]["last_run"]["outcome"], "complete");
    assert_eq!(
        st["phones"][0]["icloud_only_pending"]["files"],
        exp["totals"]["fetch_on_phone_files"]
    );

    let v = ferry(
        &sim,
        &home,
        &["verify", "--dest", dest.to_str().unwrap(), "--json"],
    );
    v.ok();
    assert_eq!(v.json()["ok"], true);
    assert_eq!(
        v.json()["report"]["files_hashed"],
        exp["totals"]["archive_files"]
    );

    // The catalog is lost: status rebuilds it, and the next run still copies nothing.
    std::fs::remove_file(dest.join(".ferry/catalog.sqlite")).unwrap();
    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    st.ok();
    assert_eq!(st.json()["catalog_rebuilt"], true);
    assert_eq!(
        st.json()["phones"][0]["files"],
        exp["totals"]["archive_files"]
    );
    let r3 = sync_json(&sim, &home, &dest, &[]);
    r3.ok();
    assert_eq!(r3.json()["files"]["copied"], 0);
    assert_eq!(archive_files(&dest), before);
}

#[test]
fn sync_matches_expected_ios13() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "80", "--schema", "ios13", "--seed", "31"],
    );
    full_and_incremental(&img);
}

#[test]
fn sync_matches_expected_ios16_icloud_off() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &[
            "--assets",
            "60",
            "--schema",
            "ios16",
            "--seed",
            "32",
            "--icloud-photos",
            "off",
        ],
    );
    full_and_incremental(&img);
}

#[test]
fn sync_matches_expected_ios18() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "120", "--schema", "ios18", "--seed", "33"],
    );
    full_and_incremental(&img);
}

#[test]
fn dry_run_copies_nothing_and_accounts_for_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "50", "--seed", "34"]);
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    let r = sync_json(&sim, &home, &dest, &["--init", "--dry-run"]);
    r.ok();
    let rep = r.json();
    assert_eq!(rep["outcome"], "dry_run");
    assert_eq!(
        rep["reconciliation"]["would_copy"],
        exp["totals"]["classifications"]["archive"]
    );
    assert_eq!(rep["files"]["planned"], exp["totals"]["archive_files"]);
    assert!(archive_files(&dest).is_empty());
}

/// A phone image whose big video makes copies last long enough to be interrupted mid-file.
fn slow_image(parent: &Path, seed: &str) -> PathBuf {
    make_phone(
        parent,
        "slow",
        &[
            "--assets",
            "40",
            "--seed",
            seed,
            "--sparse-video-bytes",
            "6000000",
        ],
    )
}

/// Runs `ferry sync` once more; it must complete (exit 0). Returns its report.
fn resume(sim: &Sim, home: &Home, dest: &Path) -> Value {
    let r = sync_json(sim, home, dest, &[]);
    assert_eq!(r.code, Some(0), "resuming sync failed: {r:?}");
    r.json()
}

#[test]
fn missing_marker_is_refused_with_guidance() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "20", "--seed", "37"]);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("empty-mount-point");
    std::fs::create_dir(&dest).unwrap();
    let r = ferry(&sim, &home, &["sync", "--dest", dest.to_str().unwrap()]);
    r.expect_code(40)
        .stderr_has("not a Ferry archive")
        .stderr_has("--init");
    assert_eq!(
        std::fs::read_dir(&dest).unwrap().count(),
        0,
        "wrote into {dest:?}"
    );
    let j = ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--json"],
    );
    j.expect_code(40);
    assert_eq!(j.json()["error"]["kind"], "not_initialised");
    // A destination that does not exist at all (drive not mounted).
    let gone = tmp.path().join("no-such-drive/Photos");
    ferry(
        &sim,
        &home,
        &["sync", "--dest", gone.to_str().unwrap(), "--init"],
    )
    .expect_code(44)
    .stderr_has("does not exist");
}

#[test]
fn second_concurrent_run_is_refused_and_nothing_is_copied_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let img = slow_image(tmp.path(), "38");
    let exp = expected(&img);
    // The phone stalls mid-run: the first `ferry sync` holds the destination meanwhile.
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    ferry_archive::Archive::init(&dest).unwrap();
    sim.ctl(&["stall"]);
    let mut cmd = ferry_cmd(
        &sim.mux_env(),
        &home,
        &[
            "sync",
            "--dest",
            dest.to_str().unwrap(),
            "--io-timeout",
            "300",
        ],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let first = cmd.spawn().unwrap();
    // The first run takes the lock before talking to the phone; wait until it holds it.
    wait_for(
        "the first run to hold the lock",
        Duration::from_secs(30),
        || {
            let st = ferry(
                &sim,
                &home,
                &["status", "--dest", dest.to_str().unwrap(), "--json"],
            );
            st.code == Some(0) && st.json()["busy"] == true
        },
    );
    let second = ferry(&sim, &home, &["sync", "--dest", dest.to_str().unwrap()]);
    second
        .expect_code(41)
        .stderr_has("another Ferry run holds this destination");
    sim.ctl(&["unstall"]);
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "first run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_archive_exact(&dest, &exp);
    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(
        st.json()["phones"][0]["files"],
        exp["totals"]["archive_files"]
    );
}

#[test]
fn full_destination_stops_cleanly_with_need_then_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = slow_image(tmp.path(), "39");
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    // 4 MiB: the metadata and the small files fit, the 6 MB video does not.
    let m = ferry_e2e::mount::TmpfsMount::new("4m");
    let r = sync_json(&sim, &home, &m.dir, &["--init"]);
    r.expect_code(42);
    let rep = r.json();
    assert_eq!(rep["outcome"], "stopped", "{rep}");
    assert_eq!(rep["stopped"]["kind"], "disk_full");
    assert!(rep["stopped"]["need_bytes"].as_u64().unwrap() > 0);
    assert!(
        rep["stopped"]["message"]
            .as_str()
            .unwrap()
            .contains("more is needed"),
        "{}",
        rep["stopped"]
    );
    check_sum(&rep);
    assert_no_partial_final_files(&m.dir, &exp);
    // Human output says how much is missing.
    let r = ferry(&sim, &home, &["sync", "--dest", m.dir.to_str().unwrap()]);
    r.expect_code(42).stderr_has("more");
    // More room: the next run completes the archive exactly.
    m.remount("size=64m");
    let rep = resume(&sim, &home, &m.dir);
    assert_eq!(rep["outcome"], "complete");
    assert_archive_exact(&m.dir, &exp);
}

#[test]
fn read_only_destination_is_a_clear_error_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "30", "--seed", "40"]);
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let m = ferry_e2e::mount::TmpfsMount::new("64m");
    sync_json(&sim, &home, &m.dir, &["--init"]).ok();
    let before = archive_files(&m.dir);
    m.remount_ro();
    let r = ferry(&sim, &home, &["sync", "--dest", m.dir.to_str().unwrap()]);
    r.expect_code(43).stderr_has("read-only");
    assert_eq!(archive_files(&m.dir), before);
    m.remount("rw");
    assert_archive_exact(&m.dir, &exp);
}

#[test]
fn hostile_database_rows_never_write_outside_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "40", "--seed", "41", "--wal-fraction", "0"],
    );
    // Rewrite names and paths in the phone's database the way a damaged or malicious
    // library could have them.
    let db = img.join("Media/PhotoData/Photos.sqlite");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let long = "L".repeat(300);
    let hostile_names = [
        "../../../../escape.HEIC".to_string(),
        "/etc/passwd".to_string(),
        "a\0b.HEIC".to_string(),
        format!("{long}.HEIC"),
        "CON.HEIC".to_string(),
        "trailing dots... ".to_string(),
        "..".to_string(),
        "sub/dir\\name.JPG".to_string(),
    ];
    let pks: Vec<i64> = conn
        .prepare("SELECT Z_PK FROM ZASSET ORDER BY Z_PK")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let attr_table = ["ZADDITIONALASSETATTRIBUTES"]
        .into_iter()
        .find(|t| {
            conn.query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = ?1",
                [t],
                |r| r.get::<_, i64>(0),
            )
            .unwrap()
                > 0
        })
        .expect("attributes table");
    for (pk, name) in pks.iter().zip(hostile_names.iter()) {
        conn.execute(
            &format!("UPDATE {attr_table} SET ZORIGINALFILENAME = ?1 WHERE ZASSET = ?2"),
            rusqlite::params![name, pk],
        )
        .unwrap();
    }
    // Paths that try to leave the Media root.
    for (pk, (dir, file)) in pks.iter().skip(10).zip([
        ("../../../..", "etc/shadow"),
        ("/private/var", "x.HEIC"),
        ("DCIM/../../..", "y.HEIC"),
    ]) {
        conn.execute(
            "UPDATE ZASSET SET ZDIRECTORY = ?1, ZFILENAME = ?2 WHERE Z_PK = ?3",
            rusqlite::params![dir, file, pk],
        )
        .unwrap();
    }
    drop(conn);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let sandbox = tmp.path().join("sandbox");
    let dest = sandbox.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    let r = sync_json(&sim, &home, &dest, &["--init"]);
    assert!(
        matches!(r.code, Some(0) | Some(6)),
        "hostile rows must not stop the run: {r:?}"
    );
    check_sum(&r.json());
    // Nothing outside DIR: the sandbox holds only `dest`, and every file is inside the
    // phone's folder, with a safe name.
    let top: Vec<_> = std::fs::read_dir(&sandbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(top, vec!["dest".to_string()]);
    let folder = r.json()["phone_folder"].as_str().unwrap().to_string();
    for rel in archive_files(&dest).keys() {
        assert!(
            rel.starts_with(&format!("{folder}/")),
            "{rel} outside the phone folder"
        );
        for part in rel.split('/') {
            assert!(!part.is_empty() && part != "." && part != "..", "{rel}");
            assert!(part.len() <= 255, "{rel}");
            assert!(
                !part.contains(['\0', '\\', ':', '*', '?', '"', '<', '>', '|']),
                "{rel}"
            );
            assert!(!part.ends_with(['.', ' ']), "{rel}");
        }
    }
}

#[test]
fn demo_runs_with_nothing_set_up() {
    let tmp = tempfile::tempdir().unwrap();
    let home = Home::new();
    let dir = tmp.path().join("ferry-demo");
    // No simulator, no usbmuxd: the demo brings its own phone.
    let r = ferry_at(
        "127.0.0.1:9",
        &home,
        &["demo", "--dir", dir.to_str().unwrap(), "--assets", "40"],
    );
    r.ok()
        .stdout_has("accounted for")
        .stdout_has("only in iCloud");
    assert!(!archive_files(&dir).is_empty());
    // Again: nothing is copied twice.
    let again = ferry_at(
        "127.0.0.1:9",
        &home,
        &["demo", "--dir", dir.to_str().unwrap(), "--assets", "40"],
    );
    again.ok().stdout_has("Copied 0 file(s)");
    let v = ferry_at(
        "127.0.0.1:9",
        &home,
        &["verify", "--dest", dir.to_str().unwrap()],
    );
    v.ok().stdout_has("intact");
}

#[test]
fn ctrl_c_stops_cleanly_and_the_next_run_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let img = slow_image(tmp.path(), "42");
    let exp = expected(&img);
    let dest = tmp.path().join("backup");
    let (child, sim, home) = sync_stalled(&img, &dest);
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["outcome"], "stopped");
    assert_eq!(rep["stopped"]["kind"], "cancelled");
    check_sum(&rep);
    assert_no_partial_final_files(&dest, &exp);
    sim.ctl(&["unstall"]);
    let rep = resume(&sim, &home, &dest);
    assert_eq!(rep["outcome"], "complete");
    assert_archive_exact(&dest, &exp);
}

#[test]
fn a_changed_original_is_added_as_a_new_version_and_the_old_one_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "30", "--seed", "43"]);
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    sync_json(&sim, &home, &dest, &["--init"]).ok();
    let before = archive_files(&dest);
    // The phone rewrites one original in place (deferred processing finished, say).
    let (rel, _) = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["exclusion"].is_null())
        .flat_map(|a| a["resources"].as_array().unwrap().iter())
        .filter(|r| r["action"] == "archive" && r["role"] == "primary")
        .map(|r| (r["afc_path"].as_str().unwrap().to_string(), ()))
        .next()
        .unwrap();
    let file = img.join("Media").join(&rel);
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.extend_from_slice(b"-rewritten-by-the-phone");
    std::fs::write(&file, &bytes).unwrap();
    let new_hash = sha256_file(&file);
    let r = sync_json(&sim, &home, &dest, &[]);
    r.ok();
    let rep = r.json();
    assert_eq!(rep["files"]["copied"], 1, "{}", rep["files"]);
    assert_eq!(rep["files"]["new_versions"], 1);
    let after = archive_files(&dest);
    // Every earlier file is still there, unchanged; one new file holds the new bytes.
    for (p, h) in &before {
        assert_eq!(after.get(p), Some(h), "{p} changed or vanished");
    }
    let added: Vec<_> = after
        .iter()
        .filter(|(p, _)| !before.contains_key(*p))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].1, &new_hash);
    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(st.json()["phones"][0]["superseded_files"], 1);
    // And it is stable: the next run copies nothing.
    assert_eq!(
        sync_json(&sim, &home, &dest, &[]).json()["files"]["copied"],
        0
    );
}

/// Starts `ferry sync --init --json` into `dest` against a phone that stalls after the database
/// and some originals, and returns once it has stalled: the run is mid-copy.
fn sync_stalled(img: &Path, dest: &Path) -> (std::process::Child, Sim, Home) {
    let db = std::fs::metadata(img.join("Media/PhotoData/Photos.sqlite"))
        .unwrap()
        .len()
        + std::fs::metadata(img.join("Media/PhotoData/Photos.sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    let sim = start(img, |o| o.stall_after_bytes(db + 200_000));
    let home = Home::new();
    pair(&sim, &home);
    let mut cmd = ferry_cmd(
        &sim.mux_env(),
        &home,
        &[
            "sync",
            "--dest",
            dest.to_str().unwrap(),
            "--init",
            "--json",
            "--io-timeout",
            "300",
        ],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    let udid = udid_of(img);
    wait_for(
        "the phone to stall mid-run",
        Duration::from_secs(60),
        || sim.phone_status(&udid)["stalled"] == true,
    );
    (child, sim, home)
}

/// [`sync_stalled`], then `act` while the phone is stalled, then the phone goes on; returns the
/// finished run's output.
fn act_while_stalled(
    img: &Path,
    dest: &Path,
    act: impl FnOnce(),
) -> (std::process::Output, Sim, Home) {
    let (child, sim, home) = sync_stalled(img, dest);
    act();
    sim.ctl(&["unstall"]);
    let out = child.wait_with_output().unwrap();
    (out, sim, home)
}

fn assert_went_away(out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(46), "{stderr}");
    assert!(stderr.contains("went away"), "{stderr}");
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["outcome"], "stopped", "{rep}");
    assert_eq!(rep["stopped"]["kind"], "destination_gone", "{rep}");
    check_sum(&rep);
}

#[test]
fn a_drive_unmounted_mid_run_stops_and_nothing_lands_on_the_mount_point() {
    let tmp = tempfile::tempdir().unwrap();
    let img = slow_image(tmp.path(), "61");
    let m = ferry_e2e::mount::TmpfsMount::new("64m");
    let (out, _sim, _home) = act_while_stalled(&img, &m.dir, || m.unmount_lazy());
    assert_went_away(&out);
    // The mount point is a plain empty folder on the system disk again: nothing was written
    // into it, neither photos nor `.ferry/reports`.
    let left: Vec<_> = std::fs::read_dir(&m.dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_destination_moved_or_deleted_mid_run_stops_and_is_not_recreated() {
    for delete in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let img = slow_image(tmp.path(), "62");
        let exp = expected(&img);
        let dest = tmp.path().join("backup");
        let moved = tmp.path().join("moved");
        let (out, sim, home) = act_while_stalled(&img, &dest, || {
            if delete {
                std::fs::remove_dir_all(&dest).unwrap();
            } else {
                std::fs::rename(&dest, &moved).unwrap();
            }
        });
        assert_went_away(&out);
        assert!(!dest.exists(), "the destination was re-created");
        if !delete {
            // The moved archive is consistent and the next run completes it exactly.
            assert_no_partial_final_files(&moved, &exp);
            ferry(&sim, &home, &["verify", "--dest", moved.to_str().unwrap()]).ok();
            let rep = resume(&sim, &home, &moved);
            assert_eq!(rep["outcome"], "complete");
            assert_archive_exact(&moved, &exp);
        }
    }
}

#[test]
fn status_and_verify_work_on_a_read_only_and_on_a_full_drive() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "30", "--seed", "63"]);
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let m = ferry_e2e::mount::TmpfsMount::new("40m");
    sync_json(&sim, &home, &m.dir, &["--init"]).ok();
    let files = archive_files(&m.dir).len();
    let dest = m.dir.to_str().unwrap();

    m.remount_ro();
    let r = ferry(&sim, &home, &["status", "--dest", dest]);
    r.ok().stdout_has("read-only");
    let doc = ferry(&sim, &home, &["status", "--dest", dest, "--json"]).json();
    assert_eq!(doc["drive"]["state"], "read_only", "{doc}");
    assert_eq!(
        doc["phones"][0]["files"].as_u64().unwrap() as usize,
        files,
        "{doc}"
    );
    let r = ferry(&sim, &home, &["verify", "--dest", dest]);
    r.ok().stdout_has("read-only");

    // Full: a filler takes all but a few kB.
    m.remount("rw");
    let filler = m.dir.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 1 << 16];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    let r = ferry(&sim, &home, &["status", "--dest", dest]);
    r.ok().stdout_has("full");
    let doc = ferry(&sim, &home, &["status", "--dest", dest, "--json"]).json();
    assert_eq!(doc["drive"]["state"], "full", "{doc}");
    ferry(&sim, &home, &["verify", "--dest", dest]).ok();
    std::fs::remove_file(&filler).unwrap();
    assert_archive_exact(&m.dir, &exp);
}

#[test]
fn a_linked_lock_file_is_refused_and_what_it_points_at_is_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "10", "--seed", "64"]);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    sync_json(&sim, &home, &dest, &["--init"]).ok();
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"keep me\n").unwrap();
    let lock = dest.join(".ferry/lock");
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    for args in [&["status"][..], &["verify"], &["sync"]] {
        let mut a = args.to_vec();
        a.extend(["--dest", dest.to_str().unwrap()]);
        ferry(&sim, &home, &a)
            .expect_code(44)
            .stderr_has("symbolic link");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me\n", "{args:?}");
    }
}

/// `(afc_path, sha256)` of every primary original expected.json says to archive, in order.
fn archived_primaries(exp: &Value) -> Vec<(String, String)> {
    exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["exclusion"].is_null())
        .filter_map(|a| a["resources"].as_array()?.first().cloned())
        .filter(|r| r["role"] == "primary" && r["action"] == "archive")
        .map(|r| {
            (
                r["afc_path"].as_str().unwrap().to_string(),
                r["sha256"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Replaces the file at `afc` (relative to `Media/`) with a symlink to `target`.
fn replace_with_symlink(img: &Path, afc: &str, target: &str) {
    let link = img.join("Media").join(afc);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink(target, &link).unwrap();
}

/// `../` once per folder above `afc` (relative to `Media/`): a relative link target from
/// `afc`'s folder back to the Media root.
fn up_to_media(afc: &str) -> String {
    "../".repeat(afc.matches('/').count())
}

#[test]
fn an_original_that_is_a_symlink_to_another_media_file_is_copied_from_its_target() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "20", "--seed", "61"]);
    let exp = expected(&img);
    let media = img.join("Media");
    let originals = archived_primaries(&exp);
    assert!(originals.len() >= 3, "{originals:?}");
    // Originals moved elsewhere in Media, with a link left at the library's path: relative,
    // absolute in the phone's namespace (what AFC reports as LinkTarget), and a link to a link.
    std::fs::create_dir_all(media.join("PhotoData/Linked")).unwrap();
    for (n, (afc, _)) in originals.iter().take(3).enumerate() {
        let name = format!("{n}-{}", afc.rsplit('/').next().unwrap());
        std::fs::rename(media.join(afc), media.join("PhotoData/Linked").join(&name)).unwrap();
        let target = match n {
            0 => format!("{}PhotoData/Linked/{name}", up_to_media(afc)),
            1 => format!("/var/mobile/Media/PhotoData/Linked/{name}"),
            _ => {
                let hop = format!("PhotoData/Linked/hop-{name}");
                std::os::unix::fs::symlink(&name, media.join(&hop)).unwrap();
                format!("/private/var/mobile/Media/{hop}")
            }
        };
        std::os::unix::fs::symlink(&target, media.join(afc)).unwrap();
    }
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    let r = sync_json(&sim, &home, &dest, &["--init"]);
    let rep = r.json();
    assert_eq!(
        rep["failures"],
        serde_json::json!([]),
        "{}",
        rep["failures"]
    );
    r.ok();
    assert_eq!(rep["outcome"], "complete", "{rep}");
    assert_archive_exact(&dest, &exp);
    // The next run finds them archived (the target's size is what the plan compares).
    let rep = resume(&sim, &home, &dest);
    assert_eq!(rep["files"]["copied"], 0, "{}", rep["files"]);
    assert_archive_exact(&dest, &exp);
}

#[test]
fn symlinks_that_leave_media_or_loop_are_reported_as_links_not_as_a_locked_phone() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "20", "--seed", "62"]);
    let exp = expected(&img);
    let originals = archived_primaries(&exp);
    assert!(originals.len() >= 5, "{originals:?}");
    let secret = tmp.path().join("secret.txt");
    std::fs::write(&secret, b"a host file that must never be copied").unwrap();
    let bad: Vec<&(String, String)> = originals.iter().take(5).collect();
    // An absolute link to a host file, a relative link climbing out of Media, a link to itself,
    // a dangling link and a link to a folder.
    replace_with_symlink(&img, &bad[0].0, secret.to_str().unwrap());
    replace_with_symlink(
        &img,
        &bad[1].0,
        &format!("{}../../secret.txt", up_to_media(&bad[1].0)),
    );
    let own = bad[2].0.rsplit('/').next().unwrap().to_string();
    replace_with_symlink(&img, &bad[2].0, &own);
    replace_with_symlink(&img, &bad[3].0, "IMG_NOT_THERE.JPG");
    replace_with_symlink(&img, &bad[4].0, "..");
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    let r = sync_json(&sim, &home, &dest, &["--init"]);
    r.expect_code(6);
    assert!(!r.stderr.contains("unlock"), "{}", r.stderr);
    let rep = r.json();
    check_sum(&rep);
    let failures = rep["failures"].as_array().unwrap();
    let failed: BTreeSet<&str> = failures
        .iter()
        .map(|f| f["afc_path"].as_str().unwrap())
        .collect();
    let want: BTreeSet<&str> = bad.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(failed, want, "{failures:?}");
    for f in failures {
        assert_eq!(f["reason"], "unreadable_symlink", "{f}");
        let m = f["message"].as_str().unwrap();
        assert!(m.contains("symbolic link"), "{m}");
        assert!(!m.contains("unlock") && !m.contains("permission"), "{m}");
    }
    // Everything else is archived; nothing from outside Media is.
    let mut want = expected_hashes(&exp);
    for (_, sha) in &bad {
        if let Some(n) = want.get_mut(sha) {
            *n -= 1;
            if *n == 0 {
                want.remove(sha);
            }
        }
    }
    assert_eq!(archive_hashes(&dest), want);
    let human = ferry(&sim, &home, &["sync", "--dest", dest.to_str().unwrap()]);
    human.expect_code(6).stdout_has("symbolic link");
    assert!(!human.stdout.contains("unlock"), "{}", human.stdout);
}

#[test]
fn a_stopped_json_run_still_says_error_on_stderr_and_says_full_once() {
    let tmp = tempfile::tempdir().unwrap();
    let img = slow_image(tmp.path(), "63");
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let m = ferry_e2e::mount::TmpfsMount::new("4m");
    let r = sync_json(&sim, &home, &m.dir, &["--init"]);
    // docs/cli.md: every error is printed on stderr, --json only adds the JSON on stdout.
    r.expect_code(42).stderr_has("error: ").stderr_has("hint: ");
    let rep = r.json();
    assert_eq!(rep["stopped"]["kind"], "disk_full", "{rep}");
    let msg = rep["stopped"]["message"].as_str().unwrap();
    assert_eq!(msg.matches("is full").count(), 1, "{msg}");
    assert!(msg.contains("more is needed to finish"), "{msg}");
    let human = ferry(&sim, &home, &["sync", "--dest", m.dir.to_str().unwrap()]);
    human.expect_code(42);
    for line in human.stdout.lines().chain(human.stderr.lines()) {
        assert!(
            line.matches("is full").count() <= 1,
            "repeats itself: {line}"
        );
    }
    human.stderr_has("error: ").stdout_has("stopped");
}

#[test]
fn a_phone_name_with_terminal_controls_is_printed_escaped_and_stored_as_is() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "10", "--seed", "64"]);
    // ESC ] 0 ; … BEL retitles the terminal window; ESC [ 2 J clears the screen.
    let raw = "Evil\u{1b}]0;pwned\u{7}\u{1b}[2J Phone";
    let toml_path = img.join("device.toml");
    let text = std::fs::read_to_string(&toml_path).unwrap();
    let text: String = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("name") {
                r#"name = "Evil\u001b]0;pwned\u0007\u001b[2J Phone""#.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&toml_path, text).unwrap();
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let clean = |r: &Run| {
        for (what, out) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            assert!(
                !out.contains('\u{1b}') && !out.contains('\u{7}'),
                "ferry {:?} printed control characters on {what}: {out:?}",
                r.args
            );
        }
    };
    let devs = ferry(&sim, &home, &["devices"]);
    devs.ok().stdout_has("Evil");
    clean(&devs);
    let scan = ferry(&sim, &home, &["scan"]);
    scan.ok().stdout_has("Evil");
    clean(&scan);
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    let run = ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    );
    run.ok().stdout_has("Backup of Evil");
    clean(&run);
    // Stored data keep the name as the phone sent it (JSON escapes it).
    let rep = sync_json(&sim, &home, &dest, &[]);
    rep.ok();
    assert_eq!(rep.json()["phone_name"], raw);
    assert_eq!(
        ferry(&sim, &home, &["devices", "--json"]).json()["devices"][0]["name"],
        raw
    );
}
