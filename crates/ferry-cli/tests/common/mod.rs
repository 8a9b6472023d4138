//! Helpers for running the real `ferry` binary against `ferry-sim serve`.
//!
//! The simulator is spawned and stopped by the e2e harness (`ferry_e2e::sim`); phone images
//! come from `ferry-sim make-phone` (with their `expected.json` ground truth). Every `ferry`
//! run has a hard deadline, so a hang fails the test instead of blocking it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub mod trials;

pub use ferry_e2e::sim::{sim_bin, Sim, SimOpts};
use serde_json::Value;

/// Hard limit for one `ferry` run.
pub const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// A finished `ferry` run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout of {self:?} is not JSON: {e}"))
    }
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "ferry {:?}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "ferry panicked:\n{}",
            self.stderr
        );
        self
    }
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "ferry {:?}: stderr lacks {needle:?}:\n{}",
            self.args,
            self.stderr
        );
        self
    }
    pub fn stdout_has(&self, needle: &str) -> &Self {
        assert!(
            self.stdout.contains(needle),
            "ferry {:?}: stdout lacks {needle:?}:\n{}",
            self.args,
            self.stdout
        );
        self
    }
}

/// A private HOME / data / cache for one test's `ferry` runs.
pub struct Home {
    pub dir: tempfile::TempDir,
}

impl Home {
    pub fn new() -> Home {
        Home {
            dir: tempfile::Builder::new()
                .prefix("ferry-cli-test-")
                .tempdir()
                .expect("temp dir"),
        }
    }
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    pub fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }
    /// `ferry`'s config dir on Linux with this HOME.
    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join(".config/ferry")
    }
    /// `ferry`'s state dir (logs, last run) on Linux with this HOME.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join(".local/state/ferry")
    }
}

/// The `ferry` binary under test: `FERRY_BIN` if set (e.g. a release build for long trial
/// runs), else the one Cargo built for this test.
pub fn ferry_bin() -> PathBuf {
    match std::env::var_os("FERRY_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "FERRY_BIN={} does not exist", p.display());
            p
        }
        None => PathBuf::from(env!("CARGO_BIN_EXE_ferry")),
    }
}

/// The `ferry` command with an isolated environment pointed at `mux`.
pub fn ferry_cmd(mux: &str, home: &Home, args: &[&str]) -> Command {
    let mut cmd = Command::new(ferry_bin());
    cmd.args(args)
        .env("USBMUXD_SOCKET_ADDRESS", mux)
        .env("HOME", home.dir.path())
        .env("FERRY_DATA_DIR", home.data())
        .env("FERRY_CACHE_DIR", home.cache())
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_STATE_HOME")
        .env_remove("FERRY_CONFIG_DIR")
        .env_remove("FERRY_STATE_DIR")
        .env_remove("RUST_LOG")
        .env_remove("FERRY_TEST_PAUSE_AT")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs `ferry args` against `mux` (an address string) with a deadline.
pub fn ferry_at(mux: &str, home: &Home, args: &[&str]) -> Run {
    let out = ferry_e2e::sim::run_with_deadline(ferry_cmd(mux, home, args), RUN_DEADLINE)
        .unwrap_or_else(|e| panic!("ferry {args:?} hung or failed to start: {e}"));
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        args: args.iter().map(|s| s.to_string()).collect(),
    }
}

/// Runs `ferry args` against a running simulator.
pub fn ferry(sim: &Sim, home: &Home, args: &[&str]) -> Run {
    ferry_at(&sim.mux_env(), home, args)
}

/// Writes a phone image with `ferry-sim make-phone`; returns its directory.
pub fn make_phone(parent: &Path, name: &str, args: &[&str]) -> PathBuf {
    let out = parent.join(name);
    let mut cmd = Command::new(sim_bin());
    cmd.arg("make-phone").arg("--out").arg(&out).args(args);
    let o = ferry_e2e::sim::run_with_deadline(cmd, Duration::from_secs(300))
        .unwrap_or_else(|e| panic!("make-phone {args:?}: {e}"));
    assert!(
        o.status.success(),
        "make-phone {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The image's `expected.json`.
pub fn expected(image: &Path) -> Value {
    let text = std::fs::read_to_string(image.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

/// The UDID in the image's `device.toml`.
pub fn udid_of(image: &Path) -> String {
    let text = std::fs::read_to_string(image.join("device.toml")).expect("device.toml");
    for line in text.lines() {
        if let Some(v) = line.trim().strip_prefix("udid") {
            let v = v.trim().trim_start_matches('=').trim().trim_matches('"');
            return v.to_string();
        }
    }
    panic!("no udid in device.toml:\n{text}")
}

/// `ferry-sim ctl status` as JSON, for the phone with `udid`.
pub fn phone_status(sim: &Sim, udid: &str) -> Value {
    let text = sim.ctl(&["status"]);
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("status {text}: {e}"));
    let phones = v["phones"]
        .as_array()
        .cloned()
        .or_else(|| v.as_array().cloned())
        .unwrap_or_else(|| panic!("no phones in status: {text}"));
    phones
        .into_iter()
        .find(|p| p["udid"] == udid)
        .unwrap_or_else(|| panic!("{udid} not in status: {text}"))
}

/// Polls `cond` until it holds or `deadline` passes (then panics with `what`).
pub fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25)); // polling a condition with a deadline
    }
}

/// Starts a simulator on `image` with extra options.
pub fn start(image: &Path, f: impl FnOnce(SimOpts) -> SimOpts) -> Sim {
    Sim::start(f(SimOpts::phone(image)))
}

/// SHA-256 of a file, hex.
pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    format!("{:x}", sha2::Sha256::digest(&bytes))
}

/// Every file under an archive `dest` outside `.ferry/`: relative path → SHA-256.
pub fn archive_files(dest: &Path) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
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
                out.insert(rel, sha256_file(&p));
            }
        }
    }
    out
}

/// The multiset (SHA-256 → count) of the files of an archive.
pub fn archive_hashes(dest: &Path) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for h in archive_files(dest).into_values() {
        *m.entry(h).or_default() += 1;
    }
    m
}

/// The multiset of SHA-256 of every original expected.json says to archive.
pub fn expected_hashes(exp: &Value) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in exp["assets"].as_array().unwrap() {
        if !a["exclusion"].is_null() {
            continue;
        }
        for r in a["resources"].as_array().unwrap() {
            if r["action"] == "archive" {
                *m.entry(r["sha256"].as_str().unwrap().to_string())
                    .or_default() += 1;
            }
        }
    }
    m
}

/// A temp file name of the archive's write path (`.ferry-tmp-<16 hex>`).
pub fn is_temp(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or("");
    ferry_archive::names::is_temp_name(name)
}

/// Whether the reconciliation of a report adds up to the asset count.
pub fn reconciliation_adds_up(rep: &Value) -> bool {
    let rec = &rep["reconciliation"];
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    let group = |k: &str| {
        rec[k]
            .as_object()
            .map(|o| o.values().map(n).sum::<u64>())
            .unwrap_or(0)
    };
    let sum: u64 = [
        "archived_new",
        "archived_earlier",
        "would_copy",
        "icloud_only",
        "unavailable",
        "retry_later",
    ]
    .iter()
    .map(|k| n(&rec[*k]))
    .sum::<u64>()
        + group("excluded")
        + group("failed");
    rec["assets"].is_u64() && sum == n(&rec["assets"])
}

/// The reconciliation of a report adds up to the asset count.
pub fn check_sum(rep: &Value) {
    assert!(
        reconciliation_adds_up(rep),
        "the reconciliation does not add up: {}",
        rep["reconciliation"]
    );
}
