//! Test seam: a process-wide hook called at each step of the audited write path.
//!
//! The crash tests install a hook in a child process that stops at a chosen step and waits
//! to be `SIGKILL`ed, so every window of the write path (temp created, data written, synced,
//! journaled, renamed, directory synced, catalog committed) is hit deterministically, without
//! sleeps. Unset (the normal case) it costs one atomic load per step.

use std::sync::OnceLock;

/// The steps of [`crate::PendingFile`]'s life, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The temp file exists (empty).
    TempCreated,
    /// One chunk was written to the temp file.
    ChunkWritten,
    /// The temp file was synced.
    FileSynced,
    /// The journal intent was written and synced.
    JournalWritten,
    /// The temp file has its final name.
    Renamed,
    /// The directory was synced.
    DirSynced,
    /// The catalog row is committed.
    CatalogCommitted,
}

impl Step {
    /// All steps.
    pub const ALL: [Step; 7] = [
        Step::TempCreated,
        Step::ChunkWritten,
        Step::FileSynced,
        Step::JournalWritten,
        Step::Renamed,
        Step::DirSynced,
        Step::CatalogCommitted,
    ];
}

static HOOK: OnceLock<fn(Step)> = OnceLock::new();

/// Installs the hook (once per process; later calls are ignored).
pub fn set_step_hook(hook: fn(Step)) {
    let _ = HOOK.set(hook);
}

pub(crate) fn step(s: Step) {
    if let Some(h) = HOOK.get() {
        h(s);
    }
}
