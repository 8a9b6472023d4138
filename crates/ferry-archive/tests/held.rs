//! The held destination (issue 12): an open archive keeps naming the folder it opened, never
//! follows a link in Ferry's own files, never sweeps temp files through a link, keeps `.ferry`
//! owner-only, and opened read-only writes nothing at all.

mod common;

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use common::*;
use ferry_archive::{Archive, ArchiveOptions, Error};
use ferry_photos::ResourceRole;

fn one(p: &ferry_archive::PhoneArchive, uuid: &str, seed: u64) -> ferry_archive::Archived {
    let name = format!("IMG_{uuid}.JPG");
    write(
        p,
        spec(
            uuid,
            ResourceRole::Primary,
            &name,
            &format!("DCIM/{name}"),
            100,
        ),
        &content(seed, 100),
    )
    .expect("write")
}

fn victim(dir: &Path) -> std::path::PathBuf {
    let v = dir.join("victim.txt");
    std::fs::write(&v, b"precious, outside the archive\n").unwrap();
    v
}

fn assert_untouched(v: &Path) {
    assert_eq!(
        std::fs::read(v).unwrap(),
        b"precious, outside the archive\n",
        "a file outside the archive was changed through a link"
    );
}

fn assert_unsafe_link(e: &Error) {
    assert!(matches!(e, Error::UnsafePath { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
}

#[test]
fn a_folder_moved_away_mid_run_stops_the_run_and_nothing_is_recreated() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let (a, p) = new_archive(&dest);
    one(&p, "A", 1);
    let pending = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_B.JPG",
            "DCIM/IMG_B.JPG",
            3,
        ))
        .unwrap();
    // The drive is unmounted (its empty mount point stays) — here: the folder is moved and an
    // empty one takes its name.
    let moved = outer.path().join("moved");
    std::fs::rename(&dest, &moved).unwrap();
    std::fs::create_dir(&dest).unwrap();
    let mut pending = pending;
    pending.write_chunk(b"abc").unwrap();
    let e = pending.finish().unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    assert!(e.to_string().contains("went away"), "{e}");
    let e = p
        .begin(spec(
            "C",
            ResourceRole::Primary,
            "IMG_C.JPG",
            "DCIM/IMG_C.JPG",
            1,
        ))
        .unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    let e = a.store_report(UDID, b"{}").unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    let e = a.phone("other-udid", "Ben's iPhone").unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    // Nothing was created under the old path.
    assert!(tree(&dest).is_empty(), "{:?}", tree(&dest));
    // The real archive is intact and only holds what was committed.
    drop(p);
    drop(a);
    let a = Archive::open(&moved, ArchiveOptions::default()).unwrap();
    let rep = a.check(true).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(rep.files_checked, 1);
}

#[test]
fn a_deleted_folder_or_marker_stops_the_run() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let (a, p) = new_archive(&dest);
    one(&p, "A", 1);
    std::fs::remove_file(dest.join(".ferry/archive.toml")).unwrap();
    let e = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_B.JPG",
            "DCIM/IMG_B.JPG",
            1,
        ))
        .unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    assert!(e.to_string().contains("marker"), "{e}");
    drop((a, p));

    let dest = outer.path().join("dest2");
    let (a, p) = new_archive(&dest);
    std::fs::remove_dir_all(&dest).unwrap();
    let e = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_B.JPG",
            "DCIM/IMG_B.JPG",
            1,
        ))
        .unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    let e = a.store_report(UDID, b"{}").unwrap_err();
    assert!(matches!(e, Error::DestinationGone { .. }), "{e}");
    assert!(!dest.exists(), "the deleted destination was re-created");
}

#[test]
fn a_lock_file_link_is_refused_and_its_target_untouched() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    drop(new_archive(&dest));
    let v = victim(outer.path());
    std::fs::remove_file(dest.join(".ferry/lock")).unwrap();
    symlink(&v, dest.join(".ferry/lock")).unwrap();
    assert_unsafe_link(&Archive::open(&dest, ArchiveOptions::default()).unwrap_err());
    assert_unsafe_link(&Archive::open_read_only(&dest).unwrap_err());
    assert_eq!(ferry_archive::destination_holder(&dest), None);
    assert_untouched(&v);
}

#[test]
fn a_journal_or_catalog_link_is_refused_and_its_target_untouched() {
    for file in ["journal.jsonl", "catalog.sqlite", "catalog.sqlite-wal"] {
        let outer = tempfile::tempdir().unwrap();
        let dest = outer.path().join("dest");
        drop(new_archive(&dest));
        let v = victim(outer.path());
        let _ = std::fs::remove_file(dest.join(".ferry").join(file));
        symlink(&v, dest.join(".ferry").join(file)).unwrap();
        let e = Archive::open(&dest, ArchiveOptions::default()).unwrap_err();
        assert_unsafe_link(&e);
        assert!(e.to_string().contains(file), "{file}: {e}");
        assert_unsafe_link(&Archive::open_read_only(&dest).unwrap_err());
        assert_untouched(&v);
    }
}

