//! Hostile and malformed input against the running binary, at each of the three layers
//! (usbmuxd, lockdownd, AFC). After each case the connection must have been answered with an
//! error or closed (never left hanging), the process must still run, and a fresh, ordinary
//! client must still work. A bounded proptest throws random bytes at each layer.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use ferry_e2e::idev::RawAfc;
use ferry_e2e::image::{PhoneImage, ESCAPE_SYMLINK, SECRET, SMALL_JPEG, UDID};
use ferry_e2e::raw::{self, afc_op, dict, s, Mux, AFC_MAGIC};
use ferry_e2e::sim::{Sim, SimOpts};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// How long a rejected connection may stay open.
const CLOSE_DEADLINE: Duration = Duration::from_secs(20);

fn healthy(sim: &mut Sim, img: &PhoneImage, after: &str) {
    sim.assert_running();
    raw::check_healthy(sim.addr, UDID, &img.spec.product_version).unwrap_or_else(|e| {
        panic!(
            "after {after}: a fresh client fails: {e:#}\n{}",
            sim.describe()
        )
    });
}

/// The peer either closes, or answers and then closes once we close our side.
fn rejected_or_closed(c: &mut TcpStream, what: &str) -> Vec<u8> {
    raw::shutdown_write(c);
    raw::read_until_closed(c, CLOSE_DEADLINE, 1 << 20).unwrap_or_else(|e| panic!("{what}: {e:#}"))
}

