//! Fuzzing the name and path rules of `ferry_archive::names` (issue 12): every function on
//! any Unicode input, with strategies aimed at the edges (device names, runs of spaces and
//! dots near the byte limit, combining marks, bidi controls, surrogate-range neighbours).
//!
//! Cases per property: 1 500 by default (CI); `FERRY_FUZZ_CASES=N` for a long run
//! (docs/testing.md, "Fuzzing").

use std::path::{Component, Path};

use ferry_archive::names::*;
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

/// Characters that matter to the rules, mixed with arbitrary ones.
fn edge_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => any::<char>(),
        2 => prop::sample::select(vec![
            ' ', '.', '/', '\\', ':', '*', '?', '"', '<', '>', '|', '\0', '\u{1}', '\u{1f}',
            '\u{7f}', '\u{202e}', '\u{2066}', '\u{301}', '\u{308}', '\u{338}', 'e', 'E', 'C',
            'O', 'N', 'P', 'R', 'U', 'X', 'A', 'L', 'T', 'M', '1', '9', '¹', '$', '_', 'ﬃ',
            'İ', 'ß', '\u{fffd}', '\u{ffff}', '\u{10ffff}', '写', '\u{1f600}', '\u{feff}',
            '\u{0958}', '\u{2126}', '\u{212b}', '\u{1100}', '\u{1161}', '\u{11a8}',
        ]),
        1 => proptest::char::range('\u{300}', '\u{36f}'),
    ]
}

fn edge_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::collection::vec(edge_char(), 0..40).prop_map(|v| v.into_iter().collect()),
        // Long inputs around the 255-byte limit.
        proptest::collection::vec(edge_char(), 200..400).prop_map(|v| v.into_iter().collect()),
        // A device name, then padding that truncation will cut off, then more.
        (
            prop::sample::select(vec![
                "CON", "prn", "Aux", "NUL", "COM1", "lpt9", "COM¹", "CONIN$", "conout$",
            ]),
            prop::sample::select(vec![" ", ".", ". ", " .", "\u{301}"]),
            200usize..300,
            proptest::collection::vec(edge_char(), 0..8),
        )
            .prop_map(|(dev, pad, n, tail)| {
                let mut s = dev.to_string();
                s.push_str(&pad.repeat(n));
                s.extend(tail);
                s
            }),
        any::<String>(),
    ]
}

fn is_forbidden(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        || (c as u32) < 0x20
        || c == '\u{7f}'
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// Everything a name Ferry creates must be (docs/archive.md).
fn assert_safe(n: &str, max: usize) {
    assert!(!n.is_empty());
    assert!(n.len() <= max, "{} bytes > {max}: {n:?}", n.len());
    assert!(n.encode_utf16().count() <= MAX_NAME_BYTES, "{n:?}");
    assert!(!n.chars().any(is_forbidden), "{n:?}");
    assert!(n != "." && n != "..", "{n:?}");
    assert!(!n.starts_with('.') && !n.starts_with(' '), "{n:?}");
    assert!(!n.ends_with('.') && !n.ends_with(' '), "{n:?}");
    assert!(!is_reserved_device_name(n), "device name {n:?}");
    assert!(!is_temp_name(n), "{n:?}");
    assert!(unicode_normalization::is_nfc(n), "not NFC: {n:?}");
    let dir = Path::new("/dest/phone/2024/01");
    let p = dir.join(n);
    assert_eq!(p.parent(), Some(dir), "{n:?}");
    assert!(matches!(
        p.components().next_back(),
        Some(Component::Normal(_))
    ));
    assert_eq!(p.components().count(), dir.components().count() + 1);
}

#[test]
fn sanitize_component_is_safe_idempotent_and_accepted() {
    runner()
        .run(&(edge_string(), 0usize..300), |(s, max)| {
            let full = sanitize_component(&s);
            assert_safe(&full, MAX_NAME_BYTES);
            prop_assert_eq!(sanitize_component(&full), full.clone(), "idempotent");
            prop_assert!(validate_relative(&full).is_ok(), "{:?}", full);
            let limited = sanitize_component_max(&s, max);
            let effective = max.clamp(FALLBACK_NAME.len() + 1, MAX_NAME_BYTES);
            assert_safe(&limited, effective);
            prop_assert_eq!(sanitize_component_max(&limited, max), limited.clone());
            // Case and normalisation folding never panics and is stable.
            let k = fold_key(&full);
            prop_assert_eq!(fold_key(&k), k);
            Ok(())
        })
        .expect("property holds");
}

#[test]
fn file_names_are_safe_single_components() {
    runner()
        .run(
            &(
                edge_string(),
                any::<u32>(),
                prop::sample::select(vec!["", "_edited", "_live", "_raw", "_edited_live"]),
                proptest::option::of(edge_string()),
            ),
            |(original, clash, role, ext_src)| {
                let base = base_from_original(&original);
                assert_safe(&base, MAX_BASE_BYTES);
                let ext = ext_src.as_deref().and_then(extension_of);
                if let Some(e) = &ext {
                    prop_assert!(!e.is_empty() && e.len() <= MAX_EXT_BYTES);
                    prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric()));
                }
                let n = file_name(&base, clash, role, ext.as_deref());
                assert_safe(&n, MAX_NAME_BYTES);
                prop_assert!(validate_relative(&n).is_ok(), "{:?}", n);
                // What the name is made of survives: the suffixes and extension are never cut.
                let mut tail = String::new();
                if clash != 0 {
                    tail.push_str(&format!(" ({clash})"));
                }
                tail.push_str(role);
                if let Some(e) = &ext {
                    tail.push('.');
                    tail.push_str(e);
                }
                prop_assert!(n.ends_with(&tail), "{:?} lacks {:?}", n, tail);
                Ok(())
            },
        )
        .expect("property holds");
}

