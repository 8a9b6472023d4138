//! `ferry-sim fetch` / `offload` (iOS downloading and purging originals) on generated images:
//! the right assets, files with predictable hashes, Photos.sqlite changed through the WAL only,
//! free space, expected.json kept as the ground truth (checked with the real reader,
//! `ferry-photos`), the free-space limit, the only-on-this-phone rule, every schema, and a
//! served phone whose client sees the change without a restart.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_phonegen::expected::{Expected, ExpectedAsset, ExpectedFlags, ExpectedResource};
use ferry_phonegen::{IcloudPhotos, IosSchema, MakePhoneArgs};
use ferry_photos::reconcile::{asset_classification, reconcile};
use ferry_photos::snapshot::{take_snapshot, DirSource, SnapshotOptions};
use ferry_photos::{AssetRecord, LocalMediaDir, ResourceLocation, Verdict};
use ferry_sim::storage::{self, FetchOptions, OffloadOptions, Report, Selection};
use sha2::{Digest, Sha256};

fn generate(
    schema: IosSchema,
    seed: u64,
    assets: usize,
    icloud: IcloudPhotos,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = MakePhoneArgs::new(dir.path());
    args.schema = schema;
    args.seed = seed;
    args.assets = assets;
    args.icloud_photos = icloud;
    ferry_phonegen::run(&args).expect("generate");
    dir
}

fn read_expected(image: &Path) -> Expected {
    ferry_phonegen::expected::read(&image.join("expected.json")).expect("expected.json")
}

fn free_bytes(image: &Path) -> u64 {
    ferry_sim::PhoneImage::open(image)
        .expect("image")
        .1
        .free_bytes
}

fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    hex(&Sha256::digest(&bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

fn fetch(image: &Path, selection: Selection) -> Report {
    storage::fetch(&FetchOptions {
        image: image.to_path_buf(),
        selection,
        rate_mb_s: None,
    })
    .expect("fetch")
}

fn offload(image: &Path, selection: Selection) -> Report {
    storage::offload(&OffloadOptions {
        image: image.to_path_buf(),
        selection,
    })
    .expect("offload")
}

/// Assets `fetch` may download (not excluded, some resource `fetch_on_phone`), oldest first.
fn icloud_only_oldest_first(e: &Expected) -> Vec<&ExpectedAsset> {
    let mut v: Vec<(usize, &ExpectedAsset)> = e
        .assets
        .iter()
        .enumerate()
        .filter(|(_, a)| {
            a.exclusion.is_none() && a.resources.iter().any(|r| r.action == "fetch_on_phone")
        })
        .collect();
    v.sort_by(|(i, a), (j, b)| {
        (a.created_utc.is_none(), &a.created_utc, i).cmp(&(
            b.created_utc.is_none(),
            &b.created_utc,
            j,
        ))
    });
    v.into_iter().map(|(_, a)| a).collect()
}

/// Copies Photos.sqlite + -wal into a temp dir (as a client does) and opens the copy read-only.
fn open_db_copy(image: &Path) -> (tempfile::TempDir, rusqlite::Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pd = image.join("Media/PhotoData");
    for f in ["Photos.sqlite", "Photos.sqlite-wal"] {
        std::fs::copy(pd.join(f), dir.path().join(f)).expect("copy db");
    }
    let conn = rusqlite::Connection::open_with_flags(
        dir.path().join("Photos.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open copy");
    (dir, conn)
}

/// (ZLOCALAVAILABILITY, ZDATASTOREKEYDATA IS NOT NULL, ZFILEID) of the primary original.
fn primary_row(conn: &rusqlite::Connection, uuid: &str) -> (i64, bool, i64) {
    let table: String = conn
        .query_row(
            "SELECT name FROM sqlite_master WHERE name IN ('ZASSET', 'ZGENERICASSET')",
            [],
            |r| r.get(0),
        )
        .expect("asset table");
    conn.query_row(
        &format!(
            "SELECT r.ZLOCALAVAILABILITY, r.ZDATASTOREKEYDATA IS NOT NULL, r.ZFILEID \
             FROM ZINTERNALRESOURCE r JOIN {table} a ON a.Z_PK = r.ZASSET \
             WHERE a.ZUUID = ?1 AND r.ZDATASTORECLASSID = 0 AND r.ZVERSION = 0 \
             AND r.ZRECIPEID = 0 AND r.ZDATASTORESUBTYPE = 1"
        ),
        [uuid],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("primary row")
}

// ---- the reader's view (as crates/ferry-photos/tests/common does) ----

fn read_image(image: &Path) -> Vec<ExpectedAsset> {
    let mut source = DirSource::new(image.join("Media/PhotoData"));
    let snap = take_snapshot(&mut source, &SnapshotOptions::default()).expect("snapshot");
    let db = snap.open().expect("open");
    let media = LocalMediaDir::new(image.join("Media"));
    db.read_all()
        .expect("read")
        .iter()
        .map(|r| to_expected(r, &media))
        .collect()
}

fn to_expected(r: &AssetRecord, media: &LocalMediaDir) -> ExpectedAsset {
    let verdicts = reconcile(r, media).expect("reconcile");
    let resources = r
        .resources
        .iter()
        .zip(&verdicts)
        .map(|(res, v)| {
            let afc_path = match (&res.location, v) {
                (ResourceLocation::Exact(p), _) => p.to_string(),
                (_, Verdict::Archive { path, .. }) => path.to_string(),
                (ResourceLocation::AnyExtension { dir, stem, .. }, _) => format!("{dir}/{stem}.*"),
            };
            let (size, sha) = match v {
                Verdict::Archive { path, size, .. } => {
                    (Some(*size), Some(sha256_file(&media.local_path(path))))
                }
                _ => (None, None),
            };
            ExpectedResource {
                role: res.role.as_str().into(),
                afc_path,
                db_size: res.expected_size,
                db_availability: res.availability.as_str().into(),
                upload_state: res.upload.as_str().into(),
                action: v.as_str().into(),
                size,
                sha256: sha,
            }
        })
        .collect();
    ExpectedAsset {
        uuid: r.uuid.clone(),
        kind: r.kind.as_str().into(),
        subtype: r.subtype.as_str().into(),
        created_utc: r.created_utc(),
        tz_offset_seconds: r.tz_offset_seconds,
        original_filename: r.original_filename.clone(),
        db_state: r.db_state.as_str().into(),
        classification: asset_classification(r, &verdicts).into(),
        exclusion: r.exclusion.as_ref().map(|e| e.as_str().to_string()),
        flags: ExpectedFlags {
            trashed: r.flags.trashed,
            hidden: r.flags.hidden,
            edited: r.flags.edited,
            saved_asset_type: r.flags.saved_asset_type,
            bundle_scope: r.flags.bundle_scope,
            shared_library: r.flags.shared_library.as_str().into(),
            burst_id: r.flags.burst_id.clone(),
        },
        resources,
        scenario: String::new(),
        in_wal: false,
    }
}

/// The reader's output equals the (updated) expected.json, asset by asset.
fn assert_image_matches(image: &Path) -> Vec<ExpectedAsset> {
    let expected = read_expected(image);
    let actual = read_image(image);
    assert_eq!(actual.len(), expected.assets.len());
    for (a, e) in actual.iter().zip(&expected.assets) {
        let mut e = e.clone();
        e.scenario = String::new();
        e.in_wal = false;
        for (er, ar) in e.resources.iter_mut().zip(&a.resources) {
            if ar.afc_path.ends_with(".*") {
                if let Some((stem, _)) = er.afc_path.rsplit_once('.') {
                    er.afc_path = format!("{stem}.*");
                }
            }
        }
        assert_eq!(
            *a,
            e,
            "{}: the reader disagrees with expected.json on {}",
            image.display(),
            a.uuid
        );
    }
    actual
}

/// Path → SHA-256 of every file under `dir`.
fn tree(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), sha256_file(&p));
            }
        }
    }
    out
}