#[test]
fn usbmuxd_malformed_frames() {
    let img = PhoneImage::standard();
    let mut sim = Sim::start(SimOpts::phone(img.root()));
    let plist_body = raw::xml(&dict(&[("MessageType", s("ListDevices"))]));

    // length < 16: the daemon closes the connection.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    let mut pkt = raw::mux_packet(1, raw::MUX_PLIST, 1, &plist_body);
    pkt[..4].copy_from_slice(&8u32.to_le_bytes());
    raw::write_lenient(&mut c, &pkt);
    raw::read_until_closed(&mut c, CLOSE_DEADLINE, 1 << 16)
        .unwrap_or_else(|e| panic!("length 8: {e:#}"));
    healthy(&mut sim, &img, "length < 16");

    // length > 64 KiB (and u32::MAX): closed without waiting for (or allocating) the body.
    for len in [0x1_0001u32, u32::MAX] {
        let mut c = raw::tcp(sim.addr).expect("tcp");
        let mut h = raw::mux_packet(1, raw::MUX_PLIST, 1, b"");
        h[..4].copy_from_slice(&len.to_le_bytes());
        raw::write_lenient(&mut c, &h);
        raw::read_until_closed(&mut c, CLOSE_DEADLINE, 1 << 16)
            .unwrap_or_else(|e| panic!("length {len:#x}: {e:#}"));
        healthy(&mut sim, &img, &format!("length {len:#x}"));
    }

    // Truncated header, then close.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    raw::write_lenient(&mut c, &pkt[..7]);
    rejected_or_closed(&mut c, "truncated header");
    healthy(&mut sim, &img, "truncated header");

    // Truncated body, then close.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    let full = raw::mux_packet(1, raw::MUX_PLIST, 1, &plist_body);
    raw::write_lenient(&mut c, &full[..full.len() - 10]);
    rejected_or_closed(&mut c, "truncated body");
    healthy(&mut sim, &img, "truncated body");

    // Garbage plist: an error Result or a close, never a crash.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    raw::write_lenient(
        &mut c,
        &raw::mux_packet(
            1,
            raw::MUX_PLIST,
            3,
            b"<?xml this is not a plist \x00\xff\xfe",
        ),
    );
    let got = rejected_or_closed(&mut c, "garbage plist");
    if !got.is_empty() {
        let mut cur = std::io::Cursor::new(got);
        let r = read_mux_from(&mut cur).expect("a reply to garbage is a whole usbmuxd packet");
        assert_eq!(r.tag, 3, "tag echoed");
        assert_ne!(r.result_number().expect("a Result"), 0, "garbage accepted?");
    }
    healthy(&mut sim, &img, "garbage plist");

    // A plist that is not a dict / has no MessageType.
    for body in [
        raw::xml(&dict(&[("NoMessageType", s("x"))])),
        b"<?xml version=\"1.0\"?><plist version=\"1.0\"><array><integer>1</integer></array></plist>".to_vec(),
        b"bplist00\xff\xff\xff".to_vec(),
    ] {
        let mut c = raw::tcp(sim.addr).expect("tcp");
        raw::write_lenient(&mut c, &raw::mux_packet(1, raw::MUX_PLIST, 4, &body));
        rejected_or_closed(&mut c, "plist without MessageType");
        healthy(&mut sim, &img, "plist without MessageType");
    }

    // Binary protocol v0 (optional in the spec; ferry-sim implements it): LISTEN (3) →
    // binary RESULT 0 with the tag echoed, then a 268-byte DEVICE_ADD (4) for the phone.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    raw::write_lenient(&mut c, &raw::mux_packet(0, 3, 9, b""));
    let r = raw::read_mux(&mut c).unwrap_or_else(|e| {
        panic!(
            "binary v0 Listen must be answered: {e:#}\n{}",
            sim.describe()
        )
    });
    assert_eq!(
        (r.version, r.message, r.tag),
        (0, raw::MUX_RESULT, 9),
        "{r:?}"
    );
    assert_eq!(r.payload, 0u32.to_le_bytes(), "{r:?}");
    let add = raw::read_mux(&mut c).expect("binary DEVICE_ADD");
    assert_eq!((add.version, add.message, add.tag), (0, 4, 0), "{add:?}");
    assert_eq!(add.payload.len(), 268, "packed DEVICE_ADD payload");
    let serial: Vec<u8> = add.payload[6..262]
        .iter()
        .copied()
        .take_while(|b| *b != 0)
        .collect();
    let serial = String::from_utf8_lossy(&serial).replace('-', "");
    assert_eq!(serial, UDID.replace('-', ""), "DEVICE_ADD serial");
    let device_id = u32::from_le_bytes([
        add.payload[0],
        add.payload[1],
        add.payload[2],
        add.payload[3],
    ]);
    drop(c);
    // Binary CONNECT (2): u32 device id, u16 port in network order → RESULT 0, then a pipe.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    let mut payload = device_id.to_le_bytes().to_vec();
    payload.extend_from_slice(&62078u16.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    raw::write_lenient(&mut c, &raw::mux_packet(0, 2, 10, &payload));
    let r = raw::read_mux(&mut c).expect("binary CONNECT result");
    assert_eq!(
        (r.version, r.message, r.tag),
        (0, raw::MUX_RESULT, 10),
        "{r:?}"
    );
    assert_eq!(r.payload, 0u32.to_le_bytes(), "{r:?}");
    let q = raw::ld_request(&mut c, &dict(&[("Request", s("QueryType"))]))
        .expect("lockdown over a binary-protocol Connect");
    assert_eq!(
        q.get("Type").and_then(plist::Value::as_string),
        Some("com.apple.mobile.lockdown")
    );
    drop(c);
    // Binary CONNECT to a bogus device → a non-zero binary RESULT; short binary payload →
    // error or close.
    let mut c = raw::tcp(sim.addr).expect("tcp");
    let mut payload = 9999u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&62078u16.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    raw::write_lenient(&mut c, &raw::mux_packet(0, 2, 11, &payload));
    let r = raw::read_mux(&mut c).expect("binary CONNECT result");
    assert_eq!(
        (r.version, r.message, r.tag),
        (0, raw::MUX_RESULT, 11),
        "{r:?}"
    );
    assert_eq!(r.payload, 2u32.to_le_bytes(), "BADDEV: {r:?}");
    drop(c);
    let mut c = raw::tcp(sim.addr).expect("tcp");
    raw::write_lenient(&mut c, &raw::mux_packet(0, 2, 12, &[1, 0]));
    rejected_or_closed(&mut c, "binary CONNECT with a 2-byte payload");
    let mut c = raw::tcp(sim.addr).expect("tcp");
    raw::write_lenient(&mut c, &raw::mux_packet(0, 99, 13, b"zz"));
    rejected_or_closed(&mut c, "binary unknown message");
    healthy(&mut sim, &img, "binary v0");

    // Unknown MessageType: BADCOMMAND, and the connection stays usable.
    let mut m = Mux::connect(sim.addr).expect("mux");
    let r = m
        .request(11, &dict(&[("MessageType", s("\u{1F4F1}Bogus"))]))
        .expect("reply to unknown MessageType");
    assert_eq!(r.result_number().expect("Result"), 1);
    drop(m);

    // A command on a Listen connection → BADCOMMAND (then closed), notifications unaffected.
    let mut m = Mux::connect(sim.addr).expect("mux");
    m.request(12, &dict(&[("MessageType", s("Listen"))]))
        .expect("Listen");
    let _attached = raw::read_mux(&mut m.stream).expect("Attached");
    raw::write_lenient(
        &mut m.stream,
        &raw::mux_packet(1, raw::MUX_PLIST, 13, &plist_body),
    );
    rejected_or_closed(&mut m.stream, "command on a Listen connection");
    healthy(&mut sim, &img, "command on Listen connection");
    sim.stop();
}

