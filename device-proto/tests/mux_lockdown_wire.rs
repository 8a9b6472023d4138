//! usbmuxd and lockdownd on the wire, against an in-process simulator: header layout, tags
//! echoed, Result codes, the Connect port byte order, Listen with Attached/Detached, the binary
//! protocol, pre-session lockdown values, and random garbage thrown at each layer.

mod common;

use std::net::SocketAddr;

use ferry_sim::mux::codec;
use ferry_sim::{PhoneConfig, SimConfig, Simulator};
use plist::{Dictionary, Value};
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn sim(dir: &std::path::Path) -> Simulator {
    Simulator::start(SimConfig {
        phones: vec![PhoneConfig::new(dir)],
        listen: "127.0.0.1:0".parse().expect("addr"),
        state: None,
    })
    .await
    .expect("simulator starts")
}

fn request(tag: u32, msg_type: &str, extra: &[(&str, Value)]) -> Vec<u8> {
    let mut d = Dictionary::new();
    d.insert("MessageType".into(), Value::String(msg_type.into()));
    for (k, v) in extra {
        d.insert((*k).into(), v.clone());
    }
    codec::plist_packet(tag, &Value::Dictionary(d))
}

async fn read_packet(s: &mut TcpStream) -> Option<codec::Packet> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).await.ok()?;
    let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize;
    let mut rest = vec![0u8; len - 16];
    s.read_exact(&mut rest).await.ok()?;
    let mut all = h.to_vec();
    all.extend(rest);
    codec::decode(&all).ok()?.map(|(p, _)| p)
}

fn dict(p: &codec::Packet) -> Dictionary {
    match Value::from_reader(std::io::Cursor::new(&p.payload)).expect("plist") {
        Value::Dictionary(d) => d,
        other => panic!("not a dict: {other:?}"),
    }
}

async fn call(addr: SocketAddr, tag: u32, t: &str, extra: &[(&str, Value)]) -> Dictionary {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&request(tag, t, extra)).await.expect("write");
    let p = read_packet(&mut s).await.expect("reply");
    assert_eq!(
        (p.version, p.message, p.tag),
        (1, 8, tag),
        "version 1, PLIST, tag echoed"
    );
    assert!(p.payload.starts_with(b"<?xml"), "XML replies only");
    dict(&p)
}

fn num(d: &Dictionary) -> Option<u64> {
    d.get("Number").and_then(Value::as_unsigned_integer)
}

