//! Same seed → byte-identical image; different seed → different image.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_phonegen::{IcloudPhotos, IosSchema, MakePhoneArgs};
use sha2::{Digest, Sha256};

/// Path → SHA-256 of every file under `root`.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read");
                let rel = path
                    .strip_prefix(root)
                    .expect("prefix")
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, format!("{:x}", Sha256::digest(&bytes)));
            }
        }
    }
    out
}

fn make(dir: &Path, schema: IosSchema, seed: u64, icloud: IcloudPhotos) {
    let mut args = MakePhoneArgs::new(dir);
    args.schema = schema;
    args.seed = seed;
    args.assets = 120;
    args.icloud_photos = icloud;
    ferry_phonegen::run(&args).expect("generate");
}

#[test]
fn same_seed_same_bytes() {
    for schema in IosSchema::ALL {
        for icloud in [IcloudPhotos::On, IcloudPhotos::Off] {
            let a = tempfile::tempdir().expect("tempdir");
            let b = tempfile::tempdir().expect("tempdir");
            make(a.path(), schema, 42, icloud);
            make(b.path(), schema, 42, icloud);
            let (ta, tb) = (tree(a.path()), tree(b.path()));
            assert!(ta.contains_key("Media/PhotoData/Photos.sqlite-wal"));
            assert_eq!(ta, tb, "{schema:?} {icloud:?}: images differ");
        }
    }
}

#[test]
fn different_seed_different_image() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    make(a.path(), IosSchema::Ios18, 1, IcloudPhotos::On);
    make(b.path(), IosSchema::Ios18, 2, IcloudPhotos::On);
    assert_ne!(tree(a.path()), tree(b.path()));
}

#[test]
fn refuses_to_overwrite_without_force() {
    let a = tempfile::tempdir().expect("tempdir");
    make(a.path(), IosSchema::Ios15, 1, IcloudPhotos::On);
    std::fs::create_dir_all(a.path().join(".ferry-sim")).expect("mkdir");
    std::fs::write(a.path().join(".ferry-sim/state"), b"sim").expect("write");
    let mut args = MakePhoneArgs::new(a.path());
    let err = ferry_phonegen::run(&args).expect_err("must refuse");
    assert!(err.to_string().contains("--force"), "{err}");
    args.force = true;
    ferry_phonegen::run(&args).expect("force");
    assert_eq!(
        std::fs::read(a.path().join(".ferry-sim/state")).expect("kept"),
        b"sim"
    );
}

#[test]
fn device_toml_is_consistent() {
    let a = tempfile::tempdir().expect("tempdir");
    make(a.path(), IosSchema::Ios13, 9, IcloudPhotos::On);
    let text = std::fs::read_to_string(a.path().join("device.toml")).expect("device.toml");
    let v: toml::Value = toml::from_str(&text).expect("toml");
    let udid = v["udid"].as_str().expect("udid");
    assert_eq!(udid.len(), 25);
    assert_eq!(&udid[8..9], "-");
    assert_eq!(v["product_version"].as_str(), Some("13.7"));
    let total = v["total_bytes"].as_integer().expect("total");
    let free = v["free_bytes"].as_integer().expect("free");
    assert!(free > 0 && free < total);
}