fn read_mux_from(cur: &mut std::io::Cursor<Vec<u8>>) -> anyhow::Result<raw::MuxReply> {
    use std::io::Read;
    let mut h = [0u8; 16];
    cur.read_exact(&mut h)?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    anyhow::ensure!(len >= 16, "reply length {len}");
    let mut payload = vec![0u8; len - 16];
    cur.read_exact(&mut payload)?;
    Ok(raw::MuxReply {
        version: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        message: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        tag: u32::from_le_bytes([h[12], h[13], h[14], h[15]]),
        payload,
    })
}

#[test]
fn lockdown_malformed_frames() {
    let img = PhoneImage::standard();
    let mut sim = Sim::start(SimOpts::phone(img.root()));

    // Huge big-endian length: rejected without allocating 4 GiB or waiting for it.
    let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
    raw::write_lenient(&mut c, &0xFFFF_FFF0u32.to_be_bytes());
    raw::write_lenient(&mut c, b"<?xml");
    rejected_or_closed(&mut c, "lockdown huge length");
    healthy(&mut sim, &img, "lockdown huge length");

    // Garbage plist body: an Error reply or a close.
    let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
    raw::write_lenient(&mut c, &raw::ld_frame(b"\x00\x01garbage garbage \xff\xfe"));
    rejected_or_closed(&mut c, "lockdown garbage plist");
    healthy(&mut sim, &img, "lockdown garbage plist");

    // Valid plist that is not a request (no Request key / not a dict / binary nonsense).
    for body in [
        raw::xml(&dict(&[("Label", s("x"))])),
        b"<?xml version=\"1.0\"?><plist version=\"1.0\"><string>hi</string></plist>".to_vec(),
        b"bplist00\x00\x00\x00".to_vec(),
    ] {
        let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
        raw::write_lenient(&mut c, &raw::ld_frame(&body));
        rejected_or_closed(&mut c, "lockdown non-request plist");
        healthy(&mut sim, &img, "lockdown non-request plist");
    }

    // Truncated frame, then close.
    let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
    let frame = raw::ld_frame(&raw::xml(&dict(&[("Request", s("QueryType"))])));
    raw::write_lenient(&mut c, &frame[..frame.len() / 2]);
    rejected_or_closed(&mut c, "lockdown truncated frame");
    healthy(&mut sim, &img, "lockdown truncated frame");

    // Garbage where a TLS ClientHello should follow StartSession (unknown HostID first).
    let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
    let r = raw::ld_request(
        &mut c,
        &dict(&[
            ("Request", s("StartSession")),
            ("HostID", s("00000000-0000-0000-0000-000000000000")),
            ("SystemBUID", s("00000000-0000-0000-0000-000000000000")),
        ]),
    )
    .expect("StartSession reply");
    assert_eq!(
        r.get("Error").and_then(plist::Value::as_string),
        Some("InvalidHostID"),
        "{r:?}"
    );
    drop(c);

    // Pair with a nonsense PairRecord: an error, not a crash.
    let mut c = raw::lockdown(sim.addr, UDID).expect("lockdown");
    let mut rec = plist::Dictionary::new();
    rec.insert("HostID".into(), s("X"));
    rec.insert(
        "DeviceCertificate".into(),
        plist::Value::Data(b"not a cert".to_vec()),
    );
    rec.insert("HostCertificate".into(), plist::Value::Data(vec![0xff; 10]));
    rec.insert("RootCertificate".into(), plist::Value::Data(vec![]));
    let r = raw::ld_request(
        &mut c,
        &dict(&[
            ("Request", s("Pair")),
            ("PairRecord", plist::Value::Dictionary(rec)),
            ("ProtocolVersion", s("2")),
        ]),
    );
    if let Ok(r) = r {
        assert!(r.get("Error").is_some(), "bogus Pair accepted: {r:?}");
    }
    drop(c);
    healthy(&mut sim, &img, "bogus Pair");
    sim.stop();
}

