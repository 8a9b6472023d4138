//! `ferry sync | status | verify | demo`: the backup commands. The work is done by
//! `ferry-sync` and `ferry-archive`; this module opens things in the right order, draws
//! progress, prints reports and maps every ending to an exit code (docs/cli.md).

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_archive::{Archive, ArchiveOptions, Error as ArchiveError};
use ferry_device::{printable, Mux};
use ferry_sync::{Event, Outcome, ProgressSink, SyncError, SyncOptions, SyncReport};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::{exit, render};

/// Exit codes of the backup commands (docs/cli.md).
pub mod code {
    /// The run finished but some files could not be copied.
    pub const INCOMPLETE: u8 = 6;
    /// The destination is not a Ferry archive (no marker).
    pub const NOT_INITIALISED: u8 = 40;
    /// Another Ferry run holds the destination.
    pub const BUSY: u8 = 41;
    /// The destination is full.
    pub const DISK_FULL: u8 = 42;
    /// The destination is read-only or not writable.
    pub const READ_ONLY: u8 = 43;
    /// Another destination problem (missing, damaged metadata, I/O error).
    pub const DESTINATION: u8 = 44;
    /// `ferry verify` found missing or damaged files.
    pub const VERIFY_FAILED: u8 = 45;
    /// The destination went away during the run (drive unmounted or unplugged, folder moved).
    pub const DESTINATION_GONE: u8 = 46;
}

/// The exit code for an archive error.
pub fn archive_code(e: &ArchiveError) -> u8 {
    match e {
        ArchiveError::NotInitialised { .. } => code::NOT_INITIALISED,
        ArchiveError::Busy { .. } => code::BUSY,
        ArchiveError::DiskFull { .. } => code::DISK_FULL,
        ArchiveError::ReadOnly { .. } | ArchiveError::PermissionDenied { .. } => code::READ_ONLY,
        ArchiveError::DestinationGone { .. } => code::DESTINATION_GONE,
        _ => code::DESTINATION,
    }
}

fn archive_kind(e: &ArchiveError) -> &'static str {
    match archive_code(e) {
        code::NOT_INITIALISED => "not_initialised",
        code::BUSY => "busy",
        code::DISK_FULL => "disk_full",
        code::READ_ONLY => "read_only",
        _ => "destination",
    }
}

/// The exit code for a sync error.
pub fn sync_code(e: &SyncError) -> u8 {
    match e {
        SyncError::Device(d) => exit::code(d),
        SyncError::Archive(a) => archive_code(a),
        SyncError::Cancelled => 130,
        SyncError::Internal { .. } => exit::INTERNAL,
    }
}

/// Prints `error: …` and `hint: …` on stderr (docs/cli.md: every error, `--json` or not).
fn eprint_error(e: &SyncError) {
    match e {
        SyncError::Device(d) => render::error(d, false),
        e => {
            eprintln!("error: {}", e.message());
            eprintln!("hint: {}", e.hint());
        }
    }
}

/// Prints a sync error (stderr, and JSON on stdout with `json`); returns its exit code.
pub fn report_error(e: &SyncError, json: bool) -> ExitCode {
    if let SyncError::Device(d) = e {
        render::error(d, json);
        return ExitCode::from(exit::code(d));
    }
    let code = sync_code(e);
    eprint_error(e);
    if json {
        let kind = match e {
            SyncError::Archive(a) => archive_kind(a),
            other => other.stop_kind(),
        };
        render::json(&serde_json::json!({
            "format": 1,
            "error": { "kind": kind, "exit_code": code, "message": e.message(), "hint": e.hint() }
        }));
    }
    ExitCode::from(code)
}

