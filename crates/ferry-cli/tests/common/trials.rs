//! The kill -9 and unplug trials shared by `torture.rs` (many trials on a temp dir) and
//! `filesystems.rs` (a few on exFAT/FAT32 images): see `torture.rs`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::*;
use rand::Rng;
use serde_json::Value;

/// Where a kill trial lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The phone stalls inside `Photos.sqlite`: the run is scanning.
    Scan,
    /// The phone stalls inside an original: the run is copying.
    Copy,
    /// A seam point of `ferry` (`FERRY_TEST_PAUSE_AT`), at its k-th occurrence when `counted`.
    Seam(&'static str, Counted),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Once per file.
    PerFile,
    /// Once per chunk written.
    PerChunk,
    /// Once per run.
    Once,
}

pub const MOMENTS: [Moment; 12] = [
    Moment::Scan,
    Moment::Copy,
    Moment::Seam("file_synced", Counted::PerFile),
    Moment::Seam("catalog_committed", Counted::PerFile),
    Moment::Seam("phase:finishing", Counted::Once),
    Moment::Seam("renamed", Counted::PerFile),
    Moment::Seam("journal_written", Counted::PerFile),
    Moment::Seam("chunk_written", Counted::PerChunk),
    Moment::Seam("temp_created", Counted::PerFile),
    Moment::Seam("dir_synced", Counted::PerFile),
    Moment::Seam("phase:planning", Counted::Once),
    Moment::Seam("report_stored", Counted::Once),
];

impl Moment {
    pub fn name(self) -> &'static str {
        match self {
            Moment::Scan => "scan (phone stalls in Photos.sqlite)",
            Moment::Copy => "copy (phone stalls in an original)",
            Moment::Seam(p, _) => p,
        }
    }
}

/// Figures of one kind of trial.
#[derive(Default)]
pub struct Tally {
    pub trials: u32,
    pub landed: u32,
    /// Expected originals missing after the resume (counted with multiplicity).
    pub losses: u32,
    /// Files under final names that are not a complete expected original (after the
    /// interruption or after the resume), and files `verify` found damaged.
    pub corrupt: u32,
    /// Extra copies of an original after the resume.
    pub duplicates: u32,
    /// Temp files left after the resume.
    pub temps_left: u32,
    /// Trials whose checks failed in any other way (verify, resume, status).
    pub failed: u32,
    pub elapsed: Duration,
}

pub struct Setup {
    pub _tmp: Option<tempfile::TempDir>,
    pub img: std::path::PathBuf,
    pub exp: Value,
    pub want: BTreeMap<String, usize>,
    pub sim: Sim,
    pub udid: String,
    pub db_bytes: u64,
    pub archive_bytes: u64,
    pub archive_files: u64,
}

/// The torture phone: 40 assets and a 6 MB video (a few chunks), so a kill or an unplug can
/// land mid-file.
pub fn torture_phone(parent: &Path) -> std::path::PathBuf {
    make_phone(
        parent,
        "phone",
        &[
            "--assets",
            "40",
            "--seed",
            "36",
            "--sparse-video-bytes",
            "6000000",
        ],
    )
}

/// A simulator serving the torture phone.
pub fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let img = torture_phone(tmp.path());
    let mut s = Setup::serve(img);
    s._tmp = Some(tmp);
    s
}

impl Setup {
    /// Serves the phone image `img`.
    pub fn serve(img: std::path::PathBuf) -> Setup {
        let exp = expected(&img);
        let want = expected_hashes(&exp);
        let sim = start(&img, |o| o);
        let udid = udid_of(&img);
        let len = |p: &str| std::fs::metadata(img.join(p)).map(|m| m.len()).unwrap_or(0);
        let db_bytes =
            len("Media/PhotoData/Photos.sqlite") + len("Media/PhotoData/Photos.sqlite-wal");
        let archive_bytes = exp["totals"]["archive_bytes"].as_u64().unwrap();
        let archive_files = exp["totals"]["archive_files"].as_u64().unwrap();
        Setup {
            _tmp: None,
            img,
            exp,
            want,
            sim,
            udid,
            db_bytes,
            archive_bytes,
            archive_files,
        }
    }
}

