//! Integration tests of the archive on the local file system: init/marker, lock, layout and
//! names, the write path's refusals, versions, deleted-on-phone, recovery and rebuild, and
//! hostile input never writing outside the destination.

mod common;

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use ferry_archive::{Archive, ArchiveOptions, Error, ErrorScope, ResourceSpec, WriteOutcome};
use ferry_photos::ResourceRole;

#[test]
fn writes_a_live_photo_pair_by_local_date_with_capture_mtime() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    let still = content(1, 300_000);
    let video = content(2, 1_000_000);
    let r1 = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1234.HEIC",
            "DCIM/100APPLE/IMG_1234.HEIC",
            300_000,
        ),
        &still,
    )
    .unwrap();
    let r2 = write(
        &p,
        spec(
            "A",
            ResourceRole::LiveVideo,
            "IMG_1234.HEIC",
            "DCIM/100APPLE/IMG_1234.MOV",
            1_000_000,
        ),
        &video,
    )
    .unwrap();
    // 23:30 UTC + 01:00 → February local time.
    assert_eq!(r1.rel_path, "Anna's iPhone/2024/02/IMG_1234.HEIC");
    assert_eq!(r2.rel_path, "Anna's iPhone/2024/02/IMG_1234.MOV");
    assert_eq!(r1.outcome, WriteOutcome::New);
    assert_eq!(std::fs::read(&r1.path).unwrap(), still);
    assert_eq!(std::fs::read(&r2.path).unwrap(), video);
    assert_eq!(r1.blake3, blake3::hash(&still).to_hex().to_string());
    let m = std::fs::metadata(&r1.path).unwrap();
    assert_eq!(
        m.modified().unwrap(),
        UNIX_EPOCH + Duration::from_millis(CAPTURE as u64)
    );
    let e = p.lookup("A", ResourceRole::LiveVideo).unwrap().unwrap();
    assert_eq!(e.size, 1_000_000);
    assert_eq!(e.hash_alg, "blake3");
    assert_eq!(e.afc_path, "DCIM/100APPLE/IMG_1234.MOV");
    assert!(a.check(true).unwrap().is_clean());
    assert_eq!(photo_files(d.path()).len(), 2);
}

#[test]
fn clash_suffix_only_on_a_real_clash_and_pairs_stay_together() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    let w = |uuid: &str, role, orig: &str, afc: &str, seed| {
        let data = content(seed, 1000);
        write(&p, spec(uuid, role, orig, afc, 1000), &data)
            .unwrap()
            .rel_path
    };
    assert_eq!(
        w(
            "A",
            ResourceRole::Primary,
            "IMG_1.HEIC",
            "DCIM/IMG_1.HEIC",
            1
        ),
        "Anna's iPhone/2024/02/IMG_1.HEIC"
    );
    // Another asset with the same name in the same month: suffix; its Live video follows.
    assert_eq!(
        w(
            "B",
            ResourceRole::Primary,
            "IMG_1.HEIC",
            "DCIM/IMG_1.HEIC",
            2
        ),
        "Anna's iPhone/2024/02/IMG_1 (1).HEIC"
    );
    assert_eq!(
        w(
            "B",
            ResourceRole::LiveVideo,
            "IMG_1.HEIC",
            "DCIM/IMG_1.MOV",
            3
        ),
        "Anna's iPhone/2024/02/IMG_1 (1).MOV"
    );
    // A's video, written later, still gets A's base name.
    assert_eq!(
        w(
            "A",
            ResourceRole::LiveVideo,
            "IMG_1.HEIC",
            "DCIM/IMG_1.MOV",
            4
        ),
        "Anna's iPhone/2024/02/IMG_1.MOV"
    );
    // Case-insensitive clash (exFAT/APFS would see one file) and NFD vs NFC.
    assert_eq!(
        w(
            "C",
            ResourceRole::Primary,
            "img_1.heic",
            "DCIM/img_1.heic",
            5
        ),
        "Anna's iPhone/2024/02/img_1 (2).heic"
    );
    assert_eq!(
        w(
            "D",
            ResourceRole::Primary,
            "Cafe\u{301}.JPG",
            "DCIM/x.JPG",
            6
        ),
        "Anna's iPhone/2024/02/Café.JPG"
    );
    assert_eq!(
        w("E", ResourceRole::Primary, "CAFÉ.jpg", "DCIM/y.jpg", 7),
        "Anna's iPhone/2024/02/CAFÉ (1).jpg"
    );
    // Same name, other month: no suffix.
    let mut s = spec(
        "F",
        ResourceRole::Primary,
        "IMG_1.HEIC",
        "DCIM/IMG_1.HEIC",
        10,
    );
    s.capture_utc_millis = Some(CAPTURE - 40 * 86_400_000);
    assert_eq!(
        write(&p, s, &content(8, 10)).unwrap().rel_path,
        "Anna's iPhone/2023/12/IMG_1.HEIC"
    );
    // No date: the fallback folder.
    let mut s = spec(
        "G",
        ResourceRole::Primary,
        "IMG_9.PNG",
        "DCIM/IMG_9.PNG",
        10,
    );
    s.capture_utc_millis = None;
    assert_eq!(
        write(&p, s, &content(9, 10)).unwrap().rel_path,
        "Anna's iPhone/unknown-date/IMG_9.PNG"
    );
    assert!(a.check(true).unwrap().is_clean());
}

