//! Background work: everything that touches the phone, the drive or the config runs here, as
//! futures and streams that the iced runtime drives (Tasks and Subscriptions). Nothing in this
//! module knows about widgets; `update` only starts these and receives their messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_archive::{Archive, ArchiveOptions};
use ferry_device::{DeviceEvent, DeviceWatcher, ErrorKind, Mux, MuxAddress, Session, UsbDevice};
use ferry_sync::{Event, SyncOptions, SyncReport};
use futures::channel::mpsc;
use futures::{SinkExt, Stream, StreamExt};
use tokio_util::sync::CancellationToken;

/// Where usbmuxd is: the identity of the device subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MuxKey(pub String);

impl MuxKey {
    /// `USBMUXD_SOCKET_ADDRESS` or the platform default.
    pub fn from_env() -> MuxKey {
        MuxKey(std::env::var(ferry_device::addr::ENV_VAR).unwrap_or_default())
    }

    /// The client for this address.
    pub fn mux(&self) -> Result<Mux, Failure> {
        let value = (!self.0.is_empty()).then_some(self.0.as_str());
        ferry_device::addr::parse(value, ferry_device::addr::Os::current())
            .map(|a: MuxAddress| Mux::new(a, Duration::from_secs(30)))
            .map_err(Failure::from)
    }
}

/// An error as the app shows it: what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Stable kind (`not_paired`, `locked`, `busy`, …).
    pub kind: String,
    /// What happened.
    pub message: String,
    /// What to do.
    pub hint: String,
}