pub fn seed() -> u64 {
    let seed: u64 = std::env::var("FERRY_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("torture seed {seed} (replay with FERRY_TORTURE_SEED={seed})");
    seed
}

pub fn count(var: &str, default: u32) -> u32 {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// What a check after an interruption found.
#[derive(Default)]
pub struct Findings {
    pub losses: u32,
    pub corrupt: u32,
    pub duplicates: u32,
    pub temps_left: u32,
    pub problems: Vec<String>,
}

impl Findings {
    pub fn clean(&self) -> bool {
        self.losses == 0
            && self.corrupt == 0
            && self.duplicates == 0
            && self.temps_left == 0
            && self.problems.is_empty()
    }
}

/// Files under final names that are not complete expected originals.
pub fn partial_finals(dest: &Path, want: &BTreeMap<String, usize>) -> Vec<String> {
    if !dest.exists() {
        return Vec::new();
    }
    archive_files(dest)
        .into_iter()
        .filter(|(rel, h)| !is_temp(rel) && !want.contains_key(h))
        .map(|(rel, _)| rel)
        .collect()
}

/// `ferry verify --json` must pass; returns its report.
pub fn verify(s: &Setup, home: &Home, dest: &Path, f: &mut Findings, when: &str) -> Value {
    let v = ferry(
        &s.sim,
        home,
        &["verify", "--dest", dest.to_str().unwrap(), "--json"],
    );
    let doc: Value = serde_json::from_str(&v.stdout).unwrap_or(Value::Null);
    let rep = doc["report"].clone();
    let n = |k: &str| rep[k].as_array().map(|a| a.len()).unwrap_or(0) as u32;
    if when == "after the resume" && n("temp_files") > 0 {
        f.problems
            .push(format!("verify {when}: temp files {}", rep["temp_files"]));
    }
    // A missing file is a loss, counted from the multiset; these are damaged files.
    let damaged = n("wrong_size") + n("wrong_hash") + n("bad_paths");
    f.corrupt += damaged;
    if v.code != Some(0) || doc["ok"] != true {
        f.problems.push(format!(
            "verify {when}: exit {:?}, {}\n{}",
            v.code, v.stdout, v.stderr
        ));
    }
    if n("unknown_files") > 0 {
        f.problems.push(format!(
            "verify {when}: files the catalog does not know: {}",
            rep["unknown_files"]
        ));
    }
    rep
}

/// The checks after an interruption: verify, resume, then the archive against expected.json.
pub fn check_after(s: &Setup, home: &Home, dest: &Path) -> Findings {
    let mut f = Findings::default();
    let partial = partial_finals(dest, &s.want);
    f.corrupt += partial.len() as u32;
    if !partial.is_empty() {
        f.problems.push(format!(
            "after the interruption, not complete originals under final names: {partial:?}"
        ));
    }
    // A run that stopped before `--init` took effect leaves nothing to verify.
    if dest.join(".ferry/archive.toml").exists() {
        verify(s, home, dest, &mut f, "after the interruption");
    }
    let r = ferry(
        &s.sim,
        home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    let rep: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
    if r.code != Some(0) || rep["outcome"] != "complete" {
        f.problems.push(format!(
            "the resuming run did not complete: exit {:?}\n{}\n{}",
            r.code, r.stdout, r.stderr
        ));
    }
    // The archive: exactly the expected originals, each once, nothing else.
    let files = archive_files(dest);
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for (rel, h) in &files {
        if is_temp(rel) {
            f.temps_left += 1;
            f.problems
                .push(format!("temp file left after the resume: {rel}"));
            continue;
        }
        *got.entry(h.clone()).or_default() += 1;
    }
    for (h, want) in &s.want {
        let have = got.get(h).copied().unwrap_or(0);
        if have < *want {
            f.losses += (want - have) as u32;
            f.problems
                .push(format!("lost: {} copy/copies of {h}", want - have));
        } else if have > *want {
            f.duplicates += (have - want) as u32;
            f.problems.push(format!("duplicated: {h} ×{have}"));
        }
    }
    for (rel, h) in &files {
        if !is_temp(rel) && !s.want.contains_key(h) {
            f.corrupt += 1;
            f.problems
                .push(format!("after the resume, {rel} is no expected original"));
        }
    }
    // Catalog and files agree, and there is one current catalog row per original.
    let rep = verify(s, home, dest, &mut f, "after the resume");
    if rep["files_checked"] != s.exp["totals"]["archive_files"] {
        f.problems.push(format!(
            "verify checked {} files, expected.json has {}",
            rep["files_checked"], s.exp["totals"]["archive_files"]
        ));
    }
    let st = ferry(
        &s.sim,
        home,
        &["status", "--dest", dest.to_str().unwrap(), "--json"],
    );
    let st: Value = serde_json::from_str(&st.stdout).unwrap_or(Value::Null);
    let p = &st["phones"][0];
    if p["files"] != s.exp["totals"]["archive_files"] || p["superseded_files"] != 0 {
        f.problems.push(format!(
            "status: {} current and {} superseded catalog files, expected {} and 0",
            p["files"], p["superseded_files"], s.exp["totals"]["archive_files"]
        ));
    }
    f
}

pub fn pair(s: &Setup, home: &Home) {
    ferry(&s.sim, home, &["pair"]).ok();
}

/// Runs `ferry sync --init` into `dest`, kills it at `moment`; returns whether the kill
/// landed before the run finished, and a description.
pub fn kill_run(
    s: &Setup,
    home: &Home,
    dest: &Path,
    moment: Moment,
    rng: &mut impl Rng,
) -> (bool, String) {
    let mut cmd = ferry_cmd(
        &s.sim.mux_env(),
        home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init"],
    );
    let what = match moment {
        Moment::Scan => {
            let at = rng.gen_range(0..s.db_bytes);
            s.sim.ctl(&["stall-after", &at.to_string()]);
            format!("stall after {at} B")
        }
        Moment::Copy => {
            let at = s.db_bytes + rng.gen_range(0..s.archive_bytes);
            s.sim.ctl(&["stall-after", &at.to_string()]);
            format!("stall after {at} B")
        }
        Moment::Seam(point, counted) => {
            let nth = match counted {
                Counted::Once => 1,
                Counted::PerFile => rng.gen_range(1..=s.archive_files),
                // Chunks are at most 1 MiB and every file has at least one, so a run writes
                // at least max(files, MiB) of them.
                Counted::PerChunk => rng.gen_range(1..=s.archive_files.max(s.archive_bytes >> 20)),
            };
            cmd.env("FERRY_TEST_PAUSE_AT", format!("{point}:{nth}"));
            format!("{point}:{nth}")
        }
    };
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn ferry");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + RUN_DEADLINE;
    let mut log = String::new();
    let landed = loop {
        assert!(
            Instant::now() < deadline,
            "ferry neither reached {what} nor finished in {RUN_DEADLINE:?}:\n{log}"
        );
        match moment {
            Moment::Seam(..) => match rx.recv_timeout(deadline - Instant::now()) {
                Ok(line) => {
                    let paused = line.starts_with("FERRY_TEST_PAUSED ");
                    log.push_str(&line);
                    log.push('\n');
                    if paused {
                        break true;
                    }
                }
                // stderr closed: the run ended without reaching the point.
                Err(_) => break false,
            },
            Moment::Scan | Moment::Copy => {
                while let Ok(line) = rx.try_recv() {
                    log.push_str(&line);
                    log.push('\n');
                }
                if s.sim.phone_status(&s.udid)["stalled"] == true {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                // Polling two conditions (phone stalled, child gone) under the deadline.
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    // SIGKILL: no destructor, no cleanup. (A run that already finished is just reaped.)
    let _ = child.kill();
    let status = child.wait().unwrap();
    let _ = reader.join();
    if matches!(moment, Moment::Scan | Moment::Copy) {
        s.sim.ctl(&["unstall"]);
    }
    let landed = landed && !status.success();
    (landed, what)
}

/// One kill trial into `dest` (created by the run's `--init`).
pub fn kill_trial(
    s: &Setup,
    dest: &Path,
    moment: Moment,
    rng: &mut impl Rng,
) -> (bool, Findings, String) {
    let home = Home::new();
    pair(s, &home);
    let (landed, what) = kill_run(s, &home, dest, moment, rng);
    let f = check_after(s, &home, dest);
    (landed, f, what)
}

/// One unplug trial into `dest` (created by the run's `--init`).
pub fn unplug_trial(s: &Setup, dest: &Path, rng: &mut impl Rng) -> (bool, Findings, String) {
    let home = Home::new();
    pair(s, &home);
    // A new host each time: Photos.sqlite is read again, so offsets land in it too.
    let at = rng.gen_range(0..s.db_bytes + s.archive_bytes);
    s.sim.ctl(&["unplug-after", &at.to_string()]);
    let r = ferry(
        &s.sim,
        &home,
        &["sync", "--dest", dest.to_str().unwrap(), "--init", "--json"],
    );
    let mut pre = Vec::new();
    let landed = match r.code {
        Some(20) => {
            let rep: Value = serde_json::from_str(&r.stdout).unwrap_or(Value::Null);
            if rep["outcome"] == "stopped" {
                if rep["stopped"]["kind"] != "disconnected" {
                    pre.push(format!(
                        "stopped for {} instead of disconnected",
                        rep["stopped"]
                    ));
                }
                // The stopped run still accounts for every asset.
                if !reconciliation_adds_up(&rep) {
                    pre.push(format!(
                        "the stopped run's reconciliation does not add up: {}",
                        rep["reconciliation"]
                    ));
                }
            }
            true
        }
        Some(0) => {
            // The run read fewer bytes than the offset: disarm so the resume is not unplugged.
            s.sim.ctl(&["unplug-after", &u64::MAX.to_string()]);
            false
        }
        other => {
            pre.push(format!("unplugged run: exit {other:?}: {r:?}"));
            false
        }
    };
    // The unplug is one-shot; a phone that is still plugged in is left as it is.
    s.sim.ctl(&["replug"]);
    let mut f = check_after(s, &home, dest);
    f.problems.extend(pre);
    (landed, f, format!("unplug after {at} B"))
}

pub fn add(t: &mut Tally, landed: bool, f: &Findings, took: Duration) {
    t.trials += 1;
    t.landed += landed as u32;
    t.losses += f.losses;
    t.corrupt += f.corrupt;
    t.duplicates += f.duplicates;
    t.temps_left += f.temps_left;
    t.failed += (!f.clean()) as u32;
    t.elapsed += took;
}

pub fn table(
    kill: &Tally,
    unplug: &Tally,
    moments: &BTreeMap<&str, (u32, u32)>,
    seed: u64,
) -> String {
    let mut out = format!(
        "torture seed {seed}\n\
         | trials | count | landed mid-run | losses | corrupt files | duplicates | temp files left | failed trials | duration |\n\
         |---|---|---|---|---|---|---|---|---|\n"
    );
    for (name, t) in [("kill -9", kill), ("unplug", unplug)] {
        out += &format!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |\n",
            t.trials,
            t.landed,
            t.losses,
            t.corrupt,
            t.duplicates,
            t.temps_left,
            t.failed,
            t.elapsed.as_secs_f64()
        );
    }
    out += "\n| kill moment | trials | landed mid-run |\n|---|---|---|\n";
    for (m, (n, l)) in moments {
        out += &format!("| {m} | {n} | {l} |\n");
    }
    out
}
