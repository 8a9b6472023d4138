//! Wire conformance with independent raw clients (spec §1.5, §2, §3, §4.4): the details
//! real clients depend on but may not exercise in every run.

use std::io::Write;
use std::time::Duration;

use ferry_e2e::idev::RawAfc;
use ferry_e2e::image::{PhoneImage, BIG_FILE, BIG_FILE_LEN, SMALL_JPEG, UDID};
use ferry_e2e::raw::{self, afc_op, dict, int, s, Mux};
use ferry_e2e::sim::{Sim, SimOpts};
use plist::Value;

fn props(entry: &plist::Dictionary) -> &plist::Dictionary {
    entry
        .get("Properties")
        .and_then(Value::as_dictionary)
        .unwrap_or_else(|| panic!("no Properties dict: {entry:?}"))
}

#[test]
fn device_list_entries_have_the_keys_every_client_needs() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let list = raw::list_devices(sim.addr).expect("ListDevices");
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(
        e.get("MessageType").and_then(Value::as_string),
        Some("Attached")
    );
    let id = e.get("DeviceID").and_then(Value::as_unsigned_integer);
    assert!(id.is_some(), "top-level DeviceID: {e:?}");
    let p = props(e);
    assert_eq!(p.get("DeviceID").and_then(Value::as_unsigned_integer), id);
    assert_eq!(p.get("SerialNumber").and_then(Value::as_string), Some(UDID));
    assert_eq!(
        p.get("ConnectionType").and_then(Value::as_string),
        Some("USB")
    );
    let pid = p.get("ProductID").and_then(Value::as_unsigned_integer);
    assert!(
        matches!(pid, Some(0x1290..=0x12af)),
        "ProductID in the iPhone range: {p:?}"
    );
    for k in ["LocationID", "ConnectionSpeed"] {
        assert!(
            p.get(k).and_then(Value::as_unsigned_integer).is_some(),
            "{k}: {p:?}"
        );
    }
    sim.stop();
}

#[test]
fn usbmuxd_replies_echo_tags_and_carry_result_codes() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let id = raw::device_id(sim.addr, UDID).expect("device id");
    {
        let mut m = Mux::connect(sim.addr).expect("mux");
        // Several sequential commands on one connection; tags echoed verbatim.
        let buid1 = m
            .request(0x1234_5678, &dict(&[("MessageType", s("ReadBUID"))]))
            .expect("ReadBUID")
            .plist()
            .expect("plist");
        let buid1 = buid1
            .get("BUID")
            .and_then(Value::as_string)
            .expect("BUID string")
            .to_string();
        assert_eq!(buid1.len(), 36, "BUID is a UUID: {buid1}");
        assert_eq!(buid1, buid1.to_uppercase(), "BUID is uppercase");
        let r = m
            .request(7, &dict(&[("MessageType", s("NoSuchCommand"))]))
            .expect("unknown command reply");
        assert_eq!(r.result_number().expect("Result"), 1, "BADCOMMAND");
        // Still usable after the unknown command.
        let r = m
            .request(8, &dict(&[("MessageType", s("ReadBUID"))]))
            .expect("ReadBUID after BADCOMMAND");
        assert_eq!(
            r.plist()
                .expect("plist")
                .get("BUID")
                .and_then(Value::as_string),
            Some(buid1.as_str()),
            "BUID is stable"
        );
        let r = m
            .request(
                9,
                &dict(&[
                    ("MessageType", s("ReadPairRecord")),
                    ("PairRecordID", s(UDID)),
                ]),
            )
            .expect("ReadPairRecord");
        assert_eq!(r.result_number().expect("Result"), 2, "no record → ENOENT");
        let r = m
            .request(10, &dict(&[("MessageType", s("ReadPairRecord"))]))
            .expect("ReadPairRecord without ID");
        assert_eq!(r.result_number().expect("Result"), 22, "EINVAL");
    }
    for (req, want, what) in [
        (
            dict(&[("MessageType", s("Connect")), ("DeviceID", int(id))]),
            1,
            "Connect without PortNumber → BADCOMMAND",
        ),
        (
            dict(&[
                ("MessageType", s("Connect")),
                ("DeviceID", int(id + 1000)),
                ("PortNumber", int(u64::from(62078u16.to_be()))),
            ]),
            2,
            "Connect to an unknown DeviceID → BADDEV",
        ),
        (
            dict(&[
                ("MessageType", s("Connect")),
                ("DeviceID", int(id)),
                ("PortNumber", int(u64::from(1234u16.to_be()))),
            ]),
            3,
            "Connect to a closed port → CONNREFUSED",
        ),
    ] {
        let mut m = Mux::connect(sim.addr).expect("mux");
        let r = m.request(42, &req).expect(what);
        assert_eq!(r.result_number().expect("Result"), want, "{what}");
    }
    // Header version 2 → BADVERSION (6).
    let mut m = Mux::connect(sim.addr).expect("mux");
    let body = raw::xml(&dict(&[("MessageType", s("ListDevices"))]));
    m.stream
        .write_all(&raw::mux_packet(2, raw::MUX_PLIST, 5, &body))
        .expect("write");
    let r = raw::read_mux(&mut m.stream).expect("reply to version 2");
    assert_eq!(r.tag, 5, "tag echoed");
    let number = if r.message == raw::MUX_PLIST {
        r.result_number().expect("Result")
    } else {
        assert_eq!(r.message, raw::MUX_RESULT, "{r:?}");
        u64::from(u32::from_le_bytes(
            r.payload[..4].try_into().expect("4-byte result"),
        ))
    };
    assert_eq!(number, 6, "BADVERSION");
    drop(m);
    sim.stop();
}

