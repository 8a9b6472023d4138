//! The generated systemd units pass `systemd-analyze verify` (offline, system mode: no running
//! systemd needed), with paths full of spaces, quotes, `%`, `$`, backslashes and non-ASCII.
//!
//! `systemd-analyze` comes from Debian's `systemd` package. Without it the test prints a notice
//! and passes — unless `FERRY_REQUIRE_PEERS=1`, when it fails loudly (CI installs peers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ferry_config::schedule::{self, FakeSystemCtl, InstallRequest, Platform};
use ferry_config::{Os, TimeOfDay};

fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("systemd-analyze"))
        .find(|p| p.is_file())
}

fn require() -> Option<PathBuf> {
    match systemd_analyze() {
        Some(p) => Some(p),
        None if std::env::var("FERRY_REQUIRE_PEERS").as_deref() == Ok("1") => panic!(
            "systemd-analyze is not installed but FERRY_REQUIRE_PEERS=1: install Debian's `systemd` package (apt-get install -y systemd; scripts/install-peers.sh)"
        ),
        None => {
            eprintln!(
                "NOTICE: systemd-analyze not found; skipping the unit verification (install the `systemd` package, or set FERRY_REQUIRE_PEERS=1 to make this a failure)"
            );
            None
        }
    }
}

/// Runs `systemd-analyze verify files…`; returns (success, stderr).
fn verify(tool: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(tool)
        .arg("verify")
        .args(files)
        .env("SYSTEMD_LOG_COLOR", "0")
        .output()
        .expect("run systemd-analyze");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn complaints(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("ferry-") || l.contains("Command "))
        .collect()
}

fn executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let Some(tool) = require() else { return };
    let home = tempfile::tempdir().unwrap();
    let h = home.path().to_string_lossy().into_owned();
    let env = move |k: &str| (k == "HOME").then(|| h.clone());
    let p = Platform::for_os(Os::Linux, &env, 1000).unwrap();
    // the binary itself lives under a hostile path: systemd must find it (systemd refuses
    // `"`, `'` and `\` in executable paths; install rejects those, see schedule.rs)
    let bin = home.path().join("My Tools 100% $HOME ü 日本;x (1)/ferry");
    executable(&bin);

    let dests = [
        "/media/ana/My Photos",
        "/media/ana/100% \"backup\" it's",
        "/mnt/$HOME/${USER}/$$/%h%%",
        "/mnt/back\\slash\\/end\\",
        "/Volumes/ünïcödé/日本語/📷 Fotos",
        "/mnt/tab\there/new\nline/semi;colon ;",
    ];
    for (i, dest) in dests.iter().enumerate() {
        let req = InstallRequest {
            ferry_bin: bin.clone(),
            dest: PathBuf::from(dest),
            at: TimeOfDay::new(i as u8, 5).unwrap(),
            on_plug: true,
            wait: Duration::from_secs(90),
        };
        schedule::install(&req, &p, &FakeSystemCtl::new()).unwrap();
        let files: Vec<PathBuf> = p.files();
        let (ok, stderr) = verify(&tool, &files);
        assert!(ok, "systemd-analyze verify failed for {dest:?}:\n{stderr}");
        assert!(
            complaints(&stderr).is_empty(),
            "systemd-analyze warned for {dest:?}:\n{stderr}\n{}",
            std::fs::read_to_string(&files[0]).unwrap()
        );
        // and our reading of the ExecStart line gives back exactly what we asked for
        let st = schedule::status(&p, &FakeSystemCtl::new()).unwrap();
        let cmd = st.command.unwrap();
        assert_eq!(cmd[0], bin.to_string_lossy());
        assert_eq!(cmd[4], *dest);
        assert_eq!(cmd[6], "90s");
    }
}

#[test]
fn the_harness_notices_bad_units() {
    let Some(tool) = require() else { return };
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin/ferry");
    executable(&bin);
    // an unknown escape: verify exits 0 but warns — the warning check must catch it
    let f = d.path().join("ferry-bad.service");
    std::fs::write(
        &f,
        format!(
            "[Service]\nType=oneshot\nExecStart={} \"\\q\"\n",
            bin.display()
        ),
    )
    .unwrap();
    let (_, stderr) = verify(&tool, std::slice::from_ref(&f));
    assert!(!complaints(&stderr).is_empty(), "{stderr}");
    // a missing binary fails
    std::fs::write(
        &f,
        "[Service]\nType=oneshot\nExecStart=/nonexistent/ferry sync\n",
    )
    .unwrap();
    let (ok, stderr) = verify(&tool, &[f]);
    assert!(!ok, "{stderr}");
    // `$$` in the executable path would be looked up literally (systemd expands `$` only in
    // arguments): quote_exec_path must keep `$` single
    let dollar = d.path().join("a$b/ferry");
    executable(&dollar);
    let f = d.path().join("ferry-dollar.service");
    std::fs::write(
        &f,
        format!(
            "[Service]\nType=oneshot\nExecStart={} x\n",
            schedule::systemd::exec_line(&[dollar.to_string_lossy().as_ref(), "$y"])
        ),
    )
    .unwrap();
    let (ok, stderr) = verify(&tool, &[f]);
    assert!(ok && complaints(&stderr).is_empty(), "{stderr}");
}
