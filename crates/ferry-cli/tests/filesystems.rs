//! Real non-ext4 destinations: `ferry sync` + `verify` + a `kill -9` and an unplug, each
//! resumed, on an exFAT file system (exfatprogs' `mkfs.exfat` on a loop device, mounted with
//! `mount.exfat-fuse`), with the archive checked against expected.json. FAT32 with the kernel's
//! `vfat` driver (the 4 GiB limit) and through `fusefat`: see the tests below.
//!
//! Needs root and the packages of `scripts/install-peers.sh`; without them the tests fail with
//! the reason, never skip. Every mount is undone by a Drop guard, also when a test fails.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use common::trials::*;
use common::*;
use ferry_e2e::mount::{LoopFs, LoopMount};
use rand::SeedableRng;
use serde_json::Value;

/// Seconds since 2001-01-01 (Core Data) of an RFC 3339 UTC time like `2022-06-28T12:25:15.400Z`.
fn unix_secs(rfc3339: &str) -> f64 {
    let (date, time) = rfc3339.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let (y, m, day) = (d[0], d[1], d[2]);
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let t: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
    days as f64 * 86400.0 + t[0] * 3600.0 + t[1] * 60.0 + t[2]
}

fn mtime_secs(p: &Path) -> f64 {
    let m = std::fs::metadata(p).unwrap().modified().unwrap();
    m.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// What the mounted file system really does with names and times.
struct FsFacts {
    case_insensitive: bool,
    colon_refused: bool,
    /// An mtime of …:01.5 set together with the atime reads back this many seconds off.
    mtime_error_secs: f64,
    /// The same mtime set alone (atime `UTIME_OMIT`, what `File::set_modified` does).
    mtime_alone_error_secs: f64,
}

fn probe(dir: &Path) -> FsFacts {
    let p = dir.join("Probe-Case.txt");
    std::fs::write(&p, b"x").unwrap();
    let case_insensitive = dir.join("probe-case.TXT").exists();
    std::fs::remove_file(&p).unwrap();
    let colon_refused = std::fs::write(dir.join("a:b.txt"), b"x").is_err();
    let _ = std::fs::remove_file(dir.join("a:b.txt"));
    let want = UNIX_EPOCH + Duration::from_millis(1_577_836_801_500); // 2020-01-01T00:00:01.5Z
    let error = |both: bool| {
        let t = dir.join("time.txt");
        let f = std::fs::File::create(&t).unwrap();
        if both {
            f.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(want)
                    .set_modified(want),
            )
            .unwrap();
        } else {
            f.set_modified(want).unwrap();
        }
        drop(f);
        let got = std::fs::metadata(&t).unwrap().modified().unwrap();
        std::fs::remove_file(&t).unwrap();
        match got.duration_since(want) {
            Ok(d) => d.as_secs_f64(),
            Err(e) => -e.duration().as_secs_f64(),
        }
    };
    FsFacts {
        case_insensitive,
        colon_refused,
        mtime_error_secs: error(true),
        mtime_alone_error_secs: error(false),
    }
}