#[test]
fn pair_records_are_stored_byte_for_byte() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    // Binary plist, as libimobiledevice stores it: must come back unchanged.
    let mut record = Vec::new();
    plist::to_writer_binary(
        &mut record,
        &dict(&[("HostID", s("ABC")), ("SystemBUID", s("DEF"))]),
    )
    .expect("bplist");
    let mut m = Mux::connect(sim.addr).expect("mux");
    let r = m
        .request(
            1,
            &dict(&[
                ("MessageType", s("SavePairRecord")),
                ("PairRecordID", s(UDID)),
                ("PairRecordData", Value::Data(record.clone())),
            ]),
        )
        .expect("SavePairRecord");
    assert_eq!(r.result_number().expect("Result"), 0);
    let r = m
        .request(
            2,
            &dict(&[
                ("MessageType", s("ReadPairRecord")),
                ("PairRecordID", s(UDID)),
            ]),
        )
        .expect("ReadPairRecord");
    let d = r.plist().expect("plist");
    assert!(
        d.get("MessageType").is_none(),
        "data replies carry no MessageType: {d:?}"
    );
    assert_eq!(
        d.get("PairRecordData").and_then(Value::as_data),
        Some(record.as_slice())
    );
    let r = m
        .request(
            3,
            &dict(&[
                ("MessageType", s("DeletePairRecord")),
                ("PairRecordID", s(UDID)),
            ]),
        )
        .expect("DeletePairRecord");
    assert_eq!(r.result_number().expect("Result"), 0);
    let r = m
        .request(
            4,
            &dict(&[
                ("MessageType", s("ReadPairRecord")),
                ("PairRecordID", s(UDID)),
            ]),
        )
        .expect("ReadPairRecord");
    assert_eq!(r.result_number().expect("Result"), 2);
    drop(m);
    sim.stop();
}