#[test]
fn afc_malformed_packets_and_huge_reads() {
    let img = PhoneImage::hostile();
    let mut sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = RawAfc::start(sim.addr, UDID, true);

    let afc_ok = |afc: &mut RawAfc, sim: &mut Sim, after: &str| {
        sim.assert_running();
        let mut c = afc.connect();
        let r = raw::afc_request(&mut c, 1, afc_op::GET_DEVINFO, b"").unwrap_or_else(|e| {
            panic!("after {after}: fresh AFC fails: {e:#}\n{}", sim.describe())
        });
        assert!(r.data().is_ok(), "after {after}: {r:?}");
        healthy(sim, &img, after);
    };

    // Bad magic.
    let mut c = afc.connect();
    let n = 40u64;
    raw::write_lenient(
        &mut c,
        &raw::afc_packet_raw(b"XXXXXXXX", n, n, 1, afc_op::GET_DEVINFO, b""),
    );
    rejected_or_closed(&mut c, "AFC bad magic");
    afc_ok(&mut afc, &mut sim, "AFC bad magic");

    // entire_length < this_length; this_length < 40; entire < 40; absurd entire_length.
    for (entire, this, what) in [
        (50u64, 60u64, "entire < this"),
        (40, 20, "this < 40"),
        (10, 10, "entire < 40"),
        (u64::MAX, 40, "entire = u64::MAX"),
        (1 << 62, 1 << 61, "this = 2^61"),
    ] {
        let mut c = afc.connect();
        raw::write_lenient(
            &mut c,
            &raw::afc_packet_raw(AFC_MAGIC, entire, this, 1, afc_op::READ_DIR, b"/DCIM\0"),
        );
        rejected_or_closed(&mut c, what);
        afc_ok(&mut afc, &mut sim, what);
    }

    // Unknown opcode: a STATUS error with packet_num echoed; the connection goes on.
    let mut c = afc.connect();
    let r = raw::afc_request(&mut c, 5, 0x99, b"whatever").expect("reply to unknown opcode");
    let st = r.status().expect("STATUS");
    assert!(st != 0, "unknown opcode accepted");
    let r = raw::afc_request(&mut c, 6, afc_op::GET_DEVINFO, b"").expect("AFC after bad opcode");
    assert!(r.data().is_ok(), "{r:?}");
    // Response-only opcodes sent as requests.
    for op in [
        afc_op::STATUS,
        afc_op::DATA,
        afc_op::FILE_OPEN_RES,
        afc_op::FILE_TELL_RES,
    ] {
        let r = raw::afc_request(&mut c, 7, op, &[0u8; 8]).expect("reply to response opcode");
        assert_ne!(r.status().expect("STATUS"), 0, "op {op:#x}");
    }
    // Operations with too-short arguments.
    for op in [
        afc_op::FILE_READ,
        afc_op::FILE_SEEK,
        afc_op::FILE_TELL,
        afc_op::FILE_CLOSE,
        afc_op::FILE_OPEN,
    ] {
        let r = raw::afc_request(&mut c, 8, op, &[1, 2, 3]).expect("reply to short args");
        assert_ne!(
            r.status().expect("STATUS"),
            0,
            "op {op:#x} with 3 argument bytes"
        );
    }

    // FILE_READ of 2^63 bytes on a valid handle: the rest of the file, or an error.
    let mut open = 1u64.to_le_bytes().to_vec();
    open.extend_from_slice(format!("/{SMALL_JPEG}").as_bytes());
    let r = raw::afc_request(&mut c, 9, afc_op::FILE_OPEN, &open).expect("FILE_OPEN");
    let h = r.value(afc_op::FILE_OPEN_RES).expect("handle");
    let mut req = h.to_le_bytes().to_vec();
    req.extend_from_slice(&(1u64 << 63).to_le_bytes());
    let r = raw::afc_request(&mut c, 10, afc_op::FILE_READ, &req).expect("reply to 2^63 read");
    match r.data() {
        Ok(d) => assert_eq!(
            d,
            img.read(SMALL_JPEG).as_slice(),
            "min(requested, remaining)"
        ),
        Err(_) => assert_ne!(r.status().expect("STATUS or DATA"), 0),
    }
    // FILE_READ on a handle never opened: INVALID_ARG (7).
    let mut bad = 0xdead_beefu64.to_le_bytes().to_vec();
    bad.extend_from_slice(&4096u64.to_le_bytes());
    let r = raw::afc_request(&mut c, 11, afc_op::FILE_READ, &bad).expect("reply to bad handle");
    assert_eq!(r.status().expect("STATUS"), 7);
    // Seek to a negative position.
    let mut seek = h.to_le_bytes().to_vec();
    seek.extend_from_slice(&0u64.to_le_bytes());
    seek.extend_from_slice(&(-5i64).to_le_bytes());
    let r = raw::afc_request(&mut c, 12, afc_op::FILE_SEEK, &seek).expect("reply to bad seek");
    assert_ne!(r.status().expect("STATUS"), 0, "seek to -5 accepted");
    // Bad whence.
    let mut seek = h.to_le_bytes().to_vec();
    seek.extend_from_slice(&77u64.to_le_bytes());
    seek.extend_from_slice(&0i64.to_le_bytes());
    let r = raw::afc_request(&mut c, 13, afc_op::FILE_SEEK, &seek).expect("reply to bad whence");
    assert_ne!(r.status().expect("STATUS"), 0, "whence 77 accepted");
    drop(c);
    afc_ok(&mut afc, &mut sim, "AFC bad requests");

    // Truncated packet then close, and a header promising a huge payload that never comes.
    let mut c = afc.connect();
    let pkt = raw::afc_packet(1, afc_op::READ_DIR, b"/DCIM\0");
    raw::write_lenient(&mut c, &pkt[..20]);
    rejected_or_closed(&mut c, "AFC truncated header");
    let mut c = afc.connect();
    raw::write_lenient(
        &mut c,
        &raw::afc_packet_raw(
            AFC_MAGIC,
            40 + (1 << 30),
            48,
            1,
            afc_op::FILE_READ,
            &[0u8; 8],
        ),
    );
    raw::write_lenient(&mut c, &[0u8; 1000]);
    rejected_or_closed(&mut c, "AFC 1 GiB payload promised");
    afc_ok(&mut afc, &mut sim, "AFC truncated packets");
    sim.stop();
}