#[tokio::test]
async fn list_devices_and_results() {
    let t = tempfile::tempdir().expect("tempdir");
    common::make_image(t.path(), common::UDID);
    let sim = sim(t.path()).await;
    let d = call(sim.addr(), 7, "ListDevices", &[]).await;
    let list = d
        .get("DeviceList")
        .and_then(Value::as_array)
        .expect("DeviceList");
    assert_eq!(list.len(), 1);
    let e = list[0].as_dictionary().expect("entry");
    assert_eq!(
        e.get("MessageType").and_then(Value::as_string),
        Some("Attached")
    );
    assert_eq!(
        e.get("DeviceID").and_then(Value::as_unsigned_integer),
        Some(1)
    );
    let props = e
        .get("Properties")
        .and_then(Value::as_dictionary)
        .expect("Properties");
    assert_eq!(
        props.get("SerialNumber").and_then(Value::as_string),
        Some(common::UDID)
    );
    assert_eq!(
        props.get("ConnectionType").and_then(Value::as_string),
        Some("USB")
    );
    assert_eq!(
        props.get("DeviceID").and_then(Value::as_unsigned_integer),
        Some(1)
    );
    assert_eq!(
        props.get("ProductID").and_then(Value::as_unsigned_integer),
        Some(0x12a8)
    );
    assert!(props
        .get("ConnectionSpeed")
        .and_then(Value::as_unsigned_integer)
        .is_some());
    assert!(props.get("LocationID").is_some());
    assert!(
        d.get("MessageType").is_none(),
        "data replies carry no MessageType"
    );

    let buid = call(sim.addr(), 1, "ReadBUID", &[]).await;
    let buid = buid
        .get("BUID")
        .and_then(Value::as_string)
        .expect("BUID")
        .to_string();
    assert_eq!(buid.len(), 36);
    let rec = call(
        sim.addr(),
        2,
        "ReadPairRecord",
        &[("PairRecordID", Value::String(common::UDID.into()))],
    )
    .await;
    assert_eq!(num(&rec), Some(2), "no record: ENOENT");
    assert_eq!(
        num(&call(sim.addr(), 3, "ReadPairRecord", &[]).await),
        Some(22)
    );
    let data = b"bplist00-some-record".to_vec();
    let r = call(
        sim.addr(),
        4,
        "SavePairRecord",
        &[
            ("PairRecordID", Value::String(common::UDID.into())),
            ("PairRecordData", Value::Data(data.clone())),
        ],
    )
    .await;
    assert_eq!(num(&r), Some(0));
    let rec = call(
        sim.addr(),
        5,
        "ReadPairRecord",
        &[("PairRecordID", Value::String(common::UDID.into()))],
    )
    .await;
    assert_eq!(
        rec.get("PairRecordData").and_then(Value::as_data),
        Some(&data[..]),
        "byte for byte"
    );
    let r = call(
        sim.addr(),
        6,
        "DeletePairRecord",
        &[("PairRecordID", Value::String(common::UDID.into()))],
    )
    .await;
    assert_eq!(num(&r), Some(0));
    assert_eq!(
        num(&call(sim.addr(), 8, "Bogus", &[]).await),
        Some(1),
        "BADCOMMAND"
    );
    // Connect: unknown device, missing port, refused port.
    let r = call(
        sim.addr(),
        9,
        "Connect",
        &[
            ("DeviceID", Value::Integer(99.into())),
            ("PortNumber", Value::Integer(32498.into())),
        ],
    )
    .await;
    assert_eq!(num(&r), Some(2), "BADDEV");
    let r = call(
        sim.addr(),
        10,
        "Connect",
        &[("DeviceID", Value::Integer(1.into()))],
    )
    .await;
    assert_eq!(num(&r), Some(1), "BADCOMMAND without PortNumber");
    // 62078 sent without the byte swap is port 32498: nothing listens there.
    let r = call(
        sim.addr(),
        11,
        "Connect",
        &[
            ("DeviceID", Value::Integer(1.into())),
            ("PortNumber", Value::Integer(62078.into())),
        ],
    )
    .await;
    assert_eq!(num(&r), Some(3), "CONNREFUSED");
    sim.shutdown().await;
}

async fn lockdown(addr: SocketAddr, device_id: u64) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&request(
        3,
        "Connect",
        &[
            ("DeviceID", Value::Integer(device_id.into())),
            ("PortNumber", Value::Integer(32498.into())),
        ],
    ))
    .await
    .expect("write");
    let p = read_packet(&mut s).await.expect("reply");
    assert_eq!(num(&dict(&p)), Some(0));
    s
}

async fn ld_call(s: &mut TcpStream, d: Dictionary) -> Option<Dictionary> {
    let mut body = Vec::new();
    Value::Dictionary(d).to_writer_xml(&mut body).expect("xml");
    let mut f = (body.len() as u32).to_be_bytes().to_vec();
    f.extend(body);
    s.write_all(&f).await.ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.ok()?;
    let mut b = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut b).await.ok()?;
    assert!(b.starts_with(b"<?xml"));
    match Value::from_reader(std::io::Cursor::new(&b)).ok()? {
        Value::Dictionary(d) => Some(d),
        _ => None,
    }
}

fn ld_req(verb: &str, extra: &[(&str, &str)]) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Request".into(), Value::String(verb.into()));
    for (k, v) in extra {
        d.insert((*k).into(), Value::String((*v).into()));
    }
    d
}