#[test]
fn fetch_count_gets_the_oldest_icloud_only_assets() {
    let img = generate(IosSchema::Ios18, 3, 80, IcloudPhotos::On);
    let root = img.path();
    let before = read_expected(root);
    let want: Vec<String> = icloud_only_oldest_first(&before)
        .iter()
        .take(3)
        .map(|a| a.uuid.clone())
        .collect();
    assert_eq!(want.len(), 3, "the image needs iCloud-only assets");
    let want_bytes: u64 = before
        .assets
        .iter()
        .filter(|a| want.contains(&a.uuid))
        .flat_map(|a| &a.resources)
        .filter(|r| r.action == "fetch_on_phone")
        .map(|r| r.db_size.expect("db_size"))
        .sum();
    let free0 = free_bytes(root);
    let pd = root.join("Media/PhotoData");
    let main_sha = sha256_file(&pd.join("Photos.sqlite"));
    let wal_len = std::fs::metadata(pd.join("Photos.sqlite-wal"))
        .expect("wal")
        .len();

    let report = fetch(root, Selection::Count(3));
    assert_eq!(report.assets, want);
    assert_eq!(report.exit_code(), 0);
    assert_eq!(report.not_fitting_count, 0);
    assert_eq!(report.bytes, want_bytes);
    assert_eq!(
        free_bytes(root),
        free0 - want_bytes,
        "free_bytes drops by the bytes written"
    );
    assert_eq!(report.free_bytes_after, free0 - want_bytes);

    // Through the WAL: the main file is untouched, the WAL grew, no -shm left behind.
    assert_eq!(sha256_file(&pd.join("Photos.sqlite")), main_sha);
    assert!(
        std::fs::metadata(pd.join("Photos.sqlite-wal"))
            .expect("wal")
            .len()
            > wal_len
    );
    assert!(!pd.join("Photos.sqlite-shm").exists());

    let after = read_expected(root);
    for f in &report.files {
        let a = after
            .assets
            .iter()
            .find(|a| a.uuid == f.uuid)
            .expect("asset");
        let r = a
            .resources
            .iter()
            .find(|r| r.role == f.role)
            .expect("resource");
        assert_eq!(r.action, "archive");
        assert_eq!(r.db_availability, "local");
        assert_eq!(r.size, r.db_size);
        let path = root.join("Media").join(&r.afc_path);
        assert_eq!(Some(sha256_file(&path)), r.sha256, "{}", r.afc_path);
        assert_eq!(f.sha256, r.sha256);
    }
    // The DB (a client's copy of db + WAL) says local for the fetched primaries.
    let (_tmp, conn) = open_db_copy(root);
    for a in after.assets.iter().filter(|a| want.contains(&a.uuid)) {
        if report
            .files
            .iter()
            .any(|f| f.uuid == a.uuid && f.role == "primary")
        {
            let (la, key, fid) = primary_row(&conn, &a.uuid);
            assert_eq!((la, key), (1, true), "{}", a.uuid);
            assert!(fid > 0);
            assert_eq!(a.classification, "archive");
            assert_eq!(a.db_state, "local");
        }
    }
    // Everything else is as it was.
    for (b, a) in before.assets.iter().zip(&after.assets) {
        if !want.contains(&b.uuid) {
            assert_eq!(b, a);
        }
    }
    assert_eq!(
        after.totals.fetch_on_phone_files,
        before.totals.fetch_on_phone_files - report.files.len() as u64
    );
    assert_eq!(
        after.totals.media_bytes,
        before.totals.media_bytes + want_bytes
    );
    assert_eq!(
        after.totals.media_files,
        before.totals.media_files + report.files.len() as u64
    );

    // The reader agrees with the new ground truth, and calls the fetched assets local.
    let read = assert_image_matches(root);
    for a in read.iter().filter(|a| want.contains(&a.uuid)) {
        if report
            .files
            .iter()
            .any(|f| f.uuid == a.uuid && f.role == "primary")
        {
            assert_eq!(a.classification, "archive", "{}", a.uuid);
        }
    }

    // Deterministic: the same image fetched again gives the same bytes.
    let twin = generate(IosSchema::Ios18, 3, 80, IcloudPhotos::On);
    let again = fetch(twin.path(), Selection::Count(3));
    assert_eq!(again.files, report.files);
}

