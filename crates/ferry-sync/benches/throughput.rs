//! Sync throughput against the simulated iPhone: MB/s and files/s of a whole `ferry-sync` run
//! (scan + plan + copy + fsync + catalog), for a library of many small files and one with a
//! large video, over the simulator's link profiles, with 1, 2 and 4 AFC connections.
//!
//! `cargo bench -p ferry-sync --bench throughput [-- --quick]` prints a table (docs/benchmarks.md).
//! The destination is the system temp dir (the page cache absorbs writes; each file is fsynced).

use std::path::Path;
use std::time::{Duration, Instant};

use ferry_archive::{Archive, ArchiveOptions};
use ferry_sim::link::LinkProfile;
use ferry_sim::sim::PhoneConfig;
use ferry_sync::{no_progress, sync, SyncOptions};

struct Row {
    library: &'static str,
    link: &'static str,
    jobs: usize,
    files: u64,
    bytes: u64,
    secs: f64,
}

fn make(dir: &Path, assets: usize, sparse_video: Option<u64>) -> anyhow::Result<()> {
    let mut a = ferry_phonegen::MakePhoneArgs::new(dir);
    a.assets = assets;
    a.seed = 9;
    a.icloud_only = 0.0;
    a.sparse_video_bytes = sparse_video;
    ferry_phonegen::run(&a)?;
    Ok(())
}

async fn run_one(
    image: &Path,
    link: LinkProfile,
    jobs: usize,
    work: &Path,
) -> anyhow::Result<(u64, u64, f64)> {
    let mut pc = PhoneConfig::new(image);
    pc.link = link;
    let phone = ferry_device::sim::serve_paired(pc, work, Duration::from_secs(60), |_| {}).await?;
    let (sim, mux, dev) = (phone.sim, phone.mux, phone.device);
    let dest = work.join(format!("dest-{jobs}-{}", link_name(link)));
    Archive::init(&dest)?;
    let archive = Archive::open(&dest, ArchiveOptions::default())?;
    let opts = SyncOptions {
        jobs,
        cache_dir: None,
        ..SyncOptions::default()
    };
    let t = Instant::now();
    let run = sync(&mux, &dev, &archive, &opts, no_progress()).await?;
    let secs = t.elapsed().as_secs_f64();
    sim.shutdown().await;
    anyhow::ensure!(run.error.is_none(), "run stopped: {:?}", run.report.stopped);
    Ok((run.report.files.copied, run.report.files.copied_bytes, secs))
}

fn link_name(l: LinkProfile) -> &'static str {
    match l {
        LinkProfile::Usb2 => "usb2",
        LinkProfile::Usb3 => "usb3",
        LinkProfile::Unlimited => "unlimited",
    }
}

fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tmp = tempfile::tempdir()?;
    let small = tmp.path().join("small");
    let big = tmp.path().join("big");
    make(&small, if quick { 300 } else { 2000 }, None)?;
    make(&big, 20, Some(if quick { 64 << 20 } else { 512 << 20 }))?;
    let mut rows = Vec::new();
    for (name, image) in [("many small files", &small), ("one large video", &big)] {
        for link in [LinkProfile::Unlimited, LinkProfile::Usb2] {
            for jobs in [1usize, 2, 4] {
                let work = tempfile::tempdir()?;
                let (files, bytes, secs) = rt.block_on(run_one(image, link, jobs, work.path()))?;
                rows.push(Row {
                    library: name,
                    link: link_name(link),
                    jobs,
                    files,
                    bytes,
                    secs,
                });
                eprintln!("{name} / {} / jobs {jobs}: {secs:.2} s", link_name(link));
            }
        }
    }
    println!("| library | link | jobs | files | MB | seconds | MB/s | files/s |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.2} | {:.1} | {:.0} |",
            r.library,
            r.link,
            r.jobs,
            r.files,
            r.bytes as f64 / 1e6,
            r.secs,
            r.bytes as f64 / 1e6 / r.secs,
            r.files as f64 / r.secs
        );
    }
    Ok(())
}
