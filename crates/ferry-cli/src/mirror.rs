//! The unattended side: `ferry sync --unattended`, `ferry watch`, `ferry fetch-plan`,
//! `ferry config` and `ferry schedule`. The work is done by `ferry-sync` (engine, fetch plan),
//! `ferry-device` (watcher, cheap no-change check) and `ferry-config` (config file, schedule);
//! this module waits, loops, logs and maps endings to exit codes (docs/cli.md, docs/nightly.md).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use ferry_archive::{Archive, ArchiveOptions, Error as ArchiveError};
use ferry_config::schedule::{self, InstallRequest, Platform, RealSystemCtl};
use ferry_config::{Loaded, Os, TimeOfDay};
use ferry_device::{DeviceEvent, DeviceWatcher, ErrorKind, Mux, UsbDevice};
use ferry_sync::fetchplan;
use ferry_sync::{SyncError, SyncOptions};
use tokio_util::sync::CancellationToken;

use crate::backup::{self, report_error};
use crate::render;

/// Exit code: the config file is invalid.
pub const CONFIG_ERROR: u8 = 7;
/// Exit code: the schedule's files were written but could not be activated.
pub const SCHEDULE_NOT_ACTIVE: u8 = 8;

/// The log file of unattended runs, in the state dir.
const LOG_FILE: &str = "ferry.log";
/// Rotate the log when it grows beyond this, keeping [`LOG_KEEP`] old files.
const LOG_MAX_BYTES: u64 = 1 << 20;
const LOG_KEEP: usize = 5;

/// Loads the config file (a missing file is the defaults).
pub fn load_config() -> Result<Loaded, String> {
    let Some(path) = ferry_config::dirs::config_file() else {
        return Err("cannot find the config directory (HOME is not set)".into());
    };
    ferry_config::config::load(&path).map_err(|e| e.to_string())
}

/// `--dest`, else the phone's destination in the config, else the config's default.
pub fn resolve_dest(dest: Option<PathBuf>, udid: Option<&str>) -> Result<PathBuf, ExitCode> {
    if let Some(d) = dest {
        return Ok(d);
    }
    let cfg = load_config().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(CONFIG_ERROR)
    })?;
    let from_cfg = match udid {
        Some(u) => cfg.config.destination_for(u),
        None => cfg.config.default_destination(),
    };
    match from_cfg {
        Some(d) => Ok(d.to_path_buf()),
        None => {
            eprintln!(
                "error: no backup folder given\nhint: add --dest DIR, or set `destinations = \
                 [\"/path/to/backup\"]` in {}",
                cfg.path.display()
            );
            Err(ExitCode::from(2))
        }
    }
}

/// Moves `ferry.log` → `ferry.log.1` → … when it is larger than `max`, keeping `keep` files.
pub fn rotate_logs(dir: &Path, max: u64, keep: usize) -> std::io::Result<()> {
    let log = dir.join(LOG_FILE);
    match std::fs::metadata(&log) {
        Ok(m) if m.len() > max => {}
        _ => return Ok(()),
    }
    for i in (1..keep).rev() {
        let from = dir.join(format!("{LOG_FILE}.{i}"));
        if from.exists() {
            std::fs::rename(&from, dir.join(format!("{LOG_FILE}.{}", i + 1)))?;
        }
    }
    std::fs::rename(&log, dir.join(format!("{LOG_FILE}.1")))
}

fn open_log() -> Option<(File, PathBuf)> {
    let dir = ferry_config::dirs::state_dir()?;
    std::fs::create_dir_all(&dir).ok()?;
    if let Err(e) = rotate_logs(&dir, LOG_MAX_BYTES, LOG_KEEP) {
        eprintln!("warning: cannot rotate the log in {}: {e}", dir.display());
    }
    let path = dir.join(LOG_FILE);
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .ok()?;
    Some((f, path))
}

/// Sets up logging: stderr (`RUST_LOG`, default warn); unattended runs also append to a
/// rotating log file in the state dir at info level.
pub fn init_logging(unattended: bool) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    use tracing_subscriber::EnvFilter;
    let default = if unattended {
        "warn,ferry=info"
    } else {
        "warn"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let log = if unattended { open_log() } else { None };
    match log {
        Some((file, _)) => {
            let file = std::sync::Mutex::new(file);
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_ansi(false)
                .with_writer(std::io::stderr.and(file))
                .init();
        }
        None => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init(),
    }
}

