//! The `idevice` crate (=0.1.68, ring) as a client: list, listen, pair, session, and an AFC
//! walk that stats and reads every entry of the image, byte-identical.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_e2e::idev::{self, within, Listener};
use ferry_e2e::image::{EntryKind, PhoneImage, MTIME_NS, SMALL_JPEG, SYMLINK, UDID};
use ferry_e2e::sim::{Sim, SimOpts};
use idevice::afc::AfcClient;
use idevice::usbmuxd::{Connection, UsbmuxdListenEvent};
use idevice::IdeviceError;

const EVENT_TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_device() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let devs = within("get_devices", idev::devices(sim.addr))
        .await
        .expect("get_devices");
    assert_eq!(devs.len(), 1, "{devs:?}");
    assert_eq!(devs[0].udid, UDID);
    assert_eq!(devs[0].connection_type, Connection::Usb);
    assert!(
        devs[0].device_id >= 1,
        "DeviceID counter starts at 1: {devs:?}"
    );
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_sees_attach_then_detach_on_unplug() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let listener = Listener::start(sim.addr);
    let id = match listener.next(EVENT_TIMEOUT) {
        UsbmuxdListenEvent::Connected(d) => {
            assert_eq!(d.udid, UDID);
            d.device_id
        }
        other => panic!("first listen event should be Attached, got {other:?}"),
    };
    sim.ctl(&["unplug", "--udid", UDID]);
    match listener.next(EVENT_TIMEOUT) {
        UsbmuxdListenEvent::Disconnected(gone) => assert_eq!(gone, id),
        other => panic!("expected Detached({id}), got {other:?}"),
    }
    sim.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pair_session_and_lockdown_values() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("auto"));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    let pf = within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair");
    assert_eq!(pf.udid.as_deref(), Some(UDID));
    let mut ld = within("session", idev::session(sim.addr, &dev))
        .await
        .expect("StartSession + TLS");
    for (key, want) in [
        ("UniqueDeviceID", UDID.to_string()),
        ("ProductVersion", img.spec.product_version.clone()),
        ("DeviceName", img.spec.name.clone()),
        ("SerialNumber", img.spec.serial_number.clone()),
    ] {
        let v = within(key, ld.get_value(Some(key), None))
            .await
            .unwrap_or_else(|e| panic!("GetValue {key}: {e:?}"));
        assert_eq!(v.as_string(), Some(want.as_str()), "GetValue {key}");
    }
    let du = within(
        "disk_usage",
        ld.get_value(None, Some("com.apple.disk_usage")),
    )
    .await
    .expect("GetValue com.apple.disk_usage");
    let du = du.as_dictionary().expect("disk_usage is a dict");
    assert_eq!(
        du.get("TotalDiskCapacity")
            .and_then(|v| v.as_unsigned_integer()),
        Some(img.spec.total_bytes)
    );
    assert_eq!(
        du.get("AmountDataAvailable")
            .and_then(|v| v.as_unsigned_integer()),
        Some(img.spec.free_bytes)
    );
    let err = within(
        "StartService bogus",
        ld.start_service("com.example.does.not.exist"),
    )
    .await
    .expect_err("an unknown service must be refused");
    assert!(
        matches!(err, IdeviceError::UnknownErrorType(ref e) if e.starts_with("InvalidService")),
        "an unknown service should get Error InvalidService, got {err:?}"
    );
    sim.stop();
}