#[tokio::test]
async fn lockdown_before_a_session() {
    let t = tempfile::tempdir().expect("tempdir");
    common::make_image(t.path(), common::UDID);
    let sim = sim(t.path()).await;
    let mut s = lockdown(sim.addr(), 1).await;
    let r = ld_call(&mut s, ld_req("QueryType", &[]))
        .await
        .expect("reply");
    assert_eq!(
        r.get("Request").and_then(Value::as_string),
        Some("QueryType")
    );
    assert_eq!(
        r.get("Type").and_then(Value::as_string),
        Some("com.apple.mobile.lockdown")
    );
    let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "ProductVersion")]))
        .await
        .expect("reply");
    assert_eq!(r.get("Value").and_then(Value::as_string), Some("17.6.1"));
    let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "DevicePublicKey")]))
        .await
        .expect("reply");
    let pem = r.get("Value").and_then(Value::as_data).expect("data");
    assert!(pem.starts_with(b"-----BEGIN RSA PUBLIC KEY-----"), "PKCS#1");
    let r = ld_call(&mut s, ld_req("GetValue", &[]))
        .await
        .expect("reply");
    let all = r
        .get("Value")
        .and_then(Value::as_dictionary)
        .expect("full dict");
    for k in [
        "ProductVersion",
        "DeviceName",
        "WiFiAddress",
        "UniqueDeviceID",
        "ProductType",
        "BuildVersion",
        "DeviceClass",
        "UniqueChipID",
    ] {
        assert!(all.contains_key(k), "pre-session dict lacks {k}");
    }
    assert!(
        !all.contains_key("SerialNumber"),
        "private keys need a session"
    );
    let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "SerialNumber")]))
        .await
        .expect("reply");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("GetProhibited")
    );
    let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "NoSuchKey")]))
        .await
        .expect("reply");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("MissingValue")
    );
    let r = ld_call(
        &mut s,
        ld_req("StartService", &[("Service", "com.apple.afc")]),
    )
    .await
    .expect("reply");
    assert!(r.get("Error").is_some(), "no service without a session");
    let r = ld_call(
        &mut s,
        ld_req(
            "StartSession",
            &[("HostID", "UNKNOWN"), ("SystemBUID", "X")],
        ),
    )
    .await
    .expect("reply");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("InvalidHostID")
    );
    let r = ld_call(&mut s, ld_req("ValidatePair", &[]))
        .await
        .expect("reply");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("InvalidHostID")
    );
    let r = ld_call(&mut s, ld_req("Pair", &[])).await.expect("reply");
    assert_eq!(
        r.get("Error").and_then(Value::as_string),
        Some("InvalidPairRecord")
    );
    let r = ld_call(&mut s, ld_req("Frobnicate", &[]))
        .await
        .expect("reply");
    assert_eq!(
        r.get("Request").and_then(Value::as_string),
        Some("Frobnicate")
    );
    assert!(r.get("Error").is_some());
    sim.shutdown().await;
}

