//! `config.toml`: what the user chose, kept in the config dir (see [`crate::dirs`]).
//!
//! ```toml
//! destinations = ["/media/ana/Photos", "/mnt/nas/photos"]  # the first is the default
//!
//! [phones."00008030-001A2B3C4D5E802E"]
//! name = "Ana's iPhone"
//! include_hidden = true                # default true
//! destination = "/mnt/nas/ana"         # optional: overrides the default destination
//! schedule = "nightly"                 # optional: "nightly" | "on-plug" | "any" | "manual"
//!
//! [watch]
//! interval_seconds = 60                # default 60
//!
//! [nightly]
//! at = "02:30"                         # optional, 24-hour "HH:MM"
//! on_plug = false                      # default false
//!
//! [app]
//! appearance = "system"                # "system" (default) | "light" | "dark"
//! ```
//!
//! Loading never fails on keys it does not know: they become [`Warning`]s (a newer Ferry may
//! have written them, or they are typos the user should see). A value of the wrong type or out
//! of range is a [`ConfigError::Invalid`] naming the file, the line, the key and what to do.
//! A missing file is the defaults. Saving is atomic (temp → fsync → rename → fsync dir);
//! comments in a hand-edited file are not preserved by [`save`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::spans::{self, join_key};

/// Default seconds between `ferry watch` checks for a plugged-in phone.
pub const DEFAULT_WATCH_INTERVAL_SECONDS: u64 = 60;

/// Everything in `config.toml`. `Default` is what a missing file means.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Backup destinations (absolute paths); the first is the default.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "de_abs_paths"
    )]
    pub destinations: Vec<PathBuf>,
    /// Per-phone choices keyed by UDID.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub phones: BTreeMap<String, PhoneConfig>,
    /// `ferry watch` settings.
    pub watch: WatchConfig,
    /// The nightly mirror.
    pub nightly: NightlyConfig,
    /// The desktop app's own choices.
    pub app: AppConfig,
}

/// `[app]`: choices of the desktop app.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    /// Light or dark, or whatever the system uses.
    pub appearance: Appearance,
}

impl fmt::Display for Appearance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Appearance::System => "system",
            Appearance::Light => "light",
            Appearance::Dark => "dark",
        })
    }
}

/// The app's colours (`appearance = "…"` in `[app]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Appearance {
    /// Follow the system's light/dark setting (and its changes).
    #[default]
    System,
    /// Always light.
    Light,
    /// Always dark.
    Dark,
}

/// Choices for one phone (`[phones."UDID"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PhoneConfig {
    /// A name to show for this phone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Back up photos the user hid in Photos (default true).
    pub include_hidden: bool,
    /// Where this phone goes instead of the default destination.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de_opt_abs_path"
    )]
    pub destination: Option<PathBuf>,
    /// Which unattended runs may back this phone up; `None` follows `[nightly]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<PhoneSchedule>,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            name: None,
            include_hidden: true,
            destination: None,
            schedule: None,
        }
    }
}

/// A phone's unattended-backup choice (`schedule = "…"` in its table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhoneSchedule {
    /// Only the nightly run.
    Nightly,
    /// Only when plugged in (`ferry watch`).
    OnPlug,
    /// Both.
    Any,
    /// Never unattended: only an explicit `ferry sync`.
    Manual,
}

/// What started an unattended run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The nightly timer / launchd calendar interval.
    Nightly,
    /// `ferry watch` saw the phone plugged in.
    OnPlug,
}

impl PhoneSchedule {
    /// Whether a run started by `t` may back this phone up.
    pub fn allows(self, t: Trigger) -> bool {
        matches!(
            (self, t),
            (PhoneSchedule::Any, _)
                | (PhoneSchedule::Nightly, Trigger::Nightly)
                | (PhoneSchedule::OnPlug, Trigger::OnPlug)
        )
    }
}

/// `[watch]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WatchConfig {
    /// Seconds between checks for a plugged-in phone (≥ 1, default 60).
    #[serde(deserialize_with = "de_interval")]
    pub interval_seconds: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            interval_seconds: DEFAULT_WATCH_INTERVAL_SECONDS,
        }
    }
}

/// `[nightly]`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NightlyConfig {
    /// Local time of the nightly mirror; `None` = no nightly run chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<TimeOfDay>,
    /// Also back up whenever the phone is plugged in (`ferry watch`).
    pub on_plug: bool,
}

