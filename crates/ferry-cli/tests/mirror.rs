//! iCloud-only originals end to end and the unattended mirror: `ferry fetch-plan`, `ferry
//! watch` picking up originals as `ferry-sim fetch` downloads them, `ferry sync --unattended`
//! (no phone, trust pending, a phone), `ferry config`, and `ferry schedule` in a temporary HOME
//! (units checked with `systemd-analyze verify`).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn pair(sim: &Sim, home: &Home) {
    ferry(sim, home, &["pair"]).ok();
}

/// Sets the phone's free space in its device.toml (the simulator re-reads it per request).
fn set_free_bytes(img: &Path, free: u64) {
    let p = img.join("device.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("free_bytes") {
                format!("free_bytes = {free}")
            } else {
                l.to_string()
            }
        })
        .collect();
    std::fs::write(&p, out.join("\n") + "\n").unwrap();
}

fn sim_tool(args: &[&str]) -> Value {
    let mut cmd = Command::new(sim_bin());
    cmd.args(args).arg("--json");
    let out = ferry_e2e::sim::run_with_deadline(cmd, Duration::from_secs(60)).unwrap();
    assert!(
        out.status.success(),
        "ferry-sim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn latest_report(dest: &Path, udid: &str) -> Option<Value> {
    let p = dest.join(".ferry/reports").join(udid).join("latest.json");
    std::fs::read(p)
        .ok()
        .map(|b| serde_json::from_slice(&b).unwrap())
}

fn report_count(dest: &Path, udid: &str) -> usize {
    std::fs::read_dir(dest.join(".ferry/reports").join(udid))
        .map(|rd| rd.count())
        .unwrap_or(0)
}

/// A running `ferry watch`, stopped with SIGTERM on drop; its stderr goes to a file.
struct Watch {
    child: Child,
    log: PathBuf,
}

impl Watch {
    fn start(sim: &Sim, home: &Home, dest: &Path) -> Watch {
        let log = home.dir.path().join("watch.stderr");
        let mut cmd = ferry_cmd(
            &sim.mux_env(),
            home,
            &["watch", "--dest", dest.to_str().unwrap(), "--interval", "1"],
        );
        cmd.stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        Watch {
            child: cmd.spawn().unwrap(),
            log,
        }
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    fn stop(mut self) -> (Option<i32>, String) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let st = self.child.wait().unwrap();
        (st.code(), self.log())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn fetch_plan_batches_then_watch_archives_exactly_batch_one() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "80", "--seed", "51"]);
    let udid = udid_of(&img);
    let exp0 = expected(&img);
    let icloud_bytes: u64 = exp0["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["exclusion"].is_null())
        .flat_map(|a| a["resources"].as_array().unwrap().iter())
        .filter(|r| r["action"] == "fetch_on_phone")
        .map(|r| r["db_size"].as_u64().unwrap_or(0))
        .sum();
    assert!(icloud_bytes > 0);
    // Room for about a third of the iCloud-only bytes above a 1 MB margin: several batches.
    let margin = 1_000_000u64;
    set_free_bytes(&img, margin + icloud_bytes / 3);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    )
    .ok();
    let csv = tmp.path().join("plan.csv");
    let r = ferry(
        &sim,
        &home,
        &[
            "fetch-plan",
            "--dest",
            dest.to_str().unwrap(),
            "--json",
            "--margin",
            &margin.to_string(),
            "--csv",
            csv.to_str().unwrap(),
        ],
    );
    r.ok();
    let plan = r.json();
    let limit = plan["batch_limit_bytes"].as_u64().unwrap();
    assert_eq!(limit, icloud_bytes / 3);
    let batches = plan["batches"].as_array().unwrap();
    assert!(batches.len() >= 3, "{plan}");
    let mut planned = 0;
    for b in batches {
        assert!(
            b["bytes"].as_u64().unwrap() <= limit,
            "batch over the limit: {b}"
        );
        planned += b["count"].as_u64().unwrap();
    }
    assert_eq!(
        planned + plan["too_large"].as_array().unwrap().len() as u64,
        plan["assets"].as_u64().unwrap()
    );
    // Batches are consecutive date ranges.
    for w in batches.windows(2) {
        assert!(
            w[0]["to"].as_str() <= w[1]["from"].as_str(),
            "{} / {}",
            w[0],
            w[1]
        );
    }
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().count() as u64,
        plan["assets"].as_u64().unwrap() + 1
    );
    // The plan is stored with the archive.
    assert!(dest
        .join(".ferry/plans")
        .join(format!("{udid}.json"))
        .is_file());

    let before = report_count(&dest, &udid);
    let watch = Watch::start(&sim, &home, &dest);
    wait_for("watch's first run", Duration::from_secs(60), || {
        report_count(&dest, &udid) > before
    });
    // The phone downloads batch 1 (as iOS would while the user opens those items).
    let batch1: Vec<&str> = batches[0]["uuids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let mut args = vec!["fetch", "--phone", img.to_str().unwrap(), "--uuid"];
    args.extend(batch1.iter().copied());
    let fetched = sim_tool(&args);
    assert_eq!(fetched["assets"].as_array().unwrap().len(), batch1.len());
    let exp1 = expected(&img);
    let want = expected_hashes(&exp1);
    // Files appear as they are copied; the report follows at the end of the run.
    wait_for(
        "watch to archive batch 1 and report it",
        Duration::from_secs(60),
        || {
            archive_hashes(&dest) == want
                && latest_report(&dest, &udid).is_some_and(|r| r["fetch_progress"]["done"] == 1)
        },
    );
    let rep = latest_report(&dest, &udid).unwrap();
    let progress = &rep["fetch_progress"];
    assert_eq!(progress["done"], 1, "{progress}");
    assert_eq!(progress["batches"][0]["fetched"], batches[0]["count"]);
    assert_eq!(progress["batches"][1]["fetched"], 0);
    // The archive holds exactly what expected.json now says is on the phone: batch 1's new
    // originals and nothing of the other batches.
    assert_eq!(archive_hashes(&dest), want);

    // Optimize Storage purges batch 1 again: the archive keeps every file.
    let runs = report_count(&dest, &udid);
    let mut args = vec!["offload", "--phone", img.to_str().unwrap(), "--uuid"];
    args.extend(batch1.iter().copied());
    sim_tool(&args);
    wait_for(
        "watch to notice the offload",
        Duration::from_secs(60),
        || report_count(&dest, &udid) > runs,
    );
    assert_eq!(
        archive_hashes(&dest),
        want,
        "offloading changed the archive"
    );
    let (code, log) = watch.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("fetch plan batch"), "{log}");
    // Nothing was copied twice.
    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(st.json()["phones"][0]["superseded_files"], 0);
}

