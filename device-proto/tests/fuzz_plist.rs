//! Fuzzing plist handling on the wire (issue 12): what ferry-sim parses from clients
//! (usbmuxd plist packets through `mux::codec::plist_request`, lockdown requests through
//! `lockdown::parse_body`, both behind `plist_bounds`) and the bounds check itself.
//!
//! Inputs: arbitrary bytes; valid XML and binary plists of random shape (wrong types, odd
//! keys, big integers, nested arrays/dicts) mutated byte-wise; binary plists whose objects
//! share children (expansion bombs) or reference themselves; deep nesting in both encodings.
//!
//! Properties: parsing returns a dictionary or a typed error — never panics, never overflows
//! the stack; whatever is accepted has at most `Limits::DEFAULT` values and depth; each case
//! finishes within a deadline (an expansion bomb cannot hide behind a passing assertion).
//!
//! Cases: 1 500 per property by default (CI); `FERRY_FUZZ_CASES=N` for a long run.

use plist_bounds::testing::shared_children;
use std::time::{Duration, Instant};

use ferry_sim::lockdown;
use ferry_sim::mux::codec;
use plist::{Dictionary, Value};
use plist_bounds::{self, BoundsError, Limits};
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

/// A case slower than this is a hang (an honest 1 MiB plist parses in milliseconds).
const DEADLINE: Duration = Duration::from_secs(10);

/// (values, depth) of a parsed tree, iteratively.
fn shape(v: &Value) -> (usize, usize) {
    let mut stack = vec![(v, 1usize)];
    let (mut nodes, mut depth) = (0, 0);
    while let Some((v, d)) = stack.pop() {
        nodes += 1;
        match v {
            Value::Array(a) => {
                depth = depth.max(d);
                stack.extend(a.iter().map(|c| (c, d + 1)));
            }
            Value::Dictionary(m) => {
                depth = depth.max(d);
                nodes += m.len(); // keys
                stack.extend(m.values().map(|c| (c, d + 1)));
            }
            _ => {}
        }
    }
    (nodes, depth)
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<String>().prop_map(Value::String),
        any::<u64>().prop_map(|v| Value::Integer(v.into())),
        any::<i64>().prop_map(|v| Value::Integer(v.into())),
        any::<f64>().prop_map(Value::Real),
        any::<bool>().prop_map(Value::Boolean),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Value::Data),
        any::<u64>().prop_map(|u| Value::Uid(plist::Uid::new(u))),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((any::<String>(), inner), 0..8).prop_map(|kv| {
                let mut d = Dictionary::new();
                for (k, v) in kv {
                    d.insert(k, v);
                }
                Value::Dictionary(d)
            }),
        ]
    })
}

fn encode(v: &Value, binary: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let r = if binary {
        v.to_writer_binary(&mut out)
    } else {
        v.to_writer_xml(&mut out)
    };
    // Some values (a Uid in XML, a NaN real) do not serialise; the case then fuzzes bytes.
    if r.is_err() {
        out.clear();
    }
    out
}

fn nested_xml(depth: usize, tag: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?><plist>{}{}</plist>",
        format!("<{tag}>").repeat(depth),
        format!("</{tag}>").repeat(depth)
    )
    .into_bytes()
}

fn input() -> impl Strategy<Value = Vec<u8>> {
    let mutate = |(mut b, flips): (Vec<u8>, Vec<(usize, u8)>)| {
        if !b.is_empty() {
            for (pos, v) in flips {
                let i = pos % b.len();
                b[i] ^= v;
            }
        }
        b
    };
    prop_oneof![
        2 => proptest::collection::vec(any::<u8>(), 0..300),
        2 => (value(), any::<bool>()).prop_map(|(v, b)| encode(&v, b)),
        3 => ((value(), any::<bool>()).prop_map(|(v, b)| encode(&v, b)),
              proptest::collection::vec((any::<usize>(), 1u8..=255), 1..6))
            .prop_map(mutate),
        1 => ((2usize..80), 1u8..4).prop_map(|(n, fan)| shared_children(n, fan)),
        1 => ((2usize..80).prop_map(|n| shared_children(n, 2)),
              proptest::collection::vec((any::<usize>(), 1u8..=255), 1..4))
            .prop_map(mutate),
        1 => (1usize..3000, prop::sample::select(vec!["array", "dict"]))
            .prop_map(|(d, t)| nested_xml(d, t)),
        1 => (1usize..3000).prop_map(|n| shared_children(n, 1)),
    ]
}