/// The command that shows a desktop notification on `os`, if the platform has one.
pub fn notification_command(os: Os, title: &str, body: &str) -> (String, Vec<String>) {
    match os {
        Os::Linux => (
            "notify-send".into(),
            vec!["--app-name=Ferry".into(), title.into(), body.into()],
        ),
        Os::MacOs => {
            let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
            (
                "osascript".into(),
                vec![
                    "-e".into(),
                    format!("display notification {} with title {}", q(body), q(title)),
                ],
            )
        }
    }
}

/// Sends a desktop notification; says why not when it cannot.
fn notify(title: &str, body: &str) {
    let (prog, args) = notification_command(Os::current(), title, body);
    match std::process::Command::new(&prog)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) if s.success() => tracing::info!("desktop notification sent"),
        Ok(s) => tracing::info!(
            "no desktop notification: {prog} failed ({s}); is a desktop session running?"
        ),
        Err(_) => tracing::info!(
            "no desktop notification: {prog} is not installed{}",
            if prog == "notify-send" {
                " (Debian/Ubuntu: apt install libnotify-bin)"
            } else {
                ""
            }
        ),
    }
}

/// Waits up to `wait` for the phone (any single one, or `udid`). usbmuxd itself may appear only
/// when a phone is plugged in (Linux starts it from udev), so "cannot reach usbmuxd" counts as
/// "no phone yet" until the deadline.
pub async fn wait_for_phone(
    mux: &Mux,
    udid: Option<&str>,
    wait: Duration,
) -> Result<UsbDevice, ferry_device::Error> {
    let deadline = Instant::now() + wait;
    let mut announced = false;
    loop {
        let last = match mux.list().await {
            Ok(list) => match ferry_device::choose(&list, udid, &|_| String::new()) {
                Ok(d) => return Ok(d.clone()),
                Err(e @ ferry_device::Error::AmbiguousDevice { .. }) => return Err(e),
                Err(e) => e,
            },
            Err(e) if e.kind() == ErrorKind::Usbmuxd => e,
            Err(e) => return Err(e),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            if last.kind() == ErrorKind::Usbmuxd {
                // On Linux usbmuxd only runs while a phone is plugged in: no daemon after the
                // whole wait means no phone. Keep the daemon's detail in the log.
                tracing::info!("usbmuxd never became reachable: {last} ({})", last.hint());
                return Err(ferry_device::Error::NoDevice);
            }
            return Err(last);
        }
        if !announced {
            tracing::info!(
                "waiting up to {} for the iPhone to be connected",
                schedule::format_wait(wait)
            );
            announced = true;
        }
        // Wake on an attach event, or re-check every few seconds (usbmuxd may not be up yet).
        let step = left.min(Duration::from_secs(5));
        let step_end = tokio::time::Instant::now() + step;
        if let Ok((watcher, mut rx)) = DeviceWatcher::start(mux.clone()) {
            let _ = tokio::time::timeout_at(step_end, async {
                while let Some(ev) = rx.recv().await {
                    match ev {
                        DeviceEvent::Attached(_) => return,
                        // usbmuxd is not there (yet): wait out the step below.
                        DeviceEvent::Ended(_) => break,
                        DeviceEvent::Detached { .. } | DeviceEvent::Listening => {}
                    }
                }
                tokio::time::sleep_until(step_end).await;
            })
            .await;
            drop(watcher);
        } else {
            tokio::time::sleep_until(step_end).await;
        }
    }
}