impl From<ferry_device::Error> for Failure {
    fn from(e: ferry_device::Error) -> Self {
        Failure {
            kind: format!("{:?}", e.kind()),
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

impl From<ferry_sync::SyncError> for Failure {
    fn from(e: ferry_sync::SyncError) -> Self {
        Failure {
            kind: e.stop_kind().to_string(),
            message: e.message(),
            hint: e.hint(),
        }
    }
}

impl From<ferry_archive::Error> for Failure {
    fn from(e: ferry_archive::Error) -> Self {
        ferry_sync::SyncError::Archive(e).into()
    }
}

/// What the device subscription reports.
#[derive(Debug, Clone)]
pub enum DeviceUpdate {
    /// A phone is connected.
    Attached(UsbDevice),
    /// A phone went away.
    Detached(u32),
    /// usbmuxd cannot be reached (not installed, not running): with what to do.
    MuxDown(Failure),
    /// usbmuxd answers (again).
    MuxUp,
}

/// Follows phones coming and going; retries usbmuxd every 2 s when it is not there.
pub fn watch_devices(key: &MuxKey) -> impl Stream<Item = DeviceUpdate> {
    let key = key.clone();
    iced::stream::channel(64, async move |mut out: mpsc::Sender<DeviceUpdate>| loop {
        match key.mux() {
            Ok(mux) => match DeviceWatcher::start(mux) {
                Ok((watcher, mut rx)) => {
                    while let Some(ev) = rx.recv().await {
                        let msg = match ev {
                            DeviceEvent::Listening => DeviceUpdate::MuxUp,
                            DeviceEvent::Attached(d) => DeviceUpdate::Attached(d),
                            DeviceEvent::Detached { device_id } => {
                                DeviceUpdate::Detached(device_id)
                            }
                            DeviceEvent::Ended(e) => {
                                let _ = out.send(DeviceUpdate::MuxDown(e.into())).await;
                                break;
                            }
                        };
                        if out.send(msg).await.is_err() {
                            return;
                        }
                    }
                    drop(watcher);
                }
                Err(e) => {
                    let _ = out
                        .send(DeviceUpdate::MuxDown(Failure {
                            kind: "internal".into(),
                            message: e.to_string(),
                            hint: "restart Ferry".into(),
                        }))
                        .await;
                }
            },
            Err(f) => {
                let _ = out.send(DeviceUpdate::MuxDown(f)).await;
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
}

/// What the device card shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhoneFacts {
    /// Name.
    pub name: Option<String>,
    /// Model identifier.
    pub model: Option<String>,
    /// iOS version.
    pub ios: Option<String>,
    /// Link speed, human.
    pub link: Option<String>,
    /// True when the link is USB 2 or slower.
    pub usb2: bool,
    /// Free space, when the phone trusts us.
    pub free_bytes: Option<u64>,
}

/// Whether the phone trusts this computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// A session opened.
    Trusted,
    /// Not trusted (yet): why and what to do.
    Not(Failure),
}

/// Reads the facts and checks trust (opens and closes one session).
pub async fn inspect(key: MuxKey, dev: UsbDevice) -> Result<(PhoneFacts, Trust), Failure> {
    let mux = key.mux()?;
    let f = ferry_device::facts(&mux, &dev).await?;
    let mut facts = PhoneFacts {
        name: f.name,
        model: f.model,
        ios: f.ios_version,
        link: f.link_speed,
        usb2: f.link_speed_bps.is_some_and(|b| b <= 480_000_000),
        free_bytes: None,
    };
    let trust = match Session::open(&mux, &dev).await {
        Ok(mut s) => {
            facts.free_bytes = s.disk_usage().await.ok().and_then(|u| u.free_bytes);
            Trust::Trusted
        }
        Err(e) if matches!(e.kind(), ErrorKind::Disconnected | ErrorKind::Timeout) => {
            return Err(e.into())
        }
        Err(e) => Trust::Not(e.into()),
    };
    Ok((facts, trust))
}

/// Pairing progress.
#[derive(Debug, Clone)]
pub enum PairUpdate {
    /// The instruction for the current step.
    Step(String),
    /// Finished.
    Done(Result<(), Failure>),
}

/// Pairs, reporting every step ("Unlock your iPhone and tap Trust…").
pub fn pair(
    key: MuxKey,
    dev: UsbDevice,
    cancel: CancellationToken,
) -> impl Stream<Item = PairUpdate> {
    iced::stream::channel(16, async move |mut out: mpsc::Sender<PairUpdate>| {
        let result = async {
            let mux = key.mux()?;
            let host = ferry_device::HostIdentity::load_or_create()?;
            let opts = ferry_device::PairOptions {
                cancel,
                ..ferry_device::PairOptions::default()
            };
            let mut tx = out.clone();
            ferry_device::pair(&mux, &dev, &host, &opts, move |s| {
                let _ = tx.try_send(PairUpdate::Step(s.message()));
            })
            .await
            .map(|_| ())
            .map_err(Failure::from)
        }
        .await;
        let _ = out.send(PairUpdate::Done(result)).await;
    })
}

/// The library at a glance (from a scan and the plan against the destination).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LibrarySummary {
    /// Assets in the library.
    pub assets: u64,
    /// Originals on the phone: assets, files, bytes.
    pub local_assets: u64,
    /// Files.
    pub local_files: u64,
    /// Bytes.
    pub local_bytes: u64,
    /// Of those, files only on this phone, and their bytes.
    pub only_here_files: u64,
    /// Bytes.
    pub only_here_bytes: u64,
    /// Originals only in iCloud: assets, files, bytes, date range.
    pub icloud_assets: u64,
    /// Files.
    pub icloud_files: u64,
    /// Bytes.
    pub icloud_bytes: u64,
    /// Oldest (date only).
    pub icloud_oldest: Option<String>,
    /// Newest.
    pub icloud_newest: Option<String>,
    /// Excluded per reason.
    pub excluded: BTreeMap<String, u64>,
    /// Files already in the backup (with a destination).
    pub already_archived: u64,
    /// Files new since the last backup.
    pub new_files: u64,
    /// Their bytes.
    pub new_bytes: u64,
}

impl LibrarySummary {
    /// Builds the summary from a survey.
    pub fn from_survey(s: &ferry_sync::Survey) -> LibrarySummary {
        let r = &s.scan;
        let day = |d: &Option<String>| d.as_deref().map(|x| x[..x.len().min(10)].to_string());
        LibrarySummary {
            assets: r.assets,
            local_assets: r.local_originals.assets,
            local_files: r.local_originals.files,
            local_bytes: r.local_originals.bytes,
            only_here_files: r.local_originals.only_on_this_phone.files,
            only_here_bytes: r.local_originals.only_on_this_phone.bytes,
            icloud_assets: r.icloud_only.assets,
            icloud_files: r.icloud_only.files,
            icloud_bytes: r.icloud_only.bytes,
            icloud_oldest: day(&r.icloud_only.oldest),
            icloud_newest: day(&r.icloud_only.newest),
            excluded: r.excluded.clone(),
            already_archived: s.plan.already_archived_files,
            new_files: s.plan.items.len() as u64,
            new_bytes: s.plan.items.iter().map(|i| i.spec.size).sum(),
        }
    }
}

/// Scans the phone and plans against `dest` (if it is a Ferry archive).
pub async fn survey(
    key: MuxKey,
    dev: UsbDevice,
    dest: Option<PathBuf>,
) -> Result<LibrarySummary, Failure> {
    let mux = key.mux()?;
    let archive = match dest {
        Some(d) => open_archive(d).await.ok(),
        None => None,
    };
    let opts = SyncOptions {
        cache_dir: ferry_device::paths::cache_dir(),
        ..SyncOptions::default()
    };
    let s = ferry_sync::survey(&mux, &dev, archive.as_ref(), &opts).await?;
    Ok(LibrarySummary::from_survey(&s))
}

/// Runs blocking disk work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Failure> + Send + 'static,
) -> Result<T, Failure> {
    tokio::task::spawn_blocking(f).await.map_err(|e| Failure {
        kind: "internal".into(),
        message: e.to_string(),
        hint: "try again".into(),
    })?
}

async fn open_archive(dest: PathBuf) -> Result<Archive, Failure> {
    blocking(move || Archive::open(&dest, ArchiveOptions::default()).map_err(Failure::from)).await
}

/// What the app knows about a chosen folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestInfo {
    /// The folder.
    pub path: PathBuf,
    /// Has a Ferry marker.
    pub initialised: bool,
    /// Free bytes.
    pub free_bytes: Option<u64>,
    /// File system name.
    pub fs: String,
    /// FAT32: files of 4 GiB or more cannot be stored.
    pub fat32: bool,
    /// Another Ferry run holds the folder right now: who ("pid 42 host nas since …").
    pub busy: Option<String>,
}

/// Looks at a folder (exists? marker? file system? free space? another Ferry run using it?).
pub async fn inspect_dest(path: PathBuf) -> Result<DestInfo, Failure> {
    blocking(move || inspect_dest_blocking(&path)).await
}

fn inspect_dest_blocking(path: &Path) -> Result<DestInfo, Failure> {
    if !path.is_dir() {
        return Err(Failure {
            kind: "destination".into(),
            message: format!("{} is not a folder that exists", path.display()),
            hint: "plug in and mount the backup drive, or choose another folder".into(),
        });
    }
    let kind = ferry_archive::fsinfo::detect(path).ok();
    let initialised = ferry_archive::Marker::read(path).is_ok();
    Ok(DestInfo {
        path: path.to_path_buf(),
        initialised,
        free_bytes: ferry_archive::fsinfo::available_bytes(path).ok(),
        fs: kind
            .map(|k| k.as_str().to_string())
            .unwrap_or_else(|| "unknown".into()),
        fat32: kind.is_some_and(|k| k.max_file_size().is_some()),
        busy: if initialised {
            ferry_archive::destination_holder(path)
        } else {
            None
        },
    })
}

/// Waits until no other Ferry run holds `dest` (checked every 2 s: the holder is another
/// process, whose lock release nothing announces). `Ok(())` when free, `Err` when cancelled.
pub async fn wait_for_dest(dest: PathBuf, cancel: CancellationToken) -> Result<(), Failure> {
    loop {
        let d = dest.clone();
        let held = tokio::task::spawn_blocking(move || ferry_archive::destination_holder(&d))
            .await
            .ok()
            .flatten();
        if held.is_none() {
            return Ok(());
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(Failure {
                kind: "cancelled".into(),
                message: "stopped waiting for the backup folder".into(),
                hint: "press Sync when the other run has finished".into(),
            }),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// The system's folder dialog (xdg-desktop-portal, else zenity, on Linux; the native panel on
/// macOS), starting in `start`. `Ok(None)` when the user cancels; `Err` when this system has
/// no dialog to show (the path field stays usable either way).
pub async fn choose_folder(start: Option<PathBuf>) -> Result<Option<PathBuf>, Failure> {
    if !dialog_available(
        std::env::var_os("DBUS_SESSION_BUS_ADDRESS").as_deref(),
        std::env::var_os("XDG_RUNTIME_DIR")
            .as_deref()
            .map(Path::new),
        std::env::var_os("PATH").as_deref(),
    ) {
        return Err(Failure {
            kind: "no_dialog".into(),
            message: "this system has no folder dialog (no desktop portal, no zenity)".into(),
            hint: "type the folder's full path and press Enter, or install xdg-desktop-portal \
                   or zenity"
                .into(),
        });
    }
    let mut d = rfd::AsyncFileDialog::new().set_title("Choose the backup folder");
    if let Some(s) = start.filter(|s| s.is_dir()) {
        d = d.set_directory(s);
    }
    Ok(d.pick_folder().await.map(|h| h.path().to_path_buf()))
}

/// Whether rfd can show a folder dialog here. On Linux it needs a D-Bus session bus (for the
/// xdg-desktop-portal) or `zenity` on `PATH`; macOS always has its panel.
pub fn dialog_available(
    bus_address: Option<&std::ffi::OsStr>,
    runtime_dir: Option<&Path>,
    path: Option<&std::ffi::OsStr>,
) -> bool {
    if cfg!(target_os = "macos") {
        return true;
    }
    let bus = bus_address.is_some_and(|a| !a.is_empty())
        || runtime_dir.is_some_and(|d| d.join("bus").exists());
    let zenity = path.is_some_and(|p| std::env::split_paths(p).any(|d| d.join("zenity").is_file()));
    bus || zenity
}

/// Sets a folder up as a Ferry archive.
pub async fn init_dest(path: PathBuf) -> Result<DestInfo, Failure> {
    let p = path.clone();
    blocking(move || Archive::init(&p).map(|_| ()).map_err(Failure::from)).await?;
    inspect_dest(path).await
}

/// Remembers the destination in the shared config (first in `destinations`).
pub async fn remember_dest(path: PathBuf) -> Result<(), Failure> {
    blocking(move || {
        let file = ferry_config::dirs::config_file().ok_or_else(|| Failure {
            kind: "config".into(),
            message: "no config directory (HOME is not set)".into(),
            hint: "set HOME".into(),
        })?;
        let mut loaded = ferry_config::config::load(&file).map_err(|e| Failure {
            kind: "config".into(),
            message: e.to_string(),
            hint: "fix the config file".into(),
        })?;
        let cfg = &mut loaded.config;
        cfg.destinations.retain(|d| d != &path);
        cfg.destinations.insert(0, path);
        ferry_config::config::save(cfg, &file).map_err(|e| Failure {
            kind: "config".into(),
            message: e.to_string(),
            hint: "check the config folder's permissions".into(),
        })
    })
    .await
}

/// The remembered destination, if any.
pub async fn remembered_dest() -> Option<PathBuf> {
    tokio::task::spawn_blocking(|| {
        let file = ferry_config::dirs::config_file()?;
        let l = ferry_config::config::load(&file).ok()?;
        l.config.default_destination().map(Path::to_path_buf)
    })
    .await
    .ok()
    .flatten()
}

/// Sync progress.
#[derive(Debug, Clone)]
pub enum SyncUpdate {
    /// An engine event.
    Event(Event),
    /// Finished: the report (also for a stopped run) or why nothing ran.
    Done(Result<(Box<SyncReport>, Option<Failure>), Failure>),
}

/// Runs one sync, streaming its events.
pub fn sync(
    key: MuxKey,
    dev: UsbDevice,
    dest: PathBuf,
    cancel: CancellationToken,
) -> impl Stream<Item = SyncUpdate> {
    iced::stream::channel(256, async move |mut out: mpsc::Sender<SyncUpdate>| {
        let (tx, mut rx) = futures::channel::mpsc::unbounded::<Event>();
        let run = async move {
            let mux = key.mux()?;
            let archive = open_archive(dest).await?;
            let opts = SyncOptions {
                cache_dir: ferry_device::paths::cache_dir(),
                cancel,
                ..SyncOptions::default()
            };
            let sink: ferry_sync::ProgressSink = std::sync::Arc::new(move |ev| {
                let _ = tx.unbounded_send(ev);
            });
            let r = ferry_sync::sync(&mux, &dev, &archive, &opts, sink).await?;
            Ok::<_, Failure>((Box::new(r.report), r.error.map(Failure::from)))
        };
        let mut run = std::pin::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(ev) = rx.next() => {
                    let _ = out.send(SyncUpdate::Event(ev)).await;
                }
            }
        };
        while let Ok(ev) = rx.try_recv() {
            let _ = out.send(SyncUpdate::Event(ev)).await;
        }
        let _ = out.send(SyncUpdate::Done(result)).await;
    })
}

/// Opens a folder in the platform's file manager.
pub async fn open_folder(path: PathBuf) -> Result<(), Failure> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    tokio::process::Command::new(program)
        .arg(&path)
        .status()
        .await
        .map(|_| ())
        .map_err(|e| Failure {
            kind: "local_io".into(),
            message: format!("cannot run {program}: {e}"),
            hint: format!("open {} yourself", path.display()),
        })
}

/// Reads the saved settings (config file and schedule) for phone `udid`.
pub async fn load_settings(udid: Option<String>) -> crate::settings::Settings {
    tokio::task::spawn_blocking(move || {
        let mut s = crate::settings::Settings::default();
        if let Some(file) = ferry_config::dirs::config_file() {
            if let Ok(l) = ferry_config::config::load(&file) {
                if let Some(at) = l.config.nightly.at {
                    s.nightly = true;
                    s.at = at.to_string();
                }
                s.on_plug = l.config.nightly.on_plug;
                s.appearance = l.config.app.appearance;
                if let Some(u) = &udid {
                    s.include_hidden = l.config.include_hidden_for(u);
                }
            }
        }
        s
    })
    .await
    .unwrap_or_default()
}

/// Saves the settings to the config file and installs or removes the nightly schedule (the
/// `ferry` command next to this app runs it). Returns what happened, for people.
pub async fn apply_settings(
    req: crate::settings::Request,
    udid: Option<String>,
    dest: Option<PathBuf>,
) -> Result<String, Failure> {
    blocking(move || apply_settings_blocking(&req, udid.as_deref(), dest)).await
}

fn cfg_err(e: impl std::fmt::Display) -> Failure {
    Failure {
        kind: "config".into(),
        message: e.to_string(),
        hint: "check the config file (`ferry config` shows it)".into(),
    }
}

fn apply_settings_blocking(
    req: &crate::settings::Request,
    udid: Option<&str>,
    dest: Option<PathBuf>,
) -> Result<String, Failure> {
    use ferry_config::schedule;
    let file = ferry_config::dirs::config_file().ok_or_else(|| cfg_err("HOME is not set"))?;
    let mut loaded = ferry_config::config::load(&file).map_err(cfg_err)?;
    let at: Option<ferry_config::TimeOfDay> = if req.nightly {
        Some(
            req.at
                .parse()
                .map_err(|e| cfg_err(format!("{:?}: {e}", req.at)))?,
        )
    } else {
        None
    };
    let cfg = &mut loaded.config;
    cfg.nightly.at = at;
    cfg.nightly.on_plug = req.on_plug;
    if let Some(u) = udid {
        cfg.phones.entry(u.to_string()).or_default().include_hidden = req.include_hidden;
    }
    ferry_config::config::save(cfg, &file).map_err(cfg_err)?;
    let platform = schedule::Platform::current().map_err(cfg_err)?;
    let ctl = schedule::RealSystemCtl;
    let outcome = match (at, dest) {
        (Some(at), Some(dest)) => {
            let ferry_bin = std::env::current_exe()
                .ok()
                .and_then(|p| p.parent().map(|d| d.join("ferry")))
                .filter(|p| p.is_file())
                .ok_or_else(|| Failure {
                    kind: "schedule".into(),
                    message: "the `ferry` command was not found next to this app".into(),
                    hint: "install Ferry completely (the app and the `ferry` command)".into(),
                })?;
            schedule::install(
                &schedule::InstallRequest {
                    ferry_bin,
                    dest,
                    at,
                    on_plug: req.on_plug,
                    wait: schedule::DEFAULT_WAIT,
                },
                &platform,
                &ctl,
            )
            .map(|r| r.to_string())
        }
        (Some(_), None) => {
            return Err(Failure {
                kind: "schedule".into(),
                message: "choose a backup folder first".into(),
                hint: "set the backup folder above, then apply again".into(),
            })
        }
        (None, _) => schedule::remove(&platform, &ctl).map(|r| r.to_string()),
    };
    outcome.map_err(|e| Failure {
        kind: "schedule".into(),
        message: e.to_string(),
        hint: "the settings were saved; see docs/nightly.md".into(),
    })
}

/// Remembers the app's colours in the config (`[app] appearance`).
pub async fn save_appearance(a: ferry_config::Appearance) -> Result<(), Failure> {
    blocking(move || {
        let file = ferry_config::dirs::config_file().ok_or_else(|| cfg_err("HOME is not set"))?;
        let mut loaded = ferry_config::config::load(&file).map_err(cfg_err)?;
        if loaded.config.app.appearance == a {
            return Ok(());
        }
        loaded.config.app.appearance = a;
        ferry_config::config::save(&loaded.config, &file).map_err(cfg_err)
    })
    .await
}

/// Saves a window screenshot as PNG (temp → rename, so a watcher never sees half a file).
pub async fn save_screenshot(
    shot: iced::window::Screenshot,
    path: PathBuf,
) -> Result<PathBuf, Failure> {
    blocking(move || {
        let fail = |e: &dyn std::fmt::Display| Failure {
            kind: "screenshot".into(),
            message: format!("cannot save {}: {e}", path.display()),
            hint: "check that the screenshot folder exists and is writable".into(),
        };
        let tmp = path.with_extension("png.tmp");
        let file = std::fs::File::create(&tmp).map_err(|e| fail(&e))?;
        let mut enc = png::Encoder::new(
            std::io::BufWriter::new(file),
            shot.size.width,
            shot.size.height,
        );
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| fail(&e))?;
        w.write_image_data(&shot.rgba).map_err(|e| fail(&e))?;
        w.finish().map_err(|e| fail(&e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail(&e))?;
        Ok(path)
    })
    .await
}

/// One item per line read from stdin, until it closes (the end-to-end script's "go on").
pub fn stdin_lines() -> impl Stream<Item = ()> {
    iced::stream::channel(4, async move |mut out: mpsc::Sender<()>| {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(_)) = lines.next_line().await {
            if out.send(()).await.is_err() {
                return;
            }
        }
    })
}

/// One past run, for the history list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastRun {
    /// When it finished.
    pub finished_at: String,
    /// `complete`, `incomplete`, `stopped`.
    pub outcome: String,
    /// Files copied.
    pub copied: u64,
}

/// The last runs of phone `udid` in `dest`, newest first (at most `max`).
pub async fn history(dest: PathBuf, udid: String, max: usize) -> Vec<PastRun> {
    tokio::task::spawn_blocking(move || {
        let mut out: Vec<PastRun> = ferry_archive::recent_reports(&dest, &udid, max)
            .into_iter()
            .filter_map(|b| serde_json::from_slice::<SyncReport>(&b).ok())
            .map(|r| PastRun {
                finished_at: r.finished_at.clone(),
                outcome: format!("{:?}", r.outcome).to_lowercase(),
                copied: r.files.copied,
            })
            .collect();
        out.truncate(max);
        out
    })
    .await
    .unwrap_or_default()
}
