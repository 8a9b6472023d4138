//! Throughput of the audited write path (temp → hash → fsync → rename → fsync dir → journal +
//! catalog) against a plain "write + fsync" baseline, on the file system of `--dir` (default:
//! the system temp dir). Prints a table; see docs/benchmarks.md.
//!
//! `cargo bench -p ferry-archive --bench write_path [-- --dir /mnt/usb/bench]`

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ferry_archive::{Archive, ArchiveOptions, ResourceSpec};
use ferry_photos::ResourceRole;

const CHUNK: usize = 1 << 20;

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn archive_run(dir: &Path, files: usize, size: usize, buf: &[u8]) -> f64 {
    let dest = dir.join(format!("archive-{files}x{size}"));
    Archive::init(&dest).expect("init");
    let a = Archive::open(&dest, ArchiveOptions::default()).expect("open");
    let p = a.phone("BENCH-UDID", "Bench iPhone").expect("phone");
    let t = Instant::now();
    for i in 0..files {
        let spec = ResourceSpec {
            asset_uuid: format!("ASSET-{i}"),
            role: ResourceRole::Primary,
            size: size as u64,
            afc_path: format!("DCIM/100APPLE/IMG_{i:04}.HEIC"),
            original_filename: Some(format!("IMG_{i:04}.HEIC")),
            capture_utc_millis: Some(1_706_743_800_000 + i as i64 * 60_000),
            tz_offset_seconds: Some(3600),
        };
        let mut w = p.begin(spec).expect("begin");
        for c in buf[..size].chunks(CHUNK) {
            w.write_chunk(c).expect("write");
        }
        w.finish().expect("finish");
    }
    let secs = t.elapsed().as_secs_f64();
    drop((p, a));
    let _ = std::fs::remove_dir_all(&dest);
    secs
}

fn baseline_run(dir: &Path, files: usize, size: usize, buf: &[u8]) -> f64 {
    let dest = dir.join(format!("plain-{files}x{size}"));
    std::fs::create_dir_all(&dest).expect("mkdir");
    let t = Instant::now();
    for i in 0..files {
        let mut f = std::fs::File::create(dest.join(format!("IMG_{i:04}.HEIC"))).expect("create");
        for c in buf[..size].chunks(CHUNK) {
            f.write_all(c).expect("write");
        }
        f.sync_all().expect("fsync");
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dest);
    secs
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut dir: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        if a == "--dir" {
            dir = args.next().map(PathBuf::from);
        }
    }
    let holder = tempfile::tempdir_in(dir.unwrap_or_else(std::env::temp_dir)).expect("temp dir");
    let dir = holder.path();
    let fs = ferry_archive::fsinfo::detect(dir)
        .map(|k| k.to_string())
        .unwrap_or_default();
    println!("write path benchmark in {} ({fs})", dir.display());
    println!();
    println!("| files × size | MB | plain write+fsync MB/s | archive MB/s | archive files/s | overhead |");
    println!("|---|---:|---:|---:|---:|---:|");
    let buf = data(64 << 20, 7);
    for (files, size) in [(400usize, 256usize << 10), (40, 4 << 20), (6, 64 << 20)] {
        let mb = (files * size) as f64 / 1e6;
        let base = baseline_run(dir, files, size, &buf);
        let arch = archive_run(dir, files, size, &buf);
        println!(
            "| {files} × {} | {mb:.0} | {:.0} | {:.0} | {:.0} | {:+.0} % |",
            ferry_archive::human_bytes(size as u64),
            mb / base,
            mb / arch,
            files as f64 / arch,
            (arch / base - 1.0) * 100.0
        );
    }
}