/// Arguments of `ferry sync`.
#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// The backup folder on the backup drive (default: the first destination in the config
    /// file, or the phone's own destination there).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// The phone's UDID (needed when several are connected).
    #[arg(long)]
    pub udid: Option<String>,
    /// Plan and report; copy nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON (schema in docs/cli.md).
    #[arg(long)]
    pub json: bool,
    /// Set DIR up as a Ferry backup folder if it is not one yet.
    #[arg(long)]
    pub init: bool,
    /// Parallel connections to the phone.
    #[arg(long, default_value_t = 2, value_name = "N")]
    pub jobs: usize,
    /// Always copy Photos.sqlite, even if it did not change since the last run.
    #[arg(long)]
    pub no_cache: bool,
    /// Leave hidden photos out (they are backed up by default; also a per-phone config choice).
    #[arg(long)]
    pub exclude_hidden: bool,
    /// For the nightly mirror: never prompt, wait for the phone (`--wait`), log to the state
    /// dir, record the last run and send a desktop notification.
    #[arg(long)]
    pub unattended: bool,
    /// With --unattended: how long to wait for the phone to appear (e.g. 30m, 2h, 90s).
    #[arg(long, value_name = "DURATION", default_value = "30m")]
    pub wait: String,
}

/// Opens the destination, initialising it when asked (`--init`, or yes at the TTY prompt).
pub fn open_destination(dest: &Path, init: bool, json: bool) -> Result<Archive, SyncError> {
    if init {
        let marker = Archive::init(dest)?;
        eprintln!(
            "Initialised {} as a Ferry archive ({}).",
            dest.display(),
            marker.archive_id
        );
    }
    match Archive::open(dest, ArchiveOptions::default()) {
        Err(ArchiveError::NotInitialised { .. })
            if !init
                && !json
                && std::io::stdin().is_terminal()
                && std::io::stderr().is_terminal() =>
        {
            eprint!(
                "{} is not a Ferry backup folder yet. If it is on your backup drive and the drive \
                 is mounted, Ferry can set it up now.\nInitialise {} for Ferry backups? [y/N] ",
                dest.display(),
                dest.display()
            );
            let _ = std::io::stderr().flush();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            if matches!(line.trim(), "y" | "Y" | "yes" | "Yes") {
                open_destination(dest, true, json)
            } else {
                Err(SyncError::Archive(ArchiveError::NotInitialised {
                    dir: dest.to_path_buf(),
                    marker: ferry_archive::marker::marker_path(dest),
                }))
            }
        }
        r => {
            let a = r?;
            let rep = a.open_report();
            if rep.catalog_rebuilt {
                eprintln!(
                    "note: the catalog was rebuilt from the archive's journal ({}).",
                    rep.rebuild_reason.as_deref().unwrap_or("it was missing")
                );
            }
            if rep.temp_files_removed > 0 {
                eprintln!(
                    "note: removed {} unfinished temporary file(s) of an interrupted run.",
                    rep.temp_files_removed
                );
            }
            Ok(a)
        }
    }
}

/// A sink that draws a bar on a terminal, or prints plain lines otherwise.
fn progress_sink(json: bool) -> (ProgressSink, Option<ProgressBar>) {
    let tty = std::io::stderr().is_terminal() && !json;
    if tty {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} {prefix}\n  [{bar:30}] {bytes}/{total_bytes} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let b = bar.clone();
        let sink: ProgressSink = Arc::new(move |ev| match ev {
            Event::Phase { phase } => b.set_prefix(phase.describe().to_string()),
            Event::Planned(p) => {
                b.set_length(p.bytes);
                b.set_prefix(format!(
                    "Copying {} file(s) ({} only on this phone first)",
                    p.files, p.only_here_files
                ));
            }
            Event::Progress(p) => {
                b.set_position(p.bytes_done);
                let eta = p
                    .eta_secs
                    .map(|s| format!("ETA {}:{:02}", s / 60, s % 60))
                    .unwrap_or_else(|| "ETA --".into());
                b.set_message(format!(
                    "· {}/{} files · {:.1} MB/s · {eta} · {}",
                    p.files_done,
                    p.files_total,
                    p.rate_bps / 1e6,
                    p.current.as_deref().unwrap_or("")
                ));
            }
            Event::FileFailed { name, message, .. } => b.println(format!(
                "could not copy {}: {}",
                printable(&name),
                printable(&message)
            )),
            _ => {}
        });
        (sink, Some(bar))
    } else {
        let done = Arc::new(Mutex::new((0u64, 0u64)));
        let sink: ProgressSink = Arc::new(move |ev| match ev {
            Event::Phase { phase } => eprintln!("{}…", phase.describe()),
            Event::Planned(p) => {
                if let Ok(mut d) = done.lock() {
                    d.1 = p.files;
                }
                eprintln!(
                    "{} file(s) to copy ({}), {} of them only on this phone; {} already in the backup",
                    p.files,
                    render::bytes(p.bytes),
                    p.only_here_files,
                    p.already_archived_files
                );
            }
            Event::FileDone { rel_path, size } => {
                if let Ok(mut d) = done.lock() {
                    d.0 += 1;
                    eprintln!("[{}/{}] {rel_path} ({})", d.0, d.1, render::bytes(size));
                }
            }
            Event::FileFailed { name, message, .. } => {
                if let Ok(mut d) = done.lock() {
                    d.0 += 1;
                }
                eprintln!(
                    "could not copy {}: {}",
                    printable(&name),
                    printable(&message)
                );
            }
            _ => {}
        });
        (sink, None)
    }
}