#[test]
fn offload_reverses_fetch_and_keeps_derivatives() {
    let img = generate(IosSchema::Ios16, 4, 70, IcloudPhotos::On);
    let root = img.path();
    let free0 = free_bytes(root);
    let metadata = root.join("Media/PhotoData/Metadata");
    let thumbs = root.join("Media/PhotoData/Thumbnails");
    let (meta0, thumbs0) = (tree(&metadata), tree(&thumbs));
    assert!(!meta0.is_empty() && !thumbs0.is_empty());

    let fetched = fetch(root, Selection::Count(2));
    assert_eq!(fetched.assets.len(), 2);
    let back = offload(root, Selection::Uuids(fetched.assets.clone()));
    assert_eq!(back.assets, fetched.assets);
    // Offload purges every original of those assets (also halves that were local before).
    assert!(
        back.bytes >= fetched.bytes,
        "offload frees at least what fetch wrote"
    );
    assert_eq!(free_bytes(root), free0 - fetched.bytes + back.bytes);
    let free1 = free_bytes(root);
    for f in &fetched.files {
        assert!(
            !root.join("Media").join(&f.afc_path).exists(),
            "{}",
            f.afc_path
        );
    }
    let exp = read_expected(root);
    let (_tmp, conn) = open_db_copy(root);
    for u in &fetched.assets {
        let a = exp.assets.iter().find(|a| &a.uuid == u).expect("asset");
        assert_eq!(a.classification, "icloud_only");
        assert_eq!(a.resources[0].action, "fetch_on_phone");
        let (la, key, fid) = primary_row(&conn, u);
        assert_eq!((la, key, fid), (-1, false, -1));
    }

    // Offload ordinary local assets too: their originals go, derivatives and thumbnails stay.
    let exp0 = read_expected(root);
    let local_before = exp0
        .totals
        .classifications
        .get("archive")
        .copied()
        .unwrap_or(0);
    let r = offload(root, Selection::Count(5));
    assert_eq!(r.assets.len(), 5);
    assert!(r.bytes > 0);
    assert_eq!(free_bytes(root), free1 + r.bytes);
    for f in &r.files {
        assert!(
            !root.join("Media").join(&f.afc_path).exists(),
            "{}",
            f.afc_path
        );
        assert!(!f.afc_path.starts_with("PhotoData/Metadata"));
    }
    let exp1 = read_expected(root);
    assert_eq!(
        exp1.totals
            .classifications
            .get("archive")
            .copied()
            .unwrap_or(0),
        local_before - 5
    );
    assert_eq!(tree(&metadata), meta0, "Metadata derivatives untouched");
    assert_eq!(tree(&thumbs), thumbs0, "thumbnails untouched");
    assert_image_matches(root);

    // And back again: fetch restores the offloaded originals (new deterministic bytes).
    let again = fetch(root, Selection::Uuids(r.assets.clone()));
    assert_eq!(again.assets.len(), 5);
    assert_image_matches(root);
}

