//! `ferry-config`: Ferry's own files on this computer and the unattended schedule.
//!
//! - [`dirs`] — where the config file and the logs live (pure functions of an [`Os`] and an
//!   environment lookup, so both platforms are tested everywhere).
//! - [`config`] — `config.toml`: destinations, per-phone choices, `ferry watch` and nightly
//!   settings; loading with warnings for unknown keys, atomic saving, and the effective view
//!   that `ferry config` prints.
//! - [`schedule`] — the nightly mirror: systemd user units on Linux, a launchd agent on macOS;
//!   install / remove / status through a [`schedule::SystemCtl`] seam, and the last-run report.
//!
//! Nothing here touches a terminal or a window. The only `cfg(target_os)` choices are
//! [`Os::current`] and the real-environment helpers; everything else takes an [`Os`] value.
#![deny(missing_docs)]

pub mod atomic;
pub mod config;
pub mod dirs;
pub mod schedule;
mod spans;

pub use config::{
    AppConfig, Appearance, Config, ConfigError, Effective, Loaded, PhoneConfig, TimeOfDay,
};
pub use dirs::{config_dir, config_dir_for, config_file_for, state_dir, state_dir_for};

/// The platforms Ferry's files and schedules are laid out for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Os {
    /// Linux (and other Unix that follow the XDG base directories and run systemd).
    Linux,
    /// macOS: `~/Library`, launchd.
    MacOs,
}

impl Os {
    /// The OS this program was built for (anything that is not macOS is treated as Linux).
    pub fn current() -> Os {
        if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}

impl std::fmt::Display for Os {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Os::Linux => "Linux",
            Os::MacOs => "macOS",
        })
    }
}

/// An environment lookup: `HOME`, `XDG_CONFIG_HOME`, … → value. Tests pass a closure over a
/// fixed list; [`real_env`] reads the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Reads a variable from this process's environment (non-UTF-8 values count as unset).
pub fn real_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}