pub fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nStopping… (files already copied stay in the backup)");
            c.cancel();
        }
    });
    cancel
}

pub fn print_report(report: &SyncReport, json: bool, report_path: Option<&Path>) {
    if json {
        render::json(report);
        return;
    }
    for line in report.summary_lines() {
        println!("{line}");
    }
    if !report.failures.is_empty() {
        println!("Not copied:");
        for f in report.failures.iter().take(20) {
            println!(
                "  {} ({}): {}",
                printable(&f.afc_path),
                f.reason,
                printable(&f.message)
            );
        }
        if report.failures.len() > 20 {
            println!(
                "  … and {} more (see the JSON report)",
                report.failures.len() - 20
            );
        }
    }
    let whole: Vec<_> = report
        .icloud_only
        .iter()
        .filter(|a| !a.original_local)
        .collect();
    if !whole.is_empty() {
        println!("Only in iCloud ({}):", whole.len());
        for a in whole.iter().take(10) {
            println!(
                "  {}  {}  {}",
                a.created_utc
                    .as_deref()
                    .map(|c| &c[..c.len().min(10)])
                    .unwrap_or("????-??-??"),
                printable(a.name.as_deref().unwrap_or(&a.uuid)),
                render::bytes(a.bytes)
            );
        }
        if whole.len() > 10 {
            println!(
                "  … and {} more (full list in the JSON report)",
                whole.len() - 10
            );
        }
    }
    if let Some(p) = report_path {
        println!("Report: {}", p.display());
    }
}

/// The exit code for a finished run.
pub fn run_code(report: &SyncReport, error: Option<&SyncError>) -> u8 {
    match (report.outcome, error) {
        (_, Some(e)) => sync_code(e),
        (Outcome::Incomplete, None) => code::INCOMPLETE,
        _ => 0,
    }
}

/// `ferry sync`.
pub async fn sync_cmd(mux: Mux, args: SyncArgs) -> ExitCode {
    if args.unattended {
        return crate::mirror::unattended(mux, args).await;
    }
    let dest = match crate::mirror::resolve_dest(args.dest.clone(), args.udid.as_deref()) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let archive = match open_destination(&dest, args.init, args.json) {
        Ok(a) => a,
        Err(e) => return report_error(&e, args.json),
    };
    let dev = match crate::pick(&mux, args.udid.as_deref()).await {
        Ok(d) => d,
        Err(e) => return report_error(&SyncError::Device(e), args.json),
    };
    let run = run_sync(&mux, &dev, &archive, &args, cancel_on_ctrl_c()).await;
    finish_sync(run, args.json)
}

/// Prints a finished run and returns its exit code.
pub fn finish_sync(result: Result<ferry_sync::SyncRun, SyncError>, json: bool) -> ExitCode {
    match result {
        Ok(run) => {
            if let Some(e) = &run.error {
                // On stderr with --json too: the report on stdout stays the only JSON there.
                eprint_error(e);
            }
            print_report(&run.report, json, run.report_path.as_deref());
            ExitCode::from(run_code(&run.report, run.error.as_ref()))
        }
        Err(e) => report_error(&e, json),
    }
}