/// `ferry sync --unattended`.
pub async fn unattended(mux: Mux, args: backup::SyncArgs) -> ExitCode {
    let state = ferry_config::dirs::state_dir();
    let finish = |code: u8, summary: String| -> ExitCode {
        if code == 0 {
            tracing::info!("{summary}");
        } else {
            tracing::warn!("{summary}");
        }
        if let Some(dir) = &state {
            if let Err(e) =
                schedule::record_last_run(dir, &schedule::LastRun::now(i32::from(code), &summary))
            {
                tracing::warn!("cannot record the last run: {e}");
            }
        }
        notify("Ferry", &summary);
        ExitCode::from(code)
    };
    let wait = match schedule::parse_wait(&args.wait) {
        Ok(w) => w,
        Err(e) => return finish(2, format!("bad --wait: {e}")),
    };
    let dest = match resolve_dest(args.dest.clone(), args.udid.as_deref()) {
        Ok(d) => d,
        Err(_) => {
            return finish(
                2,
                "backup not run: no backup folder (give --dest DIR or set destinations in the                  config file)"
                    .into(),
            )
        }
    };
    tracing::info!("unattended backup into {}", dest.display());
    // Never prompt: an uninitialised destination is an error (the drive may not be mounted).
    let archive = match backup::open_destination(&dest, args.init, true) {
        Ok(a) => a,
        Err(e) => {
            let code = backup::sync_code(&e);
            return finish(
                code,
                format!("backup not run: {} — {}", e.message(), e.hint()),
            );
        }
    };
    let dev = match wait_for_phone(&mux, args.udid.as_deref(), wait).await {
        Ok(d) => d,
        Err(e) => {
            let code = crate::exit::code(&e);
            return finish(code, format!("backup not run: {e} — {}", e.hint()));
        }
    };
    let allowed = load_config().map(|c| {
        c.config
            .phone_allows(&dev.udid, ferry_config::config::Trigger::Nightly)
    });
    if let Ok(false) = allowed {
        return finish(
            0,
            format!(
                "{} not backed up: its schedule in the config file excludes the nightly run",
                dev.udid
            ),
        );
    }
    let run = backup::run_sync(&mux, &dev, &archive, &args, backup::cancel_on_ctrl_c()).await;
    match &run {
        Ok(r) => {
            let code = backup::run_code(&r.report, r.error.as_ref());
            let lines = r.report.summary_lines();
            backup::print_report(&r.report, args.json, r.report_path.as_deref());
            finish(code, lines.join(" "))
        }
        Err(e) => {
            // Locked, not trusted, revoked: say exactly what to do, never prompt.
            let code = backup::sync_code(e);
            finish(
                code,
                format!("backup not run: {} — {}", e.message(), e.hint()),
            )
        }
    }
}

/// Arguments of `ferry fetch-plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct FetchPlanArgs {
    /// The phone's UDID (needed when several are connected).
    #[arg(long)]
    pub udid: Option<String>,
    /// The backup folder to store the plan in (default: from the config file).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Also write one line per asset to this CSV file.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Space to keep free on the phone, in bytes (default: 2 GB or 5 % of its capacity).
    #[arg(long, value_name = "BYTES")]
    pub margin: Option<u64>,
}

