//! `ferry-app`: the desktop face of Ferry (iced 0.14). Plug in the phone, press Sync.
//!
//! A thin front end over the core crates: all device, disk and database work runs in
//! [`work`] as Tasks and Subscriptions; [`App::update`] only changes state and starts work;
//! [`App::view`] only draws. The window shows, top to bottom: the phone (and its trust state),
//! the library at a glance, the backup folder, and the backup itself (button, progress,
//! result). Each part has its state and view in its own module.
//!
//! Keyboard: the window is driven without a mouse through [`shortcut`] (Enter presses the
//! action the window is waiting for, Esc cancels, Ctrl+O opens the folder dialog, …; Tab
//! moves between the text fields). Colours follow the system's light/dark setting unless the
//! user picks one. Under the autopilot with `FERRY_APP_SHOTS=DIR`, the app saves a screenshot
//! of each [`Stage`] it reaches (the end-to-end script's pictures).

pub mod backup;
pub mod destination;
pub mod library;
pub mod phone;
pub mod settings;
pub mod work;

use std::path::PathBuf;

use iced::keyboard::{self, key::Named, Key, Modifiers};
use iced::widget::{button, column, container, row, rule, scrollable, text};
use iced::{Element, Length, Subscription, Task, Theme};
use tokio_util::sync::CancellationToken;

use crate::backup::SyncState;
use crate::destination::DestState;
use crate::library::LibraryState;
use crate::phone::{PhoneState, TrustState};
use crate::work::{DeviceUpdate, MuxKey, PairUpdate, SyncUpdate};

/// Environment variable naming the backup folder to start with (set by `--demo`).
pub const DEST_ENV: &str = "FERRY_APP_DEST";
/// Environment variable that turns the autopilot on (`1`).
pub const AUTOPILOT_ENV: &str = "FERRY_APP_AUTOPILOT";
/// Environment variable naming a folder for one screenshot per [`Stage`] (with the autopilot).
pub const SHOTS_ENV: &str = "FERRY_APP_SHOTS";
/// Environment variable (`1`): after each screenshot the autopilot waits for a line on stdin,
/// so that a script can act (plug the phone in, tap Trust) before the app goes on.
pub const STEP_ENV: &str = "FERRY_APP_STEP";

/// Where the app is, as one word: what the end-to-end script photographs and waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// usbmuxd cannot be reached.
    NoUsbmuxd,
    /// No phone connected.
    NoPhone,
    /// Asking the phone whether it trusts us.
    Checking,
    /// The phone does not trust this computer: instruction and Trust button.
    TrustNeeded,
    /// Waiting for "Trust" to be tapped on the phone.
    TrustPending,
    /// Reading the library.
    Scanning,
    /// The library summary, with the backup folder still to choose or set up.
    Library,
    /// Everything ready: Sync can be pressed.
    Ready,
    /// The sync is starting (no progress yet).
    Starting,
    /// The sync is copying, with progress.
    Syncing,
    /// Another Ferry run holds the folder; the sync waits.
    WaitingForFolder,
    /// The result of a run.
    Result,
    /// The phone went away mid-run.
    Interrupted,
    /// The sync could not start.
    Failed,
}

impl Stage {
    /// The stage's name (file names of the screenshots, the log).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::NoUsbmuxd => "no-usbmuxd",
            Stage::NoPhone => "no-phone",
            Stage::Checking => "checking",
            Stage::TrustNeeded => "trust-needed",
            Stage::TrustPending => "trust-pending",
            Stage::Scanning => "scanning",
            Stage::Library => "library",
            Stage::Ready => "ready",
            Stage::Starting => "starting",
            Stage::Syncing => "syncing",
            Stage::WaitingForFolder => "waiting-for-folder",
            Stage::Result => "result",
            Stage::Interrupted => "interrupted",
            Stage::Failed => "failed",
        }
    }

    /// Worth a screenshot: the stages a person sees for more than a blink.
    pub fn pictured(self) -> bool {
        !matches!(self, Stage::Checking | Stage::Scanning | Stage::Starting)
    }
}

/// What a key press asks for (see [`shortcut`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Enter: the action the window is waiting for (Trust, set up the folder, Sync).
    Primary,
    /// Esc: cancel pairing, a sync or the wait for the folder.
    Cancel,
    /// Ctrl+O: the folder dialog.
    ChooseFolder,
    /// Ctrl+Shift+O: open the backup folder in the file manager.
    OpenBackup,
    /// Ctrl+R or F5: read the library again.
    Rescan,
    /// Tab: the next text field.
    NextField,
    /// Shift+Tab: the previous text field.
    PreviousField,
}