/// Renames assets in the phone's database so that two originals in one month folder differ
/// only by case and one has a `:` in its name.
fn hostile_names(img: &Path, exp: &Value) {
    // Two plain archived stills in the same time zone; the second gets the first's date.
    let stills: Vec<&Value> = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["classification"] == "archive"
                && a["exclusion"].is_null()
                && a["resources"].as_array().unwrap().len() == 1
                && a["tz_offset_seconds"] == 0
        })
        .collect();
    assert!(stills.len() >= 3, "the phone has too few plain stills");
    let (a, b, c) = (stills[0], stills[1], stills[2]);
    let conn = rusqlite::Connection::open(img.join("Media/PhotoData/Photos.sqlite")).unwrap();
    let pk = |uuid: &Value| -> i64 {
        conn.query_row(
            "SELECT Z_PK FROM ZASSET WHERE ZUUID = ?1",
            [uuid.as_str().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let (pa, pb, pc) = (pk(&a["uuid"]), pk(&b["uuid"]), pk(&c["uuid"]));
    let date_a: f64 = conn
        .query_row(
            "SELECT ZDATECREATED FROM ZASSET WHERE Z_PK = ?1",
            [pa],
            |r| r.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE ZASSET SET ZDATECREATED = ?1 WHERE Z_PK = ?2",
        rusqlite::params![date_a, pb],
    )
    .unwrap();
    for (pk, name) in [
        (pa, "IMG_Case.HEIC"),
        (pb, "img_case.heic"),
        (pc, "12:30 shot.HEIC"),
    ] {
        conn.execute(
            "UPDATE ZADDITIONALASSETATTRIBUTES SET ZORIGINALFILENAME = ?1 WHERE ZASSET = ?2",
            rusqlite::params![name, pk],
        )
        .unwrap();
    }
}

#[test]
fn exfat_sync_verify_kill_unplug_resume_exact() {
    let m = LoopMount::new(LoopFs::ExFatFuse, 256);
    assert_eq!(
        m.mount_type().as_deref(),
        Some("fuseblk"),
        "exfat-fuse mount"
    );
    let facts = probe(&m.dir);
    eprintln!(
        "exFAT (exfat-fuse): case-insensitive {}, ':' refused {}, mtime …:01.5 set with the atime \
         reads back {:+.3} s off, set alone {:+.3} s off",
        facts.case_insensitive,
        facts.colon_refused,
        facts.mtime_error_secs,
        facts.mtime_alone_error_secs
    );
    // The test is only worth something if the file system really behaves like exFAT.
    assert!(facts.case_insensitive, "exFAT must be case-insensitive");
    assert!(facts.colon_refused, "exFAT must refuse ':' in names");
    assert!(
        facts.mtime_error_secs.abs() <= 2.0,
        "exFAT keeps mtimes to 2 s: {}",
        facts.mtime_error_secs
    );

    let tmp = tempfile::tempdir().unwrap();
    let img = torture_phone(tmp.path());
    let exp = expected(&img);
    hostile_names(&img, &exp);
    let s = Setup::serve(img);
    let home = Home::new();
    pair(&s, &home);

    // A full run, then verify.
    let dest = m.dir.join("Photos");
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    r.ok();
    assert_eq!(r.json()["outcome"], "complete", "{}", r.stdout);
    let files = archive_files(&dest);
    assert_eq!(archive_hashes(&dest), s.want, "archive ≠ expected.json");
    assert!(files.keys().all(|k| !is_temp(k)), "{files:?}");
    // Names: no two differ only by case, none has ':', both case variants are there.
    let lower: std::collections::BTreeSet<String> =
        files.keys().map(|k| k.to_lowercase()).collect();
    assert_eq!(lower.len(), files.len(), "names clash by case: {files:#?}");
    assert!(files.keys().all(|k| !k.contains(':')), "{files:#?}");
    let case_pair: Vec<&String> = files
        .keys()
        .filter(|k| {
            let name = k.rsplit('/').next().unwrap().to_lowercase();
            name.starts_with("img_case")
        })
        .collect();
    assert_eq!(case_pair.len(), 2, "{files:#?}");
    eprintln!("exFAT names: {case_pair:?}");
    assert!(
        case_pair
            .iter()
            .any(|k| k.to_lowercase().ends_with("/img_case (1).heic")),
        "the second of two names equal but for case gets a suffix: {case_pair:?}"
    );
    assert!(
        files.keys().any(|k| k.ends_with("12_30 shot.HEIC")),
        "{files:#?}"
    );
    let v = ferry(
        &s.sim,
        &home,
        &["verify", "--dest", dest.to_str().unwrap(), "--json"],
    );
    v.ok();
    assert_eq!(v.json()["ok"], true, "{}", v.stdout);

    // A second run copies nothing (sizes and names are matched despite case folding).
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--json"],
    );
    r.ok();
    assert_eq!(r.json()["files"]["copied"], 0, "{}", r.json()["files"]);
    assert_eq!(archive_files(&dest), files);

    // kill -9 right after a catalog commit and mid-copy, and an unplug; each resumed.
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut failures = Vec::new();
    for (i, moment) in [
        Moment::Seam("catalog_committed", Counted::PerFile),
        Moment::Seam("file_synced", Counted::PerFile),
        Moment::Copy,
    ]
    .into_iter()
    .enumerate()
    {
        let dest = m.dir.join(format!("kill-{i}"));
        let (landed, f, what) = kill_trial(&s, &dest, moment, &mut rng);
        eprintln!("exFAT kill {i}: {what}: landed {landed}");
        assert!(landed, "the kill at {what} did not land");
        if !f.clean() {
            failures.push(format!("kill at {what}: {:#?}", f.problems));
        }
    }
    let dest = m.dir.join("unplug");
    let (landed, f, what) = unplug_trial(&s, &dest, &mut rng);
    eprintln!("exFAT unplug: {what}: landed {landed}");
    if !f.clean() {
        failures.push(format!("{what}: {:#?}", f.problems));
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Archive files carry the capture time as mtime (docs/archive.md), to exFAT's resolution.
///
/// exfat-fuse 1.3.0 drops a futimens that sets the mtime alone (atime `UTIME_OMIT`, what
/// `File::set_modified` does): every file kept the time it was copied until ferry-archive set
/// both times in one call (the probe in the test above measures both). Kernel exFAT and ext4
/// were not affected.
#[test]
fn exfat_archive_mtimes_are_capture_times() {
    let m = LoopMount::new(LoopFs::ExFatFuse, 128);
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "20", "--seed", "46"]);
    let exp = expected(&img);
    let s = Setup::serve(img);
    let home = Home::new();
    pair(&s, &home);
    let dest = m.dir.join("Photos");
    ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    )
    .ok();
    let files = archive_files(&dest);
    // mtimes: the capture time, to the file system's resolution (2 s is exFAT's worst).
    let by_hash: BTreeMap<&String, &String> = files.iter().map(|(p, h)| (h, p)).collect();
    let mut worst = 0.0f64;
    for a in exp["assets"].as_array().unwrap() {
        if !a["exclusion"].is_null() {
            continue;
        }
        let Some(created) = a["created_utc"].as_str() else {
            continue;
        };
        for res in a["resources"].as_array().unwrap() {
            if res["action"] != "archive" {
                continue;
            }
            let rel = by_hash[&res["sha256"].as_str().unwrap().to_string()];
            let off = mtime_secs(&dest.join(rel)) - unix_secs(created);
            worst = worst.max(off.abs());
        }
    }
    eprintln!("largest mtime error on exFAT: {worst:.3} s");
    assert!(worst <= 2.0, "an mtime is {worst} s off the capture time");
}