impl Config {
    /// The default destination (the first one), if any.
    pub fn default_destination(&self) -> Option<&Path> {
        self.destinations.first().map(PathBuf::as_path)
    }

    /// Where phone `udid` goes: its own override, else the default destination.
    pub fn destination_for(&self, udid: &str) -> Option<&Path> {
        self.phones
            .get(udid)
            .and_then(|p| p.destination.as_deref())
            .or_else(|| self.default_destination())
    }

    /// Whether hidden photos of `udid` are backed up (true unless the phone's table says no).
    pub fn include_hidden_for(&self, udid: &str) -> bool {
        self.phones.get(udid).is_none_or(|p| p.include_hidden)
    }

    /// Whether a run started by `t` may back up `udid`. A phone without its own `schedule`
    /// follows `[nightly]`: nightly runs always, on-plug runs when `nightly.on_plug` is set.
    pub fn phone_allows(&self, udid: &str, t: Trigger) -> bool {
        match self.phones.get(udid).and_then(|p| p.schedule) {
            Some(s) => s.allows(t),
            None => match t {
                Trigger::Nightly => true,
                Trigger::OnPlug => self.nightly.on_plug,
            },
        }
    }
}

/// A local time of day, written `"HH:MM"` (24-hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    /// `hour` 0–23, `minute` 0–59; `None` otherwise.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }
    /// 0–23.
    pub fn hour(self) -> u8 {
        self.hour
    }
    /// 0–59.
    pub fn minute(self) -> u8 {
        self.minute
    }
}

/// Why a time of day did not parse (message says what is expected).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a time of day: write it as 24-hour \"HH:MM\", e.g. \"02:30\"")]
pub struct BadTimeOfDay(pub String);

impl FromStr for TimeOfDay {
    type Err = BadTimeOfDay;
    fn from_str(s: &str) -> Result<TimeOfDay, BadTimeOfDay> {
        let bad = || BadTimeOfDay(s.to_string());
        let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
            return Err(bad());
        }
        let hour = h.parse().map_err(|_| bad())?;
        let minute = m.parse().map_err(|_| bad())?;
        TimeOfDay::new(hour, minute).ok_or_else(bad)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeOfDay, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn check_abs<E: serde::de::Error>(p: PathBuf) -> Result<PathBuf, E> {
    if p.as_os_str().is_empty() {
        Err(E::custom(
            "the path is empty; write a full path like \"/media/you/Photos\"",
        ))
    } else if !p.is_absolute() {
        Err(E::custom(format!(
            "{:?} is not an absolute path; write the full path, e.g. \"/media/you/Photos\" (~ and relative paths are not expanded)",
            p.display().to_string()
        )))
    } else {
        Ok(p)
    }
}

fn de_abs_paths<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<PathBuf>, D::Error> {
    Vec::<PathBuf>::deserialize(d)?
        .into_iter()
        .map(check_abs)
        .collect()
}

fn de_opt_abs_path<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    check_abs(PathBuf::deserialize(d)?).map(Some)
}

fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let n = u64::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom(
            "must be at least 1 (seconds between checks for a plugged-in phone)",
        ));
    }
    Ok(n)
}

/// A key in the file that Ferry does not know; it is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Dotted key path, e.g. `watch.intervall`.
    pub key: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// What Ferry expected there.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        write!(f, "unknown key `{}` is ignored; {}", self.key, self.message)
    }
}

/// Loading or saving the config failed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file exists but could not be read.
    #[error("cannot read the config file {}: {source}; check its permissions, or move it away to start from the defaults", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type or range.
    #[error("{}", invalid_message(path, *line, key.as_deref(), message, snippet.as_deref()))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, when known.
        line: Option<usize>,
        /// Dotted key path, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
        /// The offending line's text, when known.
        snippet: Option<String>,
    },
    /// The config could not be written.
    #[error("cannot write the config file {}: {source}; check that the directory is writable and the disk is not full", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config could not be expressed as TOML (e.g. a path that is not UTF-8).
    #[error("cannot save the config to {}: {message}", path.display())]
    Serialize {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

fn invalid_message(
    path: &Path,
    line: Option<usize>,
    key: Option<&str>,
    message: &str,
    snippet: Option<&str>,
) -> String {
    let mut s = format!("invalid config file {}", path.display());
    if let Some(l) = line {
        s.push_str(&format!(", line {l}"));
    }
    if let Some(k) = key {
        s.push_str(&format!(", key `{k}`"));
    }
    s.push_str(&format!(": {message}"));
    if let (Some(l), Some(t)) = (line, snippet) {
        s.push_str(&format!("\n  {l} | {t}"));
    }
    s.push_str(
        "\nFix or delete that line (a missing key takes its default), then run `ferry config` to check.",
    );
    s
}

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Ferry's built-in default (the file does not set it).
    Default,
    /// The config file.
    File,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Default => "default",
            Source::File => "file",
        })
    }
}

