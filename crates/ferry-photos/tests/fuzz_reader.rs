//! Fuzzing the Photos.sqlite reader (issue 12): generated databases (iOS 13 and iOS 18
//! schemas, with an un-checkpointed WAL) are mutated — random page bytes, header fields,
//! truncation, WAL frames (headers, salts, checksums, cuts, and page bytes *with the checksum
//! chain recomputed* so the damage gets past the WAL check into SQLite), hostile row values
//! written through SQL, and hostile `Z_METADATA` plists — then read the way the app does.
//!
//! Property: the reader returns records or a typed [`Error`] — never panics, never takes
//! longer than a deadline (a hang fails the test instead of blocking it), and every record it
//! returns can be dated, serialised and reconciled without panicking.
//!
//! Cases: 300 by default (CI); `FERRY_FUZZ_CASES=N` for a long run (docs/testing.md).

mod common;

use plist_bounds::testing::shared_children;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ferry_phonegen::{IcloudPhotos, IosSchema};
use ferry_photos::reconcile::reconcile;
use ferry_photos::snapshot::{take_snapshot, DirSource, SnapshotOptions};
use ferry_photos::{Error, LocalMediaDir, PhotosDb};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rusqlite::config::DbConfig;
use rusqlite::Connection;

fn cases(default: u32) -> u32 {
    std::env::var("FERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A case that takes longer than this is a hang (the slowest honest case in a debug build
/// takes well under a second).
const DEADLINE: Duration = Duration::from_secs(30);

fn base(schema: IosSchema) -> &'static Path {
    static IOS18: OnceLock<tempfile::TempDir> = OnceLock::new();
    static IOS13: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cell = if schema == IosSchema::Ios13 {
        &IOS13
    } else {
        &IOS18
    };
    cell.get_or_init(|| common::generate(schema, 12, 40, IcloudPhotos::On))
        .path()
}

fn copy_db(image: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = image.join("Media/PhotoData");
    for f in ["Photos.sqlite", "Photos.sqlite-wal"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    let db = dir.path().join("Photos.sqlite");
    (dir, db)
}

/// One damage to apply.
#[derive(Debug, Clone)]
enum Mutation {
    /// XOR bytes anywhere in the main file.
    DbBytes(Vec<(u64, u8)>),
    /// Overwrite a field of the 100-byte database header (offset, bytes).
    DbHeader(usize, Vec<u8>),
    /// XOR bytes in the header of b-tree page `n` (the first 12 bytes after any file header).
    PageHeader(u64, Vec<(u8, u8)>),
    /// Cut the main file at this fraction.
    TruncateDb(f64),
    /// XOR bytes anywhere in the WAL.
    WalBytes(Vec<(u64, u8)>),
    /// Overwrite a frame-header field of frame `n` (field index 0..6, value).
    WalFrameField(u64, usize, u32),
    /// Change page bytes of frame `n` and recompute every checksum after it.
    WalPageResealed(u64, Vec<(u16, u8)>),
    /// Change a WAL header field (index 0..8) and recompute the header checksum and chain.
    WalHeaderResealed(usize, u32),
    /// Cut the WAL at this byte.
    TruncateWal(u64),
    /// Write a hostile value into one column of one table, through SQL.
    Row {
        table: &'static str,
        column_pick: usize,
        pk_pick: i64,
        value: Hostile,
    },
    /// Replace the `Z_METADATA` plist.
    Metadata(Vec<u8>),
}

/// Values a damaged or hostile database could hold.
#[derive(Debug, Clone)]
enum Hostile {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// Text that is not UTF-8 (SQLite stores whatever it is given).
    BadUtf8(Vec<u8>),
    LongText(usize),
}

fn hostile() -> impl Strategy<Value = Hostile> {
    prop_oneof![
        Just(Hostile::Null),
        prop::sample::select(vec![
            i64::MIN,
            i64::MAX,
            -1,
            0,
            1,
            2,
            3,
            -32768,
            65938,
            131_072,
            i64::from(i32::MIN) - 1,
            i64::from(u32::MAX) + 1,
        ])
        .prop_map(Hostile::Int),
        any::<i64>().prop_map(Hostile::Int),
        prop::sample::select(vec![
            f64::MAX,
            f64::MIN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            1e300,
            9.3e18,
            -9.3e18,
            0.5
        ])
        .prop_map(Hostile::Real),
        any::<f64>().prop_map(Hostile::Real),
        prop::sample::select(vec![
            "",
            "..",
            "../../etc",
            "/etc",
            "/var/mobile/Media/",
            "/var/mobile/Media/../../x",
            "DCIM//x",
            "a\0b",
            "PhotoData/Mutations/x",
            "\u{202e}gpj.exe",
            "CON",
            "名前.HEIC",
            "x.",
        ])
        .prop_map(|s| Hostile::Text(s.to_string())),
        any::<String>().prop_map(Hostile::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Hostile::Blob),
        proptest::collection::vec(128u8..=255, 1..16).prop_map(Hostile::BadUtf8),
        (1000usize..200_000).prop_map(Hostile::LongText),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let header_field = prop::sample::select(vec![
        (16usize, 2usize), // page size
        (18, 1),           // write version
        (19, 1),           // read version
        (20, 1),           // reserved bytes per page
        (21, 3),           // payload fractions
        (28, 4),           // page count
        (32, 4),           // first freelist page
        (36, 4),           // freelist count
        (40, 4),           // schema cookie
        (44, 4),           // schema format
        (52, 4),           // largest root b-tree (auto-vacuum)
        (56, 4),           // text encoding
        (64, 4),           // incremental vacuum
        (92, 8),           // version-valid-for, SQLite version
    ]);
    prop_oneof![
        3 => proptest::collection::vec((any::<u64>(), 1u8..=255), 1..24).prop_map(Mutation::DbBytes),
        2 => (header_field, proptest::collection::vec(any::<u8>(), 8)).prop_map(|((at, n), v)| {
            Mutation::DbHeader(at, v[..n].to_vec())
        }),
        3 => (0u64..64, proptest::collection::vec((0u8..12, 1u8..=255), 1..6))
            .prop_map(|(p, v)| Mutation::PageHeader(p, v)),
        1 => (0.0f64..1.0).prop_map(Mutation::TruncateDb),
        2 => proptest::collection::vec((any::<u64>(), 1u8..=255), 1..8).prop_map(Mutation::WalBytes),
        3 => (0u64..32, 0usize..6, prop_oneof![any::<u32>(), Just(0u32), Just(1u32), Just(u32::MAX)])
            .prop_map(|(f, i, v)| Mutation::WalFrameField(f, i, v)),
        4 => (0u64..32, proptest::collection::vec((any::<u16>(), 1u8..=255), 1..16))
            .prop_map(|(f, v)| Mutation::WalPageResealed(f, v)),
        2 => (0usize..6, prop_oneof![any::<u32>(), Just(512u32), Just(1u32), Just(65536u32)])
            .prop_map(|(i, v)| Mutation::WalHeaderResealed(i, v)),
        1 => any::<u64>().prop_map(Mutation::TruncateWal),
        6 => (
            prop::sample::select(vec![
                "ZASSET",
                "ZINTERNALRESOURCE",
                "ZADDITIONALASSETATTRIBUTES",
                "ZCLOUDMASTER",
                "ZASSETCONTRIBUTOR",
                "ZSHAREPARTICIPANT",
                "Z_PRIMARYKEY",
            ]),
            any::<usize>(),
            prop_oneof![1i64..50, Just(0i64)],
            hostile(),
        )
            .prop_map(|(table, column_pick, pk_pick, value)| Mutation::Row {
                table,
                column_pick,
                pk_pick,
                value,
            }),
        2 => plist_bytes().prop_map(Mutation::Metadata),
    ]
}

/// Hostile `Z_METADATA` plists: garbage, a shared-children bomb, deep nesting, wrong types.
fn plist_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        (2usize..60).prop_map(|n| shared_children(n, 2)),
        (50usize..5000).prop_map(|n| {
            format!(
                "<plist>{}{}</plist>",
                "<array>".repeat(n),
                "</array>".repeat(n)
            )
            .into_bytes()
        }),
        Just(b"<plist><dict><key>PLModelVersion</key><string>x</string></dict></plist>".to_vec()),
        Just(
            b"<plist><dict><key>PLModelVersion</key><integer>-1</integer></dict></plist>".to_vec()
        ),
        Just(b"<plist><array><integer>18405</integer></array></plist>".to_vec()),
    ]
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// SQLite's WAL checksum (sqlite.org/fileformat2.html §4.3).
fn wal_checksum(big_endian: bool, data: &[u8], s: (u32, u32)) -> (u32, u32) {
    let (mut s1, mut s2) = s;
    for c in data.chunks_exact(8) {
        let (x0, x1) = if big_endian {
            (be32(&c[0..4]), be32(&c[4..8]))
        } else {
            (
                u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            )
        };
        s1 = s1.wrapping_add(x0).wrapping_add(s2);
        s2 = s2.wrapping_add(x1).wrapping_add(s1);
    }
    (s1, s2)
}

/// Recomputes the header checksum and every frame checksum of a WAL (keeping its salts), so
/// that content changes reach SQLite instead of stopping at the checksum.
fn reseal_wal(w: &mut [u8]) {
    if w.len() < 32 {
        return;
    }
    let big_endian = be32(&w[0..4]) & 1 == 1;
    let ck = wal_checksum(big_endian, &w[0..24], (0, 0));
    w[24..28].copy_from_slice(&ck.0.to_be_bytes());
    w[28..32].copy_from_slice(&ck.1.to_be_bytes());
    let page = match be32(&w[8..12]) {
        1 => 65536,
        p => p as usize,
    };
    if !(512..=65536).contains(&page) || !page.is_power_of_two() {
        return;
    }
    let mut s = ck;
    let mut at = 32;
    while at + 24 + page <= w.len() {
        let c = wal_checksum(big_endian, &w[at..at + 8], s);
        let c = wal_checksum(big_endian, &w[at + 24..at + 24 + page], c);
        w[at + 16..at + 20].copy_from_slice(&c.0.to_be_bytes());
        w[at + 20..at + 24].copy_from_slice(&c.1.to_be_bytes());
        s = c;
        at += 24 + page;
    }
}

fn sql_value(v: &Hostile) -> rusqlite::types::Value {
    use rusqlite::types::Value;
    match v {
        Hostile::Null => Value::Null,
        Hostile::Int(i) => Value::Integer(*i),
        Hostile::Real(f) => Value::Real(*f),
        Hostile::Text(s) => Value::Text(s.clone()),
        Hostile::Blob(b) | Hostile::BadUtf8(b) => Value::Blob(b.clone()),
        Hostile::LongText(n) => Value::Text("DCIM/".repeat(*n / 5)),
    }
}

fn apply(db: &Path, m: &Mutation) {
    let wal = db.with_file_name("Photos.sqlite-wal");
    let edit = |p: &Path, f: &mut dyn FnMut(&mut Vec<u8>)| {
        // A checkpoint by an earlier SQL mutation may have removed the WAL.
        let Ok(mut bytes) = std::fs::read(p) else {
            return;
        };
        f(&mut bytes);
        std::fs::write(p, bytes).expect("write");
    };
    let xor = |b: &mut Vec<u8>, flips: &[(u64, u8)]| {
        if b.is_empty() {
            return;
        }
        for (pos, v) in flips {
            let i = (pos % b.len() as u64) as usize;
            b[i] ^= v;
        }
    };
    match m {
        Mutation::DbBytes(f) => edit(db, &mut |b| xor(b, f)),
        Mutation::DbHeader(at, v) => edit(db, &mut |b| {
            if let Some(dst) = b.get_mut(*at..*at + v.len()) {
                dst.copy_from_slice(v);
            }
        }),
        Mutation::PageHeader(n, flips) => edit(db, &mut |b| {
            if b.len() < 100 {
                return;
            }
            let ps = usize::from(u16::from_be_bytes([b[16], b[17]])).max(512);
            let pages = (b.len() / ps).max(1) as u64;
            let page = (n % pages) as usize;
            let start = page * ps + if page == 0 { 100 } else { 0 };
            for (off, v) in flips {
                if let Some(x) = b.get_mut(start + usize::from(*off)) {
                    *x ^= v;
                }
            }
        }),
        Mutation::TruncateDb(keep) => edit(db, &mut |b| {
            let n = (b.len() as f64 * keep) as usize;
            b.truncate(n);
        }),
        Mutation::WalBytes(f) => edit(&wal, &mut |b| xor(b, f)),
        Mutation::WalFrameField(frame, field, v) => edit(&wal, &mut |b| {
            if b.len() < 32 {
                return;
            }
            let page = be32(&b[8..12]) as usize;
            let frames = (b.len().saturating_sub(32) / (24 + page)).max(1) as u64;
            let at = 32 + (frame % frames) as usize * (24 + page) + field * 4;
            if let Some(dst) = b.get_mut(at..at + 4) {
                dst.copy_from_slice(&v.to_be_bytes());
            }
        }),
        Mutation::WalPageResealed(frame, flips) => edit(&wal, &mut |b| {
            if b.len() < 32 || be32(&b[8..12]) == 0 {
                return;
            }
            let page = be32(&b[8..12]) as usize;
            let frames = (b.len().saturating_sub(32) / (24 + page)).max(1) as u64;
            let at = 32 + (frame % frames) as usize * (24 + page) + 24;
            for (off, v) in flips {
                if let Some(x) = b.get_mut(at + usize::from(*off) % page) {
                    *x ^= v;
                }
            }
            reseal_wal(b);
        }),
        Mutation::WalHeaderResealed(field, v) => edit(&wal, &mut |b| {
            if b.len() < 32 {
                return;
            }
            b[field * 4..field * 4 + 4].copy_from_slice(&v.to_be_bytes());
            reseal_wal(b);
        }),
        Mutation::TruncateWal(n) => edit(&wal, &mut |b| {
            let keep = (*n % (b.len() as u64 + 1)) as usize;
            b.truncate(keep);
        }),
        Mutation::Row {
            table,
            column_pick,
            pk_pick,
            value,
        } => {
            let conn = Connection::open(db).expect("open rw");
            // Leave the change in the WAL half of the time, like the phone does; fold it
            // into the main file otherwise.
            let in_wal = pk_pick % 2 == 1;
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, in_wal)
                .expect("db config");
            let cols: Vec<String> = conn
                .prepare(&format!("PRAGMA table_info({table})"))
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(1))?
                        .collect::<rusqlite::Result<_>>()
                })
                .unwrap_or_default();
            if cols.is_empty() {
                return;
            }
            let col = &cols[column_pick % cols.len()];
            let v = sql_value(value);
            let set = if matches!(value, Hostile::BadUtf8(_)) {
                "CAST(?1 AS TEXT)".to_string()
            } else {
                "?1".to_string()
            };
            let where_ = if *pk_pick == 0 {
                String::new()
            } else {
                format!(" WHERE Z_PK = {pk_pick}")
            };
            // Constraint failures (e.g. a text primary key) just leave the row as it was.
            let _ = conn.execute(&format!("UPDATE {table} SET {col} = {set}{where_}"), [v]);
            if !in_wal {
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
        }
        Mutation::Metadata(bytes) => {
            let conn = Connection::open(db).expect("open rw");
            conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
                .expect("db config");
            let _ = conn.execute("UPDATE Z_METADATA SET Z_PLIST = ?1", [bytes]);
        }
    }
}

