//! `ferry-sync`: the sync engine. It copies every original that is really on the phone into
//! a Ferry archive, exactly, safely and incrementally, and accounts for every asset.
//!
//! ```text
//! scan (ferry-device: snapshot Photos.sqlite, classify, stat every original)
//!   → plan (diff against the archive's catalog; only-on-this-phone originals first)
//!   → copy (N AFC connections → ferry-archive's audited write path, typed progress events)
//!   → reconcile (assets = archived + iCloud-only + unavailable + excluded + failed)
//!   → report (JSON stored in the archive; printed by the front ends)
//! ```
//!
//! Resuming needs no state of its own: the catalog gets a row after each file, so an
//! interrupted run (unplug, crash, Ctrl-C) leaves a plan diff that contains exactly what is
//! still missing. Nothing here prints; front ends consume [`Event`]s and [`SyncReport`]s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_sync::SyncError> {
//! use ferry_archive::{Archive, ArchiveOptions};
//! use ferry_device::{choose, Mux};
//! use ferry_sync::{no_progress, sync, SyncOptions};
//! let mux = Mux::from_env()?;
//! let phones = mux.list().await?;
//! let phone = choose(&phones, None, &|_| String::new())?;
//! let archive = Archive::open("/media/backup".as_ref(), ArchiveOptions::default())?;
//! let run = sync(&mux, phone, &archive, &SyncOptions::default(), no_progress()).await?;
//! for line in run.report.summary_lines() {
//!     println!("{line}");
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod error;
pub mod event;
pub mod fetchplan;
pub mod plan;
pub mod report;
pub mod run;

pub use error::SyncError;
pub use event::{no_progress, Event, Phase, PlanSummary, Progress, ProgressSink};
pub use plan::{Plan, PlanOptions};
pub use report::{Outcome, SyncReport, REPORT_FORMAT};
pub use run::{survey, sync, Survey, SyncOptions, SyncRun};