/// A loaded config with where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The file it was read from (or would be).
    pub path: PathBuf,
    /// Whether the file existed.
    pub existed: bool,
    /// The values.
    pub config: Config,
    /// Unknown keys, in file order.
    pub warnings: Vec<Warning>,
    present: BTreeSet<String>,
}

impl Loaded {
    /// Whether the file sets the dotted key `key` (e.g. `watch.interval_seconds`).
    pub fn is_set(&self, key: &str) -> bool {
        self.present.contains(key)
    }

    fn source(&self, key: &str) -> Source {
        if self.is_set(key) {
            Source::File
        } else {
            Source::Default
        }
    }

    /// Every value Ferry will use, with its source: what `ferry config` prints.
    pub fn effective(&self) -> Effective {
        let c = &self.config;
        let mut entries = Vec::new();
        let mut push = |key: String, value: String, source: Source| {
            entries.push(EffectiveEntry { key, value, source })
        };
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        push(
            "destinations".into(),
            format!(
                "[{}]",
                c.destinations
                    .iter()
                    .map(|p| q(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            self.source("destinations"),
        );
        push(
            "watch.interval_seconds".into(),
            c.watch.interval_seconds.to_string(),
            self.source("watch.interval_seconds"),
        );
        push(
            "nightly.at".into(),
            c.nightly
                .at
                .map_or("(not set: no nightly run)".to_string(), |t| {
                    format!("\"{t}\"")
                }),
            self.source("nightly.at"),
        );
        push(
            "nightly.on_plug".into(),
            c.nightly.on_plug.to_string(),
            self.source("nightly.on_plug"),
        );
        push(
            "app.appearance".into(),
            format!("\"{}\"", c.app.appearance),
            self.source("app.appearance"),
        );
        for (udid, p) in &c.phones {
            let base = join_key("phones", udid);
            let k = |f: &str| format!("{base}.{f}");
            if let Some(n) = &p.name {
                push(k("name"), format!("{n:?}"), Source::File);
            }
            push(
                k("include_hidden"),
                p.include_hidden.to_string(),
                self.source(&k("include_hidden")),
            );
            push(
                k("destination"),
                match &p.destination {
                    Some(d) => q(d),
                    None => match c.default_destination() {
                        Some(d) => format!("{} (the default destination)", q(d)),
                        None => "(not set)".into(),
                    },
                },
                self.source(&k("destination")),
            );
            push(
                k("schedule"),
                match p.schedule {
                    Some(s) => format!("\"{}\"", schedule_name(s)),
                    None => "(follows [nightly])".into(),
                },
                self.source(&k("schedule")),
            );
        }
        Effective {
            path: self.path.clone(),
            existed: self.existed,
            entries,
            warnings: self.warnings.clone(),
        }
    }
}

fn schedule_name(s: PhoneSchedule) -> &'static str {
    match s {
        PhoneSchedule::Nightly => "nightly",
        PhoneSchedule::OnPlug => "on-plug",
        PhoneSchedule::Any => "any",
        PhoneSchedule::Manual => "manual",
    }
}

/// The effective configuration: every value, its source, the file and the warnings.
#[derive(Debug, Clone)]
pub struct Effective {
    /// The config file.
    pub path: PathBuf,
    /// Whether it exists.
    pub existed: bool,
    /// Values in display order.
    pub entries: Vec<EffectiveEntry>,
    /// Unknown keys.
    pub warnings: Vec<Warning>,
}

/// One effective value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveEntry {
    /// Dotted key.
    pub key: String,
    /// The value as TOML-ish text.
    pub value: String,
    /// Where it came from.
    pub source: Source,
}

impl fmt::Display for Effective {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.existed {
            writeln!(f, "config file: {}", self.path.display())?;
        } else {
            writeln!(
                f,
                "config file: {} (does not exist; all values are defaults)",
                self.path.display()
            )?;
        }
        let width = self.entries.iter().map(|e| e.key.len()).max().unwrap_or(0);
        for e in &self.entries {
            writeln!(f, "  {:width$} = {}  ({})", e.key, e.value, e.source)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}

const TOP_KEYS: &[&str] = &["destinations", "phones", "watch", "nightly", "app"];
const PHONE_KEYS: &[&str] = &["name", "include_hidden", "destination", "schedule"];
const WATCH_KEYS: &[&str] = &["interval_seconds"];
const NIGHTLY_KEYS: &[&str] = &["at", "on_plug"];
const APP_KEYS: &[&str] = &["appearance"];

/// Parses config text. `path` is only used in messages and in the result.
pub fn parse(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let keys = spans::scan(text);
    let invalid = |e: toml::de::Error| {
        let line = e.span().map(|s| spans::line_of(text, s.start));
        let key = line
            .and_then(|l| spans::key_for_line(&keys, l))
            .map(|k| spans::dotted(&k.path));
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            key,
            message: e.message().trim().replace('\n', "; "),
            snippet: line
                .and_then(|l| spans::line_text(text, l))
                .map(|s| s.trim_end().to_string()),
        }
    };
    let table: toml::Table = toml::from_str(text).map_err(invalid)?;
    let config: Config = toml::from_str(text).map_err(invalid)?;