/// Everything the app does with a database, on `db`; `Err` is fine, a panic is not.
fn exercise(db: &Path, media: &Path) -> Result<usize, Error> {
    let pdb = PhotosDb::open(db)?;
    let _ = pdb.library_info()?;
    let records = pdb.read_all()?;
    let media = LocalMediaDir::new(media);
    for r in &records {
        let _ = r.created_utc();
        let _ = r.created_local();
        let _ = r.created_unix_millis();
        let _ = r.primary();
        serde_json::to_string(r).expect("a record always serialises");
        // Files are looked up only under the Media root (AfcPath); errors are I/O.
        let _ = reconcile(r, &media);
        for res in &r.resources {
            if let Some(p) = res.location.exact() {
                assert!(!p.as_str().starts_with('/') && !p.as_str().split('/').any(|c| c == ".."));
            }
        }
    }
    pdb.quick_check()?;
    Ok(records.len())
}

/// Runs `f` on a thread and fails if it does not finish within [`DEADLINE`].
fn with_deadline<T: Send + 'static>(what: String, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    std::thread::Builder::new()
        .name("fuzz-case".into())
        .spawn(move || {
            let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        })
        .expect("spawn");
    match rx.recv_timeout(DEADLINE) {
        Ok(Ok(v)) => v,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => panic!("hang: {what} still running after {:?}", t0.elapsed()),
    }
}

