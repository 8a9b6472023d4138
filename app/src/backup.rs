//! The backup: one button, honest progress (files, bytes, MB/s, ETA, current file), Cancel,
//! an interruption message, and the result — everything accounted for, the iCloud-only list.

use iced::widget::{button, column, progress_bar, row, text};
use iced::Element;

use ferry_sync::{Event, Outcome, PlanSummary, Progress, SyncReport};

use crate::work::{Failure, SyncUpdate};
use crate::Message;

/// The backup's state.
#[derive(Debug, Clone)]
pub enum SyncState {
    /// Not started.
    Idle,
    /// Running.
    Running {
        /// The phase, for people.
        phase: String,
        /// The latest progress.
        progress: Option<Progress>,
        /// The plan.
        planned: Option<PlanSummary>,
        /// Files that could not be copied so far.
        failures: u64,
    },
    /// The phone went away mid-run.
    Interrupted {
        /// What to tell the user.
        message: String,
    },
    /// Finished (complete, incomplete, stopped): the report.
    Done {
        /// The report.
        report: Box<SyncReport>,
        /// Why it stopped early, if it did.
        stopped: Option<Failure>,
    },
    /// Another Ferry run (the nightly mirror, a `ferry sync` in a terminal) holds the backup
    /// folder: the backup starts by itself when it lets go.
    WaitingForFolder {
        /// Who holds it ("pid 42 host nas since …").
        holder: String,
    },
    /// Nothing could run.
    Failed(Failure),
}

impl SyncState {
    /// Applies a sync update; returns true when the run ended (the root rescans).
    pub fn apply(&mut self, u: SyncUpdate) -> bool {
        match u {
            SyncUpdate::Event(ev) => {
                if let SyncState::Running {
                    phase,
                    progress,
                    planned,
                    failures,
                } = self
                {
                    match ev {
                        Event::Phase { phase: p } => *phase = p.describe().to_string(),
                        Event::Planned(p) => *planned = Some(p),
                        Event::Progress(p) => *progress = Some(p),
                        Event::FileFailed { .. } => *failures += 1,
                        _ => {}
                    }
                }
                false
            }
            SyncUpdate::Done(r) => {
                if matches!(self, SyncState::Interrupted { .. }) && r.is_err() {
                    return true;
                }
                *self = match r {
                    Ok((report, stopped)) => {
                        if stopped.as_ref().is_some_and(|f| f.kind == "disconnected") {
                            SyncState::Interrupted {
                                message:
                                    "The iPhone was disconnected. Plug it back in to continue — \
                                          nothing already copied is lost."
                                        .into(),
                            }
                        } else {
                            SyncState::Done { report, stopped }
                        }
                    }
                    Err(f) => SyncState::Failed(f),
                };
                true
            }
        }
    }
}

fn mb(n: u64) -> String {
    ferry_archive::human_bytes(n)
}