/// The keyboard map (Ctrl is Cmd on macOS). Only keys no widget used reach it, so typing in
/// a text field never triggers a shortcut.
pub fn shortcut(key: &Key, mods: Modifiers) -> Option<Shortcut> {
    match key.as_ref() {
        Key::Named(Named::Enter) if mods.is_empty() => Some(Shortcut::Primary),
        Key::Named(Named::Escape) => Some(Shortcut::Cancel),
        Key::Named(Named::Tab) if mods.shift() => Some(Shortcut::PreviousField),
        Key::Named(Named::Tab) => Some(Shortcut::NextField),
        Key::Named(Named::F5) => Some(Shortcut::Rescan),
        Key::Character(c) if mods.command() => match c.to_lowercase().as_str() {
            "o" if mods.shift() => Some(Shortcut::OpenBackup),
            "o" => Some(Shortcut::ChooseFolder),
            "r" => Some(Shortcut::Rescan),
            _ => None,
        },
        _ => None,
    }
}

fn key_message(ev: keyboard::Event) -> Option<Message> {
    match ev {
        keyboard::Event::KeyPressed { key, modifiers, .. } => {
            shortcut(&key, modifiers).map(Message::Key)
        }
        _ => None,
    }
}

/// The window's scrollable (scrolled to the backup part when a run starts and ends).
const SCROLL: &str = "ferry-main";

/// A line on stdout, from a task (the autopilot's log for the end-to-end script).
fn say(line: String) -> Task<Message> {
    Task::future(async move {
        println!("{line}");
        Message::Noop
    })
}

/// A screenshot waiting for its stage to be drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingShot {
    /// The stage.
    pub stage: Stage,
    /// Frames drawn since the stage began.
    pub frames: u8,
}

/// Frames drawn with nothing changing before the picture is taken.
const SHOT_FRAMES: u8 = 20;

/// Everything the app knows.
#[derive(Debug)]
pub struct App {
    /// Where usbmuxd is (the device subscription's identity).
    pub mux: MuxKey,
    /// The phone.
    pub phone: PhoneState,
    /// The library summary.
    pub library: LibraryState,
    /// The summary shown is being read again (after set-up or a run): kept on screen meanwhile.
    pub library_refreshing: bool,
    /// The phone came back after an interrupted run: continue once its library is read.
    pub resume: bool,
    /// The backup folder.
    pub dest: DestState,
    /// The backup.
    pub sync: SyncState,
    /// Settings.
    pub settings: settings::Settings,
    /// The fetch plan for the iCloud-only originals of the last run.
    pub fetch_plan: Option<ferry_sync::fetchplan::FetchPlan>,
    /// Past runs of this phone into this folder, newest first.
    pub history: Vec<work::PastRun>,
    /// Other connected phones (the window shows one at a time; these can be switched to).
    pub others: Vec<ferry_device::UsbDevice>,
    /// The UDID whose library, plan and history the window shows (kept across a replug).
    shown: Option<String>,
    /// Cancels pairing, a sync or the wait for the folder.
    cancel: Option<CancellationToken>,
    /// Press the primary button of every state by itself (`FERRY_APP_AUTOPILOT=1`): for the
    /// end-to-end script under Xvfb; the same Messages a click would send.
    pub autopilot: bool,
    /// Save a screenshot of each stage here (`FERRY_APP_SHOTS`).
    pub shots: Option<PathBuf>,
    /// The stage after the last update.
    pub stage: Stage,
    /// Stages already photographed, in order.
    pub shots_taken: Vec<Stage>,
    /// The screenshot being waited for.
    pub shot_pending: Option<PendingShot>,
    /// The settings part is open (closed by default: the backup is what the window is for).
    pub show_settings: bool,
    /// Wait for a line on stdin after each screenshot (`FERRY_APP_STEP=1`).
    pub step: bool,
    /// Lines read from stdin so far.
    pub steps: usize,
}

