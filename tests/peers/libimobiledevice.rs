//! Debian's libimobiledevice-utils 1.3.0 (idevice_id, ideviceinfo, idevicepair; libusbmuxd
//! 2.0.2; OpenSSL 3) against ferry-sim. Messages checked are the stable parts of the 1.3.0
//! texts (spec §2.5, `strings /usr/bin/idevicepair`).

use ferry_e2e::image::{PhoneImage, UDID, UDID2};
use ferry_e2e::peers::{libimobiledevice_tool, PeerEnv, PeerRun};
use ferry_e2e::raw;
use ferry_e2e::sim::{Sim, SimOpts};

fn tool(env: &PeerEnv, name: &str, args: &[&str]) -> PeerRun {
    env.run(&libimobiledevice_tool(name), args)
}

fn pending_msg(udid: &str) -> String {
    format!("ERROR: Please accept the trust dialog on the screen of device {udid}, then attempt to pair again.")
}

#[test]
fn idevice_id_lists_the_udid() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "idevice_id", &["-l"]).ok(&sim);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines, vec![UDID], "idevice_id -l output:\n{r}");
    // `idevice_id UDID` connects to lockdownd and prints DeviceName (no pairing needed).
    let r = tool(&env, "idevice_id", &[UDID]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.name, "{r}");
    sim.stop();
}

#[test]
fn idevice_id_lists_two_phones() {
    let a = PhoneImage::standard();
    let b = PhoneImage::second();
    let sim = Sim::start(SimOpts::phone(a.root()).also_phone(b.root()));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "idevice_id", &["-l"]).ok(&sim);
    let mut lines: Vec<&str> = r.stdout.lines().collect();
    lines.sort();
    let mut want = vec![UDID, UDID2];
    want.sort();
    assert_eq!(lines, want, "{r}");
    let r = tool(
        &env,
        "ideviceinfo",
        &["-s", "-u", UDID2, "-k", "DeviceName"],
    )
    .ok(&sim);
    assert_eq!(r.stdout.trim_end(), b.spec.name, "{r}");
    sim.stop();
}

#[test]
fn ideviceinfo_simple_before_pairing() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "ideviceinfo", &["-s", "-k", "ProductVersion"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.product_version, "{r}");
    let r = tool(&env, "ideviceinfo", &["-s", "-k", "DeviceName"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.name, "{r}");
    let r = tool(&env, "ideviceinfo", &["-s", "-k", "UniqueDeviceID"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), UDID, "{r}");
    // The pre-session full dictionary carries the identity keys clients rely on.
    let r = tool(&env, "ideviceinfo", &["-s"]).ok(&sim);
    for want in [
        format!("ProductVersion: {}", img.spec.product_version),
        format!("ProductType: {}", img.spec.product_type),
        format!("BuildVersion: {}", img.spec.build_version),
        format!("DeviceName: {}", img.spec.name),
        format!("UniqueDeviceID: {UDID}"),
        "DeviceClass: iPhone".to_string(),
    ] {
        assert!(
            r.stdout.lines().any(|l| l == want),
            "missing line {want:?}:\n{r}"
        );
    }
    assert!(
        r.stdout.lines().any(|l| l.starts_with("WiFiAddress: ")),
        "pre-session dict lacks WiFiAddress:\n{r}"
    );
    sim.stop();
}

#[test]
fn pair_validate_and_full_handshake_with_trust_auto() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("auto"));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "idevicepair", &["pair"]).ok(&sim);
    assert!(
        r.stdout
            .contains(&format!("SUCCESS: Paired with device {UDID}")),
        "{r}"
    );
    let r = tool(&env, "idevicepair", &["validate"]).ok(&sim);
    assert!(
        r.stdout
            .contains(&format!("SUCCESS: Validated pairing with device {UDID}")),
        "{r}"
    );
    // Full handshake: ReadPairRecord, StartSession, TLS 1.2 with the root cert, StopSession.
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.name, "{r}");
    let r = tool(&env, "ideviceinfo", &["-k", "ProductVersion"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.product_version, "{r}");
    let r = tool(&env, "ideviceinfo", &["-q", "com.apple.disk_usage"]).ok(&sim);
    for want in [
        format!("TotalDiskCapacity: {}", img.spec.total_bytes),
        format!("AmountDataAvailable: {}", img.spec.free_bytes),
    ] {
        assert!(
            r.stdout.lines().any(|l| l == want),
            "missing {want:?}:\n{r}"
        );
    }
    let r = tool(
        &env,
        "ideviceinfo",
        &["-q", "com.apple.disk_usage", "-k", "TotalDiskCapacity"],
    )
    .ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.total_bytes.to_string(), "{r}");
    // In-session full dictionary.
    let r = tool(&env, "ideviceinfo", &[]).ok(&sim);
    for want in [
        format!("UniqueDeviceID: {UDID}"),
        format!("SerialNumber: {}", img.spec.serial_number),
        format!("ProductVersion: {}", img.spec.product_version),
    ] {
        assert!(
            r.stdout.lines().any(|l| l == want),
            "missing {want:?}:\n{r}"
        );
    }
    sim.stop();
}

#[test]
fn ideviceinfo_without_record_pairs_automatically() {
    // libimobiledevice's handshake pairs on its own when usbmuxd has no record.
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("auto"));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.name, "{r}");
    let r = tool(&env, "idevicepair", &["validate"]).ok(&sim);
    assert!(r.stdout.contains("SUCCESS: Validated pairing"), "{r}");
    sim.stop();
}

