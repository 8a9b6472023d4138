//! `ferry-app`: the desktop face of Ferry (iced 0.14). Plug in the phone, press Sync.
//!
//! A thin front end over the core crates: all device, disk and database work runs in
//! [`work`] as Tasks and Subscriptions; [`App::update`] only changes state and starts work;
//! [`App::view`] only draws. The window shows, top to bottom: the phone (and its trust state),
//! the library at a glance, the backup folder, and the backup itself (button, progress,
//! result). Each part has its state and view in its own module.

pub mod backup;
pub mod destination;
pub mod library;
pub mod phone;
pub mod settings;
pub mod work;

use std::path::PathBuf;

use iced::widget::{column, container, rule, scrollable, text};
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

/// Everything the app knows.
#[derive(Debug)]
pub struct App {
    /// Where usbmuxd is (the device subscription's identity).
    pub mux: MuxKey,
    /// The phone.
    pub phone: PhoneState,
    /// The library summary.
    pub library: LibraryState,
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
    /// Cancels pairing or a sync.
    cancel: Option<CancellationToken>,
    /// Dark theme.
    pub dark: bool,
    /// Press the primary button of every state by itself (`FERRY_APP_AUTOPILOT=1`): for the
    /// end-to-end script under Xvfb; the same Messages a click would send.
    pub autopilot: bool,
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
    /// Light/dark.
    ToggleTheme,
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
            dest: DestState::default(),
            sync: SyncState::Idle,
            settings: settings::Settings::default(),
            fetch_plan: None,
            history: Vec::new(),
            cancel: None,
            dark: false,
            autopilot: false,
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
        let settings = Task::perform(work::load_settings(None), |s| {
            Message::SettingsLoaded(Box::new(s))
        });
        (app, Task::batch([first, settings]))
    }

    /// What the autopilot would press now: Trust, "Set up this folder", Sync — each once the
    /// state offers it.
    pub fn autopilot_next(&self) -> Option<Message> {
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
            if !i.initialised && !self.dest.checking {
                return Some(Message::Dest(destination::Message::Init));
            }
        }
        if self.can_sync()
            && matches!(self.library, LibraryState::Ready(_))
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

    fn survey(&mut self) -> Task<Message> {
        let Some(dev) = self.device().cloned() else {
            return Task::none();
        };
        self.library = LibraryState::Scanning;
        Task::perform(
            work::survey(self.mux.clone(), dev, self.dest.ready()),
            Message::Surveyed,
        )
    }

    /// Handles one message. Never blocks: work is returned as a Task.
    pub fn update(&mut self, message: Message) -> Task<Message> {
        let task = self.handle(message);
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
                        return Task::none(); // one phone at a time: keep the first
                    }
                }
                let id = dev.device_id;
                self.phone = PhoneState::Connected {
                    dev: dev.clone(),
                    facts: None,
                    trust: TrustState::Checking,
                };
                let resume = matches!(self.sync, SyncState::Interrupted { .. });
                let inspect = Task::perform(work::inspect(self.mux.clone(), dev), move |r| {
                    Message::Inspected(id, r)
                });
                if resume {
                    self.sync = SyncState::Idle;
                }
                inspect
            }
            Message::Device(DeviceUpdate::Detached(id)) => {
                if self.device().is_some_and(|d| d.device_id == id) {
                    self.phone = PhoneState::Waiting;
                    if let SyncState::Running { .. } = self.sync {
                        self.sync = SyncState::Interrupted {
                            message: "The iPhone was disconnected. Plug it back in to continue — \
                                      nothing already copied is lost."
                                .into(),
                        };
                    }
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
                self.library = match r {
                    Ok(s) => LibraryState::Ready(Box::new(s)),
                    Err(f) => LibraryState::Failed(f),
                };
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
                self.sync = SyncState::Running {
                    phase: "Starting".into(),
                    progress: None,
                    planned: None,
                    failures: 0,
                };
                Task::run(
                    work::sync(self.mux.clone(), dev, dest, cancel),
                    Message::Syncing,
                )
            }
            Message::Cancel => {
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
                let mut tasks = vec![self.survey()];
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
            Message::ToggleTheme => {
                self.dark = !self.dark;
                self.settings.dark = self.dark;
                Task::none()
            }
            Message::Settings(m) => match self.settings.update(m) {
                settings::Action::None => Task::none(),
                settings::Action::Dark(b) => {
                    self.dark = b;
                    Task::none()
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
                let dark = self.settings.dark;
                self.settings = *s;
                self.settings.dark = dark;
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
            rule::horizontal(1),
            library::view(&self.library),
            rule::horizontal(1),
            self.dest.view().map(Message::Dest),
            rule::horizontal(1),
            backup::view(&self.sync, self.can_sync()),
            backup::plan_view(self.fetch_plan.as_ref()),
            backup::history_view(&self.history),
            rule::horizontal(1),
            self.settings.view().map(Message::Settings),
        ]
        .spacing(14)
        .padding(20);
        container(scrollable(content))
            .width(Length::Fill)
            .height(Length::Fill)
            .into()
    }

    /// The phone watcher runs for the app's whole life.
    pub fn subscription(&self) -> Subscription<Message> {
        Subscription::run_with(self.mux.clone(), work::watch_devices).map(Message::Device)
    }

    /// Light or dark.
    pub fn theme(&self) -> Theme {
        if self.dark {
            Theme::Dark
        } else {
            Theme::Light
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
