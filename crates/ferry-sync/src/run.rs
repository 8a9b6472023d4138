//! The run: scan → plan → copy with bounded parallelism over several AFC connections →
//! reconcile → store the report.
//!
//! Each copy task owns one lockdown session and one AFC connection, takes the next file from
//! a shared queue (the plan's order: only-here originals first), re-checks the file's size
//! with `stat` (a file whose size changed since the plan is re-planned), and streams it into
//! the archive's audited write path. A problem with one file (vanished, unreadable, too large
//! for FAT32) is recorded and the run goes on; a problem with the phone link (unplugged, no
//! answer) or the destination (full, read-only) stops every task: files in flight are
//! discarded (their temp files removed), nothing under a final name is partial, and the next
//! run continues where this one stopped because the catalog is written after each file.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use ferry_archive::{Archive, Durability, FileState, PendingFile, PhoneArchive, WriteOutcome};
use ferry_device::{AfcSession, ClassifiedAsset, ErrorKind, Mux, ScanOptions, Session, UsbDevice};
use ferry_photos::record::format_utc_millis;
use tokio_util::sync::CancellationToken;

use crate::error::SyncError;
use crate::event::{eta, Event, Phase, Progress, ProgressSink, RateMeter};
use crate::plan::{self, Plan, PlanOptions};
use crate::report::{
    only_here_message, AssetRef, Failure, FileTotals, IcloudSummary, OnlyHere, Outcome,
    Reconciliation, StopInfo, SyncReport, REPORT_FORMAT,
};

/// How to run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Parallel AFC connections (default 2; 1–8).
    pub jobs: usize,
    /// Plan and report, copy nothing.
    pub dry_run: bool,
    /// Where the database snapshot cache lives (no-change detection); `None` disables it.
    pub cache_dir: Option<PathBuf>,
    /// Plan options.
    pub plan: PlanOptions,
    /// Cancel the run (Ctrl-C, the GUI's Cancel).
    pub cancel: CancellationToken,
    /// Store the report in the archive (default true).
    pub store_report: bool,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            jobs: 2,
            dry_run: false,
            cache_dir: None,
            plan: PlanOptions::default(),
            cancel: CancellationToken::new(),
            store_report: true,
        }
    }
}

