//! Third-party peer clients (libimobiledevice-utils, pymobiledevice3): finding them and
//! running them against a [`Sim`] with an isolated HOME.
//!
//! A missing tool is a test FAILURE whose message says what to install; nothing is skipped.

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::sim::{run_with_deadline, Sim};

/// Per-command deadline for a peer tool (pymobiledevice3 alone needs ~1–2 s to import).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(120);

const INSTALL_HINT: &str = "run `bash scripts/install-peers.sh` from the repository root \
     (installs Debian libimobiledevice-utils and pymobiledevice3 in a venv)";

fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A libimobiledevice-utils tool (`idevice_id`, `ideviceinfo`, `idevicepair`) from PATH.
pub fn libimobiledevice_tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "peer tool `{name}` (Debian package libimobiledevice-utils) is not on PATH: {INSTALL_HINT}"
        )
    })
}

/// The pymobiledevice3 CLI: `$FERRY_PEERS_VENV/bin/pymobiledevice3`, else
/// `<repo>/.venv/bin/pymobiledevice3`, else PATH.
pub fn pymobiledevice3() -> PathBuf {
    let venv = std::env::var_os("FERRY_PEERS_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv"));
    let in_venv = venv.join("bin").join("pymobiledevice3");
    if in_venv.is_file() {
        return in_venv;
    }
    on_path("pymobiledevice3").unwrap_or_else(|| {
        panic!(
            "peer tool `pymobiledevice3` not found in {} nor on PATH: {INSTALL_HINT}",
            venv.display()
        )
    })
}

/// Result of one peer-tool run.
#[derive(Debug)]
pub struct PeerRun {
    pub cmdline: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl PeerRun {
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together (tools differ in where they print errors).
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    /// Panics unless the exit status is 0.
    pub fn ok(self, sim: &Sim) -> Self {
        assert!(
            self.success(),
            "peer command failed:\n{self}\n{}",
            sim.describe()
        );
        self
    }
}

impl fmt::Display for PeerRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "$ {}\nexit: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmdline, self.status, self.stdout, self.stderr
        )
    }
}

/// An isolated per-test environment for peer tools: HOME, XDG dirs and the usbmuxd address.
#[derive(Debug)]
pub struct PeerEnv {
    home: tempfile::TempDir,
    pub mux: String,
}

impl PeerEnv {
    pub fn new(sim: &Sim) -> Self {
        let home = tempfile::Builder::new()
            .prefix("ferry-peer-home-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp HOME: {e}"));
        Self {
            home,
            mux: sim.mux_env(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Points the environment at another simulator (same HOME).
    pub fn retarget(&mut self, sim: &Sim) {
        self.mux = sim.mux_env();
    }

    /// Runs `program args…` with the isolated environment and a deadline.
    pub fn run<I, S>(&self, program: &Path, args: I) -> PeerRun
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
        let home = self.home.path();
        let xdg_data = home.join("xdg-data");
        let xdg_config = home.join("xdg-config");
        let xdg_cache = home.join("xdg-cache");
        for d in [&xdg_data, &xdg_config, &xdg_cache] {
            std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        let mut cmd = Command::new(program);
        cmd.args(&args)
            .current_dir(home)
            .env("USBMUXD_SOCKET_ADDRESS", &self.mux)
            .env_remove("PYMOBILEDEVICE3_USBMUX")
            .env("HOME", home)
            .env("XDG_DATA_HOME", &xdg_data)
            .env("XDG_CONFIG_HOME", &xdg_config)
            .env("XDG_CACHE_HOME", &xdg_cache)
            .env("PYTHONIOENCODING", "utf-8")
            .env("PYTHONUTF8", "1")
            .env("LC_ALL", "C.UTF-8")
            .env("NO_COLOR", "1")
            .env("TERM", "dumb")
            .stdin(Stdio::null());
        let cmdline = format!(
            "USBMUXD_SOCKET_ADDRESS={} HOME={} {} {}",
            self.mux,
            home.display(),
            program.display(),
            args.iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = run_with_deadline(cmd, PEER_TIMEOUT)
            .unwrap_or_else(|e| panic!("peer command hung or failed to start: {cmdline}\n{e}"));
        PeerRun {
            cmdline,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