#[test]
fn trust_after_two_is_pending_then_pairs() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("after:2"));
    let env = PeerEnv::new(&sim);
    for attempt in 1..=2 {
        let r = tool(&env, "idevicepair", &["pair"]);
        assert!(!r.success(), "attempt {attempt} should be pending:\n{r}");
        assert!(
            r.all().contains(&pending_msg(UDID)),
            "attempt {attempt}: expected the trust-dialog message:\n{r}"
        );
    }
    let r = tool(&env, "idevicepair", &["pair"]).ok(&sim);
    assert!(r.stdout.contains("SUCCESS: Paired with device"), "{r}");
    let r = tool(&env, "idevicepair", &["validate"]).ok(&sim);
    assert!(r.stdout.contains("SUCCESS: Validated pairing"), "{r}");
    sim.stop();
}

#[test]
fn ideviceinfo_reports_pending_dialog() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("after:5"));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]);
    assert!(!r.success(), "{r}");
    assert!(
        r.all()
            .contains("Could not connect to lockdownd: Pairing dialog response pending (-19)"),
        "{r}"
    );
    sim.stop();
}

#[test]
fn trust_deny_reports_denied() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("deny"));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "idevicepair", &["pair"]);
    assert!(!r.success(), "{r}");
    assert!(
        r.all().contains(&format!(
            "ERROR: Device {UDID} said that the user denied the trust dialog."
        )),
        "{r}"
    );
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]);
    assert!(!r.success(), "{r}");
    assert!(r.all().contains("User denied pairing (-18)"), "{r}");
    sim.stop();
}

#[test]
fn trust_locked_reports_passcode() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("locked"));
    let env = PeerEnv::new(&sim);
    let r = tool(&env, "idevicepair", &["pair"]);
    assert!(!r.success(), "{r}");
    assert!(
        r.all().contains(&format!(
            "ERROR: Could not validate with device {UDID} because a passcode is set. Please enter the passcode on the device and retry."
        )),
        "{r}"
    );
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]);
    assert!(!r.success(), "{r}");
    assert!(r.all().contains("Password protected (-17)"), "{r}");
    sim.stop();
}

fn assert_revoked(env: &PeerEnv) {
    let r = tool(env, "idevicepair", &["validate"]);
    assert!(!r.success(), "validate must fail after revoke:\n{r}");
    assert!(
        r.all().contains(&format!(
            "ERROR: Device {UDID} is not paired with this host"
        )),
        "{r}"
    );
    let r = tool(env, "ideviceinfo", &["-k", "DeviceName"]);
    assert!(!r.success(), "{r}");
    assert!(
        r.all()
            .contains("ERROR: Could not connect to lockdownd: Invalid HostID (-21)"),
        "{r}"
    );
}

#[test]
fn revoke_on_restart_makes_validate_fail() {
    let img = PhoneImage::standard();
    let state = tempfile::tempdir().expect("temp state dir");
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()));
    let mut env = PeerEnv::new(&sim);
    tool(&env, "idevicepair", &["pair"]).ok(&sim);
    tool(&env, "idevicepair", &["validate"]).ok(&sim);
    sim.stop();

    // Same state: the host's usbmuxd record is kept, the phone forgot the host.
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()).revoke());
    env.retarget(&sim);
    assert_revoked(&env);
    sim.stop();
}

#[test]
fn pairing_survives_restart_with_same_state() {
    let img = PhoneImage::standard();
    let state = tempfile::tempdir().expect("temp state dir");
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()));
    let mut env = PeerEnv::new(&sim);
    tool(&env, "idevicepair", &["pair"]).ok(&sim);
    sim.stop();
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()));
    env.retarget(&sim);
    let r = tool(&env, "idevicepair", &["validate"]).ok(&sim);
    assert!(r.stdout.contains("SUCCESS: Validated pairing"), "{r}");
    sim.stop();
}

#[test]
fn revoke_via_control_makes_validate_fail() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    tool(&env, "idevicepair", &["pair"]).ok(&sim);
    tool(&env, "idevicepair", &["validate"]).ok(&sim);
    sim.ctl(&["revoke", "--udid", UDID]);
    assert_revoked(&env);
    sim.stop();
}

#[test]
fn unpair_then_validate_fails() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    tool(&env, "idevicepair", &["pair"]).ok(&sim);
    let r = tool(&env, "idevicepair", &["unpair"]).ok(&sim);
    assert!(
        r.stdout
            .contains(&format!("SUCCESS: Unpaired with device {UDID}")),
        "{r}"
    );
    // libimobiledevice deletes the host's record through usbmuxd after a successful Unpair.
    let mut mux = raw::Mux::connect(sim.addr).expect("connect usbmuxd");
    let reply = mux
        .request(
            7,
            &raw::dict(&[
                ("MessageType", raw::s("ReadPairRecord")),
                ("PairRecordID", raw::s(UDID)),
            ]),
        )
        .expect("ReadPairRecord");
    assert_eq!(
        reply.result_number().expect("Result reply"),
        2,
        "ReadPairRecord after unpair should be ENOENT: {:?}",
        reply.plist()
    );
    drop(mux);
    sim.stop();
}

#[test]
fn works_over_usb2_link_profile() {
    // The usb2 profile throttles and delays, but must never split headers that 1.3.0 reads
    // with a single recv(); a full TLS handshake exercises all three framings.
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).link("usb2"));
    let env = PeerEnv::new(&sim);
    tool(&env, "idevicepair", &["pair"]).ok(&sim);
    let r = tool(&env, "ideviceinfo", &["-k", "DeviceName"]).ok(&sim);
    assert_eq!(r.stdout.trim_end(), img.spec.name, "{r}");
    sim.stop();
}
