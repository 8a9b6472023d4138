//! `ferry-sim`: serve simulated iPhones to real clients, and control them while they run.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ferry_sim::control::{self, Command};
use ferry_sim::{LinkProfile, PhoneConfig, SimConfig, Simulator, TrustMode};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "ferry-sim",
    version,
    about = "A simulated iPhone for testing Ferry and other iOS clients"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve phones over a usbmuxd socket on loopback TCP.
    ///
    /// Prints one line `USBMUXD_SOCKET_ADDRESS=127.0.0.1:PORT` on stdout when ready; logs go
    /// to stderr (RUST_LOG sets the level). Stops cleanly on SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Write a synthetic phone image (device.toml + Media/ with Photos.sqlite) and its
    /// ground truth (expected.json).
    MakePhone(ferry_phonegen::MakePhoneArgs),
    /// Download iCloud-only originals onto the phone, as iOS does when the user opens them
    /// (writes the files, marks them local in Photos.sqlite through the WAL, lowers
    /// free_bytes, updates expected.json). Exit status 3: some assets did not fit.
    Fetch(FetchArgs),
    /// Purge originals that are in iCloud ("Optimize iPhone Storage"): deletes the files
    /// (Metadata derivatives and thumbnails stay), marks them iCloud-only, raises free_bytes,
    /// updates expected.json. Originals that exist only on this phone are never purged.
    Offload(SelectArgs),
    /// Send a command to a running simulator's control socket.
    Ctl {
        /// The control socket given to `serve --control`.
        #[arg(long)]
        control: PathBuf,
        #[command(subcommand)]
        cmd: CtlCmd,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// A phone image directory (device.toml + Media/). Repeat for several phones.
    #[arg(long = "phone", required = true)]
    phones: Vec<PathBuf>,
    /// Where usbmuxd listens. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// State directory (device keys, trust lists, usbmuxd pair records, BUID).
    /// Default: `.ferry-sim/` inside each image.
    #[arg(long)]
    state: Option<PathBuf>,
    /// How the "Trust this computer?" dialog is answered: auto, after:N, deny, locked.
    #[arg(long, default_value = "auto")]
    trust: TrustMode,
    /// The phone has forgotten every host it trusted (hosts keep their pair records), so
    /// StartSession fails with InvalidHostID.
    #[arg(long)]
    revoke: bool,
    /// Link profile: usb2, usb3 or unlimited.
    #[arg(long, default_value = "unlimited")]
    link: LinkProfile,
    /// UNIX socket for runtime control (`ferry-sim ctl`).
    #[arg(long)]
    control: Option<PathBuf>,
    /// Start with the cable out: the phones appear on `ferry-sim ctl replug` (needs --control).
    #[arg(long, requires = "control")]
    unplugged: bool,
    /// Unplug the phone after this many AFC payload bytes (mid-transfer).
    #[arg(long)]
    unplug_after_bytes: Option<u64>,
    /// Stop answering after this many AFC payload bytes (until `ctl unstall`).
    #[arg(long)]
    stall_after_bytes: Option<u64>,
    /// An AFC path that vanishes once its directory was listed (a race with the Photos app).
    #[arg(long)]
    vanish: Vec<String>,
}

/// Which assets `fetch` / `offload` apply to (exactly one of the selectors).
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["all", "count", "uuid", "before"])))]
struct SelectArgs {
    /// The phone image (device.toml, Media/, expected.json); it may be served meanwhile.
    #[arg(long)]
    phone: PathBuf,
    /// Every eligible asset (oldest capture date first).
    #[arg(long)]
    all: bool,
    /// The N eligible assets with the oldest capture dates (what a user scrolling back from
    /// the start of the library would trigger); assets without a date come last.
    #[arg(long, value_name = "N")]
    count: Option<usize>,
    /// Exactly these assets (ZUUID); an unknown UUID is an error and changes nothing.
    #[arg(long, value_name = "UUID", num_args = 1..)]
    uuid: Vec<String>,
    /// Eligible assets captured before this day (UTC), YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    before: Option<String>,
    /// Print one JSON object (assets, files, bytes, not_fitting_count, skipped, free bytes)
    /// instead of a sentence.
    #[arg(long)]
    json: bool,
}

impl SelectArgs {
    fn selection(&self) -> ferry_sim::storage::Selection {
        use ferry_sim::storage::Selection;
        if let Some(n) = self.count {
            Selection::Count(n)
        } else if !self.uuid.is_empty() {
            Selection::Uuids(self.uuid.clone())
        } else if let Some(d) = &self.before {
            Selection::Before(d.clone())
        } else {
            Selection::All
        }
    }
}

#[derive(clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    select: SelectArgs,
    /// Write each file progressively under its final name at this many MB/s (10^6 bytes),
    /// as a download in progress looks to a client; the database row changes only once the
    /// asset's files are complete. Default: each file appears whole at once.
    #[arg(long, value_name = "MB/s")]
    rate: Option<f64>,
}

