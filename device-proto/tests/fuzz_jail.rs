//! Fuzzing the AFC path jail (`afc::jail::resolve`, issue 12 "path mapping" on the simulator
//! side): a small `Media/` tree per case with files, directories and symlinks whose targets
//! are drawn from what escapes look like (`..` chains, absolute host paths, the phone's
//! `/var/mobile/Media/..`, loops, dangling names), next to a secret file outside `Media/`;
//! request paths built from the same pieces plus arbitrary bytes.
//!
//! Property: `resolve` never panics, and whatever it resolves lies inside `Media/` — both as
//! the host path it returns and as the file that path really opens (canonicalised) — and is
//! never the secret. Cases: 300 by default; `FERRY_FUZZ_CASES=N` for a long run.

use std::path::Path;

use ferry_sim::afc::jail;
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
        4 => prop::sample::select(vec![
            "..", ".", "", "DCIM", "100APPLE", "IMG_1.JPG", "l0", "l1", "l2", "l3", "secret",
            "Media", "/var/mobile/Media", "/private/var/mobile/Media", "/etc", "/", "//",
        ])
        .prop_map(str::to_string),
        1 => "[a-z.]{0,4}",
    ]
}

fn path_of(pieces: Vec<String>) -> String {
    pieces.join("/")
}

/// (request path, follow_last, the four symlinks' targets)
fn case() -> impl Strategy<Value = (Vec<u8>, bool, Vec<String>)> {
    let link = prop::sample::select(vec![
        "l0",
        "l1",
        "l2",
        "l3",
        "DCIM/l1",
        "DCIM/l3",
        "DCIM/100APPLE/l2",
    ]);
    let beyond = prop::sample::select(vec![
        "",
        "secret",
        "etc/passwd",
        "passwd",
        "IMG_1.JPG",
        "100APPLE/IMG_1.JPG",
        "..",
        "../secret",
        "l0",
        "l1/secret",
        "Media/DCIM",
    ]);
    let request = prop_oneof![
        3 => proptest::collection::vec(piece(), 0..8).prop_map(|p| path_of(p).into_bytes()),
        3 => (link, beyond).prop_map(|(l, b)| format!("{l}/{b}").into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ];
    let target = prop_oneof![
        2 => prop::sample::select(vec![
            "..", "../..", "../../..", "../secret", "../../secret", "/", "/etc", "/etc/passwd",
            "/var/mobile/Media/../..", "/var/mobile/Media/../secret", "/private/var/mobile/Media/DCIM",
            "/var/mobile/Mediax", "l1", "l0", "../l0", "DCIM", "100APPLE/IMG_1.JPG", ".",
            "../../../../../../../../etc/passwd", "../../../../../../../../etc",
        ])
        .prop_map(str::to_string),
        1 => proptest::collection::vec(piece(), 1..6).prop_map(path_of),
    ];
    (request, any::<bool>(), proptest::collection::vec(target, 4))
}

#[test]
fn resolved_paths_stay_inside_media() {
    let mut runner = TestRunner::new(Config {
        cases: cases(300),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&case(), |(request, follow, targets)| {
            let dir = tempfile::tempdir().expect("tempdir");
            let root = dir.path().join("Media");
            std::fs::create_dir_all(root.join("DCIM/100APPLE")).expect("dirs");
            std::fs::write(root.join("DCIM/100APPLE/IMG_1.JPG"), b"photo").expect("file");
            std::fs::write(dir.path().join("secret"), b"host secret").expect("secret");
            let homes = [".", "DCIM", "DCIM/100APPLE", "DCIM"];
            for (i, t) in targets.iter().enumerate() {
                let link = root.join(homes[i]).join(format!("l{i}"));
                // An empty target cannot be created; it stands for a dangling link.
                let t = if t.is_empty() { "nothing" } else { t.as_str() };
                std::os::unix::fs::symlink(t, link).expect("symlink");
            }
            let canon_root = root.canonicalize().expect("root");
            match jail::resolve(&root, &request, follow) {
                Ok(r) => {
                    prop_assert!(r.host.starts_with(&root), "{:?}", r.host);
                    let inside = r.host.strip_prefix(&root).expect("prefix");
                    prop_assert!(
                        inside
                            .components()
                            .all(|c| matches!(c, std::path::Component::Normal(_))),
                        "{:?}",
                        r.host
                    );
                    prop_assert!(!r.rel.starts_with('/') && !r.rel.split('/').any(|c| c == ".."));
                    // What the host path really names, following every link the OS would (all
                    // of them when following the last component; else up to its directory).
                    let secret = dir.path().join("secret").canonicalize().expect("secret");
                    let named = if follow {
                        Some(r.host.clone())
                    } else if !r.rel.is_empty() {
                        r.host.parent().map(Path::to_path_buf)
                    } else {
                        None
                    };
                    if let Some(real) = named.and_then(|p| p.canonicalize().ok()) {
                        prop_assert!(
                            real.starts_with(&canon_root) && real != secret,
                            "{:?} → {:?} escapes (request {:?}, links {:?})",
                            r.host,
                            real,
                            String::from_utf8_lossy(&request),
                            targets
                        );
                    }
                    if follow {
                        if let Ok(m) = std::fs::symlink_metadata(&r.host) {
                            prop_assert!(!m.file_type().is_symlink(), "{:?}", r.host);
                        }
                    }
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    jail::JailError::NotFound | jail::JailError::Denied
                )),
            }
            // Lexical normalisation never yields `..`, `.` or empty components.
            for c in jail::normalise(&request) {
                prop_assert!(!c.is_empty() && c != b"." && c != b"..");
                prop_assert!(!c.contains(&b'/'));
            }
            Ok(())
        })
        .expect("property holds");
}