/// Everything that can happen.
#[derive(Debug, Clone)]
pub enum Message {
    /// From the device subscription.
    Device(DeviceUpdate),
    /// Facts and trust of the connected phone.
    Inspected(u32, Result<(work::PhoneFacts, work::Trust), work::Failure>),
    /// "Trust" / "Try again" pressed.
    Pair,
    /// Pairing progress.
    Pairing(PairUpdate),
    /// The library summary arrived.
    Surveyed(Result<work::LibrarySummary, work::Failure>),
    /// Rescan the library.
    Rescan,
    /// Backup-folder part.
    Dest(destination::Message),
    /// The remembered folder (at start).
    Remembered(Option<PathBuf>),
    /// Folder facts arrived.
    DestInspected(Result<work::DestInfo, work::Failure>),
    /// Sync pressed.
    Sync,
    /// Cancel pressed.
    Cancel,
    /// Sync progress.
    Syncing(SyncUpdate),
    /// "Open backup folder".
    OpenFolder,
    /// Something finished that needs no state change.
    Noop,
    /// A keyboard shortcut.
    Key(Shortcut),
    /// Switch the window to another connected phone (by UDID).
    SwitchPhone(String),
    /// The backup folder is free again (or the wait was cancelled).
    DestFree(Result<(), work::Failure>),
    /// A frame was drawn (only listened to while a screenshot waits).
    Frame,
    /// A screenshot was saved (or why not).
    ShotSaved(Stage, Result<PathBuf, work::Failure>),
    /// A line on stdin: the script says "go on" (`FERRY_APP_STEP=1`).
    Step,
    /// Open or close the settings part.
    ToggleSettings,
    /// Settings part.
    Settings(settings::Message),
    /// Saved settings read.
    SettingsLoaded(Box<settings::Settings>),
    /// Settings applied (or why not).
    SettingsApplied(Result<String, work::Failure>),
    /// Past runs read.
    History(Vec<work::PastRun>),
}

impl App {
    /// A fresh app talking to usbmuxd at `mux`.
    pub fn new(mux: MuxKey) -> App {
        App {
            mux,
            phone: PhoneState::Waiting,
            library: LibraryState::None,
            library_refreshing: false,
            resume: false,
            dest: DestState::default(),
            sync: SyncState::Idle,
            settings: settings::Settings::default(),
            fetch_plan: None,
            history: Vec::new(),
            others: Vec::new(),
            shown: None,
            cancel: None,
            autopilot: false,
            shots: None,
            stage: Stage::NoPhone,
            shots_taken: Vec::new(),
            shot_pending: None,
            show_settings: false,
            step: false,
            steps: 0,
        }
    }

    /// Start-up: the app plus its first task (the folder from `FERRY_APP_DEST`, as `--demo`
    /// sets it, else the one remembered in the config).
    pub fn boot() -> (App, Task<Message>) {
        let first = match std::env::var_os(DEST_ENV) {
            Some(d) => Task::done(Message::Remembered(Some(PathBuf::from(d)))),
            None => Task::perform(work::remembered_dest(), Message::Remembered),
        };
        let mut app = App::new(MuxKey::from_env());
        app.autopilot = std::env::var_os(AUTOPILOT_ENV).is_some_and(|v| v == "1");
        app.shots = std::env::var_os(SHOTS_ENV)
            .filter(|_| app.autopilot)
            .map(PathBuf::from);
        app.step = app.shots.is_some() && std::env::var_os(STEP_ENV).is_some_and(|v| v == "1");
        let settings = Task::perform(work::load_settings(None), |s| {
            Message::SettingsLoaded(Box::new(s))
        });
        (app, Task::batch([first, settings]))
    }

    /// What the autopilot would press now: Trust, then (with the library summary shown) "Set
    /// up this folder", then Sync — each once the state offers it, and never while a
    /// screenshot of the current stage is waiting.
    pub fn autopilot_next(&self) -> Option<Message> {
        if self.shot_pending.is_some() || (self.step && self.steps < self.shots_taken.len()) {
            return None;
        }
        if let PhoneState::Connected {
            trust: TrustState::NotTrusted(f),
            ..
        } = &self.phone
        {
            if f.kind == "NotPaired" || f.kind == "TrustRevoked" {
                return Some(Message::Pair);
            }
        }
        if let Some(Ok(i)) = &self.dest.info {
            if !i.initialised
                && !self.dest.checking
                && matches!(self.library, LibraryState::Ready(_))
            {
                return Some(Message::Dest(destination::Message::Init));
            }
        }
        if self.can_sync()
            && matches!(self.library, LibraryState::Ready(_))
            && !self.library_refreshing
            && matches!(self.sync, SyncState::Idle)
        {
            return Some(Message::Sync);
        }
        None
    }