#[test]
fn listen_replies_result_then_attached_with_tag_zero() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut m = Mux::connect(sim.addr).expect("mux");
    let r = m
        .request(77, &dict(&[("MessageType", s("Listen"))]))
        .expect("Listen");
    assert_eq!(r.result_number().expect("Result"), 0);
    let ev = raw::read_mux(&mut m.stream).expect("Attached");
    assert_eq!((ev.version, ev.message, ev.tag), (1, raw::MUX_PLIST, 0));
    let d = ev.plist().expect("plist");
    assert_eq!(
        d.get("MessageType").and_then(Value::as_string),
        Some("Attached")
    );
    assert_eq!(
        props(&d).get("SerialNumber").and_then(Value::as_string),
        Some(UDID)
    );
    // ListListeners (on another connection) sees the listener.
    let mut q = Mux::connect(sim.addr).expect("mux");
    let r = q
        .request(3, &dict(&[("MessageType", s("ListListeners"))]))
        .expect("ListListeners");
    let d = r.plist().expect("plist");
    let n = d
        .get("ListenerList")
        .and_then(Value::as_array)
        .map(Vec::len)
        .unwrap_or_else(|| panic!("no ListenerList: {d:?}"));
    assert!(n >= 1, "{d:?}");
    drop((m, q));
    sim.stop();
}

#[test]
fn lockdown_pre_session_values_and_errors() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut ld = raw::lockdown(sim.addr, UDID).expect("lockdown");
    let r = raw::ld_request(
        &mut ld,
        &dict(&[("Request", s("GetValue")), ("Key", s("DevicePublicKey"))]),
    )
    .expect("GetValue DevicePublicKey");
    assert_eq!(
        r.get("Request").and_then(Value::as_string),
        Some("GetValue")
    );
    let pem = r
        .get("Value")
        .and_then(Value::as_data)
        .unwrap_or_else(|| panic!("DevicePublicKey must be <data>: {r:?}"));
    assert!(
        pem.starts_with(b"-----BEGIN RSA PUBLIC KEY-----"),
        "PKCS#1 PEM expected: {:?}",
        String::from_utf8_lossy(pem)
    );
    let r = raw::ld_request(&mut ld, &dict(&[("Request", s("GetValue"))])).expect("full dict");
    let all = r
        .get("Value")
        .and_then(Value::as_dictionary)
        .unwrap_or_else(|| panic!("GetValue without key → dict: {r:?}"));
    for k in [
        "ProductVersion",
        "DevicePublicKey",
        "WiFiAddress",
        "DeviceName",
        "UniqueDeviceID",
        "ProductType",
        "DeviceClass",
        "BuildVersion",
        "UniqueChipID",
    ] {
        assert!(
            all.contains_key(k),
            "pre-session full dict lacks {k}: {all:?}"
        );
    }
    let r = raw::ld_request(
        &mut ld,
        &dict(&[("Request", s("GetValue")), ("Key", s("NoSuchKey"))]),
    )
    .expect("unknown key");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("MissingValue"),
        "{r:?}"
    );
    let r = raw::ld_request(&mut ld, &dict(&[("Request", s("FlyToTheMoon"))])).expect("bogus");
    assert_eq!(
        r.get("Request").and_then(Value::as_string),
        Some("FlyToTheMoon")
    );
    assert!(r.get("Error").and_then(Value::as_string).is_some(), "{r:?}");
    let r = raw::ld_request(
        &mut ld,
        &dict(&[
            ("Request", s("StartService")),
            ("Service", s("com.apple.afc")),
        ]),
    )
    .expect("StartService without session");
    assert!(
        r.get("Error").and_then(Value::as_string).is_some() && r.get("Port").is_none(),
        "StartService without a session must be refused: {r:?}"
    );
    let r = raw::ld_request(&mut ld, &dict(&[("Request", s("Goodbye"))])).expect("Goodbye");
    assert_eq!(r.get("Request").and_then(Value::as_string), Some("Goodbye"));
    raw::read_until_closed(&mut ld, Duration::from_secs(20), 0).expect("closed after Goodbye");
    sim.stop();
}