/// The result of a run that got as far as planning: a report (also when the run stopped
/// early — then [`SyncReport::stopped`] says why and `error` holds the cause).
#[derive(Debug)]
pub struct SyncRun {
    /// The report.
    pub report: SyncReport,
    /// What stopped the run early, if anything.
    pub error: Option<SyncError>,
    /// Where the report was stored.
    pub report_path: Option<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Backs up `dev` into `archive`. Errors before the plan exists (no phone, not trusted,
/// unreadable library, destination problems at the start) are returned as `Err`; once copying
/// starts, every ending produces a [`SyncRun`] with a stored report.
pub async fn sync(
    mux: &Mux,
    dev: &UsbDevice,
    archive: &Archive,
    opts: &SyncOptions,
    sink: ProgressSink,
) -> Result<SyncRun, SyncError> {
    let started_ms = now_ms();
    let started = Instant::now();
    sink(Event::Phase {
        phase: Phase::Connecting,
    });
    sink(Event::Phase {
        phase: Phase::ReadingLibrary,
    });
    let scan_opts = ScanOptions {
        keep_assets: true,
        cache_dir: opts.cache_dir.clone(),
        ..ScanOptions::default()
    };
    let scan = tokio::select! {
        r = ferry_device::scan(mux, dev, &scan_opts) => r?,
        _ = opts.cancel.cancelled() => return Err(SyncError::Cancelled),
    };
    let phone = archive.phone(&dev.udid, &phone_name(&scan))?;
    sink(Event::Phase {
        phase: Phase::Planning,
    });
    let plan = plan::build(&scan.classified, opts.plan, |u, r| phone.lookup(u, r))?;
    let newly_deleted = if opts.dry_run {
        0
    } else {
        mark_deleted(&phone, &scan.classified)?
    };
    sink(Event::Planned(plan.summary()));

    let (results, stop) = if opts.dry_run || plan.items.is_empty() {
        (vec![None; plan.items.len()], None)
    } else {
        sink(Event::Phase {
            phase: Phase::Copying,
        });
        copy_all(mux, dev, &phone, &plan, opts, sink.clone()).await
    };
    sink(Event::Phase {
        phase: Phase::Finishing,
    });
    let mut report = build_report(ReportInput {
        archive,
        phone: &phone,
        scan: &scan,
        plan: &plan,
        results: &results,
        stop: stop.as_ref(),
        dry_run: opts.dry_run,
        started_ms,
        elapsed: started.elapsed(),
        newly_deleted,
    });
    if let Some(fp) = ferry_archive::read_fetch_plan(archive.root(), &dev.udid)
        .and_then(|b| serde_json::from_slice::<crate::fetchplan::FetchPlan>(&b).ok())
    {
        let still: std::collections::HashSet<String> =
            report.icloud_only.iter().map(|a| a.uuid.clone()).collect();
        report.fetch_progress = Some(crate::fetchplan::progress(&fp, &still));
    }
    if !report.reconciliation.balanced() {
        // By construction this cannot happen; if it does, say so loudly in the log and the
        // report rather than hide it.
        tracing::error!(reconciliation = ?report.reconciliation, "the reconciliation does not add up");
    }
    let mut report_path = None;
    if opts.store_report && !opts.dry_run {
        match serde_json::to_vec_pretty(&report) {
            Ok(json) => match archive.store_report(&dev.udid, &json) {
                Ok(p) => report_path = Some(p),
                Err(e) => tracing::warn!(error = %e, "could not store the run report"),
            },
            Err(e) => tracing::warn!(error = %e, "could not encode the run report"),
        }
    }
    Ok(SyncRun {
        report,
        error: stop,
        report_path,
    })
}

/// A scan and its plan, without copying: what `ferry fetch-plan` and the app's summary need.
#[derive(Debug)]
pub struct Survey {
    /// The scan (with every classified asset).
    pub scan: ferry_device::ScanReport,
    /// The plan against `archive` (everything counts as new without one).
    pub plan: Plan,
}

/// Scans the phone and plans against `archive` (if any) without copying anything.
pub async fn survey(
    mux: &Mux,
    dev: &UsbDevice,
    archive: Option<&Archive>,
    opts: &SyncOptions,
) -> Result<Survey, SyncError> {
    let scan_opts = ScanOptions {
        keep_assets: true,
        cache_dir: opts.cache_dir.clone(),
        ..ScanOptions::default()
    };
    let scan = tokio::select! {
        r = ferry_device::scan(mux, dev, &scan_opts) => r?,
        _ = opts.cancel.cancelled() => return Err(SyncError::Cancelled),
    };
    let plan = match archive {
        Some(a) => {
            let phone = a.phone(&dev.udid, &phone_name(&scan))?;
            plan::build(&scan.classified, opts.plan, |u, r| phone.lookup(u, r))?
        }
        None => plan::build::<SyncError>(&scan.classified, opts.plan, |_, _| Ok(None))?,
    };
    Ok(Survey { scan, plan })
}

/// The name the archive records for the phone: its own, or "iPhone" when it has none (or a
/// blank one). `sync` and `survey` must agree, or each call would rename the phone.
fn phone_name(scan: &ferry_device::ScanReport) -> String {
    scan.name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "iPhone".to_string())
}

/// Marks archived assets that are no longer in the phone's library. Nothing is removed.
fn mark_deleted(phone: &PhoneArchive, assets: &[ClassifiedAsset]) -> Result<u64, SyncError> {
    let on_phone: HashSet<&str> = assets.iter().map(|a| a.record.uuid.as_str()).collect();
    let mut gone: Vec<String> = phone
        .entries()?
        .into_iter()
        .filter(|e| e.deleted_on_phone_ms.is_none() && e.state == FileState::Archived)
        .filter(|e| !on_phone.contains(e.uuid.as_str()))
        .map(|e| e.uuid)
        .collect();
    gone.sort();
    gone.dedup();
    let mut n = 0;
    for uuid in gone {
        if phone.mark_deleted_on_phone(&uuid)? {
            n += 1;
        }
    }
    Ok(n)
}

/// How one planned file ended.
#[derive(Debug, Clone)]
enum ItemResult {
    Copied {
        size: u64,
        new_version: bool,
        durability: Durability,
    },
    Skipped,
    Failed {
        reason: String,
        message: String,
    },
}

struct ProgressState {
    bytes_processed: u64,
    bytes_moved: u64,
    inflight: Vec<u64>,
    current: Vec<Option<String>>,
    files_done: u64,
    meter: RateMeter,
    last_emit: Option<Instant>,
}

struct Shared {
    plan_items: Vec<plan::PlanItem>,
    files_total: u64,
    bytes_total: u64,
    queue: Mutex<VecDeque<usize>>,
    results: Mutex<Vec<Option<ItemResult>>>,
    stop: Mutex<Option<SyncError>>,
    halt: CancellationToken,
    user_cancel: CancellationToken,
    progress: Mutex<ProgressState>,
    sink: ProgressSink,
    phone: PhoneArchive,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const EMIT_EVERY: Duration = Duration::from_millis(100);

impl Shared {
    fn stop_with(&self, e: SyncError) {
        let mut s = lock(&self.stop);
        if s.is_none() {
            *s = Some(e);
        }
        drop(s);
        self.halt.cancel();
    }

