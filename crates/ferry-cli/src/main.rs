//! `ferry`: list, pair, scan and back up USB-tethered iPhones.
//!
//! A thin front end: the work is done by `ferry-device` (and `ferry-photos` through it);
//! this crate parses arguments, renders results and maps errors to the exit codes of
//! docs/cli.md.

mod backup;
mod exit;
mod mirror;
mod render;
mod seam;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use ferry_device::{
    choose, facts, guarded, pair, scan, DeviceFacts, DiskUsage, Error, HostIdentity, Mux,
    PairOptions, PairOutcome, ScanOptions, Session, UsbDevice,
};
use serde::Serialize;

/// Back up a USB-tethered iPhone's photo library.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
struct Cli {
    /// Give up on a phone request after this many seconds without an answer.
    #[arg(long, global = true, default_value_t = 30, value_name = "SECS")]
    io_timeout: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List connected iPhones: name, model, iOS, UDID, paired?, link speed.
    Devices {
        /// Print JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
    },
    /// Pair with an iPhone: guides you through "Trust This Computer?".
    Pair {
        /// The phone's UDID (needed when several are connected).
        #[arg(long)]
        udid: Option<String>,
        /// How long to wait for "Trust" to be tapped.
        #[arg(long, default_value_t = 120, value_name = "SECS")]
        timeout: u64,
        /// Pair again even if the existing pairing works.
        #[arg(long)]
        force: bool,
    },
    /// Read the photo library and report what a backup would copy.
    Scan {
        /// The phone's UDID (needed when several are connected).
        #[arg(long)]
        udid: Option<String>,
        /// Print JSON (schema in docs/cli.md).
        #[arg(long)]
        json: bool,
        /// Also list every original file.
        #[arg(long)]
        list: bool,
        /// Always copy Photos.sqlite, even if it did not change since the last scan.
        #[arg(long)]
        no_cache: bool,
    },
    /// Back up the phone's originals into a backup folder (copies only what is new).
    Sync(backup::SyncArgs),
    /// Show what a backup folder holds per phone, the last run, and what is still in iCloud.
    Status {
        /// The backup folder (default: the first destination in the config file).
        #[arg(long, value_name = "DIR")]
        dest: Option<std::path::PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-read archived files and check them against their recorded hashes.
    Verify {
        /// The backup folder (default: the first destination in the config file).
        #[arg(long, value_name = "DIR")]
        dest: Option<std::path::PathBuf>,
        /// Re-hash only about this percentage of the files (random each run).
        #[arg(long, default_value_t = 100.0, value_name = "PERCENT")]
        sample: f64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Plan how to bring the iCloud-only originals onto the phone in batches it can hold.
    FetchPlan(mirror::FetchPlanArgs),
    /// Stay running: back up a phone whenever it is plugged in, and pick up originals as the
    /// phone downloads them from iCloud.
    Watch(mirror::WatchArgs),
    /// Show the effective configuration and where it comes from.
    Config {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install, remove or show the nightly mirror (systemd user timer / launchd agent).
    Schedule {
        #[command(subcommand)]
        action: mirror::ScheduleAction,
    },
    /// Try Ferry with nothing set up: a simulated iPhone with a sample library is backed up
    /// into DIR.
    Demo {
        /// Where the demo backup goes.
        #[arg(long, default_value = "ferry-demo", value_name = "DIR")]
        dir: std::path::PathBuf,
        /// Photos and videos in the sample library.
        #[arg(long, default_value_t = 120)]
        assets: usize,
    },
    /// Diagnostics: copy one file from the phone (path under the Media root) to a local file
    /// or stdout, streaming in 1 MiB requests.
    #[command(hide = true)]
    ReadFile {
        /// The phone's UDID (needed when several are connected).
        #[arg(long)]
        udid: Option<String>,
        /// Path on the phone, e.g. /DCIM/100APPLE/IMG_0001.HEIC.
        path: String,
        /// Local file to write ("-" or absent: stdout).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    // Behave like other Unix tools when the reader of our output goes away (`ferry … | head`):
    // end quietly instead of panicking on EPIPE.
    #[cfg(unix)]
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    seam::install();
    let unattended = match &cli.command {
        Command::Sync(a) => a.unattended,
        Command::Watch(_) => true,
        _ => false,
    };
    mirror::init_logging(unattended);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    let json = matches!(
        cli.command,
        Command::Devices { json: true } | Command::Scan { json: true, .. }
    );
    let timeout = Duration::from_secs(cli.io_timeout.max(1));
    let mux = || ferry_device::MuxAddress::from_env().map(|a| Mux::new(a, timeout));
    match cli.command {
        Command::Sync(args) => {
            return rt.block_on(async move {
                match mux() {
                    Ok(m) => backup::sync_cmd(m, args).await,
                    Err(e) => backup::report_error(&ferry_sync::SyncError::Device(e), args.json),
                }
            });
        }
        Command::Status { dest, json } => {
            return match mirror::resolve_dest(dest, None) {
                Ok(d) => backup::status_cmd(&d, json),
                Err(code) => code,
            }
        }
        Command::Verify { dest, sample, json } => {
            return match mirror::resolve_dest(dest, None) {
                Ok(d) => backup::verify_cmd(&d, sample, json),
                Err(code) => code,
            }
        }
        Command::FetchPlan(args) => {
            return rt.block_on(async move {
                match mux() {
                    Ok(m) => mirror::fetch_plan_cmd(m, args).await,
                    Err(e) => backup::report_error(&ferry_sync::SyncError::Device(e), args.json),
                }
            });
        }
        Command::Watch(args) => {
            return rt.block_on(async move {
                match mux() {
                    Ok(m) => mirror::watch_cmd(m, args).await,
                    Err(e) => backup::report_error(&ferry_sync::SyncError::Device(e), false),
                }
            });
        }
        Command::Config { json } => return mirror::config_cmd(json),
        Command::Schedule { action } => return mirror::schedule_cmd(action),
        Command::Demo { dir, assets } => return rt.block_on(backup::demo_cmd(dir, assets)),
        _ => {}
    }
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            render::error(&e, json);
            ExitCode::from(exit::code(&e))
        }
    }
}

async fn run(cli: Cli) -> Result<(), Error> {
    let mux = Mux::new(
        ferry_device::MuxAddress::from_env()?,
        Duration::from_secs(cli.io_timeout.max(1)),
    );
    match cli.command {
        Command::Devices { json } => devices(mux, json).await,
        Command::Pair {
            udid,
            timeout,
            force,
        } => pair_cmd(mux, udid, timeout, force).await,
        Command::Scan {
            udid,
            json,
            list,
            no_cache,
        } => scan_cmd(mux, udid, json, list, no_cache).await,
        Command::ReadFile { udid, path, out } => read_file(mux, udid, path, out).await,
        Command::Sync(_)
        | Command::Status { .. }
        | Command::Verify { .. }
        | Command::FetchPlan(_)
        | Command::Watch(_)
        | Command::Config { .. }
        | Command::Schedule { .. }
        | Command::Demo { .. } => {
            Ok(()) // handled in main
        }
    }
}

async fn read_file(
    mux: Mux,
    udid: Option<String>,
    path: String,
    out: Option<std::path::PathBuf>,
) -> Result<(), Error> {
    let dev = pick(&mux, udid.as_deref()).await?;
    let n = guarded("reading a file", async move {
        let mut session = Session::open(&mux, &dev).await?;
        let mut afc = session.afc().await?;
        match out.filter(|p| p.as_os_str() != "-") {
            Some(p) => {
                let f = tokio::fs::File::create(&p)
                    .await
                    .map_err(|e| Error::LocalIo {
                        action: "create",
                        path: p.clone(),
                        source: e,
                    })?;
                let mut w = tokio::io::BufWriter::new(f);
                let n = afc.read_to(&path, &mut w, |_| {}).await?;
                tokio::io::AsyncWriteExt::flush(&mut w)
                    .await
                    .map_err(|e| Error::LocalIo {
                        action: "write",
                        path: p,
                        source: e,
                    })?;
                Ok(n)
            }
            None => afc.read_to(&path, &mut tokio::io::stdout(), |_| {}).await,
        }
    })
    .await?;
    eprintln!("{n} bytes");
    Ok(())
}

/// One row of `ferry devices --json`.
#[derive(Debug, Serialize)]
struct DeviceRow {
    #[serde(flatten)]
    facts: DeviceFacts,
    /// Free/total space when paired (needs a trusted session).
    disk: Option<DiskUsage>,
    /// Why facts are missing, if reading them failed.
    error: Option<String>,
}

async fn device_row(mux: Mux, dev: UsbDevice) -> DeviceRow {
    let d2 = dev.clone();
    let m2 = mux.clone();
    match guarded("reading the iPhone's facts", async move {
        facts(&m2, &d2).await
    })
    .await
    {
        Ok(f) => {
            let disk = if f.paired {
                let (m3, d3) = (mux.clone(), dev.clone());
                guarded("reading free space", async move {
                    Session::open(&m3, &d3).await?.disk_usage().await
                })
                .await
                .ok()
            } else {
                None
            };
            DeviceRow {
                facts: f,
                disk,
                error: None,
            }
        }
        Err(e) => DeviceRow {
            facts: DeviceFacts {
                udid: dev.udid.clone(),
                device_id: dev.device_id,
                name: None,
                model: None,
                ios_version: None,
                build: None,
                connection: dev.connection.clone(),
                link_speed_bps: dev.link_speed_bps,
                link_speed: dev.link_speed_label(),
                paired: false,
            },
            disk: None,
            error: Some(e.to_string()),
        },
    }
}

async fn devices(mux: Mux, json: bool) -> Result<(), Error> {
    let list = {
        let m = mux.clone();
        guarded("listing iPhones", async move { m.list().await }).await?
    };
    let mut rows = Vec::new();
    for dev in list {
        rows.push(device_row(mux.clone(), dev).await);
    }
    if json {
        render::json(&serde_json::json!({ "format": 1, "devices": rows }));
    } else {
        render::devices(&rows);
    }
    Ok(())
}

/// Picks the phone, naming every connected one if the choice is ambiguous.
pub(crate) async fn pick(mux: &Mux, udid: Option<&str>) -> Result<UsbDevice, Error> {
    let list = {
        let m = mux.clone();
        guarded("listing iPhones", async move { m.list().await }).await?
    };
    match choose(&list, udid, &|_| String::new()) {
        Ok(d) => Ok(d.clone()),
        Err(Error::AmbiguousDevice { .. }) | Err(Error::DeviceNotFound { .. }) => {
            // Re-run with names for a friendlier message.
            let mut names = std::collections::HashMap::new();
            for d in &list {
                let row = device_row(mux.clone(), d.clone()).await;
                names.insert(d.udid.clone(), row.facts.name.unwrap_or_default());
            }
            let lookup = |u: &str| names.get(u).cloned().unwrap_or_default();
            choose(&list, udid, &lookup).cloned()
        }
        Err(e) => Err(e),
    }
}

async fn pair_cmd(mux: Mux, udid: Option<String>, timeout: u64, force: bool) -> Result<(), Error> {
    let dev = pick(&mux, udid.as_deref()).await?;
    let host = HostIdentity::load_or_create()?;
    let opts = PairOptions {
        timeout: Duration::from_secs(timeout.max(1)),
        force,
        ..PairOptions::default()
    };
    let cancel = opts.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });
    let (m, d) = (mux.clone(), dev.clone());
    let outcome = guarded("pairing", async move {
        pair(&m, &d, &host, &opts, |state| {
            eprintln!("{}", state.message())
        })
        .await
    })
    .await?;
    let what = match outcome {
        PairOutcome::Paired => "Paired with",
        PairOutcome::RePaired => "Paired again with",
        PairOutcome::AlreadyPaired => "Already paired with",
    };
    println!("{what} {}", dev.udid);
    Ok(())
}

async fn scan_cmd(
    mux: Mux,
    udid: Option<String>,
    json: bool,
    list: bool,
    no_cache: bool,
) -> Result<(), Error> {
    let dev = pick(&mux, udid.as_deref()).await?;
    let opts = ScanOptions {
        list,
        cache_dir: if no_cache {
            None
        } else {
            ferry_device::paths::cache_dir()
        },
        copy_shm: false,
        keep_assets: false,
    };
    let report = guarded("scanning the library", async move {
        scan(&mux, &dev, &opts).await
    })
    .await?;
    if json {
        render::json(&report);
    } else {
        render::scan(&report);
    }
    Ok(())
}