#[test]
fn offload_never_touches_an_original_only_on_this_phone() {
    let img = generate(IosSchema::Ios18, 5, 60, IcloudPhotos::On);
    let root = img.path();
    let exp = read_expected(root);
    let pending: Vec<&ExpectedAsset> = exp
        .assets
        .iter()
        .filter(|a| {
            a.exclusion.is_none()
                && a.resources
                    .first()
                    .is_some_and(|r| r.action == "archive" && r.upload_state == "upload_pending")
        })
        .collect();
    assert!(
        !pending.is_empty(),
        "the coverage set has an upload_pending asset"
    );
    let files: Vec<(PathBuf, String)> = pending
        .iter()
        .flat_map(|a| &a.resources)
        .filter(|r| r.action == "archive")
        .map(|r| {
            let p = root.join("Media").join(&r.afc_path);
            let sha = sha256_file(&p);
            (p, sha)
        })
        .collect();

    // Named explicitly: skipped, with the reason, not an error.
    let named = offload(root, Selection::Uuids(vec![pending[0].uuid.clone()]));
    assert!(named.assets.is_empty());
    assert_eq!(named.skipped.len(), 1);
    assert!(
        named.skipped[0].reason.contains("not in iCloud"),
        "{:?}",
        named.skipped
    );

    // Everything: every in-iCloud original goes, the pending ones stay.
    let all = offload(root, Selection::All);
    assert!(!all.assets.is_empty());
    for (p, sha) in &files {
        assert_eq!(&sha256_file(p), sha, "{} must not be purged", p.display());
    }
    let after = read_expected(root);
    let (_tmp, conn) = open_db_copy(root);
    for a in &pending {
        assert!(!all.assets.contains(&a.uuid));
        let now = after
            .assets
            .iter()
            .find(|x| x.uuid == a.uuid)
            .expect("asset");
        assert_eq!(now, *a);
        assert_eq!(primary_row(&conn, &a.uuid).0, 1);
    }
    // Nothing purgeable remains; nothing iCloud-only became archive.
    for a in &after.assets {
        if a.exclusion.is_none() {
            for r in &a.resources {
                if r.action == "archive" && r.role == "primary" {
                    assert_ne!(r.upload_state, "in_icloud", "{} was not offloaded", a.uuid);
                }
            }
        }
    }
    assert_image_matches(root);

    // iCloud Photos off: nothing is ever purged.
    let off = generate(IosSchema::Ios17, 6, 40, IcloudPhotos::Off);
    let t0 = tree(&off.path().join("Media"));
    let r = offload(off.path(), Selection::All);
    assert!(r.assets.is_empty() && r.files.is_empty());
    assert_eq!(tree(&off.path().join("Media")), t0);
}