#[test]
fn afc_paths_cannot_escape_media() {
    let img = PhoneImage::hostile();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    let secret_name = "secret.txt";
    let tricks: Vec<String> = vec![
        format!("/../{secret_name}"),
        format!("../{secret_name}"),
        format!("/DCIM/../../{secret_name}"),
        format!("//../{secret_name}"),
        format!("/./../{secret_name}"),
        "/../device.toml".into(),
        "/../../../../../../etc/passwd".into(),
        format!("/{ESCAPE_SYMLINK}"),
        "/DCIM/escape_abs.txt".into(),
        format!("{}/{secret_name}", img.root().display()),
    ];
    let mut num = 1;
    for path in &tricks {
        // Open must fail (or, if a handle is given, reading must not yield host bytes).
        let mut open = 1u64.to_le_bytes().to_vec();
        open.extend_from_slice(path.as_bytes());
        open.push(0);
        let r = raw::afc_request(&mut c, num, afc_op::FILE_OPEN, &open).expect("FILE_OPEN");
        num += 1;
        if let Ok(h) = r.value(afc_op::FILE_OPEN_RES) {
            let mut req = h.to_le_bytes().to_vec();
            req.extend_from_slice(&(1u64 << 20).to_le_bytes());
            let r = raw::afc_request(&mut c, num, afc_op::FILE_READ, &req).expect("FILE_READ");
            num += 1;
            let data = r.data().map(<[u8]>::to_vec).unwrap_or_default();
            assert!(
                data != SECRET
                    && !String::from_utf8_lossy(&data).contains("root:")
                    && !String::from_utf8_lossy(&data).contains("udid ="),
                "{path}: host file served through AFC: {:?}",
                String::from_utf8_lossy(&data)
            );
            let _ = raw::afc_request(&mut c, num, afc_op::FILE_CLOSE, &h.to_le_bytes());
            num += 1;
        } else {
            assert_ne!(r.status().expect("STATUS"), 0, "{path}");
        }
        // READ_DIR of the parent of Media must not list the host directory.
        let r = raw::afc_request(&mut c, num, afc_op::READ_DIR, b"/..\0").expect("READ_DIR /..");
        num += 1;
        if let Ok(d) = r.data() {
            let names = String::from_utf8_lossy(d);
            assert!(
                !names.contains("device.toml") && !names.contains(secret_name),
                "READ_DIR /.. lists the host dir: {names:?}"
            );
        }
    }
    drop(c);
    drop(afc);
    sim.stop();
}

