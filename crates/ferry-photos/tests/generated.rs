//! Acceptance: for generated images of every schema version × 3 seeds (and iCloud Photos off),
//! and for the committed fixtures, the reader's output equals `expected.json` exactly. Also:
//! the un-checkpointed WAL really holds assets a WAL-blind reader would miss.

mod common;

use common::{assert_image_matches, generate};
use ferry_phonegen::{IcloudPhotos, IosSchema};
use ferry_photos::PhotosDb;
use proptest::prelude::*;

#[test]
fn every_schema_three_seeds() {
    for schema in IosSchema::ALL {
        for seed in [1, 2, 3] {
            let img = generate(schema, seed, 90, IcloudPhotos::On);
            assert_image_matches(img.path());
        }
    }
}

#[test]
fn icloud_photos_off_every_schema() {
    for schema in IosSchema::ALL {
        let img = generate(schema, 11, 60, IcloudPhotos::Off);
        assert_image_matches(img.path());
    }
}

#[test]
fn committed_fixtures_match() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures");
    let mut n = 0;
    for entry in std::fs::read_dir(root).expect("fixtures/") {
        let path = entry.expect("entry").path();
        if path.join("expected.json").exists() {
            assert_image_matches(&path);
            n += 1;
        }
    }
    assert!(n >= 3, "expected at least 3 committed fixtures, found {n}");
}

#[test]
fn wal_holds_assets_a_wal_blind_reader_misses() {
    let img = generate(IosSchema::Ios16, 5, 100, IcloudPhotos::On);
    let expected =
        ferry_phonegen::expected::read(&img.path().join("expected.json")).expect("expected");
    let photo_data = img.path().join("Media/PhotoData");
    assert!(
        std::fs::metadata(photo_data.join("Photos.sqlite-wal"))
            .expect("wal")
            .len()
            > 32
    );

    // Main file only: the WAL is not copied.
    let blind = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        photo_data.join("Photos.sqlite"),
        blind.path().join("Photos.sqlite"),
    )
    .expect("copy");
    let without = PhotosDb::open(&blind.path().join("Photos.sqlite"))
        .expect("open")
        .read_all()
        .expect("read");
    assert_eq!(without.len() as u64, expected.wal.assets_in_main_file);
    assert!(without.len() < expected.assets.len());

    // With the WAL: everything, and the states changed in the WAL.
    let full = common::read_image(img.path());
    assert_eq!(full.len(), expected.assets.len());

    // Why the reader never uses `immutable=1`: with the WAL right next to the file, SQLite
    // still ignores it (spec §8.1).
    let copy = tempfile::tempdir().expect("tempdir");
    for f in ["Photos.sqlite", "Photos.sqlite-wal"] {
        std::fs::copy(photo_data.join(f), copy.path().join(f)).expect("copy");
    }
    let uri = format!(
        "file:{}?immutable=1",
        copy.path().join("Photos.sqlite").display()
    );
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI,
    )
    .expect("open immutable");
    let n: i64 = conn
        .query_row("SELECT count(*) FROM ZASSET", [], |r| r.get(0))
        .expect("count");
    assert_eq!(
        n as u64, expected.wal.assets_in_main_file,
        "immutable=1 drops the WAL"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random seeds, schemas and sizes: the reader always agrees with the ground truth.
    #[test]
    fn random_seeds_match(seed in any::<u64>(), schema in 0usize..6, assets in 1usize..150, off in any::<bool>()) {
        let icloud = if off { IcloudPhotos::Off } else { IcloudPhotos::On };
        let img = generate(IosSchema::ALL[schema], seed, assets, icloud);
        assert_image_matches(img.path());
    }
}

/// The comparison is not vacuous: a tampered ground truth is caught.
#[test]
fn tampered_expectation_is_caught() {
    let img = generate(IosSchema::Ios18, 3, 50, IcloudPhotos::On);
    let path = img.path().join("expected.json");
    let text = std::fs::read_to_string(&path).expect("read");
    let tampered = text.replacen("\"action\":\"fetch_on_phone\"", "\"action\":\"archive\"", 1);
    assert_ne!(text, tampered);
    std::fs::write(&path, tampered).expect("write");
    let result = std::panic::catch_unwind(|| assert_image_matches(img.path()));
    assert!(
        result.is_err(),
        "a wrong expectation must fail the comparison"
    );
}

/// Big enough that DCIM folders roll over (999 files) and IMG_ numbers wrap after 9999, so
/// the same on-disk name exists in two folders.
#[test]
fn large_image_with_wrapped_names_matches() {
    let img = generate(IosSchema::Ios17, 21, 11_000, IcloudPhotos::On);
    let dcim: Vec<String> = std::fs::read_dir(img.path().join("Media/DCIM"))
        .expect("DCIM")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(dcim.len() > 10, "{dcim:?}");
    assert!(img
        .path()
        .join("Media/DCIM/100APPLE/IMG_0001.HEIC")
        .exists());
    assert_image_matches(img.path());
}
