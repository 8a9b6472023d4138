//! Destinations that run out of space or are read-only, on real size-limited tmpfs mounts.
//!
//! These need root (or CAP_SYS_ADMIN) to `mount -t tmpfs -o size=…`; without it they FAIL
//! with a message saying so — they never pass silently. `chmod` is no substitute: root ignores
//! permission bits, so the read-only case uses `mount -o remount,ro`.
//!
//! The tests take [`serial`] first: they spawn `mount`/`umount`, and a child forked by one
//! test inherits, until it execs, every descriptor the process has open — another test's
//! destination lock (the flock is shared with the child for that moment) or a just-deleted
//! filler file (its space not yet freed). Run one at a time, nothing is shared.

mod common;

use common::*;
use ferry_archive::{Archive, ArchiveOptions, Error, ErrorScope};
use ferry_photos::ResourceRole;

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn small_opts() -> ArchiveOptions {
    ArchiveOptions {
        min_free_bytes: 64 * 1024,
        ..Default::default()
    }
}

#[test]
fn disk_full_is_caught_before_writing() {
    let _serial = serial();
    let m = TmpfsMount::new("2m");
    Archive::init(&m.dir).unwrap();
    let a = Archive::open(&m.dir, small_opts()).unwrap();
    assert_eq!(a.facts().fs, ferry_archive::FsKind::Tmpfs);
    let p = a.phone(UDID, "Anna's iPhone").unwrap();
    let e = p
        .begin(spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.MOV",
            "DCIM/IMG_1.MOV",
            5_000_000,
        ))
        .unwrap_err();
    let Error::DiskFull {
        need, available, ..
    } = &e
    else {
        panic!("{e}")
    };
    assert!(*need >= 5_000_000 - *available, "{e}");
    assert!(e.to_string().contains("more to write"), "{e}");
    assert!(e.to_string().contains("IMG_1.MOV"), "{e}");
    assert_eq!(e.scope(), ErrorScope::Run);
    assert!(photo_files(&m.dir).is_empty(), "{:?}", photo_files(&m.dir));
}

#[test]
fn disk_full_mid_write_stops_cleanly_and_loses_nothing() {
    let _serial = serial();
    let m = TmpfsMount::new("2m");
    Archive::init(&m.dir).unwrap();
    let opts = ArchiveOptions {
        preallocate: false,
        ..small_opts()
    };
    let a = Archive::open(&m.dir, opts.clone()).unwrap();
    let p = a.phone(UDID, "Anna's iPhone").unwrap();
    let first = content(1, 900_000);
    let r1 = write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.JPG",
            900_000,
        ),
        &first,
    )
    .unwrap();

    // Passes the free-space check, then something else fills the drive mid-copy.
    let size = 400_000u64;
    let second = content(2, size as usize);
    let mut w = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_2.JPG",
            "DCIM/IMG_2.JPG",
            size,
        ))
        .unwrap();
    w.write_chunk(&second[..100_000]).unwrap();
    let filler = m.dir.join("someone-elses-file");
    let avail = a.available_bytes().unwrap();
    let _ = std::fs::write(&filler, vec![0u8; avail as usize]);
    let e = (|| {
        for c in second[100_000..].chunks(64 * 1024) {
            w.write_chunk(c)?;
        }
        w.finish()
    })()
    .unwrap_err();
    let Error::DiskFull { need, .. } = &e else {
        panic!("expected DiskFull, got {e}")
    };
    assert!(*need > 0);
    assert!(
        e.to_string().contains("need ") && e.to_string().contains(" more"),
        "{e}"
    );
    assert_eq!(e.scope(), ErrorScope::Run);

    // Nothing under a final name for B, no temp left, A intact, catalog readable.
    let files: Vec<_> = photo_files(&m.dir)
        .into_iter()
        .filter(|f| f != "someone-elses-file")
        .collect();
    assert_eq!(
        files,
        vec!["Anna's iPhone/2024/02/IMG_1.JPG".to_string()],
        "{files:?}"
    );
    assert_eq!(std::fs::read(&r1.path).unwrap(), first);
    assert!(p.lookup("B", ResourceRole::Primary).unwrap().is_none());
    assert!(a.check(true).unwrap().is_clean());

    // Space freed: the next run completes.
    std::fs::remove_file(&filler).unwrap();
    drop((a, p));
    let a = Archive::open(&m.dir, opts).unwrap();
    let p = a.phone(UDID, "Anna's iPhone").unwrap();
    write(
        &p,
        spec(
            "B",
            ResourceRole::Primary,
            "IMG_2.JPG",
            "DCIM/IMG_2.JPG",
            size,
        ),
        &second,
    )
    .unwrap();
    assert!(a.check(true).unwrap().is_clean());
}

#[test]
fn disk_full_with_preallocation_fails_at_byte_zero() {
    let _serial = serial();
    let m = TmpfsMount::new("2m");
    Archive::init(&m.dir).unwrap();
    let a = Archive::open(
        &m.dir,
        ArchiveOptions {
            min_free_bytes: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let p = a.phone(UDID, "Anna's iPhone").unwrap();
    // Claims a bit less than the free space, then loses the race for it: free space is
    // checked, preallocation reserves, and a second pending file cannot reserve the same bytes.
    let avail = a.available_bytes().unwrap();
    let size = avail * 2 / 3;
    let _first = p
        .begin(spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.MOV",
            "DCIM/IMG_1.MOV",
            size,
        ))
        .unwrap();
    let e = p
        .begin(spec(
            "B",
            ResourceRole::Primary,
            "IMG_2.MOV",
            "DCIM/IMG_2.MOV",
            size,
        ))
        .unwrap_err();
    assert!(matches!(e, Error::DiskFull { .. }), "{e}");
    drop(_first);
    assert!(photo_files(&m.dir).is_empty(), "{:?}", photo_files(&m.dir));
}

#[test]
fn read_only_destination_is_a_clear_error_and_nothing_changes() {
    let _serial = serial();
    let m2 = TmpfsMount::new("4m");
    // Write something first (with a margin that fits a 4 MiB tmpfs).
    Archive::init(&m2.dir).unwrap();
    let a = Archive::open(&m2.dir, small_opts()).unwrap();
    let p = a.phone(UDID, "Anna's iPhone").unwrap();
    let data = content(7, 10_000);
    write(
        &p,
        spec(
            "A",
            ResourceRole::Primary,
            "IMG_1.JPG",
            "DCIM/IMG_1.JPG",
            10_000,
        ),
        &data,
    )
    .unwrap();
    drop((a, p));
    let before = tree(&m2.dir);
    m2.remount_ro();

    let e = Archive::open(&m2.dir, small_opts()).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert_eq!(e.scope(), ErrorScope::Run);
    let e = Archive::init(&m2.dir.join("sub")).unwrap_err();
    assert!(matches!(e, Error::ReadOnly { .. }), "{e}");
    assert_eq!(tree(&m2.dir), before);
    assert_eq!(
        std::fs::read(m2.dir.join("Anna's iPhone/2024/02/IMG_1.JPG")).unwrap(),
        data
    );
}