fn run_case(schema: IosSchema, muts: &[Mutation]) -> Result<usize, String> {
    let (dir, db) = copy_db(base(schema));
    for m in muts {
        apply(&db, m);
    }
    let media = base(schema).join("Media");
    let what = format!("{schema:?} {muts:?}");
    let what_short: String = what.chars().take(2000).collect();
    with_deadline(what_short, move || {
        let r = exercise(&db, &media);
        // The snapshot path too (copy, WAL check, quick_check; one attempt).
        let mut src = DirSource::new(dir.path());
        let opts = SnapshotOptions {
            attempts: 1,
            ..SnapshotOptions::default()
        };
        if let Ok(snap) = take_snapshot(&mut src, &opts) {
            let _ = snap.open().and_then(|d| d.read_all());
        }
        drop(dir);
        r.map_err(|e| {
            let msg = e.to_string();
            assert!(!msg.is_empty());
            msg
        })
    })
}

#[test]
fn mutated_databases_give_records_or_typed_errors() {
    let schema = prop::sample::select(vec![IosSchema::Ios18, IosSchema::Ios13]);
    let mut runner = TestRunner::new(Config {
        cases: cases(300),
        failure_persistence: None,
        max_shrink_time: 120_000,
        ..Config::default()
    });
    let outcomes = [std::cell::Cell::new(0u32), std::cell::Cell::new(0u32)];
    runner
        .run(
            &(schema, proptest::collection::vec(mutation(), 1..4)),
            |(schema, muts)| {
                let r = run_case(schema, &muts);
                if std::env::var_os("FERRY_FUZZ_VERBOSE").is_some() {
                    eprintln!(
                        "{schema:?} {:?}",
                        r.as_ref()
                            .map_err(|e| e.lines().next().unwrap_or("").to_string())
                    );
                }
                let o = &outcomes[usize::from(r.is_err())];
                o.set(o.get() + 1);
                Ok(())
            },
        )
        .expect("the reader never panics or hangs");
    // Not vacuous: some mutations are survivable, some are not.
    let (ok, err) = (outcomes[0].get(), outcomes[1].get());
    eprintln!("reader fuzz: {ok} cases read, {err} typed errors");
    assert!(ok > 0 && err > 0, "ok/err: {ok}/{err}");
}