#[test]
fn never_touches_an_existing_file() {
    let d = tempfile::tempdir().unwrap();
    let (_a, p) = new_archive(d.path());
    let month = d.path().join("Anna's iPhone/2024/02");
    std::fs::create_dir_all(&month).unwrap();
    std::fs::write(month.join("IMG_5.JPG"), b"the user's own file").unwrap();
    let r = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_5.JPG",
            "DCIM/IMG_5.JPG",
            50,
        ),
        &content(1, 50),
    )
    .unwrap();
    assert_eq!(r.rel_path, "Anna's iPhone/2024/02/IMG_5 (1).JPG");
    assert_eq!(
        std::fs::read(month.join("IMG_5.JPG")).unwrap(),
        b"the user's own file"
    );
}

#[test]
fn same_bytes_again_is_a_no_op_and_changed_bytes_are_a_new_version() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    let s = spec(
        "A",
        ResourceRole::Primary,
        "IMG_1.JPG",
        "DCIM/IMG_1.JPG",
        100,
    );
    let r1 = write(&p, s.clone(), &content(1, 100)).unwrap();
    let r2 = write(&p, s.clone(), &content(1, 100)).unwrap();
    assert_eq!(r2.outcome, WriteOutcome::AlreadyArchived);
    assert_eq!(r2.rel_path, r1.rel_path);
    let r3 = write(&p, s, &content(2, 100)).unwrap();
    assert_eq!(r3.outcome, WriteOutcome::NewVersion);
    assert_eq!(r3.rel_path, "Anna's iPhone/2024/02/IMG_1 (1).JPG");
    // Append-only: the old version is still there, marked superseded.
    assert_eq!(std::fs::read(&r1.path).unwrap(), content(1, 100));
    let entries = p.entries().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].state, ferry_archive::FileState::Superseded);
    assert_eq!(
        p.lookup("A", ResourceRole::Primary).unwrap().unwrap().path,
        r3.rel_path
    );
    assert!(a.check(true).unwrap().is_clean());
}

#[test]
fn size_mismatch_leaves_nothing_under_a_final_name() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    // Short: the phone stopped early.
    let e = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.JPG",
            1000,
        ),
        &content(1, 999),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::SizeMismatch {
                expected: 1000,
                got: 999,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.scope(), ErrorScope::File);
    // Long: more bytes than stated is refused at once.
    let e = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.JPG",
            1000,
        ),
        &content(1, 1001),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::SizeMismatch { expected: 1000, .. }),
        "{e}"
    );
    // An abandoned write (dropped) leaves nothing either.
    let mut w = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_2.JPG",
            "DCIM/IMG_2.JPG",
            10,
        ))
        .unwrap();
    w.write_chunk(b"abc").unwrap();
    drop(w);
    assert!(
        photo_files(d.path()).is_empty(),
        "{:?}",
        photo_files(d.path())
    );
    assert!(p.entries().unwrap().is_empty());
    assert!(a.check(true).unwrap().is_clean());
}

