//! Fuzzing the AFC path mapping (`ferry_photos::path`, issue 12): `ZDIRECTORY`/`ZFILENAME`
//! values of any Unicode, built from the components that matter (`..`, `.`, empty, NUL,
//! absolute Media prefixes, derivative areas).
//!
//! Property: a path is either refused with a typed [`PathError`], or it is relative, at most
//! 1024 bytes, without NUL, and made only of normal components — so joined to any local root
//! it stays inside that root. Cases: 4 000 by default; `FERRY_FUZZ_CASES=N` for long runs.

use std::path::{Component, Path};

use ferry_photos::{AfcPath, PathError};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn cases(default: u32) -> u32 {
    std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "", ".", "..", "...", "DCIM", "100APPLE", "IMG_0001.HEIC", "/", "//", "\0", "\\",
            "/var/mobile/Media", "/private/var/mobile/Media", "/var/mobile/Media/", "PhotoData",
            "Metadata", "Mutations", "Thumbnails", " ", "名前", "\u{202e}", "a.b.",
        ])
        .prop_map(str::to_string),
        1 => any::<String>(),
        1 => "[a-z./]{0,12}",
    ]
}

fn field() -> impl Strategy<Value = Option<String>> {
    proptest::option::weighted(
        0.95,
        prop_oneof![
            proptest::collection::vec(piece(), 0..8).prop_map(|v| v.concat()),
            proptest::collection::vec(piece(), 0..6).prop_map(|v| v.join("/")),
            (1000usize..1100).prop_map(|n| "a/".repeat(n / 2)),
        ],
    )
}

fn assert_contained(p: &AfcPath) {
    let s = p.as_str();
    assert!(!s.is_empty() && s.len() <= 1024, "{s:?}");
    assert!(!s.starts_with('/') && !s.contains('\0'), "{s:?}");
    assert!(
        s.split('/').all(|c| !c.is_empty() && c != "." && c != ".."),
        "{s:?}"
    );
    let root = Path::new("/phone/Media");
    let local = root.join(s);
    assert!(local.starts_with(root), "{s:?}");
    assert!(
        local
            .components()
            .skip(root.components().count())
            .all(|c| matches!(c, Component::Normal(_))),
        "{s:?}"
    );
    // Derived parts stay consistent and never panic.
    assert!(p.file_name().len() <= s.len());
    assert!(p.file_stem().len() <= p.file_name().len());
    if let Some(parent) = p.parent() {
        assert!(s.starts_with(parent.as_str()));
        assert_contained(&parent);
    }
    let _ = p.extension();
    let _ = p.is_in_derivative_area();
}

#[test]
fn db_paths_are_refused_or_contained() {
    let mut runner = TestRunner::new(Config {
        cases: cases(4000),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&(field(), field(), piece()), |(dir, file, extra)| {
            match AfcPath::from_db(dir.as_deref(), file.as_deref()) {
                Ok(p) => {
                    assert_contained(&p);
                    prop_assert!(!file.as_deref().unwrap_or("").contains('/'));
                    match p.join(&extra) {
                        Ok(j) => {
                            assert_contained(&j);
                            prop_assert_eq!(j.parent(), Some(p.clone()));
                        }
                        Err(e) => prop_assert!(!e.to_string().is_empty()),
                    }
                }
                Err(e) => {
                    prop_assert!(!e.to_string().is_empty());
                    if let PathError::TooLong(n) = e {
                        prop_assert!(n > 1024);
                    }
                }
            }
            if let Ok(p) = AfcPath::new(&extra) {
                assert_contained(&p);
            }
            Ok(())
        })
        .expect("property holds");
}