#[test]
fn afc_wire_layout_full_size_reads_and_pipelining() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();

    // READ_DIR with and without a NUL; `.` and `..` first.
    for path in [
        &b"/DCIM/100APPLE"[..],
        &b"/DCIM/100APPLE\0"[..],
        &b"DCIM/100APPLE/"[..],
    ] {
        let r = raw::afc_request(&mut c, 1, afc_op::READ_DIR, path).expect("READ_DIR");
        let names: Vec<String> = r
            .data()
            .expect("DATA")
            .split(|b| *b == 0)
            .filter(|n| !n.is_empty())
            .map(|n| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(&names[..2], &[".", ".."], "{names:?}");
        let mut rest = names[2..].to_vec();
        rest.sort();
        assert_eq!(rest, img.list("DCIM/100APPLE"), "{path:?}");
    }
    // GET_FILE_INFO: all six keys, st_size right.
    let r = raw::afc_request(
        &mut c,
        2,
        afc_op::GET_FILE_INFO,
        format!("/{BIG_FILE}").as_bytes(),
    )
    .expect("GET_FILE_INFO");
    let kv = r.kv().expect("kv");
    for k in [
        "st_size",
        "st_blocks",
        "st_nlink",
        "st_ifmt",
        "st_mtime",
        "st_birthtime",
    ] {
        assert!(kv.iter().any(|(key, _)| key == k), "missing {k}: {kv:?}");
    }
    assert!(
        kv.contains(&("st_size".into(), BIG_FILE_LEN.to_string())),
        "{kv:?}"
    );

    // FILE_OPEN → FILE_OPEN_RES (this = entire = 48), handle ≠ 0.
    let mut open = 1u64.to_le_bytes().to_vec();
    open.extend_from_slice(format!("/{BIG_FILE}\0").as_bytes());
    let r = raw::afc_request(&mut c, 3, afc_op::FILE_OPEN, &open).expect("FILE_OPEN");
    let h = r.value(afc_op::FILE_OPEN_RES).expect("FILE_OPEN_RES");
    assert_ne!(h, 0, "handle 0 is invalid for libimobiledevice");
    // A 5 MiB FILE_READ returns 5 MiB in one DATA (pymobiledevice3 relies on it).
    let want = img.read(BIG_FILE);
    let mut req = h.to_le_bytes().to_vec();
    req.extend_from_slice(&(5u64 << 20).to_le_bytes());
    let r = raw::afc_request(&mut c, 4, afc_op::FILE_READ, &req).expect("FILE_READ 5 MiB");
    assert_eq!(r.data().expect("DATA").len(), 5 << 20, "short read");
    assert_eq!(r.data().expect("DATA"), &want[..5 << 20]);
    // FILE_TELL → FILE_TELL_RES.
    let r = raw::afc_request(&mut c, 5, afc_op::FILE_TELL, &h.to_le_bytes()).expect("FILE_TELL");
    assert_eq!(r.value(afc_op::FILE_TELL_RES).expect("TELL_RES"), 5 << 20);
    // FILE_SEEK to 100 bytes before the end (whence END), read more than is left.
    let mut seek = h.to_le_bytes().to_vec();
    seek.extend_from_slice(&2u64.to_le_bytes());
    seek.extend_from_slice(&(-100i64).to_le_bytes());
    let r = raw::afc_request(&mut c, 6, afc_op::FILE_SEEK, &seek).expect("FILE_SEEK");
    assert_eq!(r.status().expect("STATUS"), 0);
    let r = raw::afc_request(&mut c, 7, afc_op::FILE_READ, &req).expect("FILE_READ tail");
    assert_eq!(r.data().expect("DATA"), &want[want.len() - 100..]);
    // EOF: empty DATA.
    let r = raw::afc_request(&mut c, 8, afc_op::FILE_READ, &req).expect("FILE_READ at EOF");
    assert_eq!(r.data().expect("DATA").len(), 0, "EOF is an empty DATA");
    let r = raw::afc_request(&mut c, 9, afc_op::FILE_CLOSE, &h.to_le_bytes()).expect("close");
    assert_eq!(r.status().expect("STATUS"), 0);
    // A closed handle is INVALID_ARG (7).
    let r = raw::afc_request(&mut c, 10, afc_op::FILE_READ, &req).expect("read closed handle");
    assert_eq!(r.status().expect("STATUS"), 7);

    // Pipelining: 10 GET_DEVINFO + 5 READ_DIR written before reading any reply; each
    // reply echoes its packet_num. (Written from a thread so a sim that stops reading while
    // it writes cannot deadlock the test itself.)
    let mut w = c.try_clone().expect("clone socket");
    let writer = std::thread::spawn(move || {
        for i in 0..15u64 {
            let pkt = if i < 10 {
                raw::afc_packet(100 + i, afc_op::GET_DEVINFO, b"")
            } else {
                raw::afc_packet(100 + i, afc_op::READ_DIR, b"/DCIM\0")
            };
            w.write_all(&pkt)?;
        }
        Ok::<_, std::io::Error>(())
    });
    for i in 0..15u64 {
        let r = raw::read_afc(&mut c).expect("pipelined reply");
        assert_eq!(r.num, 100 + i, "replies in order with echoed packet_num");
        assert!(r.data().is_ok(), "{r:?}");
    }
    writer
        .join()
        .expect("writer thread")
        .expect("pipelined writes");
    // GET_DEVINFO keys idevice requires.
    let r = raw::afc_request(&mut c, 200, afc_op::GET_DEVINFO, b"").expect("GET_DEVINFO");
    let kv = r.kv().expect("kv");
    for k in ["Model", "FSTotalBytes", "FSFreeBytes", "FSBlockSize"] {
        assert!(kv.iter().any(|(key, _)| key == k), "missing {k}: {kv:?}");
    }
    drop(c);
    drop(afc);
    sim.stop();
}