#[tokio::test]
async fn listen_sees_unplug_and_replug_and_pipes_close() {
    let t = tempfile::tempdir().expect("tempdir");
    common::make_image(t.path(), common::UDID);
    let sim = sim(t.path()).await;
    let mut l = TcpStream::connect(sim.addr()).await.expect("connect");
    l.write_all(&request(5, "Listen", &[]))
        .await
        .expect("write");
    let p = read_packet(&mut l).await.expect("result");
    assert_eq!((p.tag, num(&dict(&p))), (5, Some(0)));
    let p = read_packet(&mut l).await.expect("attached");
    assert_eq!(p.tag, 0, "notifications carry tag 0");
    assert_eq!(
        dict(&p).get("MessageType").and_then(Value::as_string),
        Some("Attached")
    );
    let mut pipe = lockdown(sim.addr(), 1).await;
    sim.unplug(None).await.expect("unplug");
    let p = read_packet(&mut l).await.expect("detached");
    let d = dict(&p);
    assert_eq!(
        d.get("MessageType").and_then(Value::as_string),
        Some("Detached")
    );
    assert_eq!(
        d.get("DeviceID").and_then(Value::as_unsigned_integer),
        Some(1)
    );
    let mut b = [0u8; 1];
    assert_eq!(
        pipe.read(&mut b).await.unwrap_or(0),
        0,
        "open pipes close on unplug"
    );
    let r = call(
        sim.addr(),
        1,
        "Connect",
        &[
            ("DeviceID", Value::Integer(1.into())),
            ("PortNumber", Value::Integer(32498.into())),
        ],
    )
    .await;
    assert_eq!(num(&r), Some(2), "BADDEV after unplug");
    let d = call(sim.addr(), 1, "ListDevices", &[]).await;
    assert_eq!(
        d.get("DeviceList").and_then(Value::as_array).map(Vec::len),
        Some(0)
    );
    let id = sim.replug(None).await.expect("replug");
    assert_eq!(id, 2, "a replug gets a new DeviceID");
    let d = dict(&read_packet(&mut l).await.expect("attached again"));
    assert_eq!(
        d.get("DeviceID").and_then(Value::as_unsigned_integer),
        Some(2)
    );
    // A command on a listening connection: BADCOMMAND, then closed.
    l.write_all(&request(9, "ListDevices", &[]))
        .await
        .expect("write");
    let p = read_packet(&mut l).await.expect("result");
    assert_eq!((p.tag, num(&dict(&p))), (9, Some(1)));
    assert_eq!(l.read(&mut b).await.unwrap_or(0), 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn binary_protocol_and_bad_versions() {
    let t = tempfile::tempdir().expect("tempdir");
    common::make_image(t.path(), common::UDID);
    let sim = sim(t.path()).await;
    // Binary Listen: RESULT 0 then a 268-byte DEVICE_ADD.
    let mut s = TcpStream::connect(sim.addr()).await.expect("connect");
    s.write_all(&codec::encode(0, codec::msg::LISTEN, 4, b""))
        .await
        .expect("write");
    let p = read_packet(&mut s).await.expect("result");
    assert_eq!(
        (p.version, p.message, p.tag, p.payload.clone()),
        (0, 1, 4, 0u32.to_le_bytes().to_vec())
    );
    let p = read_packet(&mut s).await.expect("device add");
    assert_eq!((p.message, p.payload.len()), (codec::msg::DEVICE_ADD, 268));
    // Binary Connect to lockdown (port in network byte order).
    let mut s = TcpStream::connect(sim.addr()).await.expect("connect");
    let mut payload = 1u32.to_le_bytes().to_vec();
    payload.extend_from_slice(&62078u16.to_be_bytes());
    payload.extend_from_slice(&[0, 0]);
    s.write_all(&codec::encode(0, codec::msg::CONNECT, 5, &payload))
        .await
        .expect("write");
    let p = read_packet(&mut s).await.expect("result");
    assert_eq!(p.payload, 0u32.to_le_bytes());
    let r = ld_call(&mut s, ld_req("QueryType", &[]))
        .await
        .expect("lockdown over binary connect");
    assert!(r.get("Type").is_some());
    // Version 7: BADVERSION.
    let mut s = TcpStream::connect(sim.addr()).await.expect("connect");
    s.write_all(&codec::encode(7, 8, 6, b""))
        .await
        .expect("write");
    let p = read_packet(&mut s).await.expect("result");
    assert_eq!((p.tag, p.payload.clone()), (6, 6u32.to_le_bytes().to_vec()));
    sim.shutdown().await;
}

async fn still_serving(addr: SocketAddr) {
    let d = call(addr, 42, "ListDevices", &[]).await;
    assert_eq!(
        d.get("DeviceList").and_then(Value::as_array).map(Vec::len),
        Some(1)
    );
    let mut s = lockdown(addr, 1).await;
    let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "ProductVersion")]))
        .await
        .expect("lockdown answers");
    assert_eq!(r.get("Value").and_then(Value::as_string), Some("17.6.1"));
}