#[test]
fn missing_marker_refuses_with_guidance_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let e = Archive::open(d.path(), ArchiveOptions::default()).unwrap_err();
    assert!(matches!(e, Error::NotInitialised { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("--init") && msg.contains("mount"), "{msg}");
    assert_eq!(e.scope(), ErrorScope::Run);
    assert!(
        tree(d.path()).is_empty(),
        "nothing may be written: {:?}",
        tree(d.path())
    );
    let e = Archive::open(&d.path().join("nope"), ArchiveOptions::default()).unwrap_err();
    assert!(matches!(e, Error::DestinationMissing { .. }), "{e}");
}

#[test]
fn init_is_idempotent_and_creates_one_level_only() {
    let d = tempfile::tempdir().unwrap();
    let dest = d.path().join("Photos");
    let m1 = Archive::init(&dest).unwrap();
    let m2 = Archive::init(&dest).unwrap();
    assert_eq!(m1, m2);
    let e = Archive::init(&d.path().join("not/mounted/Photos")).unwrap_err();
    assert!(matches!(e, Error::DestinationMissing { .. }), "{e}");
    assert!(!d.path().join("not").exists());
    // Marker lost, metadata kept: re-init keeps the archive id (catalog stays valid).
    std::fs::remove_file(dest.join(".ferry/archive.toml")).unwrap();
    let m3 = Archive::init(&dest).unwrap();
    assert_eq!(m3.archive_id, m1.archive_id);
    Archive::open(&dest, ArchiveOptions::default()).unwrap();
}

#[test]
fn second_run_on_the_same_destination_is_refused_until_the_first_ends() {
    let d = tempfile::tempdir().unwrap();
    let (a, _p) = new_archive(d.path());
    let e = Archive::open(d.path(), ArchiveOptions::default()).unwrap_err();
    assert!(matches!(e, Error::Busy { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("another Ferry run holds this destination"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    drop(_p);
    drop(a);
    Archive::open(d.path(), ArchiveOptions::default()).unwrap();
}

#[test]
fn phones_keep_their_folder_when_renamed_and_same_names_do_not_mix() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    assert_eq!(p.folder(), "Anna's iPhone");
    let renamed = a.phone(common::UDID, "Anna's new name").unwrap();
    assert_eq!(renamed.folder(), "Anna's iPhone");
    let other = a.phone("OTHER-UDID", "Anna's iPhone").unwrap();
    assert_eq!(other.folder(), "Anna's iPhone (2)");
    let hostile = a.phone("H", "../../etc").unwrap();
    assert_eq!(hostile.folder(), "_._.._etc");
    let dotted = a.phone("I", ".ferry").unwrap();
    assert_eq!(dotted.folder(), "_ferry");
    let e = a.phone("", "x").unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }));
}

#[test]
fn hostile_names_never_write_outside_the_destination() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let (a, p) = new_archive(&dest);
    let long = "x".repeat(300);
    let hostile = [
        "../../../escape.jpg",
        "/etc/passwd",
        "/tmp/abs.HEIC",
        "a\0b.jpg",
        "..",
        ".",
        "",
        "CON.jpg",
        "nul",
        "a/../../b.jpg",
        "..\\..\\win.jpg",
        "trailing. . ",
        "\u{202e}gpj.exe",
        long.as_str(),
        &format!("{long}.HEIC"),
        &"写".repeat(120),
    ];
    for (i, name) in hostile.iter().enumerate() {
        let data = content(i as u64, 64);
        for afc in [*name, "../../x.MOV", "/abs/path/y.jpg"] {
            let mut s = spec(&format!("U{i}-{afc}"), ResourceRole::Primary, name, afc, 64);
            s.asset_uuid = format!("U{i}-{}", s.asset_uuid.len());
            match write(&p, s, &data) {
                Ok(r) => {
                    assert!(r.path.starts_with(&dest), "{}", r.path.display());
                    assert!(
                        r.rel_path.starts_with("Anna's iPhone/2024/02/"),
                        "{}",
                        r.rel_path
                    );
                    let name = r.rel_path.rsplit('/').next().unwrap();
                    assert!(name.len() <= 255 && !name.starts_with('.'), "{name:?}");
                }
                Err(e) => assert_eq!(e.scope(), ErrorScope::File, "{e}"),
            }
        }
    }
    // Hostile UUIDs are refused, not used.
    let e = write(
        &p,
        spec("a\0b", ResourceRole::Primary, "x.jpg", "x.jpg", 1),
        b"x",
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    let e = write(
        &p,
        spec("", ResourceRole::Primary, "x.jpg", "x.jpg", 1),
        b"x",
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput { .. }), "{e}");
    // Nothing outside dest; everything inside is in the phone folder or .ferry.
    let outside: Vec<_> = tree(outer.path())
        .into_iter()
        .filter(|p| !p.starts_with("dest/"))
        .collect();
    assert!(outside.is_empty(), "{outside:?}");
    for f in tree(&dest) {
        assert!(
            f.starts_with("Anna's iPhone/2024/02/") || f.starts_with(".ferry/"),
            "{f}"
        );
    }
    assert!(a.check(true).unwrap().is_clean());
}