#[test]
fn a_phone_without_free_space_gets_a_plan_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "40", "--seed", "52"]);
    set_free_bytes(&img, 500_000_000);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let r = ferry(&sim, &home, &["fetch-plan", "--json"]);
    r.ok();
    let plan = r.json();
    assert!(plan["assets"].as_u64().unwrap() > 0);
    assert_eq!(plan["batches"].as_array().unwrap().len(), 0, "{plan}");
    assert!(plan["no_space"].as_str().unwrap().contains("Free up space"));
    let h = ferry(&sim, &home, &["fetch-plan"]);
    h.ok().stdout_has("Free up space").stdout_has("Not stored");
}

#[test]
fn unattended_without_a_phone_waits_then_exits_4() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "10", "--seed", "53"]);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    ferry_archive::Archive::init(&dest).unwrap();
    sim.ctl(&["unplug"]);
    let r = ferry(
        &sim,
        &home,
        &[
            "sync",
            "--unattended",
            "--dest",
            dest.to_str().unwrap(),
            "--wait",
            "2s",
        ],
    );
    r.expect_code(4).stderr_has("waiting up to 2s");
    let last: Value =
        serde_json::from_slice(&std::fs::read(home.state_dir().join("last-run.json")).unwrap())
            .unwrap();
    assert_eq!(last["exit_code"], 4);
    assert!(home.state_dir().join("ferry.log").is_file());
    // No usbmuxd at all (Linux starts it only with a phone plugged in): the same.
    let r = ferry_at(
        "127.0.0.1:9",
        &home,
        &[
            "sync",
            "--unattended",
            "--dest",
            dest.to_str().unwrap(),
            "--wait",
            "1s",
        ],
    );
    r.expect_code(4);
}

#[test]
fn unattended_with_trust_pending_never_prompts_and_exits_10() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "10", "--seed", "54"]);
    let sim = start(&img, |o| o.trust("locked"));
    let home = Home::new(); // never paired
    let dest = tmp.path().join("backup");
    ferry_archive::Archive::init(&dest).unwrap();
    let r = ferry(
        &sim,
        &home,
        &[
            "sync",
            "--unattended",
            "--dest",
            dest.to_str().unwrap(),
            "--wait",
            "5s",
        ],
    );
    r.expect_code(10).stderr_has("ferry pair");
    let log = std::fs::read_to_string(home.state_dir().join("ferry.log")).unwrap();
    assert!(log.contains("backup not run"), "{log}");
    // Not initialised: refuses without asking (stdin is not read).
    let other = tmp.path().join("not-a-backup");
    std::fs::create_dir(&other).unwrap();
    let r = ferry(
        &sim,
        &home,
        &[
            "sync",
            "--unattended",
            "--dest",
            other.to_str().unwrap(),
            "--wait",
            "1s",
        ],
    );
    r.expect_code(40);
}

