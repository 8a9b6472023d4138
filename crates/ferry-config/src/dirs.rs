//! Where Ferry keeps its configuration and its logs on this computer.
//!
//! | | config dir | state dir (logs, last-run report) |
//! |---|---|---|
//! | override | `FERRY_CONFIG_DIR` | `FERRY_STATE_DIR` |
//! | Linux | `$XDG_CONFIG_HOME/ferry` or `~/.config/ferry` | `$XDG_STATE_HOME/ferry` or `~/.local/state/ferry` |
//! | macOS | `~/Library/Application Support/ferry` | `~/Library/Logs/ferry` |
//!
//! The conventions match `ferry-device`'s data and cache dirs (`FERRY_DATA_DIR`,
//! `FERRY_CACHE_DIR`): an empty variable counts as unset, and relative `XDG_*` values are
//! ignored as the XDG spec requires. The functions are pure over an environment lookup.

use std::path::PathBuf;

use crate::{real_env, Env, Os};

/// Overrides the config dir (tests, portable installs).
pub const CONFIG_DIR_ENV: &str = "FERRY_CONFIG_DIR";
/// Overrides the state dir.
pub const STATE_DIR_ENV: &str = "FERRY_STATE_DIR";
/// The config file's name inside the config dir.
pub const CONFIG_FILE_NAME: &str = "config.toml";

pub(crate) fn non_empty(v: Option<String>) -> Option<PathBuf> {
    v.filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// `$HOME`, if set and non-empty.
pub fn home_for(env: Env) -> Option<PathBuf> {
    non_empty(env("HOME"))
}

/// `$XDG_CONFIG_HOME` if absolute, else `~/.config`: the base systemd also uses for user units.
pub fn xdg_config_home_for(env: Env) -> Option<PathBuf> {
    non_empty(env("XDG_CONFIG_HOME"))
        .filter(|p| p.is_absolute())
        .or_else(|| home_for(env).map(|h| h.join(".config")))
}

/// The config dir for `os`, reading variables through `env`; `None` if no home is known.
pub fn config_dir_for(os: Os, env: Env) -> Option<PathBuf> {
    if let Some(p) = non_empty(env(CONFIG_DIR_ENV)) {
        return Some(p);
    }
    match os {
        Os::Linux => xdg_config_home_for(env).map(|c| c.join("ferry")),
        Os::MacOs => home_for(env).map(|h| h.join("Library/Application Support/ferry")),
    }
}

/// The state dir (logs, last-run report) for `os`; `None` if no home is known.
pub fn state_dir_for(os: Os, env: Env) -> Option<PathBuf> {
    if let Some(p) = non_empty(env(STATE_DIR_ENV)) {
        return Some(p);
    }
    match os {
        Os::Linux => non_empty(env("XDG_STATE_HOME"))
            .filter(|p| p.is_absolute())
            .map(|p| p.join("ferry"))
            .or_else(|| home_for(env).map(|h| h.join(".local/state/ferry"))),
        Os::MacOs => home_for(env).map(|h| h.join("Library/Logs/ferry")),
    }
}

/// `config.toml` inside [`config_dir_for`].
pub fn config_file_for(os: Os, env: Env) -> Option<PathBuf> {
    config_dir_for(os, env).map(|d| d.join(CONFIG_FILE_NAME))
}

/// This computer's config dir.
pub fn config_dir() -> Option<PathBuf> {
    config_dir_for(Os::current(), &real_env)
}

/// This computer's state dir.
pub fn state_dir() -> Option<PathBuf> {
    state_dir_for(Os::current(), &real_env)
}

/// This computer's `config.toml` path.
pub fn config_file() -> Option<PathBuf> {
    config_file_for(Os::current(), &real_env)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn env(
        pairs: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn overrides_win_on_both() {
        let e = env(&[
            ("FERRY_CONFIG_DIR", "/c"),
            ("FERRY_STATE_DIR", "/s"),
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/x"),
        ]);
        for os in [Os::Linux, Os::MacOs] {
            assert_eq!(config_dir_for(os, &e), Some(PathBuf::from("/c")));
            assert_eq!(state_dir_for(os, &e), Some(PathBuf::from("/s")));
            assert_eq!(
                config_file_for(os, &e),
                Some(PathBuf::from("/c/config.toml"))
            );
        }
    }

    #[test]
    fn empty_override_is_unset() {
        let e = env(&[("FERRY_CONFIG_DIR", ""), ("HOME", "/h")]);
        assert_eq!(
            config_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.config/ferry"))
        );
    }

    #[test]
    fn linux_follows_xdg() {
        let e = env(&[("HOME", "/h")]);
        assert_eq!(
            config_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.config/ferry"))
        );
        assert_eq!(
            state_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.local/state/ferry"))
        );
        let e = env(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "/cfg"),
            ("XDG_STATE_HOME", "/st"),
        ]);
        assert_eq!(
            config_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/cfg/ferry"))
        );
        assert_eq!(
            state_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/st/ferry"))
        );
        // relative XDG values are invalid per the spec and ignored
        let e = env(&[
            ("HOME", "/h"),
            ("XDG_CONFIG_HOME", "rel"),
            ("XDG_STATE_HOME", "rel"),
        ]);
        assert_eq!(
            config_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.config/ferry"))
        );
        assert_eq!(
            state_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.local/state/ferry"))
        );
    }

    #[test]
    fn macos_uses_library() {
        // XDG variables are ignored on macOS
        let e = env(&[("HOME", "/Users/a"), ("XDG_CONFIG_HOME", "/x")]);
        assert_eq!(
            config_dir_for(Os::MacOs, &e),
            Some(PathBuf::from("/Users/a/Library/Application Support/ferry"))
        );
        assert_eq!(
            state_dir_for(Os::MacOs, &e),
            Some(PathBuf::from("/Users/a/Library/Logs/ferry"))
        );
    }

    #[test]
    fn no_home_is_none() {
        let e = env(&[]);
        for os in [Os::Linux, Os::MacOs] {
            assert_eq!(config_dir_for(os, &e), None);
            assert_eq!(state_dir_for(os, &e), None);
        }
    }
}
