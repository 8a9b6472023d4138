//! The backup folder: chosen with the system's folder dialog (or typed, or remembered in the
//! config), its free space and file system, first-time set-up, the FAT32 warning, and whether
//! another Ferry run is using it. Dialogs and checks run as Tasks in the root.

use std::path::PathBuf;

use iced::widget::{button, column, row, text, text_input};
use iced::Element;

use crate::work::{DestInfo, Failure};

/// Messages of the folder part.
#[derive(Debug, Clone)]
pub enum Message {
    /// The path field changed.
    Input(String),
    /// "Use this folder".
    Use,
    /// "Set up this folder for Ferry".
    Init,
    /// "Choose…": open the system's folder dialog.
    Choose,
    /// The dialog closed: the folder picked, `None` when cancelled, or why there is no dialog.
    Chosen(Result<Option<PathBuf>, Failure>),
}

/// What the root must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Look at this folder.
    Inspect(PathBuf),
    /// Initialise this folder.
    Init(PathBuf),
    /// Open the folder dialog, starting in this folder.
    Choose(Option<PathBuf>),
}

/// The folder's state.
#[derive(Debug, Clone, Default)]
pub struct DestState {
    /// The path being typed.
    pub path_input: String,
    /// A check is running.
    pub checking: bool,
    /// The last check's result.
    pub info: Option<Result<DestInfo, Failure>>,
    /// The folder dialog is open.
    pub choosing: bool,
    /// Why the folder dialog could not open (shown under the path field).
    pub dialog_problem: Option<Failure>,
}

impl DestState {
    /// The folder to back up into, when it is a Ferry archive.
    pub fn ready(&self) -> Option<PathBuf> {
        match &self.info {
            Some(Ok(i)) if i.initialised => Some(i.path.clone()),
            _ => None,
        }
    }

    /// Handles a message.
    pub fn update(&mut self, m: Message) -> Action {
        match m {
            Message::Input(s) => {
                self.path_input = s;
                Action::None
            }
            Message::Use => {
                let p = PathBuf::from(self.path_input.trim());
                if p.as_os_str().is_empty() || !p.is_absolute() {
                    self.info = Some(Err(Failure {
                        kind: "destination".into(),
                        message: "give the full path of the backup folder (starting with /)".into(),
                        hint: "for example /media/you/Backup/iPhone".into(),
                    }));
                    return Action::None;
                }
                self.checking = true;
                Action::Inspect(p)
            }
            Message::Choose => {
                if self.choosing {
                    return Action::None;
                }
                self.choosing = true;
                let start = PathBuf::from(self.path_input.trim());
                Action::Choose(start.is_absolute().then_some(start))
            }
            Message::Chosen(p) => {
                self.choosing = false;
                match p {
                    Ok(Some(p)) => {
                        self.dialog_problem = None;
                        self.path_input = p.display().to_string();
                        self.checking = true;
                        Action::Inspect(p)
                    }
                    Ok(None) => Action::None,
                    Err(f) => {
                        self.dialog_problem = Some(f);
                        Action::None
                    }
                }
            }
            Message::Init => match &self.info {
                Some(Ok(i)) if !i.initialised => {
                    self.checking = true;
                    Action::Init(i.path.clone())
                }
                _ => Action::None,
            },
        }
    }

    /// Draws the folder part.
    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text("Backup folder").size(20),
            row![
                text_input("/media/you/Backup/iPhone", &self.path_input)
                    .on_input(Message::Input)
                    .on_submit(Message::Use),
                button("Use this folder").on_press(Message::Use),
                button(if self.choosing {
                    "Choosing…"
                } else {
                    "Choose…"
                })
                .on_press_maybe((!self.choosing).then_some(Message::Choose)),
            ]
            .spacing(8),
        ]
        .spacing(6);
        if let Some(f) = &self.dialog_problem {
            col = col.push(text(format!(
                "No folder dialog: {} — {}",
                f.message, f.hint
            )));
        }
        if self.checking {
            col = col.push(text("Checking the folder…"));
        }
        match &self.info {
            None => {}
            Some(Err(f)) => {
                col = col.push(text(format!("{} — {}", f.message, f.hint)));
            }
            Some(Ok(i)) => {
                let free = i
                    .free_bytes
                    .map(|b| format!("{} free", ferry_archive::human_bytes(b)))
                    .unwrap_or_default();
                col = col.push(text(format!("{} ({}, {free})", i.path.display(), i.fs)));
                if i.fat32 {
                    col = col.push(text(
                        "This drive is FAT32: videos of 4 GB or more cannot be stored on it. \
                         exFAT or APFS/ext4 have no such limit.",
                    ));
                }
                if !i.initialised {
                    col = col.push(text(
                        "This folder is not a Ferry backup yet. If it is on your backup drive, set it up once:",
                    ));
                    col = col.push(button("Set up this folder for Ferry").on_press(Message::Init));
                } else if let Some(holder) = &i.busy {
                    col = col.push(text(format!(
                        "Another Ferry run is using this folder right now ({holder}). Sync \
                         waits for it and then starts by itself."
                    )));
                } else {
                    col = col.push(text(
                        "Ready: backups go here. Several iPhones can share it.",
                    ));
                }
            }
        }
        col.into()
    }
}