/// FAT32 through the kernel's `vfat` driver: a video over 4 GiB (sparse on the phone side) is
/// refused with the too-large error before a byte is written, and everything else is
/// archived exactly.
///
/// Ignored by default: this machine's kernel has no `vfat` (nor `msdos`) driver
/// (`/proc/filesystems`), and `fusefat` cannot stand in (see the test below). Run it with
/// `cargo test -p ferry-cli --test filesystems -- --ignored` on a kernel that has `vfat`.
#[test]
#[ignore = "needs the kernel vfat driver, absent on the CI machine's kernel"]
fn fat32_video_over_4_gib_is_refused_and_the_rest_archived() {
    let m = LoopMount::new(LoopFs::Fat32Kernel, 256);
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &[
            "--assets",
            "30",
            "--seed",
            "44",
            "--sparse-video-bytes",
            "4300000000",
        ],
    );
    let exp = expected(&img);
    let s = Setup::serve(img);
    let home = Home::new();
    pair(&s, &home);
    let dest = m.dir.join("Photos");
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    r.expect_code(6);
    let rep = r.json();
    let failures = rep["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:#?}");
    assert_eq!(failures[0]["reason"], "too_large_for_filesystem");
    let mut want = expected_hashes(&exp);
    let big = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["resources"].as_array().unwrap())
        .find(|r| r["size"].as_u64().unwrap_or(0) >= 4 << 30)
        .expect("the big video");
    want.remove(big["sha256"].as_str().unwrap());
    assert_eq!(archive_hashes(&dest), want);
    ferry(&s.sim, &home, &["verify", "--dest", dest.to_str().unwrap()]).ok();
}