/// Walks the AFC tree from `/` with list_dir (skipping `.`/`..`), returning path → stat.
async fn walk(afc: &mut AfcClient) -> BTreeMap<String, std::collections::HashMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(dir) = todo.pop() {
        let listing_path = if dir.is_empty() {
            "/".to_string()
        } else {
            dir.clone()
        };
        let names = within("list_dir", afc.list_dir(listing_path.clone()))
            .await
            .unwrap_or_else(|e| panic!("list_dir {listing_path}: {e:?}"));
        assert!(
            names.len() >= 2 && names[0] == "." && names[1] == "..",
            "READ_DIR {listing_path} must start with . and ..: {names:?}"
        );
        for name in names.into_iter().skip(2) {
            assert!(
                name != "." && name != "..",
                "duplicate dot entry in {listing_path}"
            );
            let path = format!("{dir}/{name}");
            // Strict stat: all six st_* keys must be present or idevice errors.
            within("get_file_info", afc.get_file_info(path.clone()))
                .await
                .unwrap_or_else(|e| panic!("get_file_info {path}: {e:?}"));
            let raw = within("get_file_info_raw", afc.get_file_info_raw(path.clone()))
                .await
                .unwrap_or_else(|e| panic!("get_file_info_raw {path}: {e:?}"));
            if raw.get("st_ifmt").map(String::as_str) == Some("S_IFDIR") {
                todo.push(path.clone());
            }
            out.insert(path, raw);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn afc_walk_stat_and_read_every_file_byte_identical() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let dev = within("device", idev::device(sim.addr, UDID))
        .await
        .expect("device");
    within("pair", idev::pair_and_save(sim.addr, &dev))
        .await
        .expect("pair");
    let mut afc = within("AfcClient::connect", idev::afc(sim.addr, &dev))
        .await
        .expect("AFC");

    let info = within("get_device_info", afc.get_device_info())
        .await
        .expect("GET_DEVINFO");
    assert_eq!(info.model, img.spec.product_type);
    assert_eq!(info.total_bytes as u64, img.spec.total_bytes);
    assert_eq!(info.free_bytes as u64, img.spec.free_bytes);
    assert!(info.block_size > 0);

    let remote = walk(&mut afc).await;
    let local = img.tree();
    assert_eq!(
        remote.keys().collect::<Vec<_>>(),
        local.keys().collect::<Vec<_>>(),
        "AFC tree differs from the image's Media/ tree"
    );
    let mut files = 0;
    for (path, kind) in &local {
        let st = &remote[path];
        let ifmt = st.get("st_ifmt").map(String::as_str);
        match kind {
            EntryKind::Dir => assert_eq!(ifmt, Some("S_IFDIR"), "{path}: {st:?}"),
            EntryKind::Symlink { target } => {
                assert_eq!(ifmt, Some("S_IFLNK"), "{path}: {st:?}");
                assert_eq!(
                    st.get("LinkTarget"),
                    Some(target),
                    "{path}: LinkTarget (what libimobiledevice and pymobiledevice3 read): {st:?}"
                );
            }
            EntryKind::File { len, sha256 } => {
                assert_eq!(ifmt, Some("S_IFREG"), "{path}: {st:?}");
                assert_eq!(st.get("st_size"), Some(&len.to_string()), "{path}: {st:?}");
                assert_eq!(
                    st.get("st_mtime"),
                    Some(&MTIME_NS.to_string()),
                    "{path}: st_mtime must be the file's mtime in ns: {st:?}"
                );
                let out = within(path, idev::read_file(afc, path))
                    .await
                    .unwrap_or_else(|e| panic!("open/close {path}: {e:?}"));
                let (sha, n) = out
                    .result
                    .unwrap_or_else(|e| panic!("reading {path} failed: {e}"));
                assert_eq!(n, *len, "{path}: bytes read");
                assert_eq!(&sha, sha256, "{path}: content differs");
                afc = out.client.expect("client back after close");
                files += 1;
            }
        }
    }
    assert!(files >= 8, "only {files} files read");

    // Opening the in-Media symlink reads its target.
    let out = within("read symlink", idev::read_file(afc, &format!("/{SYMLINK}")))
        .await
        .expect("open symlink");
    let (sha, _) = out.result.expect("read through symlink");
    assert_eq!(sha, ferry_e2e::image::sha256_hex(&img.read(SMALL_JPEG)));
    let mut afc = out.client.expect("client back");

    // Missing paths are OBJECT_NOT_FOUND, not a hang or a crash.
    let err = within("stat missing", afc.get_file_info("/DCIM/100APPLE/NOPE.JPG"))
        .await
        .expect_err("missing file");
    assert!(
        matches!(
            err,
            IdeviceError::Afc(idevice::afc::errors::AfcError::ObjectNotFound)
        ),
        "{err:?}"
    );
    sim.stop();
}
