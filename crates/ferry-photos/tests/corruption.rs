//! Robustness: corrupted databases and WALs, truncations, removed columns and tables, hostile
//! paths. The reader must return records or a typed error — never panic, never read outside
//! the Media root.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ferry_phonegen::{IcloudPhotos, IosSchema};
use ferry_photos::snapshot::{take_snapshot, DirSource, SnapshotOptions};
use ferry_photos::{Error, Exclusion, PhotosDb, SharedLibrary};
use proptest::prelude::*;
use rusqlite::Connection;

/// One generated iOS 18 image shared by the tests (never modified in place).
fn base() -> &'static Path {
    static IMG: OnceLock<tempfile::TempDir> = OnceLock::new();
    IMG.get_or_init(|| common::generate(IosSchema::Ios18, 77, 60, IcloudPhotos::On))
        .path()
}

/// Copies Photos.sqlite (+ -wal) of `image` into a fresh dir.
fn copy_db(image: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = image.join("Media/PhotoData");
    for f in ["Photos.sqlite", "Photos.sqlite-wal"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let db = dir.path().join("Photos.sqlite");
    (dir, db)
}

fn read(db: &Path) -> Result<usize, Error> {
    let pdb = PhotosDb::open(db)?;
    let n = pdb.read_all()?.len();
    pdb.quick_check()?;
    Ok(n)
}

fn assets() -> usize {
    ferry_phonegen::expected::read(&base().join("expected.json"))
        .expect("expected")
        .assets
        .len()
}

/// Applies SQL to a read-write copy and folds the WAL into the main file.
fn modify(db: &Path, sql: &str) -> rusqlite::Result<()> {
    let conn = Connection::open(db)?;
    conn.execute_batch(sql)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn db_byte_flips_never_panic(flips in proptest::collection::vec((any::<u64>(), any::<u8>()), 1..24)) {
        let (_d, db) = copy_db(base());
        let mut bytes = std::fs::read(&db).expect("read");
        for (pos, val) in flips {
            let i = (pos % bytes.len() as u64) as usize;
            bytes[i] ^= val | 1;
        }
        std::fs::write(&db, bytes).expect("write");
        match read(&db) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn wal_byte_flips_never_panic(flips in proptest::collection::vec((any::<u64>(), any::<u8>()), 1..8)) {
        let (_d, db) = copy_db(base());
        let wal = db.with_file_name("Photos.sqlite-wal");
        let mut bytes = std::fs::read(&wal).expect("read");
        for (pos, val) in flips {
            let i = (pos % bytes.len() as u64) as usize;
            bytes[i] ^= val | 1;
        }
        std::fs::write(&wal, bytes).expect("write");
        match read(&db) {
            // Damage in a part SQLite ignores anyway, or in page content that still parses.
            Ok(_) => {}
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn truncations_never_panic(db_keep in 0.0f64..1.0, wal_keep in 0.0f64..1.0, which in 0u8..3) {
        let (_d, db) = copy_db(base());
        let wal = db.with_file_name("Photos.sqlite-wal");
        if which != 1 {
            let len = std::fs::metadata(&db).expect("meta").len();
            let f = std::fs::OpenOptions::new().write(true).open(&db).expect("open");
            f.set_len((len as f64 * db_keep) as u64).expect("truncate");
        }
        if which != 0 {
            let len = std::fs::metadata(&wal).expect("meta").len();
            let f = std::fs::OpenOptions::new().write(true).open(&wal).expect("open");
            f.set_len((len as f64 * wal_keep) as u64).expect("truncate");
        }
        match read(&db) {
            Ok(n) => prop_assert!(n <= assets()),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn wal_cut_mid_frame_is_a_typed_error() {
    let (_d, db) = copy_db(base());
    let wal = db.with_file_name("Photos.sqlite-wal");
    let len = std::fs::metadata(&wal).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .expect("open");
    f.set_len(len - 1000).expect("truncate");
    let err = PhotosDb::open(&db).expect_err("truncated");
    assert!(matches!(err, Error::TruncatedWal { .. }), "{err}");
    // The snapshot helper retries, then reports the same permanent problem.
    let mut src = DirSource::new(db.parent().expect("dir"));
    let err = take_snapshot(&mut src, &SnapshotOptions::default()).expect_err("truncated");
    assert!(matches!(err, Error::TruncatedWal { .. }), "{err}");
}

#[test]
fn damaged_wal_header_is_a_typed_error() {
    let (_d, db) = copy_db(base());
    let wal = db.with_file_name("Photos.sqlite-wal");
    let mut bytes = std::fs::read(&wal).expect("read");
    bytes[17] ^= 0x40; // salt-1: SQLite would silently drop the whole WAL
    std::fs::write(&wal, bytes).expect("write");
    let err = read(&db).expect_err("corrupt WAL");
    assert!(matches!(err, Error::CorruptWal { .. }), "{err}");
}

#[test]
fn not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("Photos.sqlite");
    std::fs::write(&junk, b"this is not an SQLite file, just some text that is long enough .......................................").expect("write");
    let err = read(&junk).expect_err("junk");
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&junk.display().to_string()) && msg.contains("hint:"),
        "{msg}"
    );
    assert!(err.is_retryable());

    let other = dir.path().join("other.sqlite");
    Connection::open(&other)
        .expect("create")
        .execute_batch("CREATE TABLE t (x)")
        .expect("ddl");
    let err = read(&other).expect_err("not photos");
    assert!(matches!(err, Error::NotPhotosDatabase { .. }), "{err}");
    assert!(err.to_string().contains("ZASSET"), "{err}");
    assert!(!err.is_retryable());

    let missing = dir.path().join("missing.sqlite");
    assert!(matches!(read(&missing), Err(Error::Io { .. })));
}

#[test]
fn ios12_like_schema_names_what_is_missing() {
    let (_d, db) = copy_db(base());
    modify(
        &db,
        "ALTER TABLE ZINTERNALRESOURCE RENAME COLUMN ZDATASTORECLASSID TO ZDATASTOREID",
    )
    .expect("rename");
    let err = read(&db).expect_err("unsupported");
    let msg = err.to_string();
    assert!(matches!(err, Error::UnsupportedSchema { .. }), "{msg}");
    assert!(
        msg.contains("ZINTERNALRESOURCE.ZDATASTORECLASSID") && msg.contains("iOS 12"),
        "{msg}"
    );
    assert!(msg.contains("18405"), "model version in message: {msg}");
}

/// Every column of every table the reader touches, removed one at a time: required columns
/// give `UnsupportedSchema` naming the column, optional ones still read every asset.
#[test]
fn column_removal_gives_typed_errors() {
    let required = [
        "ZASSET.ZUUID",
        "ZASSET.ZDIRECTORY",
        "ZASSET.ZFILENAME",
        "ZASSET.ZKIND",
        "ZASSET.ZTRASHEDSTATE",
        "ZASSET.ZSAVEDASSETTYPE",
        "ZINTERNALRESOURCE.ZASSET",
        "ZINTERNALRESOURCE.ZDATASTORECLASSID",
        "ZINTERNALRESOURCE.ZDATASTORESUBTYPE",
        "ZINTERNALRESOURCE.ZRESOURCETYPE",
        "ZINTERNALRESOURCE.ZVERSION",
        "ZINTERNALRESOURCE.ZRECIPEID",
        "ZINTERNALRESOURCE.ZLOCALAVAILABILITY",
        "ZINTERNALRESOURCE.ZREMOTEAVAILABILITY",
    ];
    let (_d, probe) = copy_db(base());
    let conn = Connection::open(&probe).expect("open");
    let mut columns = Vec::new();
    for table in [
        "ZASSET",
        "ZADDITIONALASSETATTRIBUTES",
        "ZINTERNALRESOURCE",
        "ZCLOUDMASTER",
        "ZASSETCONTRIBUTOR",
        "ZSHAREPARTICIPANT",
        "Z_PRIMARYKEY",
        "Z_METADATA",
    ] {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .expect("pragma");
        let cols: Vec<(String, i64)> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(1)?, r.get::<_, i64>(5)?)))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect();
        for (c, pk) in cols {
            if pk == 0 {
                columns.push((table, c));
            }
        }
    }
    drop(conn);
    assert!(columns.len() > 80, "{} columns", columns.len());
    let n = assets();
    for (table, col) in columns {
        let (_d, db) = copy_db(base());
        let drop_indexes: String = {
            let c = Connection::open(&db).expect("open");
            let mut s = c
                .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
                .expect("prep");
            let names: Vec<String> = s
                .query_map([], |r| r.get(0))
                .expect("q")
                .map(|r| r.expect("row"))
                .collect();
            names.iter().map(|i| format!("DROP INDEX {i};")).collect()
        };
        modify(
            &db,
            &format!("{drop_indexes} ALTER TABLE {table} DROP COLUMN {col};"),
        )
        .expect("drop column");
        let name = format!("{table}.{col}");
        match read(&db) {
            Ok(got) => {
                assert!(
                    !required.contains(&name.as_str()),
                    "{name} is required but reading succeeded"
                );
                assert_eq!(got, n, "{name}");
            }
            Err(Error::UnsupportedSchema { missing, .. }) => {
                assert!(missing.contains(&name), "{name}: {missing:?}");
            }
            Err(e) => panic!("{name}: unexpected error {e}"),
        }
    }
}

#[test]
fn table_removal_gives_typed_errors() {
    for (table, expect_ok) in [
        ("ZADDITIONALASSETATTRIBUTES", true),
        ("ZCLOUDMASTER", true),
        ("ZASSETCONTRIBUTOR", true),
        ("ZSHAREPARTICIPANT", true),
        ("Z_PRIMARYKEY", true),
        ("Z_METADATA", true),
        ("ZINTERNALRESOURCE", false),
        ("ZASSET", false),
    ] {
        let (_d, db) = copy_db(base());
        modify(&db, &format!("DROP TABLE {table}")).expect("drop");
        let r = read(&db);
        assert_eq!(r.is_ok(), expect_ok, "{table}: {r:?}");
        if let Err(e) = r {
            assert!(
                matches!(
                    e,
                    Error::UnsupportedSchema { .. } | Error::NotPhotosDatabase { .. }
                ),
                "{table}: {e}"
            );
        }
    }
}

#[test]
fn hostile_paths_are_excluded_not_followed() {
    let (_d, db) = copy_db(base());
    modify(
        &db,
        "UPDATE ZASSET SET ZDIRECTORY = '../../../etc', ZFILENAME = 'passwd' WHERE Z_PK = 1;
         UPDATE ZASSET SET ZDIRECTORY = '/etc', ZFILENAME = 'shadow' WHERE Z_PK = 2;
         UPDATE ZASSET SET ZFILENAME = 'IMG' || char(0) || '.HEIC' WHERE Z_PK = 3;
         UPDATE ZASSET SET ZDIRECTORY = 'PhotoData/Metadata/DCIM/100APPLE' WHERE Z_PK = 4;
         UPDATE ZASSET SET ZFILENAME = 'a/../../b' WHERE Z_PK = 6;
         UPDATE ZASSET SET ZUUID = NULL WHERE Z_PK = 7;
         UPDATE ZASSET SET ZDIRECTORY = '/var/mobile/Media/DCIM/100APPLE' WHERE Z_PK = 8;",
    )
    .expect("modify");
    let records = PhotosDb::open(&db).expect("open").read_all().expect("read");
    for pk in [1, 2, 3, 4, 6] {
        let r = &records[pk - 1];
        assert!(
            matches!(r.exclusion, Some(Exclusion::InvalidPath(_))),
            "#{pk}: {:?}",
            r.exclusion
        );
        assert!(r.resources.is_empty(), "#{pk} must expose no path");
    }
    assert!(matches!(records[6].exclusion, Some(Exclusion::BadRow(_))));
    let p8 = records[7]
        .primary()
        .and_then(|p| p.location.exact())
        .expect("absolute under Media is fine");
    assert!(p8.as_str().starts_with("DCIM/100APPLE/"), "{p8}");
}

/// Entity numbers come from Z_PRIMARYKEY, not from constants: renumber the Asset entity and
/// its contributor column, and the Shared Library contributor is still found.
#[test]
fn entity_numbers_are_resolved_dynamically() {
    let img = common::generate(IosSchema::Ios16, 5, 45, IcloudPhotos::On);
    let (_d, db) = copy_db(img.path());
    let before: Vec<SharedLibrary> = PhotosDb::open(&db)
        .expect("open")
        .read_all()
        .expect("read")
        .iter()
        .map(|r| r.flags.shared_library)
        .collect();
    assert!(before.contains(&SharedLibrary::Other) && before.contains(&SharedLibrary::Mine));
    modify(
        &db,
        "UPDATE Z_PRIMARYKEY SET Z_ENT = 9 WHERE Z_NAME = 'Asset';
         UPDATE ZASSET SET Z_ENT = 9;
         ALTER TABLE ZASSETCONTRIBUTOR RENAME COLUMN Z3LIBRARYSCOPEASSETCONTRIBUTORS TO Z9LIBRARYSCOPEASSETCONTRIBUTORS;",
    )
    .expect("renumber");
    let pdb = PhotosDb::open(&db).expect("open");
    assert_eq!(
        pdb.schema().contributor_asset_column.as_deref(),
        Some("Z9LIBRARYSCOPEASSETCONTRIBUTORS")
    );
    let after: Vec<SharedLibrary> = pdb
        .read_all()
        .expect("read")
        .iter()
        .map(|r| r.flags.shared_library)
        .collect();
    assert_eq!(before, after);
}

#[test]
fn snapshot_ignores_a_stale_shm_and_keeps_the_source_untouched() {
    let img = common::generate(IosSchema::Ios17, 8, 40, IcloudPhotos::On);
    let src = img.path().join("Media/PhotoData");
    std::fs::write(src.join("Photos.sqlite-shm"), vec![0xAB; 32768]).expect("stale shm");
    let before: Vec<(String, u64)> = ["Photos.sqlite", "Photos.sqlite-wal", "Photos.sqlite-shm"]
        .iter()
        .map(|f| {
            (
                f.to_string(),
                std::fs::metadata(src.join(f)).expect("meta").len(),
            )
        })
        .collect();
    let snap =
        take_snapshot(&mut DirSource::new(&src), &SnapshotOptions::default()).expect("snapshot");
    assert_eq!(snap.attempts_used, 1);
    assert!(snap.wal.committed_frames > 0);
    assert_eq!(
        snap.open().expect("open").read_all().expect("read").len(),
        40
    );
    let after: Vec<(String, u64)> = before
        .iter()
        .map(|(f, _)| {
            (
                f.clone(),
                std::fs::metadata(src.join(f)).expect("meta").len(),
            )
        })
        .collect();
    assert_eq!(before, after);
}