#[test]
fn a_symlink_planted_in_the_archive_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let victim = outer.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let (_a, p) = new_archive(&dest);
    std::fs::create_dir_all(dest.join("Anna's iPhone/2024")).unwrap();
    std::os::unix::fs::symlink(&victim, dest.join("Anna's iPhone/2024/02")).unwrap();
    let e = write(
        &p,
        spec("A", ResourceRole::Primary, "IMG_1.JPG", "DCIM/IMG_1.JPG", 5),
        b"12345",
    )
    .unwrap_err();
    assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
    assert!(tree(&victim).is_empty());
}

#[test]
fn deleted_on_phone_is_recorded_and_nothing_is_removed() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    let r = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.JPG",
            10,
        ),
        &content(1, 10),
    )
    .unwrap();
    assert!(p.mark_deleted_on_phone("A").unwrap());
    assert!(!p.mark_deleted_on_phone("never-archived").unwrap());
    let e = p.lookup("A", ResourceRole::Primary).unwrap().unwrap();
    let first = e.deleted_on_phone_ms.expect("marked");
    assert!(p.mark_deleted_on_phone("A").unwrap());
    assert_eq!(
        p.lookup("A", ResourceRole::Primary)
            .unwrap()
            .unwrap()
            .deleted_on_phone_ms,
        Some(first)
    );
    assert!(r.path.exists());
    drop((a, p));
    // Survives a catalog rebuild (it is journaled).
    let a = Archive::rebuild_catalog(d.path(), ArchiveOptions::default()).unwrap();
    let p = a.phone(common::UDID, "Anna's iPhone").unwrap();
    assert_eq!(
        p.lookup("A", ResourceRole::Primary)
            .unwrap()
            .unwrap()
            .deleted_on_phone_ms,
        Some(first)
    );
}

