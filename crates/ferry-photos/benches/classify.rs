//! Benchmark: classify a generated 100k-asset library.
//!
//! ```sh
//! cargo bench -p ferry-photos --bench classify                 # generates 100k assets first
//! cargo bench -p ferry-photos --bench classify -- --assets 20000
//! cargo bench -p ferry-photos --bench classify -- --image DIR  # an existing phone image
//! ```
//!
//! Reports, per run, the time to snapshot (copy DB + WAL), open, and stream-classify every
//! asset, the rate in assets/s, and the peak resident memory of the classification phase
//! (Linux `VmHWM`, reset with `/proc/self/clear_refs` after generation). A second figure
//! includes reconciling every resource with the files (one `stat` each).

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use ferry_photos::reconcile::reconcile;
use ferry_photos::snapshot::{take_snapshot, DirSource, SnapshotOptions};
use ferry_photos::LocalMediaDir;

fn vm(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let mut assets = 100_000usize;
    let mut image: Option<PathBuf> = None;
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--assets" => assets = args.next().and_then(|v| v.parse().ok()).unwrap_or(assets),
            "--image" => image = args.next().map(PathBuf::from),
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            _ => {} // `cargo bench` passes --bench
        }
    }
    let _tmp;
    let image = match image {
        Some(i) => i,
        None => {
            let tmp = tempfile::tempdir()?;
            let mut g = ferry_phonegen::MakePhoneArgs::new(tmp.path());
            g.assets = assets;
            let s = ferry_phonegen::run(&g)?;
            println!("generated: {s}");
            let p = tmp.path().to_path_buf();
            _tmp = tmp;
            p
        }
    };
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let base_rss = vm("VmRSS:").unwrap_or(0);
    let mut best = f64::MAX;
    for run in 1..=runs {
        let t = Instant::now();
        let mut src = DirSource::new(image.join("Media/PhotoData"));
        let snap = take_snapshot(&mut src, &SnapshotOptions::default())?;
        let t_snap = t.elapsed();
        let db = snap.open()?;
        let mut n = 0u64;
        let mut excluded = 0u64;
        db.scan(|r| {
            n += 1;
            excluded += u64::from(r.exclusion.is_some());
            ControlFlow::Continue(())
        })?;
        let secs = t.elapsed().as_secs_f64();
        let classify = secs - t_snap.as_secs_f64();
        best = best.min(secs);
        println!(
            "run {run}: {n} assets ({excluded} excluded) in {secs:.3} s = {:.0} assets/s \
             [snapshot+WAL check+quick_check {:.3} s; open+classify {classify:.3} s = {:.0} assets/s]",
            n as f64 / secs,
            t_snap.as_secs_f64(),
            n as f64 / classify
        );
    }
    let peak = vm("VmHWM:").unwrap_or(0);
    println!(
        "best: {best:.3} s; peak RSS during classification {:.1} MiB (baseline {:.1} MiB)",
        peak as f64 / 1024.0,
        base_rss as f64 / 1024.0
    );

    let t = Instant::now();
    let snap = take_snapshot(
        &mut DirSource::new(image.join("Media/PhotoData")),
        &SnapshotOptions::default(),
    )?;
    let db = snap.open()?;
    let media = LocalMediaDir::new(image.join("Media"));
    let mut n = 0u64;
    let mut io_errors = 0u64;
    db.scan(|r| {
        n += 1;
        if reconcile(&r, &media).is_err() {
            io_errors += 1;
        }
        ControlFlow::Continue(())
    })?;
    println!(
        "with reconcile (stat every resource): {n} assets in {:.3} s ({io_errors} I/O errors)",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
