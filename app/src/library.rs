//! The library at a glance: what is on the phone (and only there), what is only in iCloud,
//! what is excluded, and what the backup already has.

use iced::widget::{button, column, text};
use iced::Element;

use crate::work::{Failure, LibrarySummary};
use crate::Message;

/// The summary's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LibraryState {
    /// Nothing scanned yet.
    None,
    /// Reading the library.
    Scanning,
    /// The summary.
    Ready(Box<LibrarySummary>),
    /// The scan failed.
    Failed(Failure),
}

/// The summary lines, most important first (also used by the tests).
pub fn lines(s: &LibrarySummary) -> Vec<String> {
    let h = ferry_archive::human_bytes;
    let mut out = Vec::new();
    if s.only_here_files > 0 {
        out.push(format!(
            "{} original file(s) ({}) exist only on this iPhone — not in iCloud yet. They are backed up first.",
            s.only_here_files,
            h(s.only_here_bytes)
        ));
    }
    out.push(format!(
        "On the iPhone: {} photos and videos, {} original files, {}.",
        s.local_assets,
        s.local_files,
        h(s.local_bytes)
    ));
    if s.icloud_assets > 0 || s.icloud_files > 0 {
        let range = match (&s.icloud_oldest, &s.icloud_newest) {
            (Some(a), Some(b)) => format!(", {a} to {b}"),
            _ => String::new(),
        };
        out.push(format!(
            "Only in iCloud: {} photos and videos ({} files, {}{range}) — the iPhone must download them first.",
            s.icloud_assets,
            s.icloud_files,
            h(s.icloud_bytes)
        ));
    }
    let excluded: u64 = s.excluded.values().sum();
    if excluded > 0 {
        let why: Vec<String> = s
            .excluded
            .iter()
            .map(|(k, v)| format!("{v} {}", k.replace('_', " ")))
            .collect();
        out.push(format!(
            "Not backed up by design: {excluded} ({}).",
            why.join(", ")
        ));
    }
    out.push(format!(
        "Already in the backup: {} files. New since the last backup: {} files, {}.",
        s.already_archived,
        s.new_files,
        h(s.new_bytes)
    ));
    out
}

/// Draws the summary (while `refreshing`, the last one stays with a note).
pub fn view(state: &LibraryState, refreshing: bool) -> Element<'_, Message> {
    match state {
        LibraryState::None => {
            text("The library summary appears when a trusted iPhone is connected.").into()
        }
        LibraryState::Scanning => text("Reading the photo library…").into(),
        LibraryState::Failed(f) => column![
            text(format!("Could not read the library: {}", f.message)),
            text(f.hint.clone()),
            button("Try again").on_press(Message::Rescan),
        ]
        .spacing(6)
        .into(),
        LibraryState::Ready(s) => {
            let mut col = column![text("Photo library").size(20)].spacing(4);
            if refreshing {
                col = col.push(text("Updating against the backup folder…").size(13));
            }
            for l in lines(s) {
                col = col.push(text(l));
            }
            col.into()
        }
    }
}