/// `ferry fetch-plan`.
pub async fn fetch_plan_cmd(mux: Mux, args: FetchPlanArgs) -> ExitCode {
    let dev = match crate::pick(&mux, args.udid.as_deref()).await {
        Ok(d) => d,
        Err(e) => return report_error(&SyncError::Device(e), args.json),
    };
    let dest = match args.dest.clone() {
        Some(d) => Some(d),
        None => load_config()
            .ok()
            .and_then(|c| c.config.destination_for(&dev.udid).map(Path::to_path_buf)),
    };
    let archive = match &dest {
        Some(d) => match Archive::open(d, ArchiveOptions::default()) {
            Ok(a) => Some(a),
            Err(e) => return report_error(&SyncError::Archive(e), args.json),
        },
        None => None,
    };
    let opts = SyncOptions {
        cache_dir: ferry_device::paths::cache_dir(),
        ..SyncOptions::default()
    };
    let survey = match ferry_sync::survey(&mux, &dev, archive.as_ref(), &opts).await {
        Ok(s) => s,
        Err(e) => return report_error(&e, args.json),
    };
    let items = fetchplan::items_from_plan(&survey.plan);
    let free = survey.scan.free_bytes.unwrap_or(0);
    let margin = args
        .margin
        .unwrap_or_else(|| fetchplan::margin_for(survey.scan.capacity_bytes));
    let plan = fetchplan::build(
        &dev.udid,
        survey.scan.name.clone(),
        ferry_photos::record::format_utc_millis(now_ms()),
        items.clone(),
        free,
        margin,
    );
    let mut stored = None;
    if let Some(a) = &archive {
        match serde_json::to_vec_pretty(&plan) {
            Ok(j) => match a.store_fetch_plan(&dev.udid, &j) {
                Ok(p) => stored = Some(p),
                Err(e) => return report_error(&SyncError::Archive(e), args.json),
            },
            Err(e) => eprintln!("warning: cannot encode the plan: {e}"),
        }
    }
    if let Some(csv) = &args.csv {
        if let Err(e) = std::fs::write(csv, fetchplan::to_csv(&plan, &items)) {
            eprintln!("error: cannot write {}: {e}", csv.display());
            return ExitCode::from(crate::exit::code(&ferry_device::Error::LocalIo {
                action: "write",
                path: csv.clone(),
                source: e,
            }));
        }
    }
    drop(archive);
    if args.json {
        render::json(&plan);
        return ExitCode::SUCCESS;
    }
    let h = render::bytes;
    if plan.assets == 0 {
        println!("Nothing to fetch: every original is on the iPhone.");
        return ExitCode::SUCCESS;
    }
    println!(
        "{} photos and videos ({} files, {}) have their originals only in iCloud.",
        plan.assets,
        plan.files,
        h(plan.bytes)
    );
    println!(
        "The iPhone has {} free; keeping {} free for iOS, each batch can be up to {}.",
        h(plan.free_bytes),
        h(plan.margin_bytes),
        h(plan.batch_limit_bytes)
    );
    if let Some(msg) = &plan.no_space {
        println!("{msg}");
    }
    for b in &plan.batches {
        println!();
        println!(
            "Batch {} of {}: {} items, {} ({} – {})",
            b.index,
            plan.batches.len(),
            b.count,
            h(b.bytes),
            b.from
                .as_deref()
                .map(|d| &d[..d.len().min(10)])
                .unwrap_or("undated"),
            b.to.as_deref()
                .map(|d| &d[..d.len().min(10)])
                .unwrap_or("undated")
        );
        println!("  {}", b.instruction);
    }
    if !plan.too_large.is_empty() {
        println!();
        println!(
            "{} item(s) are larger than the free space allows and need more room first:",
            plan.too_large.len()
        );
        for i in &plan.too_large {
            println!(
                "  {}  {}",
                ferry_device::printable(i.name.as_deref().unwrap_or(&i.uuid)),
                h(i.bytes)
            );
        }
    }
    match &stored {
        Some(p) => println!(
            "\nThe plan is stored in {}; `ferry sync` and `ferry watch` report progress against it.",
            p.display()
        ),
        None => println!("\n(Not stored: give --dest DIR to track progress against this plan.)"),
    }
    ExitCode::SUCCESS
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Arguments of `ferry watch`.
#[derive(Debug, Clone, clap::Args)]
pub struct WatchArgs {
    /// The backup folder (default: from the config file).
    #[arg(long, value_name = "DIR")]
    pub dest: Option<PathBuf>,
    /// Seconds between the cheap "did the library change?" checks while a phone is connected
    /// (default: `watch.interval_seconds` in the config, else 60).
    #[arg(long, value_name = "SECS")]
    pub interval: Option<u64>,
    /// Also back up phones that have no archive on DIR yet (by default only phones backed up
    /// there before are picked up, so plugging in a friend's phone copies nothing).
    #[arg(long)]
    pub any_phone: bool,
}

/// `ferry watch`: runs until stopped (Ctrl-C / SIGTERM).
pub async fn watch_cmd(mux: Mux, args: WatchArgs) -> ExitCode {
    let dest = match resolve_dest(args.dest.clone(), None) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let cfg = load_config().ok();
    let interval = Duration::from_secs(
        args.interval
            .or_else(|| cfg.as_ref().map(|c| c.config.watch.interval_seconds))
            .unwrap_or(60)
            .max(1),
    );
    // The destination must be a Ferry archive; watch never initialises one.
    if let Err(e) = ferry_archive::Marker::read(&dest) {
        return report_error(&SyncError::Archive(e), false);
    }
    let stop = CancellationToken::new();
    {
        let s = stop.clone();
        tokio::spawn(async move {
            let term = async {
                #[cfg(unix)]
                {
                    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    {
                        Ok(mut t) => {
                            t.recv().await;
                        }
                        Err(_) => std::future::pending::<()>().await,
                    }
                }
                #[cfg(not(unix))]
                std::future::pending::<()>().await
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
            s.cancel();
        });
    }
    tracing::info!(
        "watching for iPhones; backups go to {} (checks every {} s while connected)",
        dest.display(),
        interval.as_secs()
    );
    eprintln!(
        "Watching for iPhones (backups go to {}). Stop with Ctrl-C.",
        dest.display()
    );
    let mut phones: HashMap<u32, (String, CancellationToken, tokio::task::JoinHandle<()>)> =
        HashMap::new();
    while !stop.is_cancelled() {
        let (watcher, mut rx) = match DeviceWatcher::start(mux.clone()) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!("cannot start the device listener: {e}");
                return ExitCode::from(crate::exit::INTERNAL);
            }
        };
        loop {
            let ev = tokio::select! {
                ev = rx.recv() => ev,
                _ = stop.cancelled() => None,
            };
            match ev {
                Some(DeviceEvent::Attached(dev)) => {
                    if phones.values().any(|(u, _, _)| *u == dev.udid) {
                        continue;
                    }
                    let known = ferry_archive::reported_phones(&dest)
                        .iter()
                        .any(|u| u == &dev.udid)
                        || archive_knows(&dest, &dev.udid);
                    // Running `ferry watch` is the on-plug choice; only a phone whose own
                    // schedule excludes on-plug runs (manual, nightly) is left alone.
                    let allowed = cfg.as_ref().is_none_or(|c| {
                        c.config
                            .phones
                            .get(&dev.udid)
                            .and_then(|p| p.schedule)
                            .is_none_or(|s| s.allows(ferry_config::config::Trigger::OnPlug))
                    });
                    if !allowed {
                        tracing::info!(
                            udid = %dev.udid,
                            "iPhone connected; its schedule in the config file excludes backups on plug-in"
                        );
                        continue;
                    }
                    if !(known || args.any_phone) {
                        tracing::info!(
                            udid = %dev.udid,
                            "an iPhone without an archive on this destination was connected; \
                             not backing it up (run `ferry sync --dest {}` once, or use --any-phone)",
                            dest.display()
                        );
                        continue;
                    }
                    let token = stop.child_token();
                    let task = tokio::spawn(follow_phone(
                        mux.clone(),
                        dev.clone(),
                        dest.clone(),
                        interval,
                        token.clone(),
                    ));
                    phones.insert(dev.device_id, (dev.udid.clone(), token, task));
                }
                Some(DeviceEvent::Detached { device_id }) => {
                    if let Some((udid, token, task)) = phones.remove(&device_id) {
                        tracing::info!(%udid, "iPhone disconnected; waiting for it to come back");
                        token.cancel();
                        let _ = task.await;
                    }
                }
                Some(DeviceEvent::Ended(e)) => {
                    tracing::warn!(
                        "lost usbmuxd ({e}); listening again in {} s",
                        interval.as_secs().min(5)
                    );
                    break;
                }
                Some(DeviceEvent::Listening) => {}
                None => break,
            }
        }
        drop(watcher);
        for (_, (_, token, task)) in phones.drain() {
            token.cancel();
            let _ = task.await;
        }
        if !stop.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(interval.min(Duration::from_secs(5))) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
    eprintln!("Stopped watching.");
    ExitCode::SUCCESS
}

fn archive_knows(dest: &Path, udid: &str) -> bool {
    // Without taking the lock: a phone with any stored report or catalog row counts. Reports
    // are written after every run, so the report folder is the lock-free answer; a catalog
    // check would need the lock, which another run may hold.
    ferry_archive::read_latest_report(dest, udid).is_some()
}

/// One connected phone: sync now, then re-check cheaply every `interval` and sync when the
/// library changed (an original downloaded from iCloud, a new photo).
async fn follow_phone(
    mux: Mux,
    dev: UsbDevice,
    dest: PathBuf,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut last_fp: Option<ferry_device::DbFingerprint> = None;
    let mut need_sync = true;
    while !stop.is_cancelled() {
        if !need_sync {
            match ferry_device::db_fingerprint(&mux, &dev).await {
                Ok(fp) => need_sync = last_fp.as_ref() != Some(&fp),
                Err(e) => tracing::info!(udid = %dev.udid, "cannot check the library: {e}"),
            }
        }
        if need_sync {
            match sync_once(&mux, &dev, &dest, &stop).await {
                SyncOnce::Done(fp) => {
                    last_fp = fp;
                    need_sync = false;
                }
                SyncOnce::Busy => {
                    tracing::info!(
                        "another Ferry run is using {}; trying again in {} s",
                        dest.display(),
                        interval.as_secs()
                    );
                }
                SyncOnce::Failed => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.cancelled() => {}
        }
    }
}

enum SyncOnce {
    Done(Option<ferry_device::DbFingerprint>),
    Busy,
    Failed,
}

async fn sync_once(mux: &Mux, dev: &UsbDevice, dest: &Path, stop: &CancellationToken) -> SyncOnce {
    // Opening may wait briefly for the lock: keep it off the async workers.
    let d = dest.to_path_buf();
    let opened = tokio::task::spawn_blocking(move || Archive::open(&d, ArchiveOptions::default()))
        .await
        .unwrap_or_else(|_| {
            Err(ArchiveError::InvalidInput {
                what: "archive",
                detail: "opening the archive failed (internal task error)".into(),
            })
        });
    let archive = match opened {
        Ok(a) => a,
        Err(ArchiveError::Busy { .. }) => return SyncOnce::Busy,
        Err(e) => {
            tracing::warn!("cannot open {}: {e}", dest.display());
            return SyncOnce::Failed;
        }
    };
    // The fingerprint before the sync: a change during the sync triggers the next one.
    let fp = tokio::select! {
        r = ferry_device::db_fingerprint(mux, dev) => r.ok(),
        _ = stop.cancelled() => return SyncOnce::Failed,
    };
    let include_hidden = load_config()
        .map(|c| c.config.include_hidden_for(&dev.udid))
        .unwrap_or(true);
    let opts = SyncOptions {
        cache_dir: ferry_device::paths::cache_dir(),
        cancel: stop.child_token(),
        plan: ferry_sync::PlanOptions { include_hidden },
        ..SyncOptions::default()
    };
    let sink: ferry_sync::ProgressSink = std::sync::Arc::new(|ev| {
        if let ferry_sync::Event::FileFailed { name, message, .. } = ev {
            tracing::warn!("could not copy {name}: {message}");
        }
    });
    tracing::info!(udid = %dev.udid, "backing up");
    match ferry_sync::sync(mux, dev, &archive, &opts, sink).await {
        Ok(run) => {
            let r = &run.report;
            let line = format!(
                "{}: copied {} file(s) ({}), {} already in the backup, {} only in iCloud{}",
                ferry_device::printable(r.phone_name.as_deref().unwrap_or("iPhone")),
                r.files.copied,
                render::bytes(r.files.copied_bytes),
                r.files.already_archived + r.files.skipped,
                r.icloud_only_summary.files,
                r.fetch_progress
                    .as_ref()
                    .map(|p| format!("; fetch plan {}", p.line()))
                    .unwrap_or_default()
            );
            tracing::info!("{line}");
            if std::io::stderr().is_terminal() {
                eprintln!("{line}");
            }
            if let Some(e) = &run.error {
                tracing::warn!("the run stopped: {} — {}", e.message(), e.hint());
                return SyncOnce::Failed;
            }
            SyncOnce::Done(fp)
        }
        Err(SyncError::Archive(ArchiveError::Busy { .. })) => SyncOnce::Busy,
        Err(e) => {
            tracing::warn!(udid = %dev.udid, "backup not run: {} — {}", e.message(), e.hint());
            SyncOnce::Failed
        }
    }
}

/// `ferry config`.
pub fn config_cmd(json: bool) -> ExitCode {
    match load_config() {
        Ok(l) => {
            if json {
                render::json(&serde_json::json!({
                    "format": 1,
                    "path": l.path.display().to_string(),
                    "exists": l.existed,
                    "config": l.config,
                    "warnings": l.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                }));
            } else {
                print!("{}", l.effective());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(CONFIG_ERROR)
        }
    }
}

/// `ferry schedule …`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ScheduleAction {
    /// Write and enable the nightly run (and, with --on-plug, a `ferry watch` service).
    Install {
        /// The backup folder (absolute).
        #[arg(long, value_name = "DIR")]
        dest: PathBuf,
        /// Local time of the nightly run, 24-hour HH:MM.
        #[arg(long, value_name = "HH:MM")]
        at: String,
        /// Also back up whenever the phone is plugged in (runs `ferry watch`).
        #[arg(long)]
        on_plug: bool,
        /// How long the nightly run waits for the phone.
        #[arg(long, default_value = "30m", value_name = "DURATION")]
        wait: String,
    },
    /// Disable and delete what `install` wrote (only files Ferry wrote and nobody edited).
    Remove,
    /// Show whether the schedule is installed, the next run and the last result.
    Status,
}

/// `ferry schedule`.
pub fn schedule_cmd(action: ScheduleAction) -> ExitCode {
    let platform = match Platform::current() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let ctl = RealSystemCtl;
    let result = match action {
        ScheduleAction::Install {
            dest,
            at,
            on_plug,
            wait,
        } => {
            let at: TimeOfDay = match at.parse() {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: --at {at:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            let wait = match schedule::parse_wait(&wait) {
                Ok(w) => w,
                Err(e) => {
                    eprintln!("error: --wait: {e}");
                    return ExitCode::from(2);
                }
            };
            let dest = if dest.is_absolute() {
                dest
            } else {
                match std::env::current_dir() {
                    Ok(c) => c.join(dest),
                    Err(e) => {
                        eprintln!("error: cannot resolve {}: {e}", dest.display());
                        return ExitCode::from(2);
                    }
                }
            };
            let ferry_bin = match std::env::current_exe() {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("error: cannot find the ferry binary: {e}");
                    return ExitCode::from(crate::exit::INTERNAL);
                }
            };
            schedule::install(
                &InstallRequest {
                    ferry_bin,
                    dest,
                    at,
                    on_plug,
                    wait,
                },
                &platform,
                &ctl,
            )
            .map(|r| r.to_string())
        }
        ScheduleAction::Remove => schedule::remove(&platform, &ctl).map(|r| r.to_string()),
        ScheduleAction::Status => schedule::status(&platform, &ctl).map(|r| r.to_string()),
    };
    match result {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e @ schedule::ScheduleError::NotActivated { .. }) => {
            eprintln!("warning: {e}");
            ExitCode::from(SCHEDULE_NOT_ACTIVE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_rotate_and_keep_a_bounded_number() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join(LOG_FILE);
        for round in 0..8u8 {
            std::fs::write(&log, vec![round; 20]).unwrap();
            rotate_logs(d.path(), 10, 3).unwrap();
        }
        assert!(!log.exists());
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["ferry.log.1", "ferry.log.2", "ferry.log.3"]);
        assert_eq!(
            std::fs::read(d.path().join("ferry.log.1")).unwrap(),
            vec![7u8; 20]
        );
        assert_eq!(
            std::fs::read(d.path().join("ferry.log.3")).unwrap(),
            vec![5u8; 20]
        );
        // Small logs stay.
        std::fs::write(&log, b"x").unwrap();
        rotate_logs(d.path(), 10, 3).unwrap();
        assert!(log.exists());
    }

    #[test]
    fn notification_commands() {
        let (p, a) = notification_command(Os::Linux, "Ferry", "3 copied");
        assert_eq!(p, "notify-send");
        assert_eq!(a, vec!["--app-name=Ferry", "Ferry", "3 copied"]);
        let (p, a) = notification_command(Os::MacOs, "Ferry", "say \"hi\" \\o/");
        assert_eq!(p, "osascript");
        assert_eq!(
            a[1],
            "display notification \"say \\\"hi\\\" \\\\o/\" with title \"Ferry\""
        );
    }
}