/// Draws the backup part.
pub fn view(state: &SyncState, can_sync: bool) -> Element<'_, Message> {
    let sync_button = button("Sync").on_press_maybe(can_sync.then_some(Message::Sync));
    match state {
        SyncState::Idle => column![text("Backup").size(20), sync_button]
            .spacing(8)
            .into(),
        SyncState::Running {
            phase,
            progress,
            planned,
            failures,
        } => {
            let mut col = column![text("Backup").size(20), text(format!("{phase}…"))].spacing(6);
            if let Some(p) = planned {
                col = col.push(text(format!(
                    "{} file(s) to copy, {} — {} of them only on this iPhone, copied first.",
                    p.files,
                    mb(p.bytes),
                    p.only_here_files
                )));
            }
            if let Some(p) = progress {
                let frac = if p.bytes_total > 0 {
                    p.bytes_done as f32 / p.bytes_total as f32
                } else {
                    0.0
                };
                let eta = p
                    .eta_secs
                    .map(|s| format!("{}:{:02} left", s / 60, s % 60))
                    .unwrap_or_else(|| "estimating…".into());
                col = col
                    .push(progress_bar(0.0..=1.0, frac))
                    .push(text(format!(
                        "Copying {}/{} files · {} of {} · {:.1} MB/s · {eta}",
                        p.files_done,
                        p.files_total,
                        mb(p.bytes_done),
                        mb(p.bytes_total),
                        p.rate_bps / 1e6
                    )))
                    .push(text(p.current.clone().unwrap_or_default()).size(12));
            }
            if *failures > 0 {
                col = col.push(text(format!(
                    "{failures} file(s) could not be copied (listed at the end)."
                )));
            }
            col.push(button("Cancel").on_press(Message::Cancel)).into()
        }
        SyncState::WaitingForFolder { holder } => column![
            text("Backup").size(20),
            text(format!(
                "Another Ferry backup is using this folder right now ({holder}) — the nightly \
                 mirror or a `ferry sync` in a terminal. Your backup starts by itself as soon as \
                 it finishes."
            )),
            button("Cancel").on_press(Message::Cancel),
        ]
        .spacing(6)
        .into(),
        SyncState::Interrupted { message } => {
            column![text("Backup").size(20), text(message.clone())]
                .spacing(8)
                .into()
        }
        SyncState::Failed(f) => column![
            text("Backup").size(20),
            text(format!("The backup could not start: {}", f.message)),
            text(f.hint.clone()),
            sync_button,
        ]
        .spacing(6)
        .into(),
        SyncState::Done { report, stopped } => {
            let mut col = column![text("Backup").size(20)].spacing(4);
            // The CLI's "hint: …" line is the "What to do" below.
            for l in report.summary_lines() {
                if !l.starts_with("hint: ") {
                    col = col.push(text(l));
                }
            }
            if let Some(f) = stopped {
                col = col.push(text(format!("What to do: {}", f.hint)));
            }
            let whole: Vec<_> = report
                .icloud_only
                .iter()
                .filter(|a| !a.original_local)
                .collect();
            if !whole.is_empty() {
                col = col.push(text(format!("Only in iCloud ({}):", whole.len())).size(16));
                for a in whole.iter().take(12) {
                    col = col.push(text(format!(
                        "{}  {}  {}",
                        a.created_utc
                            .as_deref()
                            .map(|c| &c[..c.len().min(10)])
                            .unwrap_or("undated"),
                        a.name.as_deref().unwrap_or(&a.uuid),
                        mb(a.bytes)
                    )));
                }
                if whole.len() > 12 {
                    col = col.push(text(format!(
                        "… and {} more (run `ferry fetch-plan` for batches to download on the iPhone)",
                        whole.len() - 12
                    )));
                }
            }
            if report.outcome != Outcome::DryRun {
                col = col.push(
                    row![
                        sync_button,
                        button("Open backup folder").on_press(Message::OpenFolder)
                    ]
                    .spacing(8),
                );
            }
            col.into()
        }
    }
}

/// The fetch plan for the iCloud-only originals: batches that fit the phone, with what to do.
pub fn plan_view(plan: Option<&ferry_sync::fetchplan::FetchPlan>) -> Element<'_, Message> {
    let Some(p) = plan.filter(|p| p.assets > 0) else {
        return column![].into();
    };
    let mut col = column![text("Getting the iCloud-only originals").size(16)].spacing(4);
    if let Some(msg) = &p.no_space {
        col = col.push(text(msg.clone()));
    }
    let n = p.batches.len();
    for b in &p.batches {
        let day = |d: &Option<String>| {
            d.as_deref()
                .map(|x| x[..x.len().min(10)].to_string())
                .unwrap_or_else(|| "undated".into())
        };
        col = col.push(text(format!(
            "Batch {} of {n}: {} items, {} ({} – {})",
            b.index,
            b.count,
            mb(b.bytes),
            day(&b.from),
            day(&b.to)
        )));
        col = col.push(text(b.instruction.clone()).size(13));
    }
    if !p.too_large.is_empty() {
        col = col.push(text(format!(
            "{} item(s) are larger than the iPhone's free space allows.",
            p.too_large.len()
        )));
    }
    col.into()
}

/// The last runs.
pub fn history_view(runs: &[crate::work::PastRun]) -> Element<'_, Message> {
    if runs.is_empty() {
        return column![].into();
    }
    let mut col = column![text("Recent backups").size(16)].spacing(2);
    for r in runs {
        col = col.push(
            text(format!(
                "{}  {}  {} copied",
                r.finished_at, r.outcome, r.copied
            ))
            .size(13),
        );
    }
    col.into()
}
