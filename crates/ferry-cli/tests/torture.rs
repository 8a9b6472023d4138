//! The torture trials: `kill -9` at named moments of a run and unplugs at random AFC offsets,
//! each followed by `ferry verify` and a resuming `ferry sync`, with the archive checked
//! against the generator's `expected.json` every time (docs/testing.md, "Torture trials").
//!
//! - **kill trials** cycle through the moments of a run: mid-scan and mid-copy (the simulated
//!   phone stalls after a random number of AFC bytes, inside `Photos.sqlite` or inside an
//!   original, and the kill lands while `ferry` waits for it), and every step of the write path
//!   (`temp_created`, `chunk_written`, `file_synced`, `journal_written`, `renamed`, `dir_synced`,
//!   `catalog_committed`, at the k-th occurrence for a random k), after the scan
//!   (`phase:planning`), before the report is written (`phase:finishing`) and after it
//!   (`report_stored`). The named moments use `ferry`'s test seam `FERRY_TEST_PAUSE_AT`
//!   (`crates/ferry-cli/src/seam.rs`): `ferry` prints `FERRY_TEST_PAUSED …` and blocks; the
//!   trial waits for that line and sends SIGKILL. No sleeps, no timing luck.
//! - **unplug trials** arm `ferry-sim ctl unplug-after N` at a random N over the bytes of a
//!   whole run (database and originals), then replug.
//!
//! After each interruption: no file under a final name may be anything but a complete
//! original; `ferry verify` must pass; the resuming run must complete; then the archive's
//! SHA-256 multiset must equal expected.json's, no temp file may be left, `verify` must find
//! the catalog and the files in agreement (nothing missing, damaged or unknown) and `status`
//! must count exactly one current file per original.
//!
//! `FERRY_TORTURE_KILL` and `FERRY_TORTURE_UNPLUG` set the number of trials (default 12 and
//! 8: each kill moment once), `FERRY_TORTURE_SEED` replays a run (the seed is printed).
//! `FERRY_BIN` / `FERRY_SIM_BIN` run prebuilt (release) binaries. The figures are printed as
//! a table; the test fails if any trial lost, damaged or duplicated a file.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::trials::*;
use rand::SeedableRng;

#[test]
fn kill_9_and_unplug_trials_lose_nothing() {
    let n_kill = count("FERRY_TORTURE_KILL", MOMENTS.len() as u32);
    let n_unplug = count("FERRY_TORTURE_UNPLUG", 8);
    let started = Instant::now();
    let seed = seed();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let s = setup();
    eprintln!(
        "phone {}: {} originals, {} B, database {} B",
        s.img.display(),
        s.archive_files,
        s.archive_bytes,
        s.db_bytes
    );
    let mut kill = Tally::default();
    let mut unplug = Tally::default();
    let mut moments: BTreeMap<&str, (u32, u32)> = BTreeMap::new();
    let mut failures = Vec::new();
    // Alternate kinds so a long run's figures cover both even if it is cut short.
    let total = n_kill.max(n_unplug);
    for i in 0..total {
        if i < n_kill {
            let moment = MOMENTS[i as usize % MOMENTS.len()];
            let t0 = Instant::now();
            let holder = tempfile::tempdir().unwrap();
            let dest = holder.path().join(format!("kill-{i}"));
            let (landed, f, what) = kill_trial(&s, &dest, moment, &mut rng);
            drop(holder);
            add(&mut kill, landed, &f, t0.elapsed());
            let e = moments.entry(moment.name()).or_default();
            e.0 += 1;
            e.1 += landed as u32;
            eprintln!(
                "kill {i}: {what}: {} {}",
                if landed { "landed" } else { "finished first" },
                if f.clean() { "ok" } else { "FAILED" }
            );
            if !f.clean() {
                failures.push(format!("kill trial {i} ({what}): {:#?}", f.problems));
            }
        }
        if i < n_unplug {
            let t0 = Instant::now();
            let holder = tempfile::tempdir().unwrap();
            let dest = holder.path().join(format!("unplug-{i}"));
            let (landed, f, what) = unplug_trial(&s, &dest, &mut rng);
            drop(holder);
            add(&mut unplug, landed, &f, t0.elapsed());
            eprintln!(
                "unplug {i}: {what}: {} {}",
                if landed { "landed" } else { "finished first" },
                if f.clean() { "ok" } else { "FAILED" }
            );
            if !f.clean() {
                failures.push(format!("unplug trial {i} ({what}): {:#?}", f.problems));
            }
        }
    }
    let t = format!(
        "{}\nwall clock {:.0} s, setup included\n",
        table(&kill, &unplug, &moments, seed),
        started.elapsed().as_secs_f64()
    );
    eprintln!("\n{t}");
    if let Some(path) = std::env::var_os("FERRY_TORTURE_TABLE") {
        std::fs::write(&path, &t).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} trial(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The trials must actually interrupt runs: every kill moment is reachable on this phone,
    // and an unplug at a random offset below the run's bytes always lands.
    assert_eq!(kill.landed, kill.trials, "a kill trial missed its moment");
    assert!(
        unplug.landed * 10 >= unplug.trials * 9,
        "only {} of {} unplugs landed mid-run",
        unplug.landed,
        unplug.trials
    );
}