    /// The cancel token of the pairing or sync in flight (what Cancel fires).
    pub fn running_cancel(&self) -> Option<CancellationToken> {
        self.cancel.clone()
    }

    /// The action Enter presses: whatever the window is waiting for.
    pub fn primary_action(&self) -> Option<Message> {
        if let PhoneState::Connected {
            trust: TrustState::NotTrusted(_),
            ..
        } = &self.phone
        {
            return Some(Message::Pair);
        }
        if let Some(Ok(i)) = &self.dest.info {
            if !i.initialised && !self.dest.checking {
                return Some(Message::Dest(destination::Message::Init));
            }
        }
        if self.can_sync()
            && !matches!(
                self.sync,
                SyncState::Running { .. } | SyncState::WaitingForFolder { .. }
            )
        {
            return Some(Message::Sync);
        }
        None
    }

    /// Where the app is now.
    pub fn current_stage(&self) -> Stage {
        match &self.sync {
            SyncState::Running { progress, .. } => {
                return if progress.is_some() {
                    Stage::Syncing
                } else {
                    Stage::Starting
                }
            }
            SyncState::WaitingForFolder { .. } => return Stage::WaitingForFolder,
            SyncState::Done { .. } => return Stage::Result,
            SyncState::Interrupted { .. } => return Stage::Interrupted,
            SyncState::Failed(_) => return Stage::Failed,
            SyncState::Idle => {}
        }
        match &self.phone {
            PhoneState::NoUsbmuxd(_) => Stage::NoUsbmuxd,
            PhoneState::Waiting => Stage::NoPhone,
            PhoneState::Connected { trust, .. } => match trust {
                TrustState::Checking => Stage::Checking,
                TrustState::NotTrusted(_) => Stage::TrustNeeded,
                TrustState::Pairing(_) => Stage::TrustPending,
                TrustState::Trusted => match &self.library {
                    LibraryState::None | LibraryState::Scanning => Stage::Scanning,
                    LibraryState::Ready(_) if self.library_refreshing => Stage::Scanning,
                    LibraryState::Ready(_) | LibraryState::Failed(_) => {
                        if self.can_sync() {
                            Stage::Ready
                        } else {
                            Stage::Library
                        }
                    }
                },
            },
        }
    }

    fn device(&self) -> Option<&ferry_device::UsbDevice> {
        self.phone.device()
    }

    /// True when Sync can be pressed.
    pub fn can_sync(&self) -> bool {
        matches!(
            self.phone,
            PhoneState::Connected {
                trust: TrustState::Trusted,
                ..
            }
        ) && self.dest.ready().is_some()
            && !matches!(self.sync, SyncState::Running { .. })
    }

    /// Shows `dev` in the window (a new or replugged phone, or a switch): asks whether it
    /// trusts us; what was shown for another phone is cleared.
    fn show_phone(&mut self, dev: ferry_device::UsbDevice) -> Task<Message> {
        if self.shown.as_deref() != Some(dev.udid.as_str()) {
            self.library = LibraryState::None;
            self.library_refreshing = false;
            self.resume = false;
            self.fetch_plan = None;
            self.history.clear();
            self.shown = Some(dev.udid.clone());
        }
        let id = dev.device_id;
        self.phone = PhoneState::Connected {
            dev: dev.clone(),
            facts: None,
            trust: TrustState::Checking,
        };
        Task::perform(work::inspect(self.mux.clone(), dev), move |r| {
            Message::Inspected(id, r)
        })
    }

    fn shortcut(&mut self, k: Shortcut) -> Task<Message> {
        match k {
            Shortcut::Primary => match self.primary_action() {
                Some(m) => self.handle(m),
                None => Task::none(),
            },
            Shortcut::Cancel => self.handle(Message::Cancel),
            Shortcut::ChooseFolder => self.handle(Message::Dest(destination::Message::Choose)),
            Shortcut::OpenBackup => self.handle(Message::OpenFolder),
            Shortcut::Rescan => {
                let trusted = matches!(
                    self.phone,
                    PhoneState::Connected {
                        trust: TrustState::Trusted,
                        ..
                    }
                );
                if trusted && !matches!(self.library, LibraryState::Scanning) {
                    self.survey()
                } else {
                    Task::none()
                }
            }
            Shortcut::NextField => iced::widget::operation::focus_next(),
            Shortcut::PreviousField => iced::widget::operation::focus_previous(),
        }
    }