    let mut present = BTreeSet::new();
    let mut warnings = Vec::new();
    let line_of = |segs: &[&str]| spans::key_line(&keys, segs);
    let mut unknown = |segs: &[&str], known: &[&str], section: &str| {
        let key = segs.iter().fold(String::new(), |acc, s| join_key(&acc, s));
        warnings.push(Warning {
            line: line_of(segs),
            message: format!("check the spelling; {section} knows: {}", known.join(", ")),
            key,
        });
    };
    for (k, v) in &table {
        if !TOP_KEYS.contains(&k.as_str()) {
            unknown(&[k], TOP_KEYS, "the top level");
            continue;
        }
        present.insert(k.clone());
        let sub = match v.as_table() {
            Some(t) => t,
            None => continue,
        };
        match k.as_str() {
            "phones" => {
                for (udid, pv) in sub {
                    let Some(pt) = pv.as_table() else { continue };
                    for pk in pt.keys() {
                        if PHONE_KEYS.contains(&pk.as_str()) {
                            present.insert(join_key(&join_key("phones", udid), pk));
                        } else {
                            unknown(
                                &["phones", udid, pk],
                                PHONE_KEYS,
                                "a [phones.\"UDID\"] table",
                            );
                        }
                    }
                }
            }
            "watch" | "nightly" | "app" => {
                let known = match k.as_str() {
                    "watch" => WATCH_KEYS,
                    "nightly" => NIGHTLY_KEYS,
                    _ => APP_KEYS,
                };
                for sk in sub.keys() {
                    if known.contains(&sk.as_str()) {
                        present.insert(format!("{k}.{sk}"));
                    } else {
                        unknown(&[k, sk], known, &format!("[{k}]"));
                    }
                }
            }
            _ => {}
        }
    }
    warnings.sort_by_key(|w| w.line);
    Ok(Loaded {
        path: path.to_path_buf(),
        existed: true,
        config,
        warnings,
        present,
    })
}

/// Loads `path`; a missing file is the defaults (`existed == false`).
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|e| ConfigError::Invalid {
                path: path.to_path_buf(),
                line: None,
                key: None,
                message: format!(
                    "the file is not UTF-8 text (bad byte at offset {})",
                    e.utf8_error().valid_up_to()
                ),
                snippet: None,
            })?;
            parse(&text, path)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Loaded {
            path: path.to_path_buf(),
            existed: false,
            config: Config::default(),
            warnings: Vec::new(),
            present: BTreeSet::new(),
        }),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The TOML text [`save`] writes.
