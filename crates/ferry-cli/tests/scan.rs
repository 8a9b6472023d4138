//! `ferry scan` against `ferry-sim serve`: counts agree exactly with the generator's
//! `expected.json` on several schema versions, two phones, unplug mid-scan, a stalled phone,
//! and no-change detection.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use serde_json::{json, Value};

/// What `ferry scan --json` must say, computed from expected.json alone.
fn want(exp: &Value) -> Value {
    let t = &exp["totals"];
    let mut icloud_bytes = 0u64;
    let mut dis: BTreeMap<&str, u64> = BTreeMap::new();
    let mut only_here_bytes = 0u64;
    let mut range: Option<(String, String)> = None;
    for a in exp["assets"].as_array().unwrap() {
        if a["classification"] == "icloud_only" {
            if let Some(c) = a["created_utc"].as_str() {
                let r = range.get_or_insert((c.to_string(), c.to_string()));
                if c < r.0.as_str() {
                    r.0 = c.to_string();
                }
                if c > r.1.as_str() {
                    r.1 = c.to_string();
                }
            }
        }
        if !a["exclusion"].is_null() {
            continue;
        }
        for r in a["resources"].as_array().unwrap() {
            let action = r["action"].as_str().unwrap();
            let avail = r["db_availability"].as_str().unwrap();
            if action == "fetch_on_phone" {
                icloud_bytes += r["db_size"].as_u64().unwrap_or(0);
            }
            if action == "archive"
                && avail == "local"
                && matches!(
                    r["upload_state"].as_str(),
                    Some("upload_pending" | "icloud_photos_off")
                )
            {
                only_here_bytes += r["size"].as_u64().unwrap();
            }
            let kind = match (action, avail) {
                ("fetch_on_phone" | "unavailable", "local") => Some("db_local_file_missing"),
                ("archive", "icloud_only" | "unavailable") => Some("db_remote_file_present"),
                _ => None,
            };
            let kind = kind.or_else(|| {
                (action == "archive" && !r["db_size"].is_null() && r["db_size"] != r["size"])
                    .then_some("size_mismatch")
            });
            if let Some(k) = kind {
                *dis.entry(k).or_default() += 1;
            }
        }
    }
    let cls = t["classifications"].as_object().unwrap();
    let c = |k: &str| cls.get(k).and_then(Value::as_u64).unwrap_or(0);
    json!({
        "assets": t["assets"],
        "classifications": t["classifications"],
        "excluded": t["exclusions"],
        "local_originals": {
            "assets": c("archive"),
            "files": t["archive_files"],
            "bytes": t["archive_bytes"],
            "only_on_this_phone": {"files": t["only_on_this_phone_files"], "bytes": only_here_bytes},
        },
        "icloud_only": {
            "assets": c("icloud_only"),
            "files": t["fetch_on_phone_files"],
            "bytes": icloud_bytes,
            "oldest": range.as_ref().map(|r| r.0.clone()),
            "newest": range.as_ref().map(|r| r.1.clone()),
        },
        "unavailable_files": t["unavailable_files"],
        "disagreements": {
            "total": dis.values().sum::<u64>(),
            "db_local_file_missing": dis.get("db_local_file_missing").copied().unwrap_or(0),
            "db_remote_file_present": dis.get("db_remote_file_present").copied().unwrap_or(0),
            "size_mismatch": dis.get("size_mismatch").copied().unwrap_or(0),
        },
    })
}

/// The same fields from the report.
fn got(r: &Value) -> Value {
    let mut cls = r["classifications"].as_object().unwrap().clone();
    cls.retain(|_, v| v.as_u64() != Some(0));
    json!({
        "assets": r["assets"],
        "classifications": cls,
        "excluded": r["excluded"],
        "local_originals": r["local_originals"],
        "icloud_only": r["icloud_only"],
        "unavailable_files": r["unavailable"]["files"],
        "disagreements": r["disagreements"],
    })
}

fn pair(sim: &Sim, home: &Home, udid: Option<&str>) {
    let mut args = vec!["pair"];
    if let Some(u) = udid {
        args.extend(["--udid", u]);
    }
    ferry(sim, home, &args).ok();
}