/// Found while writing this harness (reviewing every value a record computes from the row):
/// `ZTIMEZONEOFFSET = -9223372036854775808` made `AssetRecord::created_local` panic
/// (`i64::MIN.abs()` overflows).
#[test]
fn regression_tz_offset_i64_min_in_created_local() {
    let (_d, db) = copy_db(base(IosSchema::Ios18));
    let conn = Connection::open(&db).expect("open");
    conn.execute(
        "UPDATE ZADDITIONALASSETATTRIBUTES SET ZTIMEZONEOFFSET = ?1",
        [i64::MIN],
    )
    .expect("update");
    drop(conn);
    let records = PhotosDb::open(&db).expect("open").read_all().expect("read");
    let dated: Vec<_> = records
        .iter()
        .filter(|r| r.created_core_data.is_some())
        .collect();
    assert!(!dated.is_empty());
    for r in dated {
        assert_eq!(r.tz_offset_seconds, Some(i64::MIN));
        // Implausible offset: shown in UTC.
        let local = r.created_local().expect("dated");
        assert!(local.ends_with('Z'), "{local}");
        assert_eq!(Some(local), r.created_utc());
    }
}

/// Found with the plist harness (device-proto/tests/fuzz_plist.rs): a 154-byte binary plist in `Z_METADATA` whose objects share children
/// expanded to millions of values (seconds per open; a few more bytes would never finish).
/// Now refused by `plist_bounds`, and the model version is simply unknown.
#[test]
fn regression_metadata_plist_shared_children_bomb() {
    let (_d, db) = copy_db(base(IosSchema::Ios18));
    let conn = Connection::open(&db).expect("open");
    conn.execute(
        "UPDATE Z_METADATA SET Z_PLIST = ?1",
        [shared_children(200, 2)],
    )
    .expect("update");
    drop(conn);
    let t0 = Instant::now();
    let n = with_deadline("bomb".into(), move || {
        let pdb = PhotosDb::open(&db).expect("opens");
        assert_eq!(pdb.schema().model_version, None);
        pdb.read_all().expect("reads").len()
    });
    assert_eq!(n, 40);
    assert!(t0.elapsed() < DEADLINE);
}

/// Found with the plist harness: `Z_METADATA` holding `<array>` nested 100 000 deep overflowed the
/// stack when the parsed value was dropped, aborting the process.
#[test]
fn regression_metadata_plist_deep_nesting() {
    let (_d, db) = copy_db(base(IosSchema::Ios18));
    let deep = format!(
        "<plist>{}{}</plist>",
        "<array>".repeat(100_000),
        "</array>".repeat(100_000)
    );
    let conn = Connection::open(&db).expect("open");
    conn.execute("UPDATE Z_METADATA SET Z_PLIST = ?1", [deep.as_bytes()])
        .expect("update");
    drop(conn);
    let pdb = PhotosDb::open(&db).expect("opens");
    assert_eq!(pdb.schema().model_version, None);
}
