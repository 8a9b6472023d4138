//! Building, locating, spawning and stopping `ferry-sim serve`.
//!
//! How the binary is found (in this order):
//! 1. `FERRY_SIM_BIN=/path/to/ferry-sim` if set (must exist; no build is attempted);
//! 2. otherwise the harness runs `$CARGO build -p ferry-sim --bin ferry-sim
//!    --message-format=json` once per test process (cargo releases the build-dir lock
//!    before it runs test binaries, so this nested build works under `cargo test` and
//!    `cargo nextest`) and takes the executable path cargo reports. That keeps the binary
//!    up to date even when only `-p ferry-e2e` is being tested. It honours
//!    `CARGO_TARGET_DIR` and uses the dev profile.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

/// How long `serve` may take to print its address line (first start creates device keys).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long `serve` may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

static SIM_BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Path of an up-to-date `ferry-sim` binary (see the module docs). Panics with a message
/// saying what went wrong.
pub fn sim_bin() -> PathBuf {
    match SIM_BIN.get_or_init(locate_or_build) {
        Ok(p) => p.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn locate_or_build() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("FERRY_SIM_BIN") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("FERRY_SIM_BIN={} does not exist", p.display()))
        };
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or("no workspace dir")?;
    let mut cmd = Command::new(&cargo);
    // `cargo test` gives each test process per-crate variables (CARGO_MANIFEST_DIR, …). Some
    // build scripts track them (ring: `rerun-if-env-changed=CARGO_MANIFEST_DIR`), so passing
    // them on would make this build and every plain `cargo build` rebuild ring, rustls and
    // everything above them, alternately. Strip them.
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_BIN_EXE_")
            || matches!(
                &*k,
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_BIN_NAME"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(&*k);
        }
    }
    let out = cmd
        .current_dir(&workspace)
        .args([
            "build",
            "-p",
            "ferry-sim",
            "--bin",
            "ferry-sim",
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {cargo:?} build -p ferry-sim: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo build -p ferry-sim` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    for line in stdout.lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "ferry-sim" {
            if let Some(exe) = msg["executable"].as_str() {
                return Ok(PathBuf::from(exe));
            }
        }
    }
    Err(format!(
        "`cargo build -p ferry-sim` reported no ferry-sim executable:\n{stdout}"
    ))
}

/// Options for `ferry-sim serve`.
#[derive(Clone, Debug, Default)]
pub struct SimOpts {
    pub phones: Vec<PathBuf>,
    pub state: Option<PathBuf>,
    pub trust: Option<String>,
    pub revoke: bool,
    pub link: Option<String>,
    pub control: bool,
    pub unplug_after_bytes: Option<u64>,
    pub stall_after_bytes: Option<u64>,
    pub vanish: Vec<String>,
    pub unplugged: bool,
}

impl SimOpts {
    pub fn phone(dir: &Path) -> Self {
        Self {
            phones: vec![dir.to_path_buf()],
            control: true,
            ..Self::default()
        }
    }
    pub fn trust(mut self, mode: &str) -> Self {
        self.trust = Some(mode.into());
        self
    }
    pub fn state(mut self, dir: &Path) -> Self {
        self.state = Some(dir.to_path_buf());
        self
    }
    pub fn revoke(mut self) -> Self {
        self.revoke = true;
        self
    }
    pub fn link(mut self, profile: &str) -> Self {
        self.link = Some(profile.into());
        self
    }
    pub fn unplug_after_bytes(mut self, n: u64) -> Self {
        self.unplug_after_bytes = Some(n);
        self
    }
    /// Start with the cable out (`--unplugged`): the phone appears on `ctl replug`.
    pub fn unplugged(mut self) -> Self {
        self.unplugged = true;
        self
    }
    pub fn stall_after_bytes(mut self, n: u64) -> Self {
        self.stall_after_bytes = Some(n);
        self
    }
    pub fn vanish(mut self, afc_path: &str) -> Self {
        self.vanish.push(afc_path.into());
        self
    }
    pub fn also_phone(mut self, dir: &Path) -> Self {
        self.phones.push(dir.to_path_buf());
        self
    }
}

/// A running `ferry-sim serve`. SIGTERM + wait on drop (SIGKILL if it does not exit).
#[derive(Debug)]
pub struct Sim {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub control: Option<PathBuf>,
    pub args: Vec<String>,
    stdout_rx: mpsc::Receiver<String>,
    workdir: tempfile::TempDir,
}

impl Sim {
    /// Spawns `ferry-sim serve` and waits (no sleeping) for its
    /// `USBMUXD_SOCKET_ADDRESS=127.0.0.1:PORT` line. Panics on timeout or early exit.
    pub fn start(opts: SimOpts) -> Sim {
        let bin = sim_bin();
        let workdir = tempfile::Builder::new()
            .prefix("ferry-sim-run-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir for ferry-sim: {e}"));
        let mut args: Vec<String> = vec!["serve".into()];
        for p in &opts.phones {
            args.push("--phone".into());
            args.push(p.display().to_string());
        }
        args.push("--listen".into());
        args.push("127.0.0.1:0".into());
        if let Some(s) = &opts.state {
            args.push("--state".into());
            args.push(s.display().to_string());
        }
        if let Some(t) = &opts.trust {
            args.push("--trust".into());
            args.push(t.clone());
        }
        if opts.revoke {
            args.push("--revoke".into());
        }
        if let Some(l) = &opts.link {
            args.push("--link".into());
            args.push(l.clone());
        }
        let control = opts.control.then(|| workdir.path().join("control.sock"));
        if let Some(c) = &control {
            args.push("--control".into());
            args.push(c.display().to_string());
        }
        if opts.unplugged {
            args.push("--unplugged".into());
        }
        if let Some(n) = opts.unplug_after_bytes {
            args.push("--unplug-after-bytes".into());
            args.push(n.to_string());
        }
        if let Some(n) = opts.stall_after_bytes {
            args.push("--stall-after-bytes".into());
            args.push(n.to_string());
        }
        for v in &opts.vanish {
            args.push("--vanish".into());
            args.push(v.clone());
        }
        let log_path = workdir.path().join("stderr.log");
        let log = fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let mut child = Command::new(&bin)
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {} {}: {e}", bin.display(), args.join(" ")));
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            for line in BufReader::new(stdout).lines() {
                match line {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        let mut sim = Sim {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            control,
            args,
            stdout_rx: rx,
            workdir,
        };
        let first = match sim.stdout_rx.recv_timeout(READY_TIMEOUT) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "ferry-sim did not print USBMUXD_SOCKET_ADDRESS within {READY_TIMEOUT:?}\n{}",
                sim.describe()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let st = sim.wait_exit(STOP_TIMEOUT);
                panic!(
                    "ferry-sim closed stdout before printing USBMUXD_SOCKET_ADDRESS (exit: {st:?})\n{}",
                    sim.describe()
                )
            }
        };
        let Some(addr) = first.strip_prefix("USBMUXD_SOCKET_ADDRESS=") else {
            panic!(
                "ferry-sim's first stdout line is {first:?}, expected USBMUXD_SOCKET_ADDRESS=127.0.0.1:PORT\n{}",
                sim.describe()
            )
        };
        sim.addr = addr.parse().unwrap_or_else(|e| {
            panic!(
                "USBMUXD_SOCKET_ADDRESS value {addr:?} is not IP:port ({e})\n{}",
                sim.describe()
            )
        });
        assert!(
            sim.addr.ip().is_loopback() && sim.addr.port() != 0,
            "ferry-sim announced {}, expected 127.0.0.1:<non-zero port>",
            sim.addr
        );
        sim
    }

    /// The value for `USBMUXD_SOCKET_ADDRESS`.
    pub fn mux_env(&self) -> String {
        self.addr.to_string()
    }

    /// The sim's stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.workdir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Command line plus the last part of stderr, for failure messages.
    pub fn describe(&self) -> String {
        let log = self.log();
        let tail: String = if log.len() > 12_000 {
            let mut start = log.len() - 12_000;
            while !log.is_char_boundary(start) {
                start += 1;
            }
            format!("…{}", &log[start..])
        } else {
            log
        };
        format!(
            "ferry-sim {}\n--- ferry-sim stderr (tail) ---\n{tail}\n--- end ---",
            self.args.join(" ")
        )
    }

    /// True while the process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Panics (with the log) if the simulator process has exited.
    pub fn assert_running(&mut self) {
        if !self.is_running() {
            let st = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            panic!(
                "ferry-sim is no longer running (exit: {st:?})\n{}",
                self.describe()
            );
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(st)) => return Some(st),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20)); // polling with a deadline
                }
                _ => return None,
            }
        }
    }

    fn signal(&self, sig: libc::c_int) {
        if let Some(c) = &self.child {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        }
    }

    /// SIGTERM, wait, and assert a clean exit (status 0) and that stdout carried exactly the
    /// one address line.
    pub fn stop(mut self) {
        self.assert_running();
        self.signal(libc::SIGTERM);
        let st = self.wait_exit(STOP_TIMEOUT);
        match st {
            Some(st) if st.success() => {}
            Some(st) => panic!(
                "ferry-sim exited with {st} after SIGTERM\n{}",
                self.describe()
            ),
            None => {
                self.signal(libc::SIGKILL);
                panic!(
                    "ferry-sim did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.describe()
                )
            }
        }
        let extra: Vec<String> = self.stdout_rx.try_iter().collect();
        assert!(
            extra.is_empty(),
            "ferry-sim printed more than one line on stdout: {extra:?}"
        );
        self.child = None;
    }

    /// `ferry-sim ctl status` parsed: the entry of the phone with this UDID.
    pub fn phone_status(&self, udid: &str) -> serde_json::Value {
        let out = self.ctl(&["status"]);
        let v: serde_json::Value = serde_json::from_str(out.trim())
            .unwrap_or_else(|e| panic!("ctl status is not JSON ({e}): {out}"));
        let phones = v
            .get("phones")
            .and_then(serde_json::Value::as_array)
            .or_else(|| v.as_array())
            .unwrap_or_else(|| panic!("ctl status has no phone list: {out}"));
        phones
            .iter()
            .find(|p| p.get("udid").and_then(serde_json::Value::as_str) == Some(udid))
            .cloned()
            .unwrap_or_else(|| panic!("ctl status has no phone {udid}: {out}"))
    }

    /// Polls `ctl status` until `pred` holds for the phone (deadline 30 s, then panic).
    pub fn wait_status(&self, udid: &str, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            let st = self.phone_status(udid);
            if pred(&st) {
                return;
            }
            if Instant::now() >= end {
                panic!(
                    "ctl status never showed {what}: last {st}\n{}",
                    self.describe()
                );
            }
            std::thread::sleep(Duration::from_millis(50)); // polling with a deadline
        }
    }

    /// Runs `ferry-sim ctl --control PATH <args>` and returns its output.
    pub fn ctl_output(&self, args: &[&str]) -> Output {
        let Some(control) = &self.control else {
            panic!("this Sim was started without --control")
        };
        let bin = sim_bin();
        let mut cmd = Command::new(&bin);
        cmd.arg("ctl").arg("--control").arg(control).args(args);
        cmd.stdin(Stdio::null());
        run_with_deadline(cmd, Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("ferry-sim ctl {args:?}: {e}\n{}", self.describe()))
    }

    /// Runs `ferry-sim ctl ...` and asserts it succeeded; returns its stdout.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = self.ctl_output(args);
        assert!(
            out.status.success(),
            "ferry-sim ctl {args:?} failed ({}):\nstdout: {}\nstderr: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.describe()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if self.child.is_none() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("{}", self.describe());
        }
        self.signal(libc::SIGTERM);
        if self.wait_exit(STOP_TIMEOUT).is_none() {
            self.signal(libc::SIGKILL);
            let _ = self.wait_exit(STOP_TIMEOUT);
        }
    }
}

/// Runs a command with stdout/stderr captured to files and a hard deadline (the process is
/// killed and an error returned when it is exceeded). Avoids pipe deadlocks.
pub fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Result<Output, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out_f = fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let err_f = fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = cmd
        .stdout(Stdio::from(out_f))
        .stderr(Stdio::from(err_f))
        .spawn()
        .map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let end = Instant::now() + deadline;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let so = read_lossy(&out_path);
                let se = read_lossy(&err_path);
                return Err(format!(
                    "{cmd:?} did not finish within {deadline:?} (killed)\nstdout: {so}\nstderr: {se}"
                ));
            }
            Err(e) => return Err(format!("waiting for {cmd:?}: {e}")),
        }
    };
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    fs::File::open(&out_path)
        .and_then(|mut f| f.read_to_end(&mut stdout))
        .map_err(|e| e.to_string())?;
    fs::File::open(&err_path)
        .and_then(|mut f| f.read_to_end(&mut stderr))
        .map_err(|e| e.to_string())?;
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

fn read_lossy(p: &Path) -> String {
    fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}