fn check_image(img: &Path, list: bool) {
    let exp = expected(img);
    let sim = start(img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);
    let mut args = vec!["scan", "--json"];
    if list {
        args.push("--list");
    }
    let r = ferry(&sim, &home, &args);
    r.ok();
    let report = r.json();
    assert_eq!(report["format"], 1);
    assert_eq!(report["udid"], udid_of(img).as_str());
    assert_eq!(
        got(&report),
        want(&exp),
        "scan of {} disagrees with expected.json",
        img.display()
    );
    if list {
        // Every expected resource appears with the same action (and size when archived).
        let items = report["items"].as_array().expect("items with --list");
        let mut by_key = BTreeMap::new();
        for it in items {
            if let Some(role) = it["role"].as_str() {
                by_key.insert(
                    (it["uuid"].as_str().unwrap().to_string(), role.to_string()),
                    it.clone(),
                );
            }
        }
        let mut n = 0;
        for a in exp["assets"].as_array().unwrap() {
            for res in a["resources"].as_array().unwrap() {
                let key = (
                    a["uuid"].as_str().unwrap().to_string(),
                    res["role"].as_str().unwrap().to_string(),
                );
                let it = by_key
                    .get(&key)
                    .unwrap_or_else(|| panic!("no item for {key:?}"));
                assert_eq!(it["action"], res["action"], "{key:?}: {it} vs {res}");
                if res["action"] == "archive" {
                    assert_eq!(it["size"], res["size"], "{key:?}");
                    assert_eq!(it["path"], res["afc_path"], "{key:?}");
                }
                n += 1;
            }
        }
        assert_eq!(n, by_key.len(), "extra items in --list");
    }
}

#[test]
fn scan_matches_expected_ios13() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "80", "--schema", "ios13", "--seed", "13"],
    );
    check_image(&img, false);
}

#[test]
fn scan_matches_expected_ios15_with_list() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "80", "--schema", "ios15", "--seed", "15"],
    );
    check_image(&img, true);
}

#[test]
fn scan_matches_expected_ios18_with_list() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "120", "--schema", "ios18", "--seed", "18"],
    );
    let exp = expected(&img);
    // The image must contain the DB/file disagreement scenarios, or this test proves little.
    let w = want(&exp);
    assert!(
        w["disagreements"]["db_local_file_missing"]
            .as_u64()
            .unwrap()
            > 0,
        "{w}"
    );
    assert!(
        w["disagreements"]["db_remote_file_present"]
            .as_u64()
            .unwrap()
            > 0,
        "{w}"
    );
    assert!(w["icloud_only"]["files"].as_u64().unwrap() > 0, "{w}");
    check_image(&img, true);
}

#[test]
fn scan_matches_expected_icloud_off_ios16() {
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
            "16",
            "--icloud-photos",
            "off",
        ],
    );
    check_image(&img, false);
}

#[test]
fn scan_human_output_is_a_short_table() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "40", "--schema", "ios17", "--seed", "7"],
    );
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);
    ferry(&sim, &home, &["scan"])
        .ok()
        .stdout_has("On this iPhone")
        .stdout_has("only on this iPhone")
        .stdout_has("Only in iCloud")
        .stdout_has("Excluded");
}

#[test]
fn two_phones_need_udid_and_it_is_honoured() {
    let tmp = tempfile::tempdir().unwrap();
    let a = make_phone(
        tmp.path(),
        "a",
        &["--assets", "30", "--schema", "ios17", "--seed", "21"],
    );
    let b = make_phone(
        tmp.path(),
        "b",
        &["--assets", "45", "--schema", "ios14", "--seed", "22"],
    );
    let (ua, ub) = (udid_of(&a), udid_of(&b));
    assert_ne!(ua, ub);
    let sim = Sim::start(SimOpts::phone(&a).also_phone(&b));
    let home = Home::new();
    let devs = ferry(&sim, &home, &["devices", "--json"]).json();
    assert_eq!(devs["devices"].as_array().unwrap().len(), 2, "{devs}");
    for args in [vec!["scan"], vec!["pair"]] {
        ferry(&sim, &home, &args)
            .expect_code(5)
            .stderr_has("which one?")
            .stderr_has(&ua)
            .stderr_has(&ub)
            .stderr_has("--udid");
    }
    pair(&sim, &home, Some(&ub));
    let r = ferry(&sim, &home, &["scan", "--json", "--udid", &ub]);
    r.ok();
    let report = r.json();
    assert_eq!(report["udid"], ub.as_str());
    assert_eq!(got(&report), want(&expected(&b)));
    // The other phone is still unpaired: scanning it says so, naming nothing else.
    ferry(&sim, &home, &["scan", "--udid", &ua]).expect_code(10);
}