/// Sends bytes, then reads whatever comes back until the server closes or goes quiet
/// (it must do one or the other: answer, or close; the read is bounded by the server's
/// close or by our shutdown of the write side).
async fn throw(mut s: TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes).await;
    let _ = s.shutdown().await;
    let mut sink = vec![0u8; 4096];
    while let Ok(n) = s.read(&mut sink).await {
        if n == 0 {
            break;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    /// Random bytes at usbmuxd, at lockdownd (after a real Connect) and at AFC (over a pipe):
    /// each connection gets an answer or is closed, and the simulator keeps serving others.
    #[test]
    fn garbage_at_every_layer_never_takes_the_simulator_down(
        raw in proptest::collection::vec(any::<u8>(), 0..600),
        len in any::<u32>(),
        afc in proptest::collection::vec(any::<u8>(), 40..200),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("rt");
        rt.block_on(async {
            let t = tempfile::tempdir().expect("tempdir");
            common::make_image(t.path(), common::UDID);
            let sim = sim(t.path()).await;
            // usbmuxd: raw garbage, and a plausible header with a random length.
            throw(TcpStream::connect(sim.addr()).await.expect("connect"), &raw).await;
            let mut hdr = codec::encode(1, 8, 1, &raw);
            hdr[0..4].copy_from_slice(&len.to_le_bytes());
            throw(TcpStream::connect(sim.addr()).await.expect("connect"), &hdr).await;
            // lockdownd: a random length prefix and body.
            let mut f = len.to_be_bytes().to_vec();
            f.extend_from_slice(&raw);
            throw(lockdown(sim.addr(), 1).await, &f).await;
            throw(lockdown(sim.addr(), 1).await, &raw).await;
            // AFC: a valid magic with random fields, then random bytes.
            let phone = common::phone(t.path());
            let (mut a, b) = tokio::io::duplex(1 << 16);
            let task = tokio::spawn(ferry_sim::afc::serve(phone, Box::new(b)));
            let mut p = b"CFA6LPAA".to_vec();
            p.extend_from_slice(&afc);
            let _ = a.write_all(&p).await;
            drop(a);
            task.await.expect("the AFC task ends without panicking");
            still_serving(sim.addr()).await;
            sim.shutdown().await;
        });
    }
}

#[tokio::test]
async fn several_phones_with_shared_state_dir() {
    let t = tempfile::tempdir().expect("tempdir");
    let a = t.path().join("a");
    let b = t.path().join("b");
    common::make_image(&a, common::UDID);
    common::make_image(&b, "00008101-000A1B2C3D4E5F60");
    let state = t.path().join("state");
    let sim = Simulator::start(SimConfig {
        phones: vec![PhoneConfig::new(&a), PhoneConfig::new(&b)],
        listen: "127.0.0.1:0".parse().expect("addr"),
        state: Some(state.clone()),
    })
    .await
    .expect("starts");
    let d = call(sim.addr(), 1, "ListDevices", &[]).await;
    let list = d.get("DeviceList").and_then(Value::as_array).expect("list");
    let mut seen: Vec<(u64, String)> = list
        .iter()
        .map(|e| {
            let e = e.as_dictionary().expect("entry");
            let id = e
                .get("DeviceID")
                .and_then(Value::as_unsigned_integer)
                .expect("id");
            let props = e
                .get("Properties")
                .and_then(Value::as_dictionary)
                .expect("props");
            let udid = props
                .get("SerialNumber")
                .and_then(Value::as_string)
                .expect("udid");
            (id, udid.to_string())
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (1, common::UDID.to_string()),
            (2, "00008101-000A1B2C3D4E5F60".to_string())
        ]
    );
    for (id, udid) in &seen {
        let mut s = lockdown(sim.addr(), *id).await;
        let r = ld_call(&mut s, ld_req("GetValue", &[("Key", "UniqueDeviceID")]))
            .await
            .expect("reply");
        assert_eq!(
            r.get("Value").and_then(Value::as_string),
            Some(udid.as_str())
        );
    }
    sim.shutdown().await;
    assert!(state.join("usbmuxd/SystemConfiguration.plist").is_file());
    assert!(state
        .join("devices")
        .join(common::UDID)
        .join("device-key.pem")
        .is_file());
    assert!(
        !a.join(".ferry-sim").exists(),
        "with --state nothing is written into the image"
    );
}
