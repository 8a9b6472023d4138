//! Fault injection seen through real clients: unplug mid-read, replug, trust modes, revoke,
//! a vanishing file, link profiles, and the control socket.

use std::time::Duration;

use ferry_e2e::idev::{self, within, Listener};
use ferry_e2e::image::{PhoneImage, BIG_FILE, UDID};
use ferry_e2e::raw;
use ferry_e2e::sim::{Sim, SimOpts};
use idevice::afc::errors::AfcError;
use idevice::afc::opcode::AfcFopenMode;
use idevice::usbmuxd::UsbmuxdListenEvent;
use idevice::IdeviceError;

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

fn attached_id(l: &Listener) -> u32 {
    match l.next(EVENT_TIMEOUT) {
        UsbmuxdListenEvent::Connected(d) => {
            assert_eq!(d.udid, UDID);
            d.device_id
        }
        other => panic!("expected Attached, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_mid_read_closes_the_pipe_and_detaches() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).unplug_after_bytes(3 * 1024 * 1024));
    let listener = Listener::start(sim.addr);
    let id = attached_id(&listener);
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair");
    let afc = within("afc", idev::afc(sim.addr, &dev)).await.expect("AFC");
    // `within` turns a hang into a failure: the client must see an error, not wait forever.
    let out = within(
        "read during unplug",
        idev::read_file(afc, &format!("/{BIG_FILE}")),
    )
    .await
    .expect("FILE_OPEN happens before the byte budget is spent");
    let err = out
        .result
        .expect_err("reading 10 MiB with a 3 MiB unplug budget must fail");
    assert!(out.client.is_none(), "connection should be unusable: {err}");

    match listener.next(EVENT_TIMEOUT) {
        UsbmuxdListenEvent::Disconnected(gone) => assert_eq!(gone, id),
        other => panic!("expected Detached({id}), got {other:?}"),
    }
    // Gone from ListDevices; Connect to the old DeviceID → BADDEV (2).
    let list = raw::list_devices(sim.addr).expect("ListDevices");
    assert!(
        list.is_empty(),
        "device still listed after unplug: {list:?}"
    );
    let r = raw::connect_port(sim.addr, u64::from(id), raw::LOCKDOWN_PORT).expect("Connect");
    assert_eq!(
        r.err(),
        Some(2),
        "Connect to an unplugged device must be BADDEV"
    );

    // Replug: a NEW DeviceID, and the phone works again.
    sim.ctl(&["replug", "--udid", UDID]);
    let id2 = attached_id(&listener);
    assert!(
        id2 > id,
        "replug must announce a new, larger DeviceID ({id} → {id2})"
    );
    raw::check_healthy(sim.addr, UDID, &img.spec.product_version).expect("healthy after replug");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_unplug_replug_gives_new_device_id() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let listener = Listener::start(sim.addr);
    let id = attached_id(&listener);
    // An open lockdown pipe is closed abruptly by the unplug.
    let mut ld = raw::lockdown(sim.addr, UDID).expect("lockdown pipe");
    sim.ctl(&["unplug"]);
    match listener.next(EVENT_TIMEOUT) {
        UsbmuxdListenEvent::Disconnected(gone) => assert_eq!(gone, id),
        other => panic!("expected Detached, got {other:?}"),
    }
    raw::read_until_closed(&mut ld, Duration::from_secs(20), 0)
        .expect("the lockdown pipe must be closed by the unplug");
    sim.ctl(&["replug"]);
    let id2 = attached_id(&listener);
    assert!(id2 > id, "{id} → {id2}");
    let devs = within("get_devices", idev::devices(sim.addr))
        .await
        .expect("get_devices");
    assert_eq!(devs.len(), 1);
    assert_eq!(devs[0].device_id, id2);
    let status = sim.ctl(&["status"]);
    let v: serde_json::Value = serde_json::from_str(status.trim())
        .unwrap_or_else(|e| panic!("ctl status is not JSON ({e}): {status}"));
    assert!(status.contains(UDID), "status lacks the UDID: {v}");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_after_two_is_pending_twice_then_accepted() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("after:2"));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    let host_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    for attempt in 1..=2 {
        let err = within("pair_once", idev::pair_once(sim.addr, &dev, &host_id))
            .await
            .expect_err("pending");
        assert!(
            matches!(err, IdeviceError::PairingDialogResponsePending),
            "attempt {attempt}: {err:?}"
        );
    }
    within("pair_once", idev::pair_once(sim.addr, &dev, &host_id))
        .await
        .expect("third attempt: the user tapped Trust");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_pending_then_pair_loop_succeeds() {
    // idevice's pair() loops on pending (1 s apart); bounded by PAIR_TIMEOUT.
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("after:1"));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair after one pending reply");
    within("session", idev::session(sim.addr, &dev))
        .await
        .expect("session with the new record");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_deny_and_locked_map_to_client_errors() {
    for (mode, want) in [
        ("deny", "UserDeniedPairing"),
        ("locked", "PasswordProtected"),
    ] {
        let img = PhoneImage::standard();
        let sim = Sim::start(SimOpts::phone(img.root()).trust(mode));
        let dev = within("device", idev::device(sim.addr, UDID))
            .await
            .expect("device");
        let host_id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let err = within("pair_once", idev::pair_once(sim.addr, &dev, &host_id))
            .await
            .expect_err("pairing must fail");
        let ok = match mode {
            "deny" => matches!(err, IdeviceError::UserDeniedPairing),
            _ => matches!(err, IdeviceError::PasswordProtected),
        };
        assert!(ok, "--trust {mode}: expected {want}, got {err:?}");
        sim.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trust_mode_changes_at_runtime() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("deny"));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    let host_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let err = within("pair_once", idev::pair_once(sim.addr, &dev, &host_id))
        .await
        .expect_err("denied");
    assert!(matches!(err, IdeviceError::UserDeniedPairing), "{err:?}");
    sim.ctl(&["trust", "auto", "--udid", UDID]);
    within("pair_once", idev::pair_once(sim.addr, &dev, &host_id))
        .await
        .expect("accepted after `ctl trust auto`");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_makes_start_session_fail_with_invalid_host_id() {
    let img = PhoneImage::standard();
    let state = tempfile::tempdir().expect("state dir");
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair");
    within("session", idev::session(sim.addr, &dev))
        .await
        .expect("session before revoke");
    sim.ctl(&["revoke"]);
    let err = within("session", idev::session(sim.addr, &dev))
        .await
        .expect_err("StartSession after ctl revoke");
    assert!(matches!(err, IdeviceError::InvalidHostID), "{err:?}");
    sim.stop();

    // --revoke on a later run: the host still has its record, the phone does not.
    let sim = Sim::start(SimOpts::phone(img.root()).state(state.path()).revoke());
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    let record = within("get_pair_record", async {
        idev::addr(sim.addr)
            .connect(0)
            .await?
            .get_pair_record(UDID)
            .await
    })
    .await;
    assert!(
        record.is_ok(),
        "host record must survive --revoke: {record:?}"
    );
    let err = within("session", idev::session(sim.addr, &dev))
        .await
        .expect_err("StartSession with --revoke");
    assert!(matches!(err, IdeviceError::InvalidHostID), "{err:?}");
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vanished_file_is_listed_but_not_found_on_open() {
    let img = PhoneImage::standard();
    let vanish = "/DCIM/100APPLE/IMG_0002.HEIC";
    let sim = Sim::start(SimOpts::phone(img.root()).vanish(vanish));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair");
    let mut afc = within("afc", idev::afc(sim.addr, &dev)).await.expect("AFC");
    let names = within("list_dir", afc.list_dir("/DCIM/100APPLE"))
        .await
        .expect("READ_DIR");
    assert!(
        names.iter().any(|n| n == "IMG_0002.HEIC"),
        "the vanishing file is still listed: {names:?}"
    );
    let err = match within("open", afc.open(vanish, AfcFopenMode::RdOnly)).await {
        Ok(fd) => {
            let _ = fd.close().await;
            panic!("FILE_OPEN of {vanish} succeeded after it vanished");
        }
        Err(e) => e,
    };
    assert!(
        matches!(err, IdeviceError::Afc(AfcError::ObjectNotFound)),
        "{err:?}"
    );
    sim.stop();
}

#[test]
fn link_profiles_report_connection_speed() {
    for (profile, min, max) in [
        ("usb2", 480_000_000u64, 480_000_000u64),
        ("usb3", 5_000_000_000, u64::MAX),
    ] {
        let img = PhoneImage::standard();
        let sim = Sim::start(SimOpts::phone(img.root()).link(profile));
        let list = raw::list_devices(sim.addr).expect("ListDevices");
        let speed = list[0]
            .get("Properties")
            .and_then(plist::Value::as_dictionary)
            .and_then(|p| p.get("ConnectionSpeed"))
            .and_then(plist::Value::as_unsigned_integer)
            .unwrap_or_else(|| panic!("no Properties.ConnectionSpeed: {list:?}"));
        assert!(
            (min..=max).contains(&speed),
            "--link {profile}: ConnectionSpeed {speed}"
        );
        sim.stop();
    }
}

fn open_big(c: &mut std::net::TcpStream) -> u64 {
    let mut open = 1u64.to_le_bytes().to_vec();
    open.extend_from_slice(format!("/{BIG_FILE}").as_bytes());
    let r = raw::afc_request(c, 1, raw::afc_op::FILE_OPEN, &open).expect("FILE_OPEN");
    r.value(raw::afc_op::FILE_OPEN_RES).expect("handle")
}

fn read_req(h: u64, len: u64) -> Vec<u8> {
    let mut req = h.to_le_bytes().to_vec();
    req.extend_from_slice(&len.to_le_bytes());
    req
}

/// After a 2 MiB FILE_READ (packet 2) of BIG_FILE was sent into an armed stall: waits until the
/// phone reports itself stalled, unstalls it, and checks the reply arrives whole and intact.
fn finish_read_across_stall(sim: &Sim, img: &PhoneImage, c: &mut std::net::TcpStream) {
    sim.wait_status(UDID, "stalled=true", |p| p["stalled"] == true);
    sim.ctl(&["unstall", "--udid", UDID]);
    let r = raw::read_afc(c).expect("the reply completes after unstall");
    assert_eq!(r.num, 2);
    assert_eq!(
        r.data().expect("DATA"),
        &img.read(BIG_FILE)[..2 << 20],
        "data intact across the stall"
    );
}

#[test]
fn stall_after_bytes_holds_the_reply_until_unstall_and_loses_nothing() {
    use std::io::Write;
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).stall_after_bytes(256 * 1024));
    let mut afc = ferry_e2e::idev::RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    let h = open_big(&mut c);
    c.write_all(&raw::afc_packet(
        2,
        raw::afc_op::FILE_READ,
        &read_req(h, 2 << 20),
    ))
    .expect("send FILE_READ");
    // The byte budget runs out inside this reply: the phone reports itself stalled.
    finish_read_across_stall(&sim, &img, &mut c);
    drop(c);
    drop(afc);
    sim.stop();
}

#[test]
fn ctl_stall_holds_replies_until_unstall() {
    use std::io::Write;
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = ferry_e2e::idev::RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    let h = open_big(&mut c);
    sim.ctl(&["stall", "--udid", UDID]);
    assert_eq!(sim.phone_status(UDID)["stalled"], true);
    c.write_all(&raw::afc_packet(
        2,
        raw::afc_op::FILE_READ,
        &read_req(h, 1 << 20),
    ))
    .expect("send FILE_READ");
    // While stalled no reply may arrive. (One-sided check: a correct simulator can never
    // fail it; a broken stall is caught whenever its reply beats the 1 s window.)
    c.set_read_timeout(Some(Duration::from_secs(1)))
        .expect("read timeout");
    let mut byte = [0u8; 1];
    match std::io::Read::read(&mut c, &mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a stalled phone answered: {other:?}"),
    }
    c.set_read_timeout(Some(raw::IO_TIMEOUT))
        .expect("read timeout");
    sim.ctl(&["unstall", "--udid", UDID]);
    let r = raw::read_afc(&mut c).expect("reply after unstall");
    assert_eq!(r.num, 2);
    assert_eq!(r.data().expect("DATA"), &img.read(BIG_FILE)[..1 << 20]);
    drop(c);
    drop(afc);
    sim.stop();
}

#[test]
fn serve_unplugged_lists_no_phone_until_ctl_replug() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).unplugged());
    let list = raw::list_devices(sim.addr).expect("ListDevices");
    assert!(list.is_empty(), "the cable is out: {list:?}");
    assert!(
        sim.phone_status(UDID)["device_id"].is_null(),
        "no DeviceID while unplugged"
    );
    sim.ctl(&["replug", "--udid", UDID]);
    let list = raw::list_devices(sim.addr).expect("ListDevices");
    assert_eq!(list.len(), 1, "plugged in: {list:?}");
    sim.stop();
}

#[test]
fn ctl_stall_after_stalls_inside_the_next_replies_until_unstall() {
    use std::io::Write;
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = ferry_e2e::idev::RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    let h = open_big(&mut c);
    sim.ctl(&["stall-after", "262144", "--udid", UDID]);
    assert_eq!(
        sim.phone_status(UDID)["stalled"],
        false,
        "armed, not stalled"
    );
    c.write_all(&raw::afc_packet(
        2,
        raw::afc_op::FILE_READ,
        &read_req(h, 2 << 20),
    ))
    .expect("send FILE_READ");
    finish_read_across_stall(&sim, &img, &mut c);
    drop(c);
    drop(afc);
    sim.stop();
}