#[test]
fn unplug_during_scan_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "200", "--schema", "ios18", "--seed", "31"],
    );
    let db = std::fs::metadata(img.join("Media/PhotoData/Photos.sqlite"))
        .unwrap()
        .len();
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);
    // Unplug halfway through copying Photos.sqlite.
    sim.ctl(&["unplug-after", &(db / 2).to_string()]);
    ferry(&sim, &home, &["scan", "--json"])
        .expect_code(20)
        .stderr_has("disconnected")
        .stderr_has("reconnect the iPhone")
        .stdout_has("\"disconnected\"");
}

#[test]
fn stalled_phone_times_out() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "200", "--schema", "ios18", "--seed", "32"],
    );
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);
    sim.ctl(&["stall"]);
    ferry(&sim, &home, &["scan", "--io-timeout", "2"])
        .expect_code(21)
        .stderr_has("stopped responding");
}

#[test]
fn unchanged_phone_is_not_copied_again() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "150", "--schema", "ios18", "--seed", "41"],
    );
    let udid = udid_of(&img);
    let db_path = img.join("Media/PhotoData/Photos.sqlite");
    let db = std::fs::metadata(&db_path).unwrap().len();
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);

    let first = ferry(&sim, &home, &["scan", "--json"]);
    first.ok();
    let first = first.json();
    assert_eq!(first["snapshot"]["reused"], false);
    assert!(first["snapshot"]["copied_bytes"].as_u64().unwrap() >= db);

    let before = phone_status(&sim, &udid)["afc_bytes"].as_u64().unwrap();
    let second = ferry(&sim, &home, &["scan", "--json"]);
    second.ok();
    let second = second.json();
    let after = phone_status(&sim, &udid)["afc_bytes"].as_u64().unwrap();
    assert_eq!(second["snapshot"]["reused"], true, "{}", second["snapshot"]);
    assert_eq!(second["snapshot"]["copied_bytes"], 0);
    assert!(
        after - before < db,
        "second scan moved {} AFC bytes; Photos.sqlite alone is {db}",
        after - before
    );
    assert_eq!(got(&first), got(&second));

    // A change on the phone (newer mtime) is noticed and copied again.
    let f = std::fs::File::options().write(true).open(&db_path).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(3600))
        .unwrap();
    drop(f);
    let third = ferry(&sim, &home, &["scan", "--json"]);
    third.ok();
    assert_eq!(third.json()["snapshot"]["reused"], false);

    // --no-cache always copies.
    let fourth = ferry(&sim, &home, &["scan", "--json", "--no-cache"]);
    fourth.ok();
    assert_eq!(fourth.json()["snapshot"]["reused"], false);
}

#[test]
fn a_library_damaged_on_every_copy_is_called_damaged_not_changing() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &["--assets", "30", "--schema", "ios17", "--seed", "65"],
    );
    // Garbage over the database's pages (the header stays valid): every copy reads the same
    // damaged file, so copying again cannot help.
    let db = img.join("Media/PhotoData/Photos.sqlite");
    let mut bytes = std::fs::read(&db).unwrap();
    let len = bytes.len();
    assert!(len > 8192, "database too small to damage: {len}");
    for (i, b) in bytes[4096..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    std::fs::write(&db, bytes).unwrap();
    for side in ["Photos.sqlite-wal", "Photos.sqlite-shm"] {
        let _ = std::fs::remove_file(img.join("Media/PhotoData").join(side));
    }
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home, None);
    let r = ferry(&sim, &home, &["scan", "--json"]);
    r.expect_code(30)
        .stderr_has("damaged")
        .stderr_has("Photos.sqlite from the iPhone");
    assert!(
        !r.stderr.contains("changing"),
        "a damaged library is not a changing one:\n{}",
        r.stderr
    );
    // The private copy's temporary path means nothing to the user.
    assert!(!r.stderr.contains("ferry-photos-"), "{}", r.stderr);
    assert_eq!(r.json()["error"]["kind"], "library");
    // `sync` says the same (and nothing was written).
    let dest = tmp.path().join("backup");
    std::fs::create_dir(&dest).unwrap();
    let s = ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    );
    s.expect_code(30).stderr_has("damaged");
    assert!(!s.stderr.contains("changing"), "{}", s.stderr);
}