    fn survey(&mut self) -> Task<Message> {
        let Some(dev) = self.device().cloned() else {
            return Task::none();
        };
        if matches!(self.library, LibraryState::Ready(_)) {
            self.library_refreshing = true;
        } else {
            self.library = LibraryState::Scanning;
        }
        Task::perform(
            work::survey(self.mux.clone(), dev, self.dest.ready()),
            Message::Surveyed,
        )
    }

    /// Handles one message. Never blocks: work is returned as a Task.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        if !matches!(message, Message::Frame | Message::Step) {
            // The picture waits for a still window: SHOT_FRAMES frames with nothing changing
            // (a frame drawn while text changes can miss that text in the screenshot).
            if let Some(p) = &mut self.shot_pending {
                p.frames = 0;
            }
        }
        let mut task = self.handle(message);
        let stage = self.current_stage();
        if stage != self.stage {
            self.stage = stage;
            if self.autopilot {
                // The end-to-end script's log (written by a task: update does no I/O).
                task = Task::batch([task, say(format!("ferry-app: stage {}", stage.as_str()))]);
            }
            if self.shots.is_some() {
                // A stage left before its picture was taken is not photographed (it was a blink).
                self.shot_pending = (stage.pictured() && !self.shots_taken.contains(&stage))
                    .then_some(PendingShot { stage, frames: 0 });
            }
        }
        match self.autopilot.then(|| self.autopilot_next()).flatten() {
            Some(next) => Task::batch([task, Task::done(next)]),
            None => task,
        }
    }

    fn handle(&mut self, message: Message) -> Task<Message> {
        match message {
            Message::Device(DeviceUpdate::Attached(dev)) => {
                if let PhoneState::Connected { dev: cur, .. } = &self.phone {
                    if cur.udid != dev.udid {
                        // Another phone: listed under the card, one switch away.
                        self.others.retain(|o| o.udid != dev.udid);
                        self.others.push(dev);
                        return Task::none();
                    }
                }
                self.others.retain(|o| o.udid != dev.udid);
                if matches!(self.sync, SyncState::Interrupted { .. }) {
                    self.sync = SyncState::Idle;
                    self.resume = self.shown.as_deref() == Some(dev.udid.as_str());
                }
                self.show_phone(dev)
            }
            Message::Device(DeviceUpdate::Detached(id)) => {
                self.others.retain(|o| o.device_id != id);
                if self.device().is_some_and(|d| d.device_id == id) {
                    self.phone = PhoneState::Waiting;
                    if let SyncState::Running { .. } = self.sync {
                        self.sync = SyncState::Interrupted {
                            message: "The iPhone was disconnected. Plug it back in to continue — \
                                      nothing already copied is lost."
                                .into(),
                        };
                    } else if !self.others.is_empty() {
                        // The shown phone left; another is still connected: show that one.
                        let next = self.others.remove(0);
                        self.sync = SyncState::Idle;
                        return self.show_phone(next);
                    }
                }
                Task::none()
            }
            Message::SwitchPhone(udid) => {
                if matches!(
                    self.sync,
                    SyncState::Running { .. } | SyncState::WaitingForFolder { .. }
                ) || matches!(
                    &self.phone,
                    PhoneState::Connected {
                        trust: TrustState::Pairing(_),
                        ..
                    }
                ) {
                    return Task::none(); // finish or cancel the current work first
                }
                let Some(i) = self.others.iter().position(|o| o.udid == udid) else {
                    return Task::none();
                };
                let next = self.others.remove(i);
                if let Some(cur) = self.device().cloned() {
                    self.others.insert(0, cur);
                }
                self.sync = SyncState::Idle;
                self.show_phone(next)
            }
            Message::Device(DeviceUpdate::MuxUp) => {
                if matches!(self.phone, PhoneState::NoUsbmuxd(_)) {
                    self.phone = PhoneState::Waiting;
                }
                Task::none()
            }
            Message::Device(DeviceUpdate::MuxDown(f)) => {
                if !matches!(self.phone, PhoneState::Connected { .. }) {
                    self.phone = PhoneState::NoUsbmuxd(f);
                }
                Task::none()
            }
            Message::Inspected(id, result) => {
                let PhoneState::Connected { dev, facts, trust } = &mut self.phone else {
                    return Task::none();
                };
                if dev.device_id != id {
                    return Task::none();
                }
                match result {
                    Ok((f, t)) => {
                        *facts = Some(f);
                        *trust = match t {
                            work::Trust::Trusted => TrustState::Trusted,
                            work::Trust::Not(f) => TrustState::NotTrusted(f),
                        };
                    }
                    Err(f) => *trust = TrustState::NotTrusted(f),
                }
                if matches!(trust, TrustState::Trusted) {
                    self.survey()
                } else {
                    Task::none()
                }
            }
            Message::Pair => {
                let Some(dev) = self.device().cloned() else {
                    return Task::none();
                };
                if let PhoneState::Connected { trust, .. } = &mut self.phone {
                    *trust =
                        TrustState::Pairing("Asking the iPhone to trust this computer…".into());
                }
                let cancel = CancellationToken::new();
                self.cancel = Some(cancel.clone());
                Task::run(work::pair(self.mux.clone(), dev, cancel), Message::Pairing)
            }
            Message::Pairing(PairUpdate::Step(s)) => {
                if let PhoneState::Connected { trust, .. } = &mut self.phone {
                    *trust = TrustState::Pairing(s);
                }
                Task::none()
            }
            Message::Pairing(PairUpdate::Done(r)) => {
                self.cancel = None;
                let Some(dev) = self.device().cloned() else {
                    return Task::none();
                };
                match r {
                    Ok(()) => {
                        let id = dev.device_id;
                        if let PhoneState::Connected { trust, .. } = &mut self.phone {
                            *trust = TrustState::Checking;
                        }
                        Task::perform(work::inspect(self.mux.clone(), dev), move |r| {
                            Message::Inspected(id, r)
                        })
                    }
                    Err(f) => {
                        if let PhoneState::Connected { trust, .. } = &mut self.phone {
                            *trust = TrustState::NotTrusted(f);
                        }
                        Task::none()
                    }
                }
            }
            Message::Surveyed(r) => {
                self.library_refreshing = false;
                self.library = match r {
                    Ok(s) => LibraryState::Ready(Box::new(s)),
                    Err(f) => LibraryState::Failed(f),
                };
                if self.resume && self.can_sync() && matches!(self.sync, SyncState::Idle) {
                    // Replugged after an interrupted run: carry on where it stopped (the plan
                    // is what is still missing from the backup).
                    self.resume = false;
                    return self.handle(Message::Sync);
                }
                Task::none()
            }
            Message::Rescan => self.survey(),
            Message::Remembered(p) => match p {
                Some(p) if self.dest.path_input.is_empty() => {
                    self.dest.path_input = p.display().to_string();
                    self.dest.checking = true;
                    Task::perform(work::inspect_dest(p), Message::DestInspected)
                }
                _ => Task::none(),
            },
            Message::Dest(m) => match self.dest.update(m) {
                destination::Action::None => Task::none(),
                destination::Action::Inspect(p) => {
                    Task::perform(work::inspect_dest(p), Message::DestInspected)
                }
                destination::Action::Init(p) => {
                    Task::perform(work::init_dest(p), Message::DestInspected)
                }
                destination::Action::Choose(start) => {
                    Task::perform(work::choose_folder(start), |p| {
                        Message::Dest(destination::Message::Chosen(p))
                    })
                }
            },
            Message::DestInspected(r) => {
                self.dest.checking = false;
                let ready = matches!(&r, Ok(i) if i.initialised);
                let remember = r
                    .as_ref()
                    .ok()
                    .filter(|i| i.initialised)
                    .map(|i| i.path.clone());
                self.dest.info = Some(r);
                let mut tasks = Vec::new();
                if let Some(p) = remember {
                    tasks.push(Task::perform(work::remember_dest(p), |_| Message::Noop));
                }
                if ready
                    && matches!(
                        self.library,
                        LibraryState::Ready(_) | LibraryState::Failed(_)
                    )
                {
                    tasks.push(self.survey());
                }
                Task::batch(tasks)
            }
            Message::Sync => {
                if !self.can_sync() {
                    return Task::none();
                }
                let (Some(dev), Some(dest)) = (self.device().cloned(), self.dest.ready()) else {
                    return Task::none();
                };
                let cancel = CancellationToken::new();
                self.cancel = Some(cancel.clone());
                if let Some(Ok(work::DestInfo {
                    busy: Some(holder), ..
                })) = &self.dest.info
                {
                    self.sync = SyncState::WaitingForFolder {
                        holder: holder.clone(),
                    };
                    return Task::perform(work::wait_for_dest(dest, cancel), Message::DestFree);
                }
                self.sync = SyncState::Running {
                    phase: "Starting".into(),
                    progress: None,
                    planned: None,
                    failures: 0,
                };
                Task::batch([
                    Task::run(
                        work::sync(self.mux.clone(), dev, dest, cancel),
                        Message::Syncing,
                    ),
                    // Bring the progress into view (the window may be scrolled to the top).
                    iced::widget::operation::snap_to_end(SCROLL),
                ])
            }
            Message::Cancel => {
                self.resume = false;
                if let Some(c) = self.cancel.take() {
                    c.cancel();
                }
                Task::none()
            }
            Message::Syncing(u) => {
                let ended = self.sync.apply(u);
                if !ended {
                    return Task::none();
                }
                self.cancel = None;
                if let SyncState::Failed(f) = &self.sync {
                    if f.kind == "busy" {
                        // Another run took the folder between the check and the start: wait.
                        let holder = f.message.clone();
                        if let Some(dest) = self.dest.ready() {
                            let cancel = CancellationToken::new();
                            self.cancel = Some(cancel.clone());
                            self.sync = SyncState::WaitingForFolder { holder };
                            return Task::perform(
                                work::wait_for_dest(dest, cancel),
                                Message::DestFree,
                            );
                        }
                    }
                }
                if let SyncState::Done { report, .. } = &self.sync {
                    // Pure computation on the report: which iCloud-only originals fit the phone.
                    self.fetch_plan = Some(ferry_sync::fetchplan::build(
                        &report.udid,
                        report.phone_name.clone(),
                        report.finished_at.clone(),
                        report.icloud_only.clone(),
                        report.phone_free_bytes.unwrap_or(0),
                        ferry_sync::fetchplan::margin_for(None),
                    ));
                }
                let mut tasks = vec![self.survey(), iced::widget::operation::snap_to_end(SCROLL)];
                if let (Some(dest), Some(dev)) = (self.dest.ready(), self.device()) {
                    tasks.push(Task::perform(
                        work::history(dest, dev.udid.clone(), 5),
                        Message::History,
                    ));
                }
                Task::batch(tasks)
            }
            Message::OpenFolder => match self.dest.ready() {
                Some(p) => Task::perform(work::open_folder(p), |_| Message::Noop),
                None => Task::none(),
            },
            Message::Noop => Task::none(),
            Message::DestFree(r) => {
                if !matches!(self.sync, SyncState::WaitingForFolder { .. }) {
                    return Task::none();
                }
                self.cancel = None;
                self.sync = SyncState::Idle;
                if let Some(Ok(i)) = &mut self.dest.info {
                    i.busy = None;
                }
                match r {
                    Ok(()) => self.handle(Message::Sync),
                    Err(_) => Task::none(),
                }
            }
            Message::Key(k) => self.shortcut(k),
            Message::Frame => {
                let Some(p) = &mut self.shot_pending else {
                    return Task::none();
                };
                p.frames = p.frames.saturating_add(1);
                if p.frames != SHOT_FRAMES {
                    return Task::none();
                }
                let stage = p.stage;
                let Some(dir) = self.shots.clone() else {
                    return Task::none();
                };
                let n = self.shots_taken.len() + 1;
                let path = dir.join(format!("{n:02}-{}.png", stage.as_str()));
                iced::window::latest()
                    .and_then(iced::window::screenshot)
                    .then(move |shot| {
                        Task::perform(work::save_screenshot(shot, path.clone()), move |r| {
                            Message::ShotSaved(stage, r)
                        })
                    })
            }
            Message::Step => {
                self.steps += 1;
                Task::none()
            }
            Message::ToggleSettings => {
                self.show_settings = !self.show_settings;
                Task::none()
            }
            Message::ShotSaved(stage, r) => {
                self.shots_taken.push(stage);
                if self.shot_pending.as_ref().is_some_and(|p| p.stage == stage) {
                    self.shot_pending = None;
                }
                say(match &r {
                    Ok(p) => format!("ferry-app: screenshot {}", p.display()),
                    Err(f) => format!("ferry-app: no screenshot: {} — {}", f.message, f.hint),
                })
            }
            Message::Settings(m) => match self.settings.update(m) {
                settings::Action::None => Task::none(),
                settings::Action::Appearance(a) => {
                    Task::perform(work::save_appearance(a), |_| Message::Noop)
                }
                settings::Action::Apply(req) => Task::perform(
                    work::apply_settings(
                        req,
                        self.device().map(|d| d.udid.clone()),
                        self.dest.ready(),
                    ),
                    Message::SettingsApplied,
                ),
            },
            Message::SettingsLoaded(s) => {
                self.settings = *s;
                Task::none()
            }
            Message::SettingsApplied(r) => {
                self.settings.applying = false;
                self.settings.status = Some(match r {
                    Ok(t) => t.trim().to_string(),
                    Err(f) => format!("{} — {}", f.message, f.hint),
                });
                Task::none()
            }
            Message::History(h) => {
                self.history = h;
                Task::none()
            }
        }
    }

    /// Draws the window.
    pub fn view(&self) -> Element<'_, Message> {
        let content = column![
            text("Ferry").size(26),
            phone::view(&self.phone),
            self.others_view(),
            rule::horizontal(1),
            library::view(&self.library, self.library_refreshing),
            rule::horizontal(1),
            self.dest.view().map(Message::Dest),
            rule::horizontal(1),
            backup::view(&self.sync, self.can_sync()),
            backup::plan_view(self.fetch_plan.as_ref()),
            backup::history_view(&self.history),
            rule::horizontal(1),
            self.settings_view(),
            text(
                "Keys: Enter — the highlighted step · Esc — cancel · Ctrl+O — choose folder · \
                 Ctrl+R — read the library again · Ctrl+Shift+O — open backup folder · Tab — \
                 next field"
            )
            .size(12),
        ]
        .spacing(14)
        .padding(20);
        container(scrollable(content).id(SCROLL))
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }

    /// Settings, behind a button.
    fn settings_view(&self) -> Element<'_, Message> {
        if self.show_settings {
            column![
                button("Hide settings").on_press(Message::ToggleSettings),
                self.settings.view().map(Message::Settings),
            ]
            .spacing(8)
            .into()
        } else {
            button("Settings…").on_press(Message::ToggleSettings).into()
        }
    }

    /// The other connected phones, each with a switch.
    fn others_view(&self) -> Element<'_, Message> {
        if self.others.is_empty() {
            return column![].into();
        }
        let busy = matches!(
            self.sync,
            SyncState::Running { .. } | SyncState::WaitingForFolder { .. }
        );
        let mut col = column![text(format!(
            "{} more iPhone(s) connected{}:",
            self.others.len(),
            if busy {
                " (switch when this backup has finished)"
            } else {
                ""
            }
        ))]
        .spacing(4);
        for o in &self.others {
            col = col.push(
                row![
                    text(format!("iPhone {}", o.udid)).size(13),
                    button("Show this iPhone")
                        .on_press_maybe((!busy).then(|| Message::SwitchPhone(o.udid.clone()))),
                ]
                .spacing(8),
            );
        }
        col.into()
    }

    /// The phone watcher runs for the app's whole life; keys are always listened to; frames
    /// only while a screenshot waits for its stage to be drawn.
    pub fn subscription(&self) -> Subscription<Message> {
        let mut subs = vec![
            Subscription::run_with(self.mux.clone(), work::watch_devices).map(Message::Device),
            keyboard::listen().filter_map(key_message),
        ];
        if self.shot_pending.is_some() {
            subs.push(iced::window::frames().map(|_| Message::Frame));
        }
        if self.step {
            subs.push(Subscription::run(work::stdin_lines).map(|_| Message::Step));
        }
        Subscription::batch(subs)
    }

    /// The colours: the user's choice, or `None` to follow the system's light/dark setting
    /// (iced reads it: the XDG settings portal on Linux, the window's appearance on macOS).
    pub fn theme(&self) -> Option<Theme> {
        match self.settings.appearance {
            ferry_config::Appearance::System => None,
            ferry_config::Appearance::Light => Some(Theme::Light),
            ferry_config::Appearance::Dark => Some(Theme::Dark),
        }
    }
}

/// The iced program (shared by `main` and the tests).
pub fn run() -> iced::Result {
    iced::application(App::boot, App::update, App::view)
        .title("Ferry — iPhone photo backup")
        .subscription(App::subscription)
        .theme(App::theme)
        .window_size((760.0, 820.0))
        .run()
}