#[test]
fn afc_link_target_does_not_leak_host_paths() {
    // An image symlink with an absolute host target may be listed and stat'ed, but the
    // LinkTarget sent to the client must not reveal the host's filesystem layout.
    let img = PhoneImage::hostile();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let mut afc = RawAfc::start(sim.addr, UDID, true);
    let mut c = afc.connect();
    let r = raw::afc_request(&mut c, 1, afc_op::GET_FILE_INFO, b"/DCIM/escape_abs.txt\0")
        .expect("GET_FILE_INFO");
    if let Ok(kv) = r.kv() {
        let host = img.root().display().to_string();
        assert!(
            !kv.iter().any(|(_, v)| v.contains(&host)),
            "GET_FILE_INFO leaks the host path {host}: {kv:?}"
        );
    }
    drop(c);
    drop(afc);
    sim.stop();
}

/// Random bytes at each layer; after every case the simulator is alive, and at the end a
/// fresh client works. Bounded (CASES per layer, little shrinking) to keep CI fast.
const CASES: u32 = 24;

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: CASES,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..Config::default()
    })
}

fn header_biased_bytes(header_len: usize) -> impl Strategy<Value = Vec<u8>> {
    // Half the cases start with a plausible header so the fuzzing reaches the body parsers.
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..2048),
        (
            proptest::collection::vec(any::<u8>(), header_len..header_len + 1),
            proptest::collection::vec(any::<u8>(), 0..1024)
        )
            .prop_map(|(mut h, b)| {
                h.extend(b);
                h
            }),
    ]
}

