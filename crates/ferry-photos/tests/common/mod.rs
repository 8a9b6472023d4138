//! Shared test helpers: run the reader (+ reconcile) over a phone image and compare with the
//! generator's `expected.json`.

#![allow(dead_code)]

use std::path::Path;

use ferry_phonegen::expected::{Expected, ExpectedAsset, ExpectedFlags, ExpectedResource};
use ferry_photos::reconcile::{asset_classification, reconcile};
use ferry_photos::snapshot::{take_snapshot, DirSource, SnapshotOptions};
use ferry_photos::{AssetRecord, LocalMediaDir, ResourceLocation, Verdict};
use sha2::{Digest, Sha256};

/// Reads the image at `image` through the reader the way the app will: snapshot, open, scan,
/// reconcile with the files.
pub fn read_image(image: &Path) -> Vec<ExpectedAsset> {
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

fn sha256(path: &Path) -> String {
    let mut h = Sha256::new();
    let mut f = std::fs::File::open(path).expect("open media file");
    std::io::copy(&mut f, &mut h).expect("hash");
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The reader's view of an asset in `expected.json` terms.
pub fn to_expected(r: &AssetRecord, media: &LocalMediaDir) -> ExpectedAsset {
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
                    (Some(*size), Some(sha256(&media.local_path(path))))
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

/// Expected, with the informational fields cleared and unresolvable extensions turned into
/// `.*` where the reader cannot know them without a file to list.
fn normalise(mut e: ExpectedAsset, actual: Option<&ExpectedAsset>) -> ExpectedAsset {
    e.scenario = String::new();
    e.in_wal = false;
    if let Some(a) = actual {
        for (er, ar) in e.resources.iter_mut().zip(&a.resources) {
            if ar.afc_path.ends_with(".*") {
                if let Some((stem, _)) = er.afc_path.rsplit_once('.') {
                    er.afc_path = format!("{stem}.*");
                }
            }
        }
    }
    e
}

/// Asserts that the reader's output for `image` equals its `expected.json`, asset by asset.
pub fn assert_image_matches(image: &Path) {
    let expected: Expected =
        ferry_phonegen::expected::read(&image.join("expected.json")).expect("expected.json");
    let actual = read_image(image);
    assert_eq!(
        actual.len(),
        expected.assets.len(),
        "{}: reader produced {} assets, expected {}",
        image.display(),
        actual.len(),
        expected.assets.len()
    );
    for (i, (a, e)) in actual.iter().zip(expected.assets.iter()).enumerate() {
        let scenario = e.scenario.clone();
        let e = normalise(e.clone(), Some(a));
        if *a != e {
            panic!(
                "{}: asset #{} ({scenario}) differs\nexpected: {}\n  actual: {}",
                image.display(),
                i + 1,
                serde_json::to_string(&e).unwrap_or_default(),
                serde_json::to_string(a).unwrap_or_default()
            );
        }
    }
}

/// Generates an image into a fresh temp dir.
pub fn generate(
    schema: ferry_phonegen::IosSchema,
    seed: u64,
    assets: usize,
    icloud: ferry_phonegen::IcloudPhotos,
) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = ferry_phonegen::MakePhoneArgs::new(dir.path());
    args.schema = schema;
    args.seed = seed;
    args.assets = assets;
    args.icloud_photos = icloud;
    ferry_phonegen::run(&args).expect("generate");
    dir
}