    fn snapshot(&self, p: &ProgressState) -> Progress {
        let inflight: u64 = p.inflight.iter().sum();
        let done = p.bytes_processed + inflight;
        let rate = p.meter.rate();
        Progress {
            files_done: p.files_done,
            files_total: self.files_total,
            bytes_done: done,
            bytes_total: self.bytes_total,
            rate_bps: rate,
            eta_secs: eta(self.bytes_total.saturating_sub(done), rate),
            current: p.current.iter().flatten().next().cloned(),
        }
    }

    fn on_start(&self, slot: usize, name: &str) {
        let mut p = lock(&self.progress);
        if let Some(c) = p.current.get_mut(slot) {
            *c = Some(name.to_string());
        }
    }

    fn on_bytes(&self, slot: usize, n: u64) {
        let mut p = lock(&self.progress);
        if let Some(x) = p.inflight.get_mut(slot) {
            *x = n;
        }
        let now = Instant::now();
        let moved = p.bytes_moved + p.inflight.iter().sum::<u64>();
        p.meter.record(now, moved);
        if p.last_emit
            .is_none_or(|t| now.duration_since(t) >= EMIT_EVERY)
        {
            p.last_emit = Some(now);
            let snap = self.snapshot(&p);
            drop(p);
            (self.sink)(Event::Progress(snap));
        }
    }