/// Runs one sync with the CLI's progress display.
pub async fn run_sync(
    mux: &Mux,
    dev: &ferry_device::UsbDevice,
    archive: &Archive,
    args: &SyncArgs,
    cancel: CancellationToken,
) -> Result<ferry_sync::SyncRun, SyncError> {
    let include_hidden = !args.exclude_hidden
        && crate::mirror::load_config()
            .map(|c| c.config.include_hidden_for(&dev.udid))
            .unwrap_or(true);
    let opts = SyncOptions {
        jobs: args.jobs,
        dry_run: args.dry_run,
        cache_dir: if args.no_cache {
            None
        } else {
            ferry_device::paths::cache_dir()
        },
        plan: ferry_sync::PlanOptions { include_hidden },
        cancel,
        store_report: true,
    };
    let (sink, bar) = progress_sink(args.json || args.unattended);
    let result = ferry_sync::sync(mux, dev, archive, &opts, crate::seam::wrap(sink)).await;
    crate::seam::reached("report_stored");
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    result
}

#[derive(Debug, Serialize)]
struct PhoneStatus {
    udid: String,
    name: Option<String>,
    folder: Option<String>,
    assets: u64,
    files: u64,
    bytes: u64,
    superseded_files: u64,
    assets_deleted_on_phone: u64,
    last_run: Option<LastRun>,
    icloud_only_pending: Option<ferry_sync::report::IcloudSummary>,
}

#[derive(Debug, Serialize)]
struct LastRun {
    finished_at: String,
    outcome: Outcome,
    copied_files: u64,
    failed_files: u64,
    stopped: Option<String>,
}

#[derive(Debug, Serialize)]
struct StatusDoc {
    format: u32,
    destination: String,
    archive_id: Option<String>,
    /// Another run holds the lock: counts come from the last reports only.
    busy: bool,
    catalog_rebuilt: bool,
    /// Whether the drive can take a backup now (absent while another run holds it).
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<ferry_archive::DriveState>,
    phones: Vec<PhoneStatus>,
}

fn last_report(dest: &Path, udid: &str) -> Option<SyncReport> {
    ferry_archive::read_latest_report(dest, udid)
        .and_then(|b| serde_json::from_slice::<SyncReport>(&b).ok())
}

fn last_run(r: &SyncReport) -> LastRun {
    LastRun {
        finished_at: r.finished_at.clone(),
        outcome: r.outcome,
        copied_files: r.files.copied,
        failed_files: r.files.failed,
        stopped: r.stopped.as_ref().map(|s| s.message.clone()),
    }
}

/// One sentence when the drive cannot take a backup now (status and verify still work).
fn print_drive_note(drive: Option<ferry_archive::DriveState>) {
    match drive {
        Some(ferry_archive::DriveState::ReadOnly) => println!(
            "The drive is mounted read-only: this backup can be read and verified, but nothing \
             new can be added until it is mounted read-write."
        ),
        Some(ferry_archive::DriveState::Full { available }) => println!(
            "The drive is full ({} free): the next backup needs more room. Free space on the \
             drive or use a larger one.",
            render::bytes(available)
        ),
        _ => {}
    }
}