fn storage_main(
    select: &SelectArgs,
    run: impl FnOnce() -> anyhow::Result<ferry_sim::storage::Report>,
) -> std::process::ExitCode {
    match run() {
        Ok(report) => {
            if select.json {
                match serde_json::to_string(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("ferry-sim: {e}");
                        return std::process::ExitCode::FAILURE;
                    }
                }
            } else {
                println!("{}", report.summary());
            }
            std::process::ExitCode::from(report.exit_code())
        }
        Err(e) => {
            eprintln!("ferry-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[derive(Subcommand)]
enum CtlCmd {
    /// Unplug the phone.
    Unplug {
        #[arg(long)]
        udid: Option<String>,
    },
    /// Plug the phone back in (a new DeviceID).
    Replug {
        #[arg(long)]
        udid: Option<String>,
    },
    /// The phone stops answering.
    Stall {
        #[arg(long)]
        udid: Option<String>,
    },
    /// The phone answers again.
    Unstall {
        #[arg(long)]
        udid: Option<String>,
    },
    /// The user resets trust on the phone.
    Revoke {
        #[arg(long)]
        udid: Option<String>,
    },
    /// Change how the trust dialog is answered.
    Trust {
        mode: String,
        #[arg(long)]
        udid: Option<String>,
    },
    /// Unplug after N more AFC payload bytes.
    UnplugAfter {
        bytes: u64,
        #[arg(long)]
        udid: Option<String>,
    },
    /// Stop answering after N more AFC payload bytes (until `unstall`).
    StallAfter {
        bytes: u64,
        #[arg(long)]
        udid: Option<String>,
    },
    /// Print every phone's state as JSON.
    Status,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cmd = match cli.cmd {
        Cmd::Fetch(a) => {
            return storage_main(&a.select, || {
                ferry_sim::storage::fetch(&ferry_sim::storage::FetchOptions {
                    image: a.select.phone.clone(),
                    selection: a.select.selection(),
                    rate_mb_s: a.rate,
                })
            })
        }
        Cmd::Offload(a) => {
            return storage_main(&a, || {
                ferry_sim::storage::offload(&ferry_sim::storage::OffloadOptions {
                    image: a.phone.clone(),
                    selection: a.selection(),
                })
            })
        }
        c => c,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry-sim: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async move {
        match cmd {
            Cmd::Serve(a) => serve(a).await,
            Cmd::Fetch(_) | Cmd::Offload(_) => Ok(()),
            Cmd::Ctl { control, cmd } => ctl(control, cmd).await,
            Cmd::MakePhone(a) => tokio::task::spawn_blocking(move || {
                let summary = ferry_phonegen::run(&a)?;
                println!("{summary}");
                Ok(())
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r),
        }
    });
    match r {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry-sim: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let phones = a
        .phones
        .iter()
        .map(|p| PhoneConfig {
            image: p.clone(),
            trust: a.trust,
            revoke: a.revoke,
            link: a.link,
            unplug_after_bytes: a.unplug_after_bytes,
            stall_after_bytes: a.stall_after_bytes,
            vanish: a.vanish.clone(),
            unplugged: a.unplugged,
        })
        .collect();
    let sim = Arc::new(
        Simulator::start(SimConfig {
            phones,
            listen: a.listen,
            state: a.state.clone(),
        })
        .await?,
    );
    let stop = CancellationToken::new();
    let ctl_task = a.control.clone().map(|path| {
        let sim = sim.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = control::serve(sim, &path, stop).await {
                tracing::error!("control socket {}: {e:#}", path.display());
            }
        })
    });
    // Signal handlers go in before the ready line: a supervisor may send SIGTERM as soon as
    // it has read it.
    let signals = Signals::install()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "USBMUXD_SOCKET_ADDRESS={}", sim.addr())?;
        out.flush()?;
    }
    tracing::info!("serving {} phone(s) on {}", sim.status().len(), sim.addr());
    signals.wait().await;
    tracing::info!("stopping");
    stop.cancel();
    if let Some(t) = ctl_task {
        let _ = t.await;
    }
    match Arc::try_unwrap(sim) {
        Ok(sim) => sim.shutdown().await,
        Err(_) => tracing::warn!("control connections still open at shutdown"),
    }
    Ok(())
}

/// SIGINT and SIGTERM, registered once.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

async fn ctl(path: PathBuf, cmd: CtlCmd) -> anyhow::Result<()> {
    let c = match cmd {
        CtlCmd::Unplug { udid } => Command::Unplug { udid },
        CtlCmd::Replug { udid } => Command::Replug { udid },
        CtlCmd::Stall { udid } => Command::Stall { udid },
        CtlCmd::Unstall { udid } => Command::Unstall { udid },
        CtlCmd::Revoke { udid } => Command::Revoke { udid },
        CtlCmd::Trust { mode, udid } => Command::Trust { mode, udid },
        CtlCmd::UnplugAfter { bytes, udid } => Command::UnplugAfter {
            bytes: Some(bytes),
            udid,
        },
        CtlCmd::StallAfter { bytes, udid } => Command::StallAfter {
            bytes: Some(bytes),
            udid,
        },
        CtlCmd::Status => Command::Status,
    };
    let reply = control::send(&path, &c).await?;
    println!("{}", serde_json::to_string(&reply)?);
    if reply.ok {
        Ok(())
    } else {
        anyhow::bail!(reply.error.unwrap_or_else(|| "command failed".into()))
    }
}
