//! Reads go to the phone in ≥ 1 MiB AFC requests and memory stays flat while a multi-GiB
//! (sparse) video streams through `ferry read-file`. The simulator counts FILE_READ requests
//! and those asking for less than 1 MiB; the peak RSS of the `ferry` process comes from
//! `wait4(2)`'s rusage, so it is measured for that process alone.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;

const VIDEO_BYTES: u64 = 2 << 30; // 2 GiB
const MAX_RSS_KIB: i64 = 96 * 1024;

#[test]
// The child is reaped with libc::wait4 (to get its own rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn multi_gib_read_uses_1mib_requests_and_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        "p",
        &[
            "--assets",
            "20",
            "--schema",
            "ios18",
            "--seed",
            "51",
            "--icloud-photos",
            "off",
            "--sparse-video-bytes",
            &VIDEO_BYTES.to_string(),
        ],
    );
    let exp = expected(&img);
    let path = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["resources"].as_array().unwrap().iter())
        .find(|r| r["size"].as_u64() == Some(VIDEO_BYTES))
        .and_then(|r| r["afc_path"].as_str())
        .expect("a resource of VIDEO_BYTES in expected.json")
        .to_string();
    let udid = udid_of(&img);
    let sim = start(&img, |o| o);
    let home = Home::new();
    ferry(&sim, &home, &["pair"]).ok();
    let before = phone_status(&sim, &udid);

    let remote = format!("/{path}");
    let mut child = ferry_cmd(
        &sim.mux_env(),
        &home,
        &["read-file", &remote, "--out", "/dev/null"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn ferry");
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.take().unwrap();
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut { stderr }, &mut s).ok();
        s
    });
    // wait4 gives this child's own peak RSS; poll with a deadline so a hang fails the test.
    let end = Instant::now() + Duration::from_secs(600);
    let (status, usage) = loop {
        let mut status = 0;
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(r >= 0, "wait4 failed: {}", std::io::Error::last_os_error());
        if r == pid {
            break (std::process::ExitStatus::from_raw(status), usage);
        }
        if Instant::now() > end {
            let _ = child.kill();
            panic!("ferry read-file did not finish within 600 s");
        }
        std::thread::sleep(Duration::from_millis(50)); // polling a condition with a deadline
    };
    let err = err_thread.join().unwrap();
    assert!(
        status.success(),
        "ferry read-file failed ({status}):\n{err}"
    );
    assert!(err.contains(&format!("{VIDEO_BYTES} bytes")), "{err}");

    let after = phone_status(&sim, &udid);
    let reads =
        after["read_requests"].as_u64().unwrap() - before["read_requests"].as_u64().unwrap();
    let small = after["small_read_requests"].as_u64().unwrap()
        - before["small_read_requests"].as_u64().unwrap();
    let moved = after["afc_bytes"].as_u64().unwrap() - before["afc_bytes"].as_u64().unwrap();
    eprintln!(
        "read {VIDEO_BYTES} bytes: {reads} FILE_READ requests, {small} under 1 MiB, \
         {moved} AFC bytes, peak RSS of ferry {} KiB",
        usage.ru_maxrss
    );
    assert_eq!(small, 0, "every FILE_READ must ask for at least 1 MiB");
    // 2048 full chunks plus the empty read that signals the end.
    assert_eq!(reads, VIDEO_BYTES / (1 << 20) + 1, "FILE_READ count");
    assert!(moved >= VIDEO_BYTES);
    assert!(
        usage.ru_maxrss < MAX_RSS_KIB,
        "peak RSS {} KiB while streaming {VIDEO_BYTES} bytes (limit {MAX_RSS_KIB} KiB)",
        usage.ru_maxrss
    );
}
