//! The hand-built fixtures from `shared/specs/photos-fixtures` (copied to `tests/spec-fixtures`):
//! the reader must give the classification the spec lists for each row, and agree with the
//! spec's own reference SQL (`classify_*.sql`) on every asset.

use std::collections::BTreeMap;
use std::path::Path;

use ferry_photos::{Availability, Exclusion, PhotosDb, SharedLibrary};
use rusqlite::Connection;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/spec-fixtures");

fn build(dir: &Path, schema: &str, data: &str) -> std::path::PathBuf {
    let db = dir.join("Photos.sqlite");
    let conn = Connection::open(&db).expect("create");
    conn.execute_batch("PRAGMA journal_mode=WAL;").expect("wal");
    for f in [schema, data] {
        let sql = std::fs::read_to_string(Path::new(DIR).join(f)).expect("read fixture");
        conn.execute_batch(&sql).expect("run fixture");
    }
    db
}

/// The spec's `state` vocabulary for a record.
fn spec_state(r: &ferry_photos::AssetRecord) -> &'static str {
    match &r.exclusion {
        Some(Exclusion::Trashed) => "EXCLUDE_TRASHED",
        Some(Exclusion::SharedAlbum) => "EXCLUDE_SHARED_ALBUM",
        Some(Exclusion::IcloudLink) => "EXCLUDE_ICLOUD_LINK",
        Some(Exclusion::SharedWithYou) => "EXCLUDE_SHARED_WITH_YOU",
        Some(Exclusion::Placeholder) => "EXCLUDE_PLACEHOLDER",
        Some(other) => panic!("unexpected exclusion {other:?}"),
        None => match r.db_state {
            Availability::Local => "ORIGINAL_LOCAL",
            Availability::IcloudOnly => "ORIGINAL_ICLOUD_ONLY",
            Availability::Unavailable => "ORIGINAL_UNAVAILABLE",
            Availability::Unknown => "UNKNOWN_NO_RESOURCE_ROW",
        },
    }
}

fn reference(db: &Path, classify: &str) -> BTreeMap<i64, String> {
    let conn = Connection::open(db).expect("open");
    let sql = std::fs::read_to_string(Path::new(DIR).join(classify)).expect("read");
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let rows = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(5)?))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

#[test]
fn ios18_fixture_classifies_as_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = build(tmp.path(), "ios18_schema.sql", "ios18_data.sql");
    let reference = reference(&db, "classify_ios14plus.sql");
    let records = PhotosDb::open(&db).expect("open").read_all().expect("read");
    let got: BTreeMap<i64, &str> = records.iter().map(|r| (r.pk, spec_state(r))).collect();
    let expected: BTreeMap<i64, &str> = [
        (1, "ORIGINAL_LOCAL"),
        (2, "ORIGINAL_ICLOUD_ONLY"),
        (3, "ORIGINAL_LOCAL"),
        (4, "ORIGINAL_LOCAL"),
        (5, "EXCLUDE_TRASHED"),
        (6, "ORIGINAL_LOCAL"),
        (7, "EXCLUDE_SHARED_ALBUM"),
        (8, "ORIGINAL_LOCAL"),
        (9, "ORIGINAL_LOCAL"),
        (10, "ORIGINAL_ICLOUD_ONLY"),
        (11, "EXCLUDE_SHARED_WITH_YOU"),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, expected);
    let reference: BTreeMap<i64, &str> = reference.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        got, reference,
        "reader and the spec's reference SQL disagree"
    );

    let by_pk: BTreeMap<i64, &ferry_photos::AssetRecord> =
        records.iter().map(|r| (r.pk, r)).collect();
    // #3: edited Live Photo, still local, video complement only in iCloud.
    let live = by_pk[&3];
    let roles: Vec<&str> = live.resources.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(
        roles,
        ["primary", "live_video", "edit_render", "adjustment_data"]
    );
    assert_eq!(live.resources[1].availability, Availability::IcloudOnly);
    assert_eq!(
        live.resources[1].location.exact().map(|p| p.as_str()),
        Some("DCIM/100APPLE/IMG_0003.MOV")
    );
    assert!(live.flags.edited);
    // #4: CPL asset keeps its user-facing name.
    assert_eq!(by_pk[&4].original_filename.as_deref(), Some("IMG_4321.JPG"));
    assert_eq!(
        by_pk[&4]
            .primary()
            .and_then(|p| p.location.exact())
            .map(|p| p.as_str()),
        Some("PhotoData/CPLAssets/group118/A0000004-0000-0000-0000-000000000004.JPG")
    );
    // #6 hidden, #8/#9 burst, #10 other contributor.
    assert!(by_pk[&6].flags.hidden);
    assert_eq!(by_pk[&8].flags.burst_id.as_deref(), Some("BURST-1"));
    assert_eq!(by_pk[&9].flags.burst_id.as_deref(), Some("BURST-1"));
    assert_eq!(by_pk[&10].flags.shared_library, SharedLibrary::Other);
    assert_eq!(by_pk[&1].flags.shared_library, SharedLibrary::None);
    // #2: the medium derivative (recipe 65741) is never taken for the original.
    assert_eq!(by_pk[&2].resources.len(), 1);
    assert_eq!(by_pk[&2].resources[0].expected_size, Some(2_200_000));
    // Dates and offsets.
    assert_eq!(
        by_pk[&1].created_utc().as_deref(),
        Some("2024-01-15T12:00:00.000Z")
    );
    assert_eq!(by_pk[&4].tz_offset_seconds, Some(-18000));
}

#[test]
fn ios13_fixture_classifies_as_listed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let db = build(tmp.path(), "ios13_schema.sql", "ios13_data.sql");
    let reference = reference(&db, "classify_ios13.sql");
    let pdb = PhotosDb::open(&db).expect("open");
    assert_eq!(pdb.schema().asset_table, "ZGENERICASSET");
    assert_eq!(pdb.schema().entities.get("Asset"), Some(&34));
    let records = pdb.read_all().expect("read");
    let got: BTreeMap<i64, &str> = records.iter().map(|r| (r.pk, spec_state(r))).collect();
    let expected: BTreeMap<i64, &str> = [(1, "ORIGINAL_LOCAL"), (2, "ORIGINAL_ICLOUD_ONLY")]
        .into_iter()
        .collect();
    assert_eq!(got, expected);
    let reference: BTreeMap<i64, &str> = reference.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(got, reference);
    // #1 is a Live Photo whose video complement is local.
    assert_eq!(records[0].resources[1].role.as_str(), "live_video");
    assert_eq!(records[0].resources[1].availability, Availability::Local);
}