/// `ferry status`.
pub fn status_cmd(dest: &Path, json: bool) -> ExitCode {
    // Read-only: works on a full or read-only drive, never changes anything.
    let doc = match Archive::open_read_only(dest) {
        Ok(a) => {
            let mut phones = Vec::new();
            let entries = match a.all_entries() {
                Ok(e) => e,
                Err(e) => return report_error(&SyncError::Archive(e), json),
            };
            let rows = match a.phones() {
                Ok(p) => p,
                Err(e) => return report_error(&SyncError::Archive(e), json),
            };
            for p in rows {
                let prefix = format!("{}/", p.folder);
                let mine: Vec<_> = entries
                    .iter()
                    .filter(|e| e.path.starts_with(&prefix))
                    .collect();
                let current: Vec<_> = mine
                    .iter()
                    .filter(|e| e.state == ferry_archive::FileState::Archived)
                    .collect();
                let mut assets: Vec<&str> = current.iter().map(|e| e.uuid.as_str()).collect();
                assets.sort_unstable();
                assets.dedup();
                let mut deleted: Vec<&str> = current
                    .iter()
                    .filter(|e| e.deleted_on_phone_ms.is_some())
                    .map(|e| e.uuid.as_str())
                    .collect();
                deleted.sort_unstable();
                deleted.dedup();
                let rep = last_report(dest, &p.udid);
                phones.push(PhoneStatus {
                    udid: p.udid.clone(),
                    name: Some(p.name.clone()),
                    folder: Some(p.folder.clone()),
                    assets: assets.len() as u64,
                    files: current.len() as u64,
                    bytes: current.iter().map(|e| e.size).sum(),
                    superseded_files: (mine.len() - current.len()) as u64,
                    assets_deleted_on_phone: deleted.len() as u64,
                    last_run: rep.as_ref().map(last_run),
                    icloud_only_pending: rep.map(|r| r.icloud_only_summary),
                });
            }
            StatusDoc {
                format: 1,
                destination: dest.display().to_string(),
                archive_id: Some(a.marker().archive_id.clone()),
                busy: false,
                catalog_rebuilt: a.open_report().catalog_rebuilt,
                drive: a.drive_state().ok(),
                phones,
            }
        }
        Err(ArchiveError::Busy { .. }) => {
            // Lock-free view from the stored reports.
            let phones = ferry_archive::reported_phones(dest)
                .into_iter()
                .filter_map(|u| last_report(dest, &u))
                .map(|r| PhoneStatus {
                    udid: r.udid.clone(),
                    name: r.phone_name.clone(),
                    folder: Some(r.phone_folder.clone()),
                    assets: r.reconciliation.archived_new + r.reconciliation.archived_earlier,
                    files: r.files.copied + r.files.already_archived,
                    bytes: 0,
                    superseded_files: 0,
                    assets_deleted_on_phone: 0,
                    last_run: Some(last_run(&r)),
                    icloud_only_pending: Some(r.icloud_only_summary.clone()),
                })
                .collect();
            StatusDoc {
                format: 1,
                destination: dest.display().to_string(),
                archive_id: ferry_archive::Marker::read(dest).ok().map(|m| m.archive_id),
                busy: true,
                catalog_rebuilt: false,
                drive: None,
                phones,
            }
        }
        Err(e) => return report_error(&SyncError::Archive(e), json),
    };
    if json {
        render::json(&doc);
        return ExitCode::SUCCESS;
    }
    println!("Backup folder: {}", doc.destination);
    if doc.busy {
        println!("A Ferry run is using this backup right now; figures are from the last reports.");
    }
    if doc.catalog_rebuilt {
        println!("(The catalog was rebuilt from the archive's journal.)");
    }
    print_drive_note(doc.drive);
    if doc.phones.is_empty() {
        println!(
            "Nothing backed up yet. Run `ferry sync --dest {}`.",
            doc.destination
        );
    }
    for p in &doc.phones {
        println!(
            "{} ({}): {} assets, {} files, {} in {}/",
            printable(p.name.as_deref().unwrap_or("iPhone")),
            p.udid,
            p.assets,
            p.files,
            render::bytes(p.bytes),
            p.folder.as_deref().unwrap_or("?")
        );
        if p.assets_deleted_on_phone > 0 {
            println!(
                "  {} archived asset(s) were later deleted on the phone (kept here)",
                p.assets_deleted_on_phone
            );
        }
        match &p.last_run {
            Some(l) => println!(
                "  last run {}: {:?}, {} copied, {} not copied{}",
                l.finished_at,
                l.outcome,
                l.copied_files,
                l.failed_files,
                l.stopped
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
            None => println!("  no run report yet"),
        }
        if let Some(ic) = p.icloud_only_pending.as_ref().filter(|i| i.files > 0) {
            println!(
                "  still only in iCloud: {} asset(s), {} file(s), {}",
                ic.assets,
                ic.files,
                render::bytes(ic.bytes)
            );
        }
    }
    ExitCode::SUCCESS
}

/// `ferry verify`.
pub fn verify_cmd(dest: &Path, sample: f64, json: bool) -> ExitCode {
    if !(sample > 0.0 && sample <= 100.0) {
        eprintln!("error: --sample must be a percentage in (0, 100], got {sample}");
        return ExitCode::from(2);
    }
    // Read-only: works on a full or read-only drive, never changes anything.
    let archive = match Archive::open_read_only(dest) {
        Ok(a) => a,
        Err(e) => return report_error(&SyncError::Archive(e), json),
    };
    let mut n = 0u64;
    let rep = match archive.verify(sample, |_, _| {
        n += 1;
        if !json && n.is_multiple_of(500) {
            eprintln!("checked {n} files…");
        }
    }) {
        Ok(r) => r,
        Err(e) => return report_error(&SyncError::Archive(e), json),
    };
    let damaged = !rep.missing.is_empty()
        || !rep.wrong_size.is_empty()
        || !rep.wrong_hash.is_empty()
        || !rep.bad_paths.is_empty();
    if json {
        render::json(&serde_json::json!({
            "format": 1,
            "destination": dest.display().to_string(),
            "sample_percent": sample,
            "ok": !damaged,
            "drive": archive.drive_state().ok(),
            "report": rep,
        }));
    } else {
        print_drive_note(archive.drive_state().ok());
        println!(
            "Checked {} files: {} re-read and hashed ({}).",
            rep.files_checked,
            rep.files_hashed,
            render::bytes(rep.bytes_hashed)
        );
        for (what, list) in [
            ("missing", &rep.missing),
            ("wrong size", &rep.wrong_size),
            ("content changed (hash mismatch)", &rep.wrong_hash),
            ("unusable catalog path", &rep.bad_paths),
        ] {
            for p in list {
                println!("  {what}: {p}");
            }
        }
        if !rep.unknown_files.is_empty() {
            println!(
                "  note: {} file(s) in the phone folders are not Ferry's (left alone), e.g. {}",
                rep.unknown_files.len(),
                rep.unknown_files[0]
            );
        }
        if damaged {
            println!(
                "Damage found. Keep the phone's copies; run `ferry sync` to copy missing files \
                 again, and check the drive (it may be failing)."
            );
        } else {
            println!("All checked files are intact.");
        }
    }
    if damaged {
        ExitCode::from(code::VERIFY_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// `ferry demo`: a real sync from a simulated iPhone, with nothing set up.
pub async fn demo_cmd(dir: PathBuf, assets: usize) -> ExitCode {
    match demo(dir, assets).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: the demo failed: {e:#}");
            eprintln!("hint: run it again; if it repeats, report it with RUST_LOG=debug output");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

async fn demo(dir: PathBuf, assets: usize) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let work = tempfile::Builder::new().prefix("ferry-demo-").tempdir()?;
    let image = work.path().join("phone");
    eprintln!("Making a sample iPhone library ({assets} photos and videos)…");
    let mut gen = ferry_phonegen::MakePhoneArgs::new(&image);
    gen.assets = assets;
    gen.seed = 7;
    gen.name = Some("Demo iPhone".into());
    let made = tokio::task::spawn_blocking(move || ferry_phonegen::run(&gen))
        .await
        .context("generating the sample library")??;
    let phone = ferry_device::sim::serve_paired(
        ferry_sim::sim::PhoneConfig::new(&image),
        work.path(),
        Duration::from_secs(30),
        |s| eprintln!("{}", s.message()),
    )
    .await?;
    eprintln!(
        "Simulated iPhone {} listening as usbmuxd on {} (try: USBMUXD_SOCKET_ADDRESS={} ferry devices).",
        made.udid,
        phone.sim.addr(),
        phone.sim.addr()
    );
    let result = demo_sync(&phone.mux, &phone.device, &dir, work.path()).await;
    phone.sim.shutdown().await;
    result
}

async fn demo_sync(
    mux: &Mux,
    dev: &ferry_device::UsbDevice,
    dir: &Path,
    work: &Path,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Archive::init(dir)?;
    let archive = Archive::open(dir, ArchiveOptions::default())?;
    let opts = SyncOptions {
        cache_dir: Some(work.join("cache")),
        cancel: cancel_on_ctrl_c(),
        ..SyncOptions::default()
    };
    let (sink, bar) = progress_sink(false);
    let result = ferry_sync::sync(mux, dev, &archive, &opts, sink).await;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let run = match result {
        Ok(r) => r,
        Err(e) => return Ok(report_error(&e, false)),
    };
    println!();
    print_report(&run.report, false, run.report_path.as_deref());
    println!();
    println!(
        "The demo backup is in {}/ (open it in your file manager). Run `ferry demo` again: \
         nothing is copied twice. `ferry status --dest {}` and `ferry verify --dest {}` work on it too.",
        dir.join(&run.report.phone_folder).display(),
        dir.display(),
        dir.display()
    );
    Ok(ExitCode::from(run_code(&run.report, run.error.as_ref())))
}