#[test]
fn a_full_phone_fetches_what_fits_and_says_so() {
    let img = generate(IosSchema::Ios18, 7, 80, IcloudPhotos::On);
    let root = img.path();
    let exp = read_expected(root);
    let order = icloud_only_oldest_first(&exp);
    assert!(order.len() >= 4);
    let need = |a: &ExpectedAsset| -> u64 {
        a.resources
            .iter()
            .filter(|r| r.action == "fetch_on_phone")
            .map(|r| r.db_size.expect("db_size"))
            .sum()
    };
    let first_two = need(order[0]) + need(order[1]);
    // Room for the two oldest and a bit, not for the third.
    let free = first_two + need(order[2]) - 1;
    let toml = std::fs::read_to_string(root.join("device.toml")).expect("device.toml");
    let toml: String = toml
        .lines()
        .map(|l| {
            if l.starts_with("free_bytes") {
                format!("free_bytes = {free}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(root.join("device.toml"), toml).expect("write");

    let r = fetch(root, Selection::All);
    assert_eq!(r.assets, vec![order[0].uuid.clone(), order[1].uuid.clone()]);
    assert_eq!(r.not_fitting_count, order.len() - 2);
    assert_eq!(r.not_fitting[0], order[2].uuid);
    assert_eq!(r.exit_code(), storage::EXIT_DID_NOT_FIT);
    assert_eq!(r.bytes, first_two);
    assert_eq!(free_bytes(root), free - first_two);
    let after = read_expected(root);
    assert_eq!(
        after.totals.fetch_on_phone_files,
        exp.totals.fetch_on_phone_files - r.files.len() as u64
    );
    assert_image_matches(root);
}

#[test]
fn fetch_all_on_every_schema() {
    for (i, schema) in [
        IosSchema::Ios13,
        IosSchema::Ios14,
        IosSchema::Ios16,
        IosSchema::Ios18,
    ]
    .into_iter()
    .enumerate()
    {
        let img = generate(schema, 20 + i as u64, 60, IcloudPhotos::On);
        let root = img.path();
        let before = read_expected(root);
        assert!(before.totals.fetch_on_phone_files > 0, "{schema:?}");
        let r = fetch(root, Selection::All);
        assert_eq!(
            r.files.len() as u64,
            before.totals.fetch_on_phone_files,
            "{schema:?}"
        );
        let after = read_expected(root);
        assert_eq!(after.totals.fetch_on_phone_files, 0, "{schema:?}");
        assert_eq!(
            after.totals.classifications.get("icloud_only"),
            None,
            "{schema:?}"
        );
        let read = assert_image_matches(root);
        for u in &r.assets {
            let a = read.iter().find(|a| &a.uuid == u).expect("asset");
            assert_eq!(a.classification, "archive", "{schema:?} {u}");
        }
    }
}

#[test]
fn committed_fixture_copy_fetches_and_matches() {
    let src = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/ios13"));
    let dst = tempfile::tempdir().expect("tempdir");
    copy_tree(src, dst.path());
    let r = fetch(dst.path(), Selection::All);
    assert!(!r.assets.is_empty());
    assert_image_matches(dst.path());
}

fn copy_tree(src: &Path, dst: &Path) {
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let to = dst.join(entry.file_name());
        let ty = entry.file_type().expect("type");
        if ty.is_dir() {
            std::fs::create_dir_all(&to).expect("mkdir");
            copy_tree(&entry.path(), &to);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &to).expect("copy");
        }
    }
}

#[test]
fn before_date_and_unknown_uuid() {
    let img = generate(IosSchema::Ios17, 8, 80, IcloudPhotos::On);
    let root = img.path();
    let exp = read_expected(root);
    let order = icloud_only_oldest_first(&exp);
    let dated: Vec<&&ExpectedAsset> = order.iter().filter(|a| a.created_utc.is_some()).collect();
    let day = dated[dated.len() / 2].created_utc.as_deref().expect("date")[..10].to_string();
    let want: Vec<String> = dated
        .iter()
        .filter(|a| a.created_utc.as_deref().expect("date")[..10] < *day)
        .map(|a| a.uuid.clone())
        .collect();

    // An unknown UUID: an error, and nothing changes.
    let exp_text = std::fs::read(root.join("expected.json")).expect("read");
    let wal = sha256_file(&root.join("Media/PhotoData/Photos.sqlite-wal"));
    let err = storage::fetch(&FetchOptions {
        image: root.to_path_buf(),
        selection: Selection::Uuids(vec![order[0].uuid.clone(), "NOT-A-UUID".into()]),
        rate_mb_s: None,
    })
    .expect_err("unknown UUID");
    assert!(format!("{err:#}").contains("NOT-A-UUID"), "{err:#}");
    assert_eq!(
        std::fs::read(root.join("expected.json")).expect("read"),
        exp_text
    );
    assert_eq!(
        sha256_file(&root.join("Media/PhotoData/Photos.sqlite-wal")),
        wal
    );
    assert!(storage::fetch(&FetchOptions {
        image: root.to_path_buf(),
        selection: Selection::Before("2023-6-1".into()),
        rate_mb_s: None,
    })
    .is_err());
    assert!(
        !root.join("Media/PhotoData/Photos.sqlite-shm").exists(),
        "a refused command leaves no -shm behind"
    );

    let r = fetch(root, Selection::Before(day.clone()));
    assert_eq!(r.assets, want, "assets captured before {day}");
    assert_image_matches(root);
}

#[test]
fn rate_writes_progressively_and_the_db_follows_the_last_byte() {
    let img = generate(IosSchema::Ios18, 9, 60, IcloudPhotos::On);
    let root = img.path().to_path_buf();
    let exp = read_expected(&root);
    // The oldest iCloud-only asset whose primary is to be fetched.
    let a = icloud_only_oldest_first(&exp)
        .into_iter()
        .filter(|a| a.resources[0].action == "fetch_on_phone")
        .max_by_key(|a| a.resources[0].db_size)
        .expect("an iCloud-only primary")
        .clone();
    let r0 = &a.resources[0];
    let size = r0.db_size.expect("size");
    assert!(size > 1024, "small media are a few KB: {size}");
    let path = root.join("Media").join(&r0.afc_path);
    let uuid = a.uuid.clone();
    // 2 KB/s: a few KB take seconds, in 512-byte steps.
    let t = std::thread::spawn({
        let root = root.clone();
        move || {
            storage::fetch(&FetchOptions {
                image: root,
                selection: Selection::Uuids(vec![uuid]),
                rate_mb_s: Some(0.002),
            })
        }
    });
    // Watch the file grow: seen partial (under its final name) while the DB still says
    // iCloud-only.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut saw_partial = false;
    while std::time::Instant::now() < deadline && !t.is_finished() {
        let len = std::fs::metadata(&path).map_or(0, |m| m.len());
        if len > 0 && len < size {
            let (_tmp, conn) = open_db_copy(&root);
            let (la, _, _) = primary_row(&conn, &a.uuid);
            let len_after = std::fs::metadata(&path).map_or(0, |m| m.len());
            if len_after < size {
                assert_eq!(la, -1, "the DB says local before the file is complete");
                saw_partial = true;
                break;
            }
        }
        std::thread::yield_now();
    }
    let report = t.join().expect("thread").expect("fetch");
    assert!(saw_partial, "never saw the file half-written");
    assert_eq!(std::fs::metadata(&path).expect("file").len(), size);
    assert_eq!(Some(sha256_file(&path)), report.files[0].sha256);
    let (_tmp, conn) = open_db_copy(&root);
    assert_eq!(primary_row(&conn, &a.uuid).0, 1);
    assert_image_matches(&root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_client_sees_the_fetched_file_without_a_restart() {
    use ferry_sim::{PhoneConfig, SimConfig, Simulator};
    use idevice::afc::opcode::AfcFopenMode;
    use idevice::afc::AfcClient;
    use idevice::usbmuxd::UsbmuxdAddr;
    use idevice::IdeviceService;

    let img = generate(IosSchema::Ios18, 10, 50, IcloudPhotos::On);
    let root = img.path().to_path_buf();
    let exp = read_expected(&root);
    let target = icloud_only_oldest_first(&exp)
        .into_iter()
        .find(|a| a.resources[0].action == "fetch_on_phone")
        .expect("iCloud-only primary")
        .clone();
    let afc_path = target.resources[0].afc_path.clone();
    let udid = ferry_sim::PhoneImage::open(&root).expect("image").1.udid;

    let sim = Arc::new(
        Simulator::start(SimConfig {
            phones: vec![PhoneConfig::new(&root)],
            listen: "127.0.0.1:0".parse().expect("addr"),
            state: None,
        })
        .await
        .expect("simulator"),
    );
    let addr = UsbmuxdAddr::TcpSocket(sim.addr());
    let dev = addr
        .connect(0)
        .await
        .expect("usbmuxd")
        .get_device(&udid)
        .await
        .expect("device");
    // Pair and save the record, as `idevicepair` does.
    let provider = dev.to_provider(addr.clone(), "ferry-sim-test");
    let mut ld = idevice::lockdown::LockdownClient::connect(&provider)
        .await
        .expect("lockdown");
    let buid = addr
        .connect(0)
        .await
        .expect("mux")
        .get_buid()
        .await
        .expect("buid");
    let mut pf = ld
        .pair(
            "ABCDEF01-2345-6789-ABCD-EF0123456789",
            buid,
            Some("test-host"),
        )
        .await
        .expect("pair");
    pf.udid = Some(udid.clone());
    addr.connect(0)
        .await
        .expect("mux")
        .save_pair_record(&udid, pf.serialize().expect("serialize"))
        .await
        .expect("save pair record");
    let mut afc = AfcClient::connect(&provider).await.expect("AFC");

    assert!(
        afc.get_file_info(afc_path.clone()).await.is_err(),
        "{afc_path} is iCloud-only before the fetch"
    );
    let free0 = afc.get_device_info().await.expect("devinfo").free_bytes as u64;
    let wal0 = afc
        .get_file_info("PhotoData/Photos.sqlite-wal")
        .await
        .expect("wal")
        .size;

    let report = tokio::task::spawn_blocking({
        let root = root.clone();
        let uuid = target.uuid.clone();
        move || fetch(&root, Selection::Uuids(vec![uuid]))
    })
    .await
    .expect("join");
    let f = &report.files[0];
    assert_eq!(f.afc_path, afc_path);

    // Same connection, same server: the new file, the grown WAL and the new free space.
    let info = afc
        .get_file_info(afc_path.clone())
        .await
        .expect("stat after fetch");
    assert_eq!(info.size as u64, f.size);
    let mut fd = afc
        .open(afc_path.clone(), AfcFopenMode::RdOnly)
        .await
        .expect("open");
    let bytes = fd.read_entire().await.expect("read");
    fd.close().await.expect("close");
    assert_eq!(Some(hex(&Sha256::digest(&bytes))), f.sha256);
    let wal1 = afc
        .get_file_info("PhotoData/Photos.sqlite-wal")
        .await
        .expect("wal")
        .size;
    assert!(wal1 > wal0, "the served WAL grew: {wal0} -> {wal1}");
    let free1 = afc.get_device_info().await.expect("devinfo").free_bytes as u64;
    assert_eq!(free1, free0 - report.bytes);

    // A paced download: the served client sees the file grow under its final name.
    let slow = icloud_only_oldest_first(&read_expected(&root))
        .into_iter()
        .filter(|a| a.resources[0].action == "fetch_on_phone")
        .max_by_key(|a| a.resources[0].db_size)
        .expect("another iCloud-only primary")
        .clone();
    let slow_path = slow.resources[0].afc_path.clone();
    let slow_size = slow.resources[0].db_size.expect("size");
    let job = tokio::task::spawn_blocking({
        let root = root.clone();
        let uuid = slow.uuid.clone();
        move || {
            storage::fetch(&FetchOptions {
                image: root,
                selection: Selection::Uuids(vec![uuid]),
                rate_mb_s: Some(0.002),
            })
        }
    });
    let mut partial = None;
    while !job.is_finished() {
        if let Ok(info) = afc.get_file_info(slow_path.clone()).await {
            let n = info.size as u64;
            if n > 0 && n < slow_size {
                partial = Some(n);
                break;
            }
        }
    }
    let slow_report = job.await.expect("join").expect("paced fetch");
    assert!(
        partial.is_some(),
        "the client never saw {slow_path} half-written ({slow_size} bytes at 2 KB/s)"
    );
    let info = afc.get_file_info(slow_path.clone()).await.expect("stat");
    assert_eq!(info.size as u64, slow_size);
    assert_eq!(slow_report.files[0].size, slow_size);

    drop(afc);
    drop(ld);
    if let Ok(sim) = Arc::try_unwrap(sim) {
        sim.shutdown().await;
    }
}

#[test]
fn a_download_replaces_a_symlink_at_the_originals_path_and_never_writes_through_it() {
    let img = generate(IosSchema::Ios18, 11, 40, IcloudPhotos::On);
    let root = img.path();
    let exp = read_expected(root);
    let order = icloud_only_oldest_first(&exp);
    assert!(order.len() >= 2);
    let outside = tempfile::tempdir().expect("tempdir");
    // Progressive (a rate) and whole-file downloads, one asset each.
    for (asset, rate) in [(order[0], Some(1000.0)), (order[1], None)] {
        let res = asset
            .resources
            .iter()
            .find(|r| r.action == "fetch_on_phone")
            .expect("an iCloud-only original");
        let victim = outside.path().join(format!("victim-{}", asset.uuid));
        std::fs::write(&victim, b"a host file").expect("write");
        let at = root.join("Media").join(&res.afc_path);
        std::fs::create_dir_all(at.parent().expect("parent")).expect("mkdir");
        std::os::unix::fs::symlink(&victim, &at).expect("symlink");
        let r = storage::fetch(&FetchOptions {
            image: root.to_path_buf(),
            selection: Selection::Uuids(vec![asset.uuid.clone()]),
            rate_mb_s: rate,
        })
        .expect("fetch");
        assert_eq!(r.assets, vec![asset.uuid.clone()], "rate {rate:?}");
        assert_eq!(
            std::fs::read(&victim).expect("victim"),
            b"a host file",
            "rate {rate:?}: the download wrote through the link"
        );
        let meta = std::fs::symlink_metadata(&at).expect("stat");
        assert!(meta.file_type().is_file(), "rate {rate:?}: {meta:?}");
        assert_eq!(meta.len(), res.db_size.expect("db_size"), "rate {rate:?}");
    }
}