    fn on_end(&self, slot: usize, planned: u64, moved: u64) {
        let mut p = lock(&self.progress);
        if let Some(x) = p.inflight.get_mut(slot) {
            *x = 0;
        }
        if let Some(c) = p.current.get_mut(slot) {
            *c = None;
        }
        p.bytes_processed += planned;
        p.bytes_moved += moved;
        p.files_done += 1;
        let now = Instant::now();
        let total = p.bytes_moved;
        p.meter.record(now, total);
        p.last_emit = Some(now);
        let snap = self.snapshot(&p);
        drop(p);
        (self.sink)(Event::Progress(snap));
    }
}

async fn copy_all(
    mux: &Mux,
    dev: &UsbDevice,
    phone: &PhoneArchive,
    plan: &Plan,
    opts: &SyncOptions,
    sink: ProgressSink,
) -> (Vec<Option<ItemResult>>, Option<SyncError>) {
    let jobs = opts.jobs.clamp(1, 8).min(plan.items.len().max(1));
    let shared = Arc::new(Shared {
        plan_items: plan.items.clone(),
        files_total: plan.items.len() as u64,
        bytes_total: plan.items.iter().map(|i| i.spec.size).sum(),
        queue: Mutex::new((0..plan.items.len()).collect()),
        results: Mutex::new(vec![None; plan.items.len()]),
        stop: Mutex::new(None),
        halt: opts.cancel.child_token(),
        user_cancel: opts.cancel.clone(),
        progress: Mutex::new(ProgressState {
            bytes_processed: 0,
            bytes_moved: 0,
            inflight: vec![0; jobs],
            current: vec![None; jobs],
            files_done: 0,
            meter: RateMeter::new(Duration::from_secs(5)),
            last_emit: None,
        }),
        sink,
        phone: phone.clone(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for slot in 0..jobs {
        let (shared, mux, dev) = (shared.clone(), mux.clone(), dev.clone());
        tasks.spawn(async move { worker(shared, mux, dev, slot).await });
    }
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            shared.stop_with(SyncError::Internal {
                during: "copying".into(),
                detail: if e.is_panic() {
                    "a copy task failed (panic)".into()
                } else {
                    "a copy task was cancelled".into()
                },
            });
        }
    }
    if shared.user_cancel.is_cancelled() {
        let mut s = lock(&shared.stop);
        if s.is_none() {
            *s = Some(SyncError::Cancelled);
        }
    }
    let results = lock(&shared.results).clone();
    let stop = lock(&shared.stop).take();
    (results, stop)
}

async fn open_afc(mux: &Mux, dev: &UsbDevice) -> Result<(Session, AfcSession), SyncError> {
    let mut session = Session::open(mux, dev).await?;
    let afc = session.afc().await?;
    Ok((session, afc))
}

/// Ends a copy: the stop reason, if the run was halted by someone else or the user.
fn halted(shared: &Shared) -> SyncError {
    if shared.user_cancel.is_cancelled() {
        SyncError::Cancelled
    } else {
        SyncError::Internal {
            during: "copying".into(),
            detail: "stopped because another copy task failed".into(),
        }
    }
}

async fn worker(shared: Arc<Shared>, mux: Mux, dev: UsbDevice, slot: usize) {
    let mut conn: Option<(Session, AfcSession)> = None;
    loop {
        if shared.halt.is_cancelled() {
            break;
        }
        let Some(i) = lock(&shared.queue).pop_front() else {
            break;
        };
        if conn.as_ref().is_none_or(|(_, a)| a.is_poisoned()) {
            // Drop a broken connection before opening a new one.
            drop(conn.take());
            let opened = tokio::select! {
                r = open_afc(&mux, &dev) => r,
                _ = shared.halt.cancelled() => Err(halted(&shared)),
            };
            match opened {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    lock(&shared.queue).push_front(i);
                    shared.stop_with(e);
                    break;
                }
            }
        }
        let Some((_, afc)) = conn.as_mut() else {
            break;
        };
        match copy_one(&shared, afc, i, slot).await {
            Ok(r) => {
                lock(&shared.results)[i] = Some(r);
            }
            Err(e) => {
                // The item stays without a result: it is counted with the stop's reason.
                shared.stop_with(e);
                break;
            }
        }
    }
}

/// Adapts the archive's synchronous [`PendingFile`] to AFC's async reader. Writes go to the
/// OS page cache (fast); the fsync happens in [`PendingFile::finish`] on a blocking thread.
struct ArchiveWriter {
    pending: Option<PendingFile>,
    err: Option<ferry_archive::Error>,
}

impl tokio::io::AsyncWrite for ArchiveWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let Some(p) = this.pending.as_mut() else {
            return Poll::Ready(Err(std::io::Error::other(
                "write after the file was closed",
            )));
        };
        match p.write_chunk(buf) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(e) => {
                let msg = e.to_string();
                this.err = Some(e);
                Poll::Ready(Err(std::io::Error::other(msg)))
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn archive_reason(e: &ferry_archive::Error) -> &'static str {
    match e {
        ferry_archive::Error::TooLargeForFilesystem { .. } => "too_large_for_filesystem",
        ferry_archive::Error::SizeMismatch { .. } => "size_changed_during_copy",
        ferry_archive::Error::InvalidInput { .. } => "invalid_data",
        ferry_archive::Error::UnsafePath { .. } => "unsafe_path",
        _ => "destination",
    }
}

fn afc_abs(rel: &str) -> String {
    format!("/{}", rel.trim_start_matches('/'))
}

/// What a device error means for the run: a problem with one file (go on; a symbolic link
/// that cannot be followed is one) or with the connection to the phone (stop).
fn device_outcome(e: ferry_device::Error) -> Result<ItemResult, SyncError> {
    let (reason, message) = match (&e, e.kind()) {
        // What to do about a link belongs with it: the report lists it on its own.
        (ferry_device::Error::PhoneLink { .. }, _) => {
            ("unreadable_symlink", format!("{e}; {}", e.hint()))
        }
        (_, ErrorKind::PhoneFile | ErrorKind::Internal) => ("phone_read_error", e.to_string()),
        _ => return Err(SyncError::Device(e)),
    };
    Ok(ItemResult::Failed {
        reason: reason.into(),
        message,
    })
}

/// Copies plan item `i`. `Ok` for every per-file ending; `Err` stops the run.
async fn copy_one(
    shared: &Shared,
    afc: &mut AfcSession,
    i: usize,
    slot: usize,
) -> Result<ItemResult, SyncError> {
    let item = &shared.plan_items[i];
    let mut spec = item.spec.clone();
    let path = afc_abs(&spec.afc_path);
    let planned = spec.size;
    let done = |moved: u64| shared.on_end(slot, planned, moved);
    let sink = &shared.sink;
    for attempt in 0..2 {
        // A symbolic link is followed to its file inside Media, whose size and bytes are the
        // original's (the phone reports a link's own size; docs/sync.md "Symbolic links").
        let st = tokio::select! {
            r = afc.stat_following(&path) => r,
            _ = shared.halt.cancelled() => return Err(halted(shared)),
        };
        let (size, source) = match st {
            Ok(Some(r)) => (r.stat.size.unwrap_or(0), r.path),
            Ok(None) => {
                done(0);
                let r = ItemResult::Failed {
                    reason: "gone_from_phone".into(),
                    message: format!(
                        "{path} is no longer on the iPhone (deleted, or optimised to iCloud since \
                         the library was read)"
                    ),
                };
                report_failure(sink, &path, &r);
                return Ok(r);
            }
            Err(e) => {
                let r = device_outcome(e);
                done(0);
                if let Ok(r) = &r {
                    report_failure(sink, &path, r);
                }
                return r;
            }
        };
        if size != spec.size {
            // Re-plan: the phone rewrote the file since the library was read.
            tracing::info!(%path, planned = spec.size, now = size, "size changed since the plan");
            spec.size = size;
            if let Some(e) = shared.phone.lookup(&spec.asset_uuid, spec.role)? {
                if e.state == FileState::Archived && e.size == size {
                    done(0);
                    sink(Event::FileSkipped { name: path.clone() });
                    return Ok(ItemResult::Skipped);
                }
            }
        }
        sink(Event::FileStarted {
            name: path.clone(),
            size,
        });
        shared.on_start(slot, &path);
        let pending = match shared.phone.begin(spec.clone()) {
            Ok(p) => p,
            Err(e) => {
                done(0);
                return archive_error(e, sink, &path);
            }
        };
        let mut w = ArchiveWriter {
            pending: Some(pending),
            err: None,
        };
        let read = tokio::select! {
            r = afc.read_to(&source, &mut w, |n| shared.on_bytes(slot, n)) => r,
            _ = shared.halt.cancelled() => {
                done(0);
                return Err(halted(shared));
            }
        };
        let finished = match read {
            Ok(_) => match w.pending.take() {
                Some(p) => match tokio::task::spawn_blocking(move || p.finish()).await {
                    Ok(r) => r,
                    Err(_) => {
                        done(0);
                        return Err(SyncError::Internal {
                            during: format!("finishing {path}"),
                            detail: "the write task failed".into(),
                        });
                    }
                },
                None => Err(ferry_archive::Error::InvalidInput {
                    what: "write state",
                    detail: "the file was closed early".into(),
                }),
            },
            Err(e) => match w.err.take() {
                Some(ae) => Err(ae),
                None => {
                    let r = device_outcome(e);
                    done(0);
                    if let Ok(r) = &r {
                        report_failure(sink, &path, r);
                    }
                    return r;
                }
            },
        };
        drop(w);
        match finished {
            Ok(a) => {
                done(a.size);
                sink(Event::FileDone {
                    rel_path: a.rel_path.clone(),
                    size: a.size,
                });
                return Ok(match a.outcome {
                    WriteOutcome::AlreadyArchived => ItemResult::Skipped,
                    o => ItemResult::Copied {
                        size: a.size,
                        new_version: o == WriteOutcome::NewVersion,
                        durability: a.durability,
                    },
                });
            }
            Err(ferry_archive::Error::SizeMismatch { .. }) if attempt == 0 => {
                // The file changed while it was read: look again and copy it once more.
                shared.on_bytes(slot, 0);
                continue;
            }
            Err(e) => {
                done(0);
                return archive_error(e, sink, &path);
            }
        }
    }
    done(0);
    let r = ItemResult::Failed {
        reason: "size_changed_during_copy".into(),
        message: format!("{path} kept changing while it was copied; it is tried again next run"),
    };
    report_failure(sink, &path, &r);
    Ok(r)
}

/// A per-file archive error (too large for FAT32, …) becomes that file's failure; any other
/// (disk full, read-only, …) stops the run.
fn archive_error(
    e: ferry_archive::Error,
    sink: &ProgressSink,
    path: &str,
) -> Result<ItemResult, SyncError> {
    if e.scope() == ferry_archive::ErrorScope::File {
        let r = ItemResult::Failed {
            reason: archive_reason(&e).into(),
            message: e.to_string(),
        };
        report_failure(sink, path, &r);
        Ok(r)
    } else {
        Err(e.into())
    }
}

fn report_failure(sink: &ProgressSink, path: &str, r: &ItemResult) {
    if let ItemResult::Failed { reason, message } = r {
        sink(Event::FileFailed {
            name: path.to_string(),
            reason: reason.clone(),
            message: message.clone(),
        });
    }
}

struct ReportInput<'a> {
    archive: &'a Archive,
    phone: &'a PhoneArchive,
    scan: &'a ferry_device::ScanReport,
    plan: &'a Plan,
    results: &'a [Option<ItemResult>],
    stop: Option<&'a SyncError>,
    dry_run: bool,
    started_ms: i64,
    elapsed: Duration,
    newly_deleted: u64,
}

fn build_report(inp: ReportInput<'_>) -> SyncReport {
    let ReportInput {
        archive,
        phone,
        scan,
        plan,
        results,
        stop,
        dry_run,
        started_ms,
        elapsed,
        newly_deleted,
    } = inp;
    let stop_kind = stop.map(|e| e.stop_kind().to_string());
    // Per asset: (any copied new, first failure reason).
    let mut per_asset: Vec<(bool, Option<String>)> = vec![(false, None); plan.assets.len()];
    let mut files = FileTotals {
        planned: plan.items.len() as u64,
        planned_bytes: plan.items.iter().map(|i| i.spec.size).sum(),
        already_archived: plan.already_archived_files,
        ..FileTotals::default()
    };
    let mut failures = Vec::new();
    let mut only_here_copied = 0;
    let mut without_fsync = 0;
    for (item, res) in plan.items.iter().zip(results) {
        let slot = &mut per_asset[item.asset];
        let failed = |reason: String, message: String| Failure {
            uuid: item.spec.asset_uuid.clone(),
            name: item.spec.original_filename.clone(),
            role: item.spec.role.as_str().to_string(),
            afc_path: item.spec.afc_path.clone(),
            reason,
            message,
        };
        match res {
            Some(ItemResult::Copied {
                size,
                new_version,
                durability,
                ..
            }) => {
                files.copied += 1;
                files.copied_bytes += size;
                files.new_versions += u64::from(*new_version);
                only_here_copied += u64::from(item.only_here);
                without_fsync += u64::from(*durability == Durability::Unsupported);
                slot.0 = true;
            }
            Some(ItemResult::Skipped) => files.skipped += 1,
            Some(ItemResult::Failed { reason, message }) => {
                files.failed += 1;
                slot.1.get_or_insert_with(|| reason.clone());
                failures.push(failed(reason.clone(), message.clone()));
            }
            None if dry_run => {}
            None => {
                files.failed += 1;
                let reason = stop_kind.clone().unwrap_or_else(|| "not_attempted".into());
                slot.1.get_or_insert_with(|| reason.clone());
                failures.push(failed(
                    reason,
                    "not copied: the run stopped before this file (it is copied next run)".into(),
                ));
            }
        }
    }
    let mut rec = Reconciliation {
        assets: scan.assets,
        ..Reconciliation::default()
    };
    let mut icloud = Vec::new();
    let mut unavailable = Vec::new();
    let mut ic_sum = IcloudSummary::default();
    let (mut only_assets, mut only_safe) = (0u64, 0u64);
    for (a, (copied_new, failure)) in plan.assets.iter().zip(&per_asset) {
        let aref = |files: u32, bytes: u64, original_local: bool| AssetRef {
            uuid: a.uuid.clone(),
            name: a.name.clone(),
            created_utc: a.created_utc.clone(),
            files,
            bytes,
            original_local,
        };
        if let Some(ex) = &a.exclusion {
            *rec.excluded.entry(ex.clone()).or_default() += 1;
            continue;
        }
        if a.only_here {
            only_assets += 1;
            if failure.is_none() && (!dry_run || a.to_copy == 0) {
                only_safe += 1;
            }
        }
        if a.icloud_files > 0 {
            ic_sum.files += u64::from(a.icloud_files);
            ic_sum.bytes += a.icloud_bytes;
            let whole = a.classification == "icloud_only";
            if whole {
                ic_sum.assets += 1;
                if let Some(c) = &a.created_utc {
                    if ic_sum.oldest.as_ref().is_none_or(|o| c < o) {
                        ic_sum.oldest = Some(c.clone());
                    }
                    if ic_sum.newest.as_ref().is_none_or(|n| c > n) {
                        ic_sum.newest = Some(c.clone());
                    }
                }
            }
            icloud.push(aref(a.icloud_files, a.icloud_bytes, !whole));
        }
        match a.classification {
            "icloud_only" => rec.icloud_only += 1,
            "unavailable" => {
                rec.unavailable += 1;
                unavailable.push(aref(0, 0, false));
            }
            "retry_later" => rec.retry_later += 1,
            _ => {
                if let Some(reason) = failure {
                    *rec.failed.entry(reason.clone()).or_default() += 1;
                } else if dry_run && a.to_copy > 0 {
                    rec.would_copy += 1;
                } else if *copied_new {
                    rec.archived_new += 1;
                } else {
                    rec.archived_earlier += 1;
                }
            }
        }
    }
    icloud.sort_by(|a, b| (&a.created_utc, &a.uuid).cmp(&(&b.created_utc, &b.uuid)));
    let outcome = if dry_run {
        Outcome::DryRun
    } else if stop.is_some() {
        Outcome::Stopped
    } else if files.failed > 0 {
        Outcome::Incomplete
    } else {
        Outcome::Complete
    };
    let stopped = stop.map(|e| {
        let (message, need) = match e {
            SyncError::Archive(ferry_archive::Error::DiskFull {
                need,
                available,
                path,
            }) => {
                // The rest of the plan, not just the file that did not fit.
                let left: u64 = plan
                    .items
                    .iter()
                    .zip(results)
                    .filter(|(_, r)| r.is_none())
                    .map(|(i, _)| i.spec.size)
                    .sum();
                let n = (*need).max(left);
                let h = ferry_archive::human_bytes;
                (
                    format!(
                        "the destination is full: {} more is needed to finish ({} free when \
                         writing {} failed)",
                        h(n),
                        h(*available),
                        path.display()
                    ),
                    Some(n),
                )
            }
            e => (e.message(), None),
        };
        StopInfo {
            kind: e.stop_kind().to_string(),
            message,
            hint: e.hint(),
            need_bytes: need,
        }
    });
    SyncReport {
        format: REPORT_FORMAT,
        ferry_version: env!("CARGO_PKG_VERSION").to_string(),
        udid: phone.udid().to_string(),
        phone_name: scan.name.clone(),
        ios_version: scan.ios_version.clone(),
        destination: archive.root().display().to_string(),
        phone_folder: phone.folder().to_string(),
        started_at: format_utc_millis(started_ms),
        finished_at: format_utc_millis(now_ms()),
        duration_secs: elapsed.as_secs_f64(),
        outcome,
        stopped,
        snapshot_reused: scan.snapshot.reused,
        snapshot_bytes: scan.snapshot.copied_bytes,
        reconciliation: rec,
        files,
        only_on_this_phone: OnlyHere {
            assets: only_assets,
            safe_assets: only_safe,
            copied_files: only_here_copied,
            message: only_here_message(only_assets, only_safe, dry_run),
        },
        icloud_only_summary: ic_sum,
        icloud_only: icloud,
        unavailable,
        failures,
        newly_deleted_on_phone: newly_deleted,
        phone_free_bytes: scan.free_bytes,
        files_without_fsync: without_fsync,
        fetch_progress: None,
    }
}
