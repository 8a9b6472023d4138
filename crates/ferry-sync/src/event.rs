//! Typed progress events: what a run tells its front end (the CLI's progress bar, the GUI).
//!
//! Events are delivered to a [`ProgressSink`], a cheap callback called from the copy tasks;
//! it must not block (the CLI draws a bar, the GUI forwards into a channel).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Opening the archive and the phone.
    Connecting,
    /// Copying and reading `Photos.sqlite`, checking files on the phone.
    ReadingLibrary,
    /// Comparing with the archive.
    Planning,
    /// Copying originals.
    Copying,
    /// Writing the report.
    Finishing,
}

impl Phase {
    /// A short sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Phase::Connecting => "Connecting to the iPhone",
            Phase::ReadingLibrary => "Reading the photo library",
            Phase::Planning => "Comparing with the backup",
            Phase::Copying => "Copying originals",
            Phase::Finishing => "Writing the report",
        }
    }
}

/// The plan, in numbers, as soon as it is known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PlanSummary {
    /// Assets in the phone's library.
    pub assets: u64,
    /// Original files to copy in this run.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Of those, files that exist only on this phone (copied first).
    pub only_here_files: u64,
    /// Files already in the archive (not copied again).
    pub already_archived_files: u64,
    /// Assets whose original is only in iCloud.
    pub icloud_only_assets: u64,
}

/// A progress snapshot.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Progress {
    /// Files finished (copied, skipped or failed).
    pub files_done: u64,
    /// Files in the plan.
    pub files_total: u64,
    /// Bytes copied so far (including the files in flight).
    pub bytes_done: u64,
    /// Bytes in the plan.
    pub bytes_total: u64,
    /// Recent transfer rate, bytes per second.
    pub rate_bps: f64,
    /// Estimated seconds left at that rate.
    pub eta_secs: Option<u64>,
    /// The file being copied (its name on the phone).
    pub current: Option<String>,
}

/// One event of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A new phase started.
    Phase {
        /// The phase.
        phase: Phase,
    },
    /// The plan is known.
    Planned(PlanSummary),
    /// A copy started.
    FileStarted {
        /// Its name on the phone.
        name: String,
        /// Its size.
        size: u64,
    },
    /// Bytes moved (throttled to a few per second).
    Progress(Progress),
    /// A file is safely in the archive.
    FileDone {
        /// Its path in the archive, relative to the destination.
        rel_path: String,
        /// Its size.
        size: u64,
    },
    /// A file could not be copied; the run goes on.
    FileFailed {
        /// Its path on the phone.
        name: String,
        /// A stable reason code.
        reason: String,
        /// What happened.
        message: String,
    },
    /// A file was not copied because it was already archived (its size changed back, or
    /// another run archived it meanwhile).
    FileSkipped {
        /// Its path on the phone.
        name: String,
    },
}

/// Receives the events of a run. Must be cheap and must not block.
pub type ProgressSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything.
pub fn no_progress() -> ProgressSink {
    Arc::new(|_| {})
}

/// A transfer rate over a sliding window (default 5 s), robust to bursts and stalls.
#[derive(Debug)]
pub struct RateMeter {
    window: Duration,
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// A meter averaging over `window`.
    pub fn new(window: Duration) -> RateMeter {
        RateMeter {
            window,
            samples: VecDeque::new(),
        }
    }

    /// Records the running byte total at `now`.
    pub fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        while let Some(&(t, _)) = self.samples.front() {
            if self.samples.len() > 2 && now.duration_since(t) > self.window {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }

    /// Bytes per second over the window (0 until two samples at distinct times exist).
    pub fn rate(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                b1.saturating_sub(b0) as f64 / t1.duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

/// Seconds left for `remaining` bytes at `rate` (None when the rate is unknown).
pub fn eta(remaining: u64, rate: f64) -> Option<u64> {
    if rate < 1.0 || !rate.is_finite() {
        return None;
    }
    let secs = (remaining as f64 / rate).ceil();
    (secs.is_finite() && secs < 1e9).then_some(secs as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_is_bytes_over_the_window() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(Duration::from_secs(5));
        assert_eq!(m.rate(), 0.0);
        m.record(t0, 0);
        m.record(t0 + Duration::from_secs(1), 10_000_000);
        assert!((m.rate() - 10_000_000.0).abs() < 1.0);
        m.record(t0 + Duration::from_secs(2), 30_000_000);
        assert!((m.rate() - 15_000_000.0).abs() < 1.0);
        // Old samples fall out of the window: the rate follows the recent speed.
        m.record(t0 + Duration::from_secs(20), 30_000_000);
        m.record(t0 + Duration::from_secs(21), 31_000_000);
        assert!((m.rate() - 1_000_000.0).abs() < 1.0, "{}", m.rate());
    }

    #[test]
    fn eta_needs_a_rate() {
        assert_eq!(eta(100, 0.0), None);
        assert_eq!(eta(100, f64::NAN), None);
        assert_eq!(eta(100, 10.0), Some(10));
        assert_eq!(eta(101, 10.0), Some(11));
        assert_eq!(eta(0, 10.0), Some(0));
    }
}