#[test]
fn a_reports_folder_link_receives_nothing() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let (a, _p) = new_archive(&dest);
    symlink(&elsewhere, dest.join(".ferry/reports")).unwrap();
    assert_unsafe_link(&a.store_report(UDID, b"{\"x\":1}").unwrap_err());
    symlink(&elsewhere, dest.join(".ferry/plans")).unwrap();
    assert_unsafe_link(&a.store_fetch_plan(UDID, b"{}").unwrap_err());
    assert!(tree(&elsewhere).is_empty(), "{:?}", tree(&elsewhere));
    // Lock-free readers do not read through it either.
    let udid_dir = elsewhere.join(UDID);
    std::fs::create_dir(&udid_dir).unwrap();
    std::fs::write(udid_dir.join("latest.json"), b"{}").unwrap();
    assert!(ferry_archive::reported_phones(&dest).is_empty());
    assert_eq!(ferry_archive::read_latest_report(&dest, UDID), None);
    assert!(ferry_archive::recent_reports(&dest, UDID, 10).is_empty());
}

#[test]
fn the_temp_sweep_never_crosses_a_linked_phone_folder() {
    let outer = tempfile::tempdir().unwrap();
    let dest = outer.path().join("dest");
    let elsewhere = outer.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("2024/01")).unwrap();
    let temps = [
        elsewhere.join(".ferry-tmp-0123456789abcdef"),
        elsewhere.join("2024/01/.ferry-tmp-fedcba9876543210"),
    ];
    for t in &temps {
        std::fs::write(t, b"not Ferry's to delete").unwrap();
    }
    let (a, p) = new_archive(&dest);
    let folder = p.folder().to_string();
    drop((a, p));
    std::fs::remove_dir(dest.join(&folder)).unwrap();
    symlink(&elsewhere, dest.join(&folder)).unwrap();
    let a = Archive::open(&dest, ArchiveOptions::default()).unwrap();
    assert_eq!(a.open_report().temp_files_removed, 0);
    drop(a);
    drop(Archive::open_read_only(&dest).unwrap());
    for t in &temps {
        assert!(t.exists(), "{} was deleted through a link", t.display());
    }
    // A real leftover temp file inside the archive is still swept.
    std::fs::remove_file(dest.join(&folder)).unwrap();
    std::fs::create_dir(dest.join(&folder)).unwrap();
    std::fs::write(dest.join(&folder).join(".ferry-tmp-00000000000000aa"), b"x").unwrap();
    let a = Archive::open(&dest, ArchiveOptions::default()).unwrap();
    assert_eq!(a.open_report().temp_files_removed, 1);
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn ferrys_own_files_are_owner_only_and_photos_keep_the_umask() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    let r = one(&p, "A", 1);
    a.store_report(UDID, b"{}").unwrap();
    a.store_fetch_plan(UDID, b"{}").unwrap();
    drop((a, p));
    let meta = d.path().join(".ferry");
    assert_eq!(mode(&meta), 0o700);
    let mut seen = 0;
    for e in walkdir(&meta) {
        let m = mode(&e);
        if e.is_dir() {
            assert_eq!(m, 0o700, "{}", e.display());
        } else {
            assert_eq!(m, 0o600, "{}", e.display());
        }
        seen += 1;
    }
    assert!(seen >= 8, "{seen}");
    // The photo: 0666 less the process umask (read it without changing it for long).
    // SAFETY: umask(2) only sets and returns the process mask.
    let umask = unsafe {
        let u = libc::umask(0o022);
        libc::umask(u);
        u
    } as u32;
    assert_eq!(mode(&r.path), 0o666 & !umask);

    // An archive made before this rule: opening it restricts `.ferry`.
    std::fs::set_permissions(&meta, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(Archive::open(d.path(), ArchiveOptions::default()).unwrap());
    assert_eq!(mode(&meta), 0o700);
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn read_only_open_writes_nothing_and_rebuilds_in_memory() {
    let d = tempfile::tempdir().unwrap();
    let (a, p) = new_archive(d.path());
    one(&p, "A", 1);
    one(&p, "B", 2);
    drop((a, p));
    let before = snapshot(d.path());
    let a = Archive::open_read_only(d.path()).unwrap();
    assert_eq!(a.all_entries().unwrap().len(), 2);
    assert!(a.check(true).unwrap().is_clean());
    assert!(!a.open_report().catalog_rebuilt);
    // A reader cannot write.
    assert!(a.phone(UDID, "x").is_err());
    assert!(a.store_report(UDID, b"{}").is_err());
    drop(a);
    assert_eq!(snapshot(d.path()), before);

    // Catalog lost: rebuilt in memory from the journal, nothing created on the drive.
    std::fs::rename(
        d.path().join(".ferry/catalog.sqlite"),
        d.path().join("catalog.sqlite.bak"),
    )
    .unwrap();
    let before = snapshot(d.path());
    let a = Archive::open_read_only(d.path()).unwrap();
    assert!(a.open_report().catalog_rebuilt);
    assert_eq!(a.all_entries().unwrap().len(), 2);
    drop(a);
    assert_eq!(snapshot(d.path()), before);
}

/// Every path with its size and mtime.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime)> {
    let mut v: Vec<_> = walkdir(dir)
        .into_iter()
        .map(|p| {
            let m = std::fs::symlink_metadata(&p).unwrap();
            (
                p.display().to_string(),
                if m.is_dir() { 0 } else { m.len() },
                m.modified().unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}