/// FAT32 through `fusefat` (the only FAT driver on a kernel without `vfat`): Ferry cannot keep
/// its catalog there — SQLite's WAL needs a shared memory map of `catalog.sqlite-shm`, which
/// fusefat does not provide — so the run must stop at once with a destination error (exit
/// 44) and write no photo at all. (fusefat also reports 0 bytes free to `statvfs`.)
#[test]
fn fat32_through_fusefat_stops_cleanly_before_copying() {
    let m = LoopMount::new(LoopFs::Fat32Fuse, 128);
    assert_eq!(m.mount_type().as_deref(), Some("fuse.fusefat"));
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "10", "--seed", "45"]);
    let s = Setup::serve(img);
    let home = Home::new();
    pair(&s, &home);
    let dest = m.dir.join("Photos");
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    r.expect_code(44);
    assert_eq!(r.json()["error"]["kind"], "destination", "{}", r.stdout);
    assert!(
        archive_files(&dest).is_empty(),
        "{:?}",
        archive_files(&dest)
    );
}

/// A catalog error's hint must name a command that exists.
///
/// `ferry_archive::Error::Catalog` used to say "the catalog can be rebuilt from the archive's
/// journal: `ferry status --dest <DIR> --rebuild-catalog`", but `ferry status` has no
/// `--rebuild-catalog` (clap: "unexpected argument", exit 2). fusefat is just a handy way to
/// get a catalog error (see the test above).
#[test]
fn catalog_error_hint_names_a_command_that_exists() {
    let m = LoopMount::new(LoopFs::Fat32Fuse, 128);
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "5", "--seed", "47"]);
    let s = Setup::serve(img);
    let home = Home::new();
    pair(&s, &home);
    let dest = m.dir.join("Photos");
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    );
    r.expect_code(44).stderr_has("catalog");
    // The command between backticks in the hint, with DIR filled in.
    let cmd = r
        .stderr
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in the hint:\n{}", r.stderr))
        .replace("<DIR>", dest.to_str().unwrap());
    let args: Vec<&str> = cmd.split_whitespace().collect();
    assert_eq!(args[0], "ferry", "{cmd}");
    let h = ferry(&s.sim, &home, &args[1..]);
    assert_ne!(
        h.code,
        Some(2),
        "the hint's command `{cmd}` is not a valid ferry command:\n{}",
        h.stderr
    );
}

/// A drive that dies mid-run: the exFAT FUSE daemon is killed while the phone is stalled
/// mid-copy, so every call on the mount point fails with `ENOTCONN` (what a pulled USB stick
/// or a crashed driver looks like), and the mount is then lazily unmounted. Ferry holds the
/// folder it opened: the run stops with "the backup drive went away" (exit 46), and nothing
/// lands in the mount point left behind on the system disk.
#[test]
fn exfat_drive_that_dies_mid_run_stops_as_gone_and_writes_nothing_elsewhere() {
    let m = LoopMount::new(LoopFs::ExFatFuse, 256);
    let tmp = tempfile::tempdir().unwrap();
    let s = Setup::serve(torture_phone(tmp.path()));
    let home = Home::new();
    pair(&s, &home);
    let dest = m.dir.join("Photos");
    let at = s.db_bytes + s.archive_bytes / 2;
    s.sim.ctl(&["stall-after", &at.to_string()]);
    let mut cmd = ferry_cmd(
        &s.sim.mux_env(),
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_for(
        "the phone to stall mid-copy",
        std::time::Duration::from_secs(60),
        || s.sim.phone_status(&s.udid)["stalled"] == true,
    );
    m.kill_fuse_daemon();
    s.sim.ctl(&["unstall"]);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(46), "{stderr}");
    assert!(stderr.contains("went away"), "{stderr}");
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rep["stopped"]["kind"], "destination_gone", "{rep}");
    let left: Vec<_> = std::fs::read_dir(&m.dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "written into the bare mount point: {left:?}"
    );
}
