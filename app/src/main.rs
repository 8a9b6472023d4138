//! `ferry-app`: starts the desktop app (see `ferry_app`). `ferry-app --demo` first starts a
//! simulated iPhone with a sample library in this process (as `ferry demo` does) and points the
//! app at it, with the backup folder `./ferry-demo`.

use std::path::PathBuf;

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let demo = std::env::args().any(|a| a == "--demo");
    // Keeps the simulated phone (and its runtime and files) alive while the window is open.
    let _demo = if demo {
        match start_demo() {
            Ok(d) => Some(d),
            Err(e) => {
                eprintln!("error: cannot start the demo phone: {e:#}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    match ferry_app::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

struct Demo {
    _rt: tokio::runtime::Runtime,
    _sim: ferry_sim::sim::Simulator,
    _work: tempfile::TempDir,
}

fn start_demo() -> anyhow::Result<Demo> {
    let work = tempfile::Builder::new()
        .prefix("ferry-app-demo-")
        .tempdir()?;
    let image = work.path().join("phone");
    let mut g = ferry_phonegen::MakePhoneArgs::new(&image);
    g.assets = 120;
    g.seed = 7;
    g.name = Some("Demo iPhone".into());
    ferry_phonegen::run(&g)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let sim = rt.block_on(ferry_sim::sim::Simulator::start(
        ferry_sim::sim::SimConfig {
            phones: vec![ferry_sim::sim::PhoneConfig::new(&image)],
            listen: "127.0.0.1:0".parse()?,
            state: Some(work.path().join("sim")),
        },
    ))?;
    let dest = std::env::current_dir()?.join("ferry-demo");
    std::fs::create_dir_all(&dest)?;
    // Single-threaded here: nothing else reads the environment yet.
    std::env::set_var("USBMUXD_SOCKET_ADDRESS", sim.addr().to_string());
    std::env::set_var("FERRY_DATA_DIR", work.path().join("data"));
    std::env::set_var("FERRY_CACHE_DIR", work.path().join("cache"));
    std::env::set_var(ferry_app::DEST_ENV, PathBuf::from(&dest));
    eprintln!(
        "Demo iPhone served on {} (USBMUXD_SOCKET_ADDRESS); backups go to {}",
        sim.addr(),
        dest.display()
    );
    Ok(Demo {
        _rt: rt,
        _sim: sim,
        _work: work,
    })
}