#[test]
fn unattended_with_a_phone_syncs_and_records_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "30", "--seed", "55"]);
    let exp = expected(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    ferry_archive::Archive::init(&dest).unwrap();
    // The destination comes from the config file.
    std::fs::create_dir_all(home.config_dir()).unwrap();
    std::fs::write(
        home.config_dir().join("config.toml"),
        format!("destinations = [{:?}]\n", dest.to_str().unwrap()),
    )
    .unwrap();
    let r = ferry(
        &sim,
        &home,
        &["sync", "--unattended", "--json", "--wait", "10s"],
    );
    r.ok();
    let rep = r.json();
    assert_eq!(rep["outcome"], "complete");
    assert_eq!(rep["files"]["copied"], exp["totals"]["archive_files"]);
    assert_eq!(archive_hashes(&dest), expected_hashes(&exp));
    let last: Value =
        serde_json::from_slice(&std::fs::read(home.state_dir().join("last-run.json")).unwrap())
            .unwrap();
    assert_eq!(last["exit_code"], 0);
    assert!(last["summary"].as_str().unwrap().contains("complete"));
    let log = std::fs::read_to_string(home.state_dir().join("ferry.log")).unwrap();
    assert!(log.contains("unattended backup into"), "{log}");
    assert!(log.contains("notification"), "{log}");
}

#[test]
fn watch_and_a_concurrent_sync_one_waits_or_refuses_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "40", "--seed", "56"]);
    let exp = expected(&img);
    let udid = udid_of(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    // A first sync makes the phone known to the archive, then a new photo-less state.
    ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    )
    .ok();
    let d = dest.to_str().unwrap();

    // 1. A manual run holds the destination (phone stalled); watch must wait, not fail.
    sim.ctl(&["stall"]);
    let mut cmd = ferry_cmd(
        &sim.mux_env(),
        &home,
        &["sync", "--dest", d, "--no-cache", "--io-timeout", "300"],
    );
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut manual = cmd.spawn().unwrap();
    wait_for(
        "the manual run to hold the lock",
        Duration::from_secs(30),
        || {
            let st = ferry(&sim, &home, &["status", "--dest", d, "--json"]);
            st.code == Some(0) && st.json()["busy"] == true
        },
    );
    let watch = Watch::start(&sim, &home, &dest);
    wait_for("watch to say it waits", Duration::from_secs(30), || {
        watch.log().contains("another Ferry run is using")
    });
    sim.ctl(&["unstall"]);
    assert!(manual.wait().unwrap().success());
    let runs = report_count(&dest, &udid);
    wait_for("watch's own run", Duration::from_secs(60), || {
        report_count(&dest, &udid) > runs
    });
    let (code, log) = watch.stop();
    assert_eq!(code, Some(0), "{log}");
    // 2. Watch holds the destination (its run stalls on the phone); a manual sync is refused.
    // One original arrives from iCloud meanwhile, so watch's run has something to copy.
    let icloud: Vec<String> = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["classification"] == "icloud_only")
        .map(|a| a["uuid"].as_str().unwrap().to_string())
        .take(1)
        .collect();
    let mut args = vec!["fetch", "--phone", img.to_str().unwrap(), "--uuid"];
    args.extend(icloud.iter().map(String::as_str));
    sim_tool(&args);
    sim.ctl(&["stall"]);
    let watch = Watch::start(&sim, &home, &dest);
    wait_for("watch to hold the lock", Duration::from_secs(60), || {
        let st = ferry(&sim, &home, &["status", "--dest", d, "--json"]);
        st.code == Some(0) && st.json()["busy"] == true
    });
    ferry(&sim, &home, &["sync", "--dest", d])
        .expect_code(41)
        .stderr_has("another Ferry run holds this destination");
    sim.ctl(&["unstall"]);
    let want = expected_hashes(&expected(&img));
    wait_for("watch to finish", Duration::from_secs(60), || {
        archive_hashes(&dest) == want
    });
    let (code, log) = watch.stop();
    assert_eq!(code, Some(0), "{log}");
    let st = ferry(&sim, &home, &["status", "--dest", d, "--json"]);
    let p = &st.json()["phones"][0];
    assert_eq!(p["superseded_files"], 0, "a file was copied twice");
    assert_eq!(
        p["files"].as_u64().unwrap(),
        want.values().sum::<usize>() as u64
    );
}

