//! Fuzzing ferry-sim's frame decoders (issue 12): usbmuxd (`mux::codec::decode`), lockdown
//! (`lockdown::decode`: `check_len` + `parse_body`) and AFC (`afc::packet::decode`:
//! `parse_header` + `arg_plan`), with arbitrary bytes and with streams of valid frames that
//! are mutated and then delivered split at arbitrary points.
//!
//! Properties: a decoder returns a frame, "need more bytes" or a typed error — never panics;
//! never claims more bytes than it was given; "need more" only while the frame is really
//! incomplete; the frames decoded from a split stream are exactly those decoded from the
//! whole stream (so no decision depends on how reads happen to be cut); length fields are
//! bounded before anything is allocated (usbmuxd 64 KiB, lockdown 1 MiB, AFC arguments
//! 64 KiB, however large the claimed length).
//!
//! Cases: 1 500 per property by default (CI); `FERRY_FUZZ_CASES=N` for a long run.

use ferry_sim::afc::packet::{self, HeaderError, MAX_ARGS};
use ferry_sim::lockdown;
use ferry_sim::mux::codec;
use plist::{Dictionary, Value};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases(default: u32) -> u32 {
    std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(1500),
        failure_persistence: None,
        ..Config::default()
    })
}

/// A decoder step over a buffer: `Ok(Some((summary, consumed)))`, `Ok(None)` (need more) or
/// `Err(description)`.
type Step = fn(&[u8]) -> Result<Option<(String, usize)>, String>;