#[test]
fn validate_relative_never_lets_a_path_escape() {
    let component = prop_oneof![
        3 => edge_string(),
        1 => prop::sample::select(vec![
            "", ".", "..", "...", " ", "a", "IMG_1.HEIC", ".ferry-tmp-0123456789abcdef", "CON",
            "a\\..\\b", "\0", "/",
        ])
        .prop_map(str::to_string),
    ];
    let path = proptest::collection::vec(component, 0..6).prop_map(|v| v.join("/"));
    let leading = prop::sample::select(vec!["", "/", "//", "./", "../"]);
    runner()
        .run(&(leading, path), |(lead, rel)| {
            let rel = format!("{lead}{rel}");
            if let Ok(parts) = validate_relative(&rel) {
                prop_assert!(!parts.is_empty());
                let root = Path::new("/dest/archive");
                let joined = root.join(&rel);
                prop_assert!(joined.starts_with(root), "{:?}", rel);
                prop_assert_eq!(
                    joined.components().count(),
                    root.components().count() + parts.len(),
                    "{:?}",
                    rel
                );
                for p in parts {
                    prop_assert!(
                        joined
                            .components()
                            .any(|c| c == Component::Normal(std::ffi::OsStr::new(p))),
                        "{:?}",
                        p
                    );
                    prop_assert!(!p.contains('\0') && !p.contains('\\') && p != "..");
                    prop_assert!(is_temp_name(p) || sanitize_component(p) == p);
                }
            }
            Ok(())
        })
        .expect("property holds");
}

#[test]
fn date_folders_never_panic_and_are_two_components_or_unknown() {
    let ms = prop_oneof![
        any::<i64>(),
        -62_135_596_800_000i64..253_402_300_800_000,
        prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0, 1]),
    ];
    let off = prop_oneof![
        any::<i64>(),
        -64_800i64..=64_800,
        prop::sample::select(vec![i64::MIN, i64::MAX, -64_801, 64_801]),
    ];
    runner()
        .run(
            &(proptest::option::of(ms), proptest::option::of(off)),
            |(ms, off)| {
                let f = date_folder(ms, off);
                match f.as_slice() {
                    [u] => prop_assert_eq!(u.as_str(), UNKNOWN_DATE_FOLDER),
                    [y, m] => {
                        let y: i64 = y.parse().expect("year digits");
                        let m: i64 = m.parse().expect("month digits");
                        prop_assert!((1000..=9999).contains(&y) && (1..=12).contains(&m));
                    }
                    other => prop_assert!(false, "{:?}", other),
                }
                for c in &f {
                    assert_safe(c, MAX_NAME_BYTES);
                }
                Ok(())
            },
        )
        .expect("property holds");
    // civil_from_days is total.
    runner()
        .run(&any::<i64>(), |d| {
            let (_, m, day) = civil_from_days(d);
            prop_assert!((1..=12).contains(&m) && (1..=31).contains(&day));
            Ok(())
        })
        .expect("property holds");
}

/// Found by this fuzzer: cutting `CON` + spaces + `x` at 255 bytes left `CON` (a Windows
/// device name: the file could not be created on an NTFS/exFAT drive opened on Windows).
#[test]
fn regression_device_name_exposed_by_truncation() {
    for dev in ["CON", "nul", "COM1", "LPT¹", "CONIN$"] {
        for pad in [" ", ". "] {
            let input = format!("{dev}{}x", pad.repeat(300));
            let out = sanitize_component(&input);
            assert!(!is_reserved_device_name(&out), "{input:?} → {out:?}");
            assert_eq!(out, format!("_{dev}"), "{input:?}");
            assert_eq!(sanitize_component(&out), out);
            let base = base_from_original(&input);
            assert!(!is_reserved_device_name(&base), "{base:?}");
        }
    }
}

/// Found by this fuzzer: `date_folder(_, Some(i64::MIN))` panicked (`i64::MIN.abs()`
/// overflows); the offset comes from the phone's database.
#[test]
fn regression_date_folder_offset_i64_min() {
    let ms = 1_706_743_800_000; // 2024-01-31T23:30:00Z
    assert_eq!(date_folder(Some(ms), Some(i64::MIN)), ["2024", "01"]);
    assert_eq!(date_folder(Some(ms), Some(i64::MAX)), ["2024", "01"]);
    assert_eq!(date_folder(Some(ms), Some(-64_800)), ["2024", "01"]);
    assert_eq!(date_folder(Some(ms), Some(64_800)), ["2024", "02"]);
}