#[test]
fn catalog_is_rebuilt_from_the_journal_when_lost_or_damaged() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    for i in 0..20u64 {
        let role = if i % 2 == 0 {
            ResourceRole::Primary
        } else {
            ResourceRole::LiveVideo
        };
        let afc = if i % 2 == 0 {
            format!("DCIM/IMG_{}.HEIC", i / 2)
        } else {
            format!("DCIM/IMG_{}.MOV", i / 2)
        };
        let name = format!("IMG_{}.HEIC", (i / 2) % 3); // clashes on purpose
        write(
            &p,
            spec(&format!("A{}", i / 2), role, &name, &afc, 100 + i),
            &content(i, (100 + i) as usize),
        )
        .unwrap();
    }
    let before = a.all_entries().unwrap();
    drop((a, p));

    // Lost: the catalog files are deleted.
    for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path().join(".ferry").join(f));
    }
    let a = Archive::open(d.path(), ArchiveOptions::default()).unwrap();
    assert!(a.open_report().catalog_rebuilt);
    assert_eq!(a.open_report().recovered_files, 20);
    let after = a.all_entries().unwrap();
    assert_eq!(strip(&before), strip(&after));
    assert!(a.check(true).unwrap().is_clean());
    drop(a);

    // Damaged: garbage in place of the database; it is moved aside, never deleted.
    for f in ["catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(d.path().join(".ferry").join(f));
    }
    std::fs::write(d.path().join(".ferry/catalog.sqlite"), vec![0x42u8; 8192]).unwrap();
    let a = Archive::open(
        d.path(),
        ArchiveOptions {
            verify_hashes_on_rebuild: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(a.open_report().catalog_rebuilt, "{:?}", a.open_report());
    assert_eq!(strip(&before), strip(&a.all_entries().unwrap()));
    let aside = tree(&d.path().join(".ferry"))
        .into_iter()
        .filter(|f| f.contains("replaced-"))
        .count();
    assert!(aside >= 1);
}

fn strip(v: &[ferry_archive::CatalogEntry]) -> Vec<(String, String, String, u64, String)> {
    let mut out: Vec<_> = v
        .iter()
        .map(|e| {
            (
                e.uuid.clone(),
                e.role.clone(),
                e.path.clone(),
                e.size,
                e.hash.clone(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn leftover_temp_files_are_cleaned_only_by_pattern_and_only_inside_the_archive() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let (a, p) = new_archive(&dest);
    write(
        &p,
        spec("A", ResourceRole::Primary, "IMG_1.JPG", "DCIM/IMG_1.JPG", 5),
        b"12345",
    )
    .unwrap();
    drop((a, p));
    let month = dest.join("Anna's iPhone/2024/02");
    std::fs::write(month.join(".ferry-tmp-0123456789abcdef"), b"partial").unwrap();
    std::fs::write(month.join(".ferry-tmp-notours"), b"keep").unwrap();
    std::fs::write(
        dest.join(".ferry-tmp-0123456789abcdef"),
        b"outside the phone folders: keep",
    )
    .unwrap();
    std::fs::write(
        outer.path().join(".ferry-tmp-fedcba9876543210"),
        b"outside dest: keep",
    )
    .unwrap();
    let a = Archive::open(&dest, ArchiveOptions::default()).unwrap();
    assert_eq!(a.open_report().temp_files_removed, 1);
    assert!(!month.join(".ferry-tmp-0123456789abcdef").exists());
    assert!(month.join(".ferry-tmp-notours").exists());
    assert!(dest.join(".ferry-tmp-0123456789abcdef").exists());
    assert!(outer.path().join(".ferry-tmp-fedcba9876543210").exists());
}

#[test]
fn from_record_builds_a_spec() {
    // Minimal record through the public types.
    use ferry_photos::{AfcPath, Availability, OriginalResource, ResourceLocation, UploadState};
    let _ = (Availability::Local, UploadState::Unknown);
    let res = OriginalResource {
        role: ResourceRole::LiveVideo,
        location: ResourceLocation::Exact(AfcPath::new("DCIM/100APPLE/IMG_7.MOV").unwrap()),
        expected_size: Some(3),
        availability: Availability::Local,
        upload: UploadState::Unknown,
    };
    let s = ResourceSpec {
        asset_uuid: "u".into(),
        role: res.role,
        size: 3,
        afc_path: res.location.exact().unwrap().as_str().to_string(),
        original_filename: Some("IMG_7.HEIC".into()),
        capture_utc_millis: None,
        tz_offset_seconds: None,
    };
    assert_eq!(s.name_parts().1.as_deref(), Some("MOV"));
    assert_eq!(s.base_name(), "IMG_7");
}

#[test]
fn files_are_written_with_a_sane_mode() {
    let d = tempfile::tempdir().unwrap();
    let (_a, p) = new_archive(d.path());
    let r = write(
        &p,
        spec("A", ResourceRole::Primary, "IMG_1.JPG", "DCIM/IMG_1.JPG", 5),
        b"12345",
    )
    .unwrap();
    let mode = std::fs::metadata(&r.path).unwrap().mode() & 0o777;
    assert!(mode & 0o400 != 0, "{mode:o}");
}

#[test]
fn parallel_writers_share_one_archive() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..10u64 {
                    let seed = t * 100 + i;
                    // Every thread uses the same names: clashes are resolved under the lock.
                    let name = format!("IMG_{i}.HEIC");
                    let data = content(seed, 5000 + seed as usize);
                    write(
                        &p,
                        spec(
                            &format!("T{t}-{i}"),
                            ResourceRole::Primary,
                            &name,
                            "DCIM/x.HEIC",
                            data.len() as u64,
                        ),
                        &data,
                    )
                    .unwrap();
                }
            });
        }
    });
    assert_eq!(p.entries().unwrap().len(), 40);
    assert_eq!(photo_files(d.path()).len(), 40);
    assert!(a.check(true).unwrap().is_clean());
}