fn throw(c: &mut TcpStream, bytes: &[u8]) -> Result<(), TestCaseError> {
    let _ = c.write_all(bytes);
    raw::shutdown_write(c);
    raw::read_until_closed(c, CLOSE_DEADLINE, 64 << 20)
        .map(|_| ())
        .map_err(|e| TestCaseError::fail(format!("{e:#}")))
}

#[test]
fn proptest_random_bytes_at_each_layer() {
    let img = PhoneImage::standard();
    let mut sim = Sim::start(SimOpts::phone(img.root()));
    let addr = sim.addr;

    // usbmuxd: random frames with a valid-looking length/version some of the time.
    let strat = header_biased_bytes(16).prop_map(|mut b| {
        if b.len() >= 16 && b[0] & 1 == 0 {
            let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
            b[..4].copy_from_slice(&len.to_le_bytes());
            b[4..8].copy_from_slice(&1u32.to_le_bytes());
            b[8..12].copy_from_slice(&8u32.to_le_bytes());
        }
        b
    });
    let res = runner().run(&strat, |bytes| {
        let mut c = raw::tcp(addr).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        throw(&mut c, &bytes)
    });
    if let Err(e) = res {
        panic!("usbmuxd layer: {e}\n{}", sim.describe());
    }
    healthy(&mut sim, &img, "usbmuxd fuzzing");

    // lockdownd: random frames, sometimes with a consistent BE length prefix.
    let strat = header_biased_bytes(4).prop_map(|mut b| {
        if b.len() >= 4 && b[0] & 1 == 0 {
            let len = u32::try_from(b.len() - 4).unwrap_or(u32::MAX);
            b[..4].copy_from_slice(&len.to_be_bytes());
        }
        b
    });
    let res = runner().run(&strat, |bytes| {
        let mut c = raw::lockdown(addr, UDID).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
        throw(&mut c, &bytes)
    });
    if let Err(e) = res {
        panic!("lockdown layer: {e}\n{}", sim.describe());
    }
    healthy(&mut sim, &img, "lockdown fuzzing");

    // AFC: random packets, sometimes with the right magic and consistent lengths.
    let mut afc = RawAfc::start(addr, UDID, true);
    let strat = header_biased_bytes(40).prop_map(|mut b| {
        if b.len() >= 40 && b[0] & 1 == 0 {
            let n = b.len() as u64;
            b[..8].copy_from_slice(AFC_MAGIC);
            b[8..16].copy_from_slice(&n.to_le_bytes());
            let this = n.min(40 + u64::from(b[1]));
            b[16..24].copy_from_slice(&this.to_le_bytes());
            // Keep the opcode small so it hits real handlers.
            let op = u64::from(b[2] % 0x2a);
            b[32..40].copy_from_slice(&op.to_le_bytes());
        }
        b
    });
    let afc_cell = std::cell::RefCell::new(&mut afc);
    let res = runner().run(&strat, |bytes| {
        let mut c = afc_cell.borrow_mut().connect();
        throw(&mut c, &bytes)
    });
    if let Err(e) = res {
        panic!("AFC layer: {e}\n{}", sim.describe());
    }
    let mut c = afc.connect();
    let r = raw::afc_request(&mut c, 1, afc_op::GET_DEVINFO, b"").expect("AFC after fuzzing");
    assert!(r.data().is_ok(), "{r:?}");
    drop(c);
    drop(afc);
    healthy(&mut sim, &img, "AFC fuzzing");
    sim.stop();
}