fn check_case(bytes: &[u8]) -> Result<(), TestCaseError> {
    let t0 = Instant::now();
    let bounded = plist_bounds::check(bytes, Limits::DEFAULT);
    // Whatever passes the check is within the limits once parsed (if the check were wrong,
    // this parse is where a bomb would go off — within the deadline below).
    if bounded.is_ok() {
        if let Ok(v) = Value::from_reader(std::io::Cursor::new(bytes)) {
            let (nodes, depth) = shape(&v);
            prop_assert!(nodes <= Limits::DEFAULT.max_nodes, "{} values", nodes);
            prop_assert!(depth <= Limits::DEFAULT.max_depth, "depth {}", depth);
        }
    }
    match lockdown::parse_body(bytes) {
        Ok(d) => {
            prop_assert!(bounded.is_ok());
            let (nodes, depth) = shape(&Value::Dictionary(d));
            prop_assert!(nodes <= Limits::DEFAULT.max_nodes && depth <= Limits::DEFAULT.max_depth);
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    if codec::plist_request(bytes).is_some() {
        prop_assert!(bounded.is_ok());
    }
    prop_assert!(t0.elapsed() < DEADLINE, "took {:?}", t0.elapsed());
    Ok(())
}

#[test]
fn wire_plists_parse_or_fail_typed_and_bounded() {
    runner()
        .run(&input(), |bytes| check_case(&bytes))
        .expect("property holds");
}

/// Valid plists of every shape that fit the limits are accepted: the check is not a blanket
/// refusal (no test that cannot fail).
#[test]
fn valid_plists_within_limits_are_accepted() {
    runner()
        .run(&(value(), any::<bool>()), |(v, binary)| {
            let bytes = encode(&v, binary);
            if bytes.is_empty() {
                return Ok(());
            }
            let (nodes, depth) = shape(&v);
            prop_assume!(nodes <= 1000 && depth <= 64);
            prop_assert_eq!(plist_bounds::check(&bytes, Limits::DEFAULT), Ok(()));
            Ok(())
        })
        .expect("property holds");
}

/// Found while building this harness (plist 1.10.3 checks lengths and cycles, not
/// sharing), confirmed by experiment: a 154-byte binary plist whose objects share children (object i = an
/// array holding object i+1 twice, 22 levels) parsed into 4 million values in 4.5 s; each
/// level doubles that, 40 levels (here, 530 bytes) would never finish. Sent as a lockdown
/// request or usbmuxd packet, it froze the simulator.
#[test]
fn regression_binary_plist_shared_children_bomb() {
    let bomb = shared_children(40, 2);
    assert!(bomb.len() < 600, "{} bytes", bomb.len());
    let t0 = Instant::now();
    assert!(matches!(
        lockdown::parse_body(&bomb),
        Err(lockdown::FrameError::Bounds(BoundsError::TooManyNodes(_)))
    ));
    assert!(codec::plist_request(&bomb).is_none());
    assert!(t0.elapsed() < DEADLINE);
}

/// Found while building this harness, confirmed by experiment: `<array>` nested 100 000 deep parsed fine, then overflowed the stack when
/// the value was dropped — aborting the whole process, not just the connection. 60 000 levels
/// fit in one lockdown frame (1 MiB); a one-element binary array chain needs 9 bytes a level.
#[test]
fn regression_deeply_nested_plist_overflowed_the_stack() {
    for bytes in [
        nested_xml(100_000, "array"),
        nested_xml(60_000, "dict"),
        shared_children(100_000, 1),
    ] {
        assert!(matches!(
            lockdown::parse_body(&bytes),
            Err(lockdown::FrameError::Bounds(BoundsError::TooDeep(64)))
        ));
        assert!(codec::plist_request(&bytes).is_none());
    }
}