#[test]
fn afc_write_operations_are_refused() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    // Every write mode, on a new and on an existing file: PERM_DENIED (10), as a real phone
    // answers outside writable areas (spec §3.5). Collected so one run shows them all.
    let mut wrong = Vec::new();
    let mut num = 0;
    for path in ["/DCIM/100APPLE/NEW.JPG", "/DCIM/100APPLE/IMG_0001.JPG"] {
        for mode in [2u64, 3, 4, 5, 6] {
            num += 1;
            let mut open = mode.to_le_bytes().to_vec();
            open.extend_from_slice(path.as_bytes());
            open.push(0);
            let r = raw::afc_request(&mut c, num, afc_op::FILE_OPEN, &open).expect("FILE_OPEN w");
            let st = r.status().ok();
            if st != Some(10) {
                wrong.push(format!("FILE_OPEN mode {mode} {path}: {st:?} ({r:?})"));
            }
            if let Ok(h) = r.value(afc_op::FILE_OPEN_RES) {
                let _ = raw::afc_request(&mut c, 1000 + num, afc_op::FILE_CLOSE, &h.to_le_bytes());
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "write modes not refused with PERM_DENIED (10):\n{}",
        wrong.join("\n")
    );
    let r = raw::afc_request(&mut c, 10, afc_op::MAKE_DIR, b"/DCIM/NEWDIR\0").expect("MAKE_DIR");
    assert_ne!(r.status().expect("STATUS"), 0, "MAKE_DIR must fail");
    let r = raw::afc_request(
        &mut c,
        11,
        afc_op::REMOVE_PATH,
        format!("/{SMALL_JPEG}\0").as_bytes(),
    )
    .expect("REMOVE_PATH");
    assert_ne!(r.status().expect("STATUS"), 0, "REMOVE_PATH must fail");
    assert!(
        img.media().join(SMALL_JPEG).is_file(),
        "the image file was removed!"
    );
    assert!(
        !img.media().join("DCIM/NEWDIR").exists(),
        "a directory was created"
    );
    drop(c);
    drop(afc);
    sim.stop();
}

#[test]
fn sigterm_exits_cleanly_with_idle_clients_connected() {
    // A daemon must stop on SIGTERM even while clients hold idle connections (a usbmuxd
    // connection in COMMAND state, a lockdown pipe, a Listen connection).
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut idle = Mux::connect(sim.addr).expect("mux");
    idle.request(1, &dict(&[("MessageType", s("ReadBUID"))]))
        .expect("ReadBUID");
    let _silent = raw::tcp(sim.addr).expect("silent connection");
    let _ld = raw::lockdown(sim.addr, UDID).expect("lockdown pipe");
    let mut listen = Mux::connect(sim.addr).expect("mux");
    listen
        .request(2, &dict(&[("MessageType", s("Listen"))]))
        .expect("Listen");
    sim.stop();
}
