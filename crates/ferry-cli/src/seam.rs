//! Test seam for the crash trials (`crates/ferry-cli/tests/torture.rs`, docs/testing.md).
//!
//! `FERRY_TEST_PAUSE_AT=POINT[:N]` makes `ferry` stop at the N-th (default 1st) time it
//! reaches POINT: it prints `FERRY_TEST_PAUSED POINT N` on stderr and then blocks every thread
//! that reaches a seam point, waiting to be `SIGKILL`ed. The trials wait for that line (no
//! sleeps) and kill, so a kill lands at a named moment of the run instead of wherever a timer
//! happens to fall. POINT is one of
//!
//! - the archive's write-path steps (`ferry_archive::testing::Step`): `temp_created`,
//!   `chunk_written`, `file_synced`, `journal_written`, `renamed`, `dir_synced`,
//!   `catalog_committed`;
//! - the run's phases as the progress display sees them: `phase:reading_library` (scan
//!   starts), `phase:planning` (scan done, nothing planned yet), `phase:copying`,
//!   `phase:finishing` (every copy done, the report not yet written);
//! - `report_stored` (the report is written, the process has not printed or exited yet).
//!
//! Unset (always, outside the tests) nothing is installed: `install` reads one environment
//! variable at start-up, the archive's step hook stays empty (one atomic load per step, as
//! before), and the progress sink is not wrapped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use ferry_archive::testing::Step;
use ferry_sync::{Event, Phase, ProgressSink};

/// The environment variable.
pub const ENV: &str = "FERRY_TEST_PAUSE_AT";

struct Target {
    point: String,
    nth: u64,
}

static TARGET: OnceLock<Target> = OnceLock::new();
static SEEN: AtomicU64 = AtomicU64::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

/// Reads [`ENV`]; installs the archive step hook when it names a write-path step.
pub fn install() {
    let Ok(spec) = std::env::var(ENV) else {
        return;
    };
    let (point, nth) = match spec.rsplit_once(':') {
        Some((p, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => {
            (p.to_string(), n.parse().unwrap_or(1))
        }
        _ => (spec.clone(), 1),
    };
    let is_step = Step::ALL.iter().any(|s| step_name(*s) == point);
    let _ = TARGET.set(Target {
        point,
        nth: nth.max(1),
    });
    if is_step {
        ferry_archive::testing::set_step_hook(|s| reached(step_name(s)));
    }
}

fn step_name(s: Step) -> &'static str {
    match s {
        Step::TempCreated => "temp_created",
        Step::ChunkWritten => "chunk_written",
        Step::FileSynced => "file_synced",
        Step::JournalWritten => "journal_written",
        Step::Renamed => "renamed",
        Step::DirSynced => "dir_synced",
        Step::CatalogCommitted => "catalog_committed",
    }
}

fn phase_point(p: Phase) -> &'static str {
    match p {
        Phase::Connecting => "phase:connecting",
        Phase::ReadingLibrary => "phase:reading_library",
        Phase::Planning => "phase:planning",
        Phase::Copying => "phase:copying",
        Phase::Finishing => "phase:finishing",
    }
}

/// Called at a seam point: pauses for good at the target, and after it at every point.
pub fn reached(point: &str) {
    let Some(t) = TARGET.get() else {
        return;
    };
    if !PAUSED.load(Ordering::SeqCst) {
        if point != t.point || SEEN.fetch_add(1, Ordering::SeqCst) + 1 != t.nth {
            return;
        }
        PAUSED.store(true, Ordering::SeqCst);
        eprintln!("FERRY_TEST_PAUSED {point} {}", t.nth);
    }
    // Wait to be killed; spurious wake-ups just park again.
    loop {
        std::thread::park();
    }
}

/// Wraps the progress sink so phase points are seen (unchanged when the seam is unset).
pub fn wrap(sink: ProgressSink) -> ProgressSink {
    if TARGET.get().is_none() {
        return sink;
    }
    std::sync::Arc::new(move |ev: Event| {
        if let Event::Phase { phase } = &ev {
            reached(phase_point(*phase));
        }
        sink(ev)
    })
}
