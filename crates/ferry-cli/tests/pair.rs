//! `ferry devices` and `ferry pair` against `ferry-sim serve`: every trust mode, revoked
//! trust, a missing usbmuxd, and the exit codes of docs/cli.md.

mod common;

use common::*;

fn image(tmp: &tempfile::TempDir) -> std::path::PathBuf {
    make_phone(
        tmp.path(),
        "phone",
        &["--assets", "12", "--schema", "ios17", "--seed", "5"],
    )
}

#[test]
fn devices_lists_the_phone_with_its_facts() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.link("usb2"));
    let home = Home::new();
    let run = ferry(&sim, &home, &["devices", "--json"]);
    run.ok();
    let v = run.json();
    let devs = v["devices"].as_array().expect("devices array");
    assert_eq!(devs.len(), 1, "{v}");
    let d = &devs[0];
    assert_eq!(d["udid"], udid_of(&img).as_str());
    assert_eq!(d["ios_version"], "17.6.1");
    assert!(d["model"].as_str().unwrap().starts_with("iPhone"), "{d}");
    assert!(!d["name"].as_str().unwrap().is_empty(), "{d}");
    assert_eq!(d["paired"], false);
    assert_eq!(d["connection"], "usb");
    assert_eq!(d["link_speed_bps"], 480_000_000u64);
    assert_eq!(d["link_speed"], "USB 2.0 (480 Mbit/s)");

    let human = ferry(&sim, &home, &["devices"]);
    human
        .ok()
        .stdout_has(&udid_of(&img))
        .stdout_has("USB 2.0")
        .stderr_has("ferry pair");
}

#[test]
fn pair_auto_saves_the_record_and_keeps_the_host_id() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("auto"));
    let home = Home::new();
    ferry(&sim, &home, &["pair"]).ok().stdout_has("Paired with");
    let host_id = std::fs::read_to_string(home.data().join("host-id")).expect("host-id written");
    // The record is in usbmuxd: devices says paired, and free space needs a session.
    let v = ferry(&sim, &home, &["devices", "--json"]).json();
    assert_eq!(v["devices"][0]["paired"], true, "{v}");
    assert!(
        v["devices"][0]["disk"]["free_bytes"].as_u64().unwrap() > 0,
        "{v}"
    );
    // Second run: nothing to do.
    ferry(&sim, &home, &["pair"])
        .ok()
        .stdout_has("Already paired");
    // Forced re-pair: same HostID, so the phone still knows one computer.
    ferry(&sim, &home, &["pair", "--force"])
        .ok()
        .stdout_has("Paired with");
    let again = std::fs::read_to_string(home.data().join("host-id")).unwrap();
    assert_eq!(host_id, again);
    let st = phone_status(&sim, &udid_of(&img));
    assert_eq!(st["trusted_hosts"], 1, "{st}");
}

#[test]
fn pair_waits_for_trust_then_pairs() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("after:3"));
    let home = Home::new();
    ferry(&sim, &home, &["pair", "--timeout", "60"])
        .ok()
        .stderr_has("Unlock your iPhone and tap \"Trust\"")
        .stdout_has("Paired with");
}

#[test]
fn pair_denied() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("deny"));
    let home = Home::new();
    ferry(&sim, &home, &["pair"])
        .expect_code(12)
        .stderr_has("Don't Trust")
        .stderr_has("hint:");
}

#[test]
fn pair_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("locked"));
    let home = Home::new();
    ferry(&sim, &home, &["pair"])
        .expect_code(13)
        .stderr_has("locked with a passcode")
        .stderr_has("unlock the iPhone");
}

#[test]
fn pair_times_out_when_nobody_taps_trust() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("after:100000"));
    let home = Home::new();
    ferry(&sim, &home, &["pair", "--timeout", "2"])
        .expect_code(11)
        .stderr_has("Unlock your iPhone")
        .stderr_has("did not answer");
}

#[test]
fn revoked_trust_is_reported_and_repaired() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("auto"));
    let home = Home::new();
    ferry(&sim, &home, &["pair"]).ok();
    sim.ctl(&["revoke"]);
    ferry(&sim, &home, &["scan"])
        .expect_code(14)
        .stderr_has("no longer trusts this computer")
        .stderr_has("ferry pair");
    ferry(&sim, &home, &["pair"])
        .ok()
        .stderr_has("no longer trusts this computer")
        .stdout_has("Paired again");
    ferry(&sim, &home, &["scan", "--json"]).ok();
}

#[test]
fn scan_before_pairing_says_how_to_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o.trust("auto"));
    let home = Home::new();
    ferry(&sim, &home, &["scan"])
        .expect_code(10)
        .stderr_has("not paired")
        .stderr_has("ferry pair");
}

#[test]
fn missing_usbmuxd_names_the_fix() {
    let home = Home::new();
    let sock = home.dir.path().join("no-such-socket");
    for addr in [
        format!("UNIX:{}", sock.display()),
        sock.display().to_string(),
    ] {
        ferry_at(&addr, &home, &["devices"])
            .expect_code(3)
            .stderr_has("cannot reach usbmuxd")
            .stderr_has("install");
    }
    // A closed TCP port (bind then drop to get one that is free).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    ferry_at(&format!("localhost:{port}"), &home, &["devices", "--json"])
        .expect_code(3)
        .stdout_has("\"usbmuxd\"");
    ferry_at("localhost:notaport", &home, &["devices"])
        .expect_code(3)
        .stderr_has("USBMUXD_SOCKET_ADDRESS");
}

#[test]
fn no_phone_connected() {
    let tmp = tempfile::tempdir().unwrap();
    let img = image(&tmp);
    let sim = start(&img, |o| o);
    let home = Home::new();
    sim.ctl(&["unplug"]);
    wait_for(
        "the unplug to show",
        std::time::Duration::from_secs(30),
        || {
            ferry(&sim, &home, &["devices", "--json"]).json()["devices"]
                .as_array()
                .is_some_and(|a| a.is_empty())
        },
    );
    ferry(&sim, &home, &["scan"])
        .expect_code(4)
        .stderr_has("no iPhone is connected");
    ferry(&sim, &home, &["pair", "--udid", "0000-NOPE"])
        .expect_code(4)
        .stderr_has("0000-NOPE");
}