#[test]
fn config_shows_the_effective_values_and_rejects_bad_files() {
    let home = Home::new();
    std::fs::create_dir_all(home.config_dir()).unwrap();
    let cfg = home.config_dir().join("config.toml");
    std::fs::write(
        &cfg,
        "destinations = [\"/media/backup/Photos\"]\n[watch]\ninterval_seconds = 30\nintervall = 5\n",
    )
    .unwrap();
    let r = ferry_at("127.0.0.1:9", &home, &["config"]);
    r.ok()
        .stdout_has(cfg.to_str().unwrap())
        .stdout_has("/media/backup/Photos")
        .stdout_has("intervall");
    let j = ferry_at("127.0.0.1:9", &home, &["config", "--json"]);
    j.ok();
    assert_eq!(j.json()["config"]["watch"]["interval_seconds"], 30);
    std::fs::write(&cfg, "[watch]\ninterval_seconds = \"often\"\n").unwrap();
    ferry_at("127.0.0.1:9", &home, &["config"])
        .expect_code(7)
        .stderr_has("line 2");
}

#[test]
fn schedule_install_writes_verified_units_and_remove_deletes_them() {
    let home = Home::new();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("My Backup");
    let r = ferry_at(
        "127.0.0.1:9",
        &home,
        &[
            "schedule",
            "install",
            "--dest",
            dest.to_str().unwrap(),
            "--at",
            "02:30",
            "--on-plug",
            "--wait",
            "20m",
        ],
    );
    // No systemd user manager in a container: the files are written, activation is not
    // possible (exit 8, with the commands to run); on a desktop it is exit 0.
    assert!(matches!(r.code, Some(0) | Some(8)), "{r:?}");
    let units = home.dir.path().join(".config/systemd/user");
    let service = units.join("ferry-nightly.service");
    let timer = units.join("ferry-nightly.timer");
    let watch = units.join("ferry-watch.service");
    for f in [&service, &timer, &watch] {
        assert!(f.is_file(), "{} missing: {r:?}", f.display());
    }
    let text = std::fs::read_to_string(&service).unwrap();
    let bin = env!("CARGO_BIN_EXE_ferry");
    assert!(text.contains(bin), "{text}");
    assert!(text.contains("sync --unattended"), "{text}");
    assert!(text.contains("20m"), "{text}");
    assert!(std::fs::read_to_string(&timer)
        .unwrap()
        .contains("OnCalendar=*-*-* 02:30:00"));
    // systemd's own checker accepts the units.
    match Command::new("systemd-analyze")
        .arg("verify")
        .args([&service, &timer, &watch])
        .output()
    {
        Ok(o) => assert!(
            o.status.success() && !String::from_utf8_lossy(&o.stderr).contains("ferry"),
            "systemd-analyze verify: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => assert!(
            std::env::var("FERRY_REQUIRE_PEERS").is_err(),
            "systemd-analyze is required (apt-get install systemd): {e}"
        ),
    }
    // The command line the timer runs parses: run it (no marker in DEST → 40, not a usage error).
    let r = ferry_at(
        "127.0.0.1:9",
        &home,
        &[
            "sync",
            "--unattended",
            "--dest",
            dest.to_str().unwrap(),
            "--wait",
            "1s",
        ],
    );
    assert_ne!(r.code, Some(2), "{r:?}");
    let st = ferry_at("127.0.0.1:9", &home, &["schedule", "status"]);
    st.ok().stdout_has("02:30");
    let rm = ferry_at("127.0.0.1:9", &home, &["schedule", "remove"]);
    assert!(matches!(rm.code, Some(0) | Some(8)), "{rm:?}");
    for f in [&service, &timer, &watch] {
        assert!(!f.exists(), "{} still there", f.display());
    }
}

#[test]
fn watch_survives_unplug_and_replug() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(tmp.path(), "p", &["--assets", "30", "--seed", "57"]);
    let udid = udid_of(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    pair(&sim, &home);
    let dest = tmp.path().join("backup");
    ferry(
        &sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    )
    .ok();
    let runs = report_count(&dest, &udid);
    let watch = Watch::start(&sim, &home, &dest);
    wait_for("watch's run on plug-in", Duration::from_secs(60), || {
        report_count(&dest, &udid) > runs
    });
    sim.ctl(&["unplug"]);
    wait_for("watch to see the unplug", Duration::from_secs(30), || {
        watch.log().contains("disconnected")
    });
    // Back with a new usbmuxd device id, like a phone that restarted.
    let runs = report_count(&dest, &udid);
    sim.ctl(&["replug"]);
    wait_for("watch's run after replug", Duration::from_secs(60), || {
        report_count(&dest, &udid) > runs
    });
    let (code, log) = watch.stop();
    assert_eq!(code, Some(0), "{log}");
    let st = ferry(
        &sim,
        &home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    assert_eq!(st.json()["phones"][0]["superseded_files"], 0);
}