pub fn to_toml(config: &Config, path: &Path) -> Result<String, ConfigError> {
    toml::to_string_pretty(config).map_err(|e| ConfigError::Serialize {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Writes `config` to `path` atomically (creating the directory). Comments are not kept.
pub fn save(config: &Config, path: &Path) -> Result<(), ConfigError> {
    let text = to_toml(config, path)?;
    crate::atomic::write_atomic(path, text.as_bytes(), 0o644).map_err(|source| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"destinations = ["/media/ana/Photos", "/mnt/nas/photos"]

[phones."00008030-001A2B3C4D5E802E"]
name = "Ana's iPhone"
include_hidden = false
destination = "/mnt/nas/ana"
schedule = "on-plug"

[phones.abc]
name = "Old phone"

[watch]
interval_seconds = 15

[nightly]
at = "02:30"
on_plug = true

[app]
appearance = "dark"
"#;

    fn p() -> PathBuf {
        PathBuf::from("/cfg/config.toml")
    }

    #[test]
    fn full_file_parses() {
        let l = parse(FULL, &p()).unwrap();
        let c = &l.config;
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(
            c.default_destination(),
            Some(Path::new("/media/ana/Photos"))
        );
        let ana = &c.phones["00008030-001A2B3C4D5E802E"];
        assert_eq!(ana.name.as_deref(), Some("Ana's iPhone"));
        assert!(!ana.include_hidden);
        assert_eq!(ana.schedule, Some(PhoneSchedule::OnPlug));
        assert!(c.phones["abc"].include_hidden, "default true");
        assert_eq!(c.watch.interval_seconds, 15);
        assert_eq!(c.nightly.at, TimeOfDay::new(2, 30));
        assert!(c.nightly.on_plug);
        assert_eq!(c.app.appearance, Appearance::Dark);
        assert_eq!(
            c.destination_for("00008030-001A2B3C4D5E802E"),
            Some(Path::new("/mnt/nas/ana"))
        );
        assert_eq!(
            c.destination_for("abc"),
            Some(Path::new("/media/ana/Photos"))
        );
        assert!(!c.phone_allows("00008030-001A2B3C4D5E802E", Trigger::Nightly));
        assert!(c.phone_allows("abc", Trigger::OnPlug));
        assert!(!c.include_hidden_for("00008030-001A2B3C4D5E802E"));
        assert!(c.include_hidden_for("unknown-phone"));
    }

    #[test]
    fn empty_is_default() {
        let l = parse("", &p()).unwrap();
        assert_eq!(l.config, Config::default());
        assert_eq!(l.config.watch.interval_seconds, 60);
        assert_eq!(l.config.nightly.at, None);
        assert!(!l.config.nightly.on_plug);
    }

    #[test]
    fn round_trip_through_save_and_load() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("nested/config.toml");
        let c = parse(FULL, &p()).unwrap().config;
        save(&c, &path).unwrap();
        let back = load(&path).unwrap();
        assert!(back.existed);
        assert_eq!(back.config, c);
        assert!(back.warnings.is_empty());
        // the defaults round-trip too, and saving twice is stable
        save(&Config::default(), &path).unwrap();
        let text1 = std::fs::read_to_string(&path).unwrap();
        assert_eq!(load(&path).unwrap().config, Config::default());
        save(&load(&path).unwrap().config, &path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text1);
        // special characters in names and paths survive
        let mut c = Config::default();
        c.destinations
            .push(PathBuf::from("/media/a b/\"q\" ü $x %h \\"));
        c.phones.insert(
            "id with space".into(),
            PhoneConfig {
                name: Some("Ana's \"new\" 📱".into()),
                ..Default::default()
            },
        );
        save(&c, &path).unwrap();
        assert_eq!(load(&path).unwrap().config, c);
    }

    #[test]
    fn missing_file_is_defaults() {
        let d = tempfile::tempdir().unwrap();
        let l = load(&d.path().join("none.toml")).unwrap();
        assert!(!l.existed);
        assert_eq!(l.config, Config::default());
        let e = l.effective().to_string();
        assert!(e.contains("does not exist; all values are defaults"), "{e}");
        assert!(e.contains("watch.interval_seconds = 60  (default)"), "{e}");
        assert!(
            e.contains("app.appearance         = \"system\"  (default)"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_warn_with_lines() {
        let text = "colour = \"red\"\n[watch]\nintervall = 5\n[phones.X]\nnmae = \"n\"\n[nightly]\nat = \"01:00\"\n";
        let l = parse(text, &p()).unwrap();
        let got: Vec<_> = l
            .warnings
            .iter()
            .map(|w| (w.key.as_str(), w.line))
            .collect();
        assert_eq!(
            got,
            vec![
                ("colour", Some(1)),
                ("watch.intervall", Some(3)),
                ("phones.X.nmae", Some(5))
            ]
        );
        assert_eq!(
            l.warnings[1].to_string(),
            "line 3: unknown key `watch.intervall` is ignored; check the spelling; [watch] knows: interval_seconds"
        );
        assert_eq!(l.config.nightly.at, TimeOfDay::new(1, 0));
    }

    fn err(text: &str) -> String {
        parse(text, &p()).unwrap_err().to_string()
    }

    #[test]
    fn bad_values_name_file_line_key_and_fix() {
        let e = err("[watch]\ninterval_seconds = \"often\"\n");
        assert_eq!(
            e,
            "invalid config file /cfg/config.toml, line 2, key `watch.interval_seconds`: invalid type: string \"often\", expected u64\n  2 | interval_seconds = \"often\"\nFix or delete that line (a missing key takes its default), then run `ferry config` to check."
        );
        let e = err("[watch]\ninterval_seconds = 0\n");
        assert!(
            e.contains("line 2, key `watch.interval_seconds`: must be at least 1"),
            "{e}"
        );
        let e = err("\n[nightly]\nat = \"25:00\"\n");
        assert!(
            e.contains("line 3, key `nightly.at`: \"25:00\" is not a time of day: write it as 24-hour \"HH:MM\", e.g. \"02:30\""),
            "{e}"
        );
        let e = err("destinations = [\"/ok\", \"relative/dir\"]\n");
        assert!(
            e.contains("line 1, key `destinations`: \"relative/dir\" is not an absolute path"),
            "{e}"
        );
        let e = err("[phones.\"A B\"]\nschedule = \"weekly\"\n");
        assert!(
            e.contains("line 2, key `phones.\"A B\".schedule`: unknown variant `weekly`"),
            "{e}"
        );
        let e = err("[phones.X]\ninclude_hidden = \"yes\"\n");
        assert!(e.contains("line 2, key `phones.X.include_hidden`: invalid type: string \"yes\", expected a boolean"), "{e}");
        let e = err("[nightly]\non_plug = 1\n");
        assert!(e.contains("key `nightly.on_plug`"), "{e}");
    }

    #[test]
    fn bad_toml_names_the_line() {
        let e = err("destinations = [\"/a\"\n[watch]\n");
        assert!(
            e.starts_with("invalid config file /cfg/config.toml, line "),
            "{e}"
        );
        assert!(e.contains("Fix or delete that line"), "{e}");
        let e = err("a = 1\nb = = 2\n");
        assert!(
            e.starts_with(
                "invalid config file /cfg/config.toml, line 2, key `b`: invalid string; expected `\"`, `'`"
            ),
            "{e}"
        );
        assert!(e.contains("\n  2 | b = = 2\n"), "{e}");
        let e = err("[watch]\ninterval_seconds = 1\n[watch]\n");
        assert!(e.contains("line 3"), "{e}");
    }

    #[test]
    fn not_utf8_is_a_clear_error() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("config.toml");
        std::fs::write(&f, b"a = \"\xff\"\n").unwrap();
        let e = load(&f).unwrap_err().to_string();
        assert!(e.contains("is not UTF-8 text"), "{e}");
    }

    #[test]
    fn effective_shows_sources() {
        let text =
            "destinations = [\"/d\"]\n[phones.P]\nname = \"n\"\n[watch]\ninterval_seconds = 5\n";
        let eff = parse(text, &p()).unwrap().effective();
        let get = |k: &str| eff.entries.iter().find(|e| e.key == k).unwrap().clone();
        assert_eq!(get("destinations").source, Source::File);
        assert_eq!(get("destinations").value, "[\"/d\"]");
        assert_eq!(get("watch.interval_seconds").source, Source::File);
        assert_eq!(get("nightly.on_plug").source, Source::Default);
        assert_eq!(get("phones.P.include_hidden").value, "true");
        assert_eq!(get("phones.P.include_hidden").source, Source::Default);
        assert_eq!(
            get("phones.P.destination").value,
            "\"/d\" (the default destination)"
        );
        let s = eff.to_string();
        assert!(s.starts_with("config file: /cfg/config.toml\n"), "{s}");
        assert!(s.contains("nightly.at"), "{s}");
    }

    #[test]
    fn time_of_day_parsing() {
        assert_eq!("2:05".parse::<TimeOfDay>().unwrap().to_string(), "02:05");
        assert_eq!(
            "23:59".parse::<TimeOfDay>().unwrap(),
            TimeOfDay::new(23, 59).unwrap()
        );
        for bad in [
            "24:00", "12:60", "12", "12:5", "aa:bb", "-1:00", "12:00:00", "",
        ] {
            assert!(bad.parse::<TimeOfDay>().is_err(), "{bad}");
        }
    }
}