fn mux_step(b: &[u8]) -> Result<Option<(String, usize)>, String> {
    match codec::decode(b) {
        Ok(Some((p, n))) => {
            assert!(p.payload.len() + codec::HEADER_LEN == n && n <= b.len());
            assert!(n as u32 <= codec::MAX_PACKET);
            // What the server does next with a plist packet.
            let parsed = codec::plist_request(&p.payload).map(|d| d.len());
            Ok(Some((format!("{p:?} {parsed:?}"), n)))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn lockdown_step(b: &[u8]) -> Result<Option<(String, usize)>, String> {
    match lockdown::decode(b) {
        Ok(Some((d, n))) => {
            assert!(n >= 4 && n <= b.len() && n - 4 <= lockdown::MAX_BODY as usize);
            Ok(Some((format!("{d:?}"), n)))
        }
        Ok(None) => Ok(None),
        // A body that is not a plist dict ends the connection just like a bad length.
        Err(e) => Err(e.to_string()),
    }
}

fn afc_step(b: &[u8]) -> Result<Option<(String, usize)>, String> {
    match packet::decode(b) {
        Ok(Some(d)) => {
            assert!(d.args.len() as u64 <= MAX_ARGS);
            assert_eq!(d.consumed, packet::HEADER_LEN + d.args.len());
            assert!(d.header.this_len >= 40 && d.header.entire_len >= d.header.this_len);
            assert_eq!(
                d.consumed as u64 - 40 + d.skip,
                d.header.entire_len - 40,
                "every byte is either kept or skipped"
            );
            if d.oversized {
                assert!(d.args.is_empty());
            }
            let _ = packet::path_arg(d.args);
            let _ = packet::arg_u64(d.args, 0);
            let _ = packet::arg_u64(d.args, 1);
            // The connection drains `skip` more bytes as they arrive, without buffering them.
            let skip = usize::try_from(d.skip).unwrap_or(usize::MAX);
            let used = d.consumed.saturating_add(skip);
            Ok(Some((
                format!("{:?} {:?} {}", d.header, d.args, d.oversized),
                used,
            )))
        }
        Ok(None) => {
            assert!(
                b.len() < packet::HEADER_LEN || b.len() < packet::HEADER_LEN + MAX_ARGS as usize,
                "need-more with a full header and 64 KiB of arguments present"
            );
            Ok(None)
        }
        Err(e) => {
            let _: HeaderError = e.clone();
            Err(e.to_string())
        }
    }
}

/// Decodes everything in `whole` at once, as a server would with all bytes buffered. A
/// frame may claim more bytes than are left (AFC bulk data the connection drains): the
/// stream then ends inside it.
fn decode_all(step: Step, whole: &[u8]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match step(&whole[at..]) {
            Ok(Some((s, n))) => {
                assert!(n > 0, "a frame of 0 bytes");
                out.push(s);
                at = at.saturating_add(n);
                if at >= whole.len() {
                    return (out, None);
                }
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// Feeds `whole` in the given chunk sizes, decoding after every read as the servers do, and
/// discarding bytes a frame said to drain as they arrive.
fn decode_split(step: Step, whole: &[u8], cuts: &[usize]) -> (Vec<String>, Option<String>) {
    let mut out = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut pending = 0usize;
    let mut fed = 0;
    let mut cut = cuts.iter().cycle();
    while fed < whole.len() {
        let n = (*cut.next().unwrap_or(&1)).clamp(1, whole.len() - fed);
        let mut chunk = &whole[fed..fed + n];
        fed += n;
        let drop_now = pending.min(chunk.len());
        pending -= drop_now;
        chunk = &chunk[drop_now..];
        buf.extend_from_slice(chunk);
        while !buf.is_empty() || chunk.is_empty() {
            match step(&buf) {
                Ok(Some((s, n))) => {
                    out.push(s);
                    if n <= buf.len() {
                        buf.drain(..n);
                    } else {
                        pending = n - buf.len();
                        buf.clear();
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fn request_dict() -> impl Strategy<Value = Dictionary> {
    let value = prop_oneof![
        any::<String>().prop_map(Value::String),
        any::<u64>().prop_map(|v| Value::Integer(v.into())),
        any::<i64>().prop_map(|v| Value::Integer(v.into())),
        any::<bool>().prop_map(Value::Boolean),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Value::Data),
        Just(Value::Array(vec![])),
    ];
    let key = prop_oneof![
        prop::sample::select(vec![
            "MessageType",
            "Request",
            "DeviceID",
            "PortNumber",
            "PairRecordID",
            "PairRecordData",
            "Key",
            "Domain",
            "Label",
            "ProgName",
            "HostID",
            "Service",
        ])
        .prop_map(str::to_string),
        any::<String>(),
    ];
    proptest::collection::vec((key, value), 0..6).prop_map(|kv| {
        let mut d = Dictionary::new();
        for (k, v) in kv {
            d.insert(k, v);
        }
        d
    })
}

fn plist_body(d: Dictionary, binary: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let v = Value::Dictionary(d);
    let r = if binary {
        v.to_writer_binary(&mut out)
    } else {
        v.to_writer_xml(&mut out)
    };
    r.expect("a Dictionary serialises");
    out
}

/// Flips, inserts and removals applied to a byte stream.
fn damage() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    proptest::collection::vec((any::<usize>(), 0u8..3, any::<u8>()), 0..6)
}

fn apply_damage(mut b: Vec<u8>, d: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, kind, v) in d {
        if b.is_empty() {
            b.push(v);
            continue;
        }
        let i = pos % b.len();
        match kind {
            0 => b[i] ^= v | 1,
            1 => b.insert(i, v),
            _ => {
                b.remove(i);
            }
        }
    }
    b
}

fn check_stream(step: Step, whole: &[u8], cuts: &[usize]) -> Result<(), TestCaseError> {
    let (frames, err) = decode_all(step, whole);
    let (split_frames, split_err) = decode_split(step, whole, cuts);
    prop_assert_eq!(
        &frames,
        &split_frames,
        "frames depend on how the stream was cut"
    );
    prop_assert_eq!(err, split_err);
    Ok(())
}

fn cuts() -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(1usize..300, 1..8)
}

#[test]
fn usbmuxd_streams() {
    let packet = (
        any::<u32>(),
        0u32..10,
        any::<u32>(),
        request_dict(),
        any::<bool>(),
    )
        .prop_map(|(tag, message, version_pick, d, binary)| {
            let version = if version_pick % 4 == 0 {
                version_pick
            } else {
                1
            };
            codec::encode(version, message.max(1), tag, &plist_body(d, binary))
        });
    let stream = prop_oneof![
        3 => (proptest::collection::vec(packet, 1..5), damage())
            .prop_map(|(ps, d)| apply_damage(ps.concat(), &d)),
        1 => proptest::collection::vec(any::<u8>(), 0..400),
        // Header-shaped garbage: plausible lengths, random everything else.
        1 => (0u32..0x20000, proptest::collection::vec(any::<u8>(), 12..300)).prop_map(|(len, rest)| {
            let mut b = len.to_le_bytes().to_vec();
            b.extend(rest);
            b
        }),
    ];
    runner()
        .run(&(stream, cuts()), |(whole, cuts)| {
            check_stream(mux_step, &whole, &cuts)
        })
        .expect("property holds");
}

#[test]
fn lockdown_streams() {
    let frame = (request_dict(), any::<bool>()).prop_map(|(d, binary)| {
        let body = plist_body(d, binary);
        let mut f = (body.len() as u32).to_be_bytes().to_vec();
        f.extend(body);
        f
    });
    let stream = prop_oneof![
        3 => (proptest::collection::vec(frame, 1..5), damage())
            .prop_map(|(fs, d)| apply_damage(fs.concat(), &d)),
        1 => proptest::collection::vec(any::<u8>(), 0..400),
        1 => (prop_oneof![0u32..600, Just(u32::MAX), Just(lockdown::MAX_BODY), Just(lockdown::MAX_BODY + 1)],
              proptest::collection::vec(any::<u8>(), 0..600))
            .prop_map(|(len, rest)| {
                let mut b = len.to_be_bytes().to_vec();
                b.extend(rest);
                b
            }),
    ];
    runner()
        .run(&(stream, cuts()), |(whole, cuts)| {
            check_stream(lockdown_step, &whole, &cuts)
        })
        .expect("property holds");
}

#[test]
fn afc_streams() {
    let op = prop_oneof![
        0u64..0x24,
        any::<u64>(),
        Just(packet::op::FILE_WRITE),
        Just(packet::op::FILE_READ)
    ];
    let request = (
        op,
        any::<u64>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        0usize..64,
    )
        .prop_map(|(op, pn, args, payload)| {
            let this = 40 + args.len() as u64;
            let entire = this + payload as u64;
            let mut p = packet::header(entire, this, pn, op).to_vec();
            p.extend(&args);
            p.extend(std::iter::repeat_n(0xAB, payload));
            p
        });
    let stream = prop_oneof![
        3 => (proptest::collection::vec(request, 1..5), damage())
            .prop_map(|(rs, d)| apply_damage(rs.concat(), &d)),
        1 => proptest::collection::vec(any::<u8>(), 0..400),
        // Valid magic, then arbitrary (often absurd) lengths.
        2 => (any::<u64>(), any::<u64>(), any::<u64>(), proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(entire, this, op, rest)| {
                let mut p = packet::header(entire, this, 1, op % 0x30).to_vec();
                p.extend(rest);
                p
            }),
    ];
    runner()
        .run(&(stream, cuts()), |(whole, cuts)| {
            check_stream(afc_step, &whole, &cuts)
        })
        .expect("property holds");
}

/// Absurd lengths are refused or planned without allocating what they claim.
#[test]
fn length_fields_never_size_an_allocation() {
    assert!(matches!(
        codec::decode(&codec::encode(1, 8, 1, &[])[..12]),
        Ok(None)
    ));
    let mut huge = codec::encode(1, 8, 1, &[]);
    huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(codec::decode(&huge).is_err());
    assert!(lockdown::check_len(u32::MAX.to_be_bytes()).is_err());
    assert!(matches!(
        lockdown::decode(&(lockdown::MAX_BODY + 1).to_be_bytes()),
        Err(lockdown::FrameError::TooLong(_))
    ));
    for op in [
        packet::op::FILE_READ,
        packet::op::FILE_WRITE,
        packet::op::READ_DIR,
    ] {
        for (entire, this) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 40),
            (u64::MAX, u64::MAX - 1),
        ] {
            let h = packet::parse_header(&packet::header(entire, this, 0, op)).expect("valid");
            let plan = packet::arg_plan(&h);
            assert!(plan.keep <= MAX_ARGS, "{plan:?}");
            assert_eq!(plan.keep + plan.skip, entire - 40);
            let bytes = packet::header(entire, this, 0, op);
            let d = packet::decode(&bytes)
                .expect("valid")
                .expect("nothing to keep: complete");
            assert!(d.args.is_empty() && d.consumed == 40, "{d:?}");
            // Only a write whose fixed part is empty keeps (nothing) without being oversized.
            assert_eq!(
                d.oversized,
                !(op == packet::op::FILE_WRITE && this == 40),
                "{d:?}"
            );
        }
    }
}
