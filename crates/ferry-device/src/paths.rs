//! Where Ferry keeps its own files on this computer: the host identity (data dir) and the
//! cached library snapshot (cache dir). See docs/decisions/0002-host-identity.md.
//!
//! | | data dir | cache dir |
//! |---|---|---|
//! | override | `FERRY_DATA_DIR` | `FERRY_CACHE_DIR` |
//! | Linux | `$XDG_DATA_HOME/ferry` or `~/.local/share/ferry` | `$XDG_CACHE_HOME/ferry` or `~/.cache/ferry` |
//! | macOS | `~/Library/Application Support/Ferry` | `~/Library/Caches/Ferry` |
//! | Windows | `%APPDATA%\Ferry` | `%LOCALAPPDATA%\Ferry\cache` |
//!
//! The functions are pure over an environment lookup so each platform is tested everywhere.

use std::path::PathBuf;

use crate::addr::Os;

/// Overrides the data dir (tests, portable installs).
pub const DATA_DIR_ENV: &str = "FERRY_DATA_DIR";
/// Overrides the cache dir.
pub const CACHE_DIR_ENV: &str = "FERRY_CACHE_DIR";

fn non_empty(v: Option<String>) -> Option<PathBuf> {
    v.filter(|s| !s.is_empty()).map(PathBuf::from)
}

/// The data dir for `os`, reading variables through `env`; `None` if no home is known.
pub fn data_dir_for(os: Os, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = non_empty(env(DATA_DIR_ENV)) {
        return Some(p);
    }
    match os {
        Os::Linux => non_empty(env("XDG_DATA_HOME"))
            .filter(|p| p.is_absolute())
            .map(|p| p.join("ferry"))
            .or_else(|| non_empty(env("HOME")).map(|h| h.join(".local/share/ferry"))),
        Os::MacOs => non_empty(env("HOME")).map(|h| h.join("Library/Application Support/Ferry")),
        Os::Windows => non_empty(env("APPDATA")).map(|a| a.join("Ferry")),
    }
}

/// The cache dir for `os`, reading variables through `env`; `None` if no home is known.
pub fn cache_dir_for(os: Os, env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = non_empty(env(CACHE_DIR_ENV)) {
        return Some(p);
    }
    match os {
        Os::Linux => non_empty(env("XDG_CACHE_HOME"))
            .filter(|p| p.is_absolute())
            .map(|p| p.join("ferry"))
            .or_else(|| non_empty(env("HOME")).map(|h| h.join(".cache/ferry"))),
        Os::MacOs => non_empty(env("HOME")).map(|h| h.join("Library/Caches/Ferry")),
        Os::Windows => non_empty(env("LOCALAPPDATA")).map(|a| a.join("Ferry").join("cache")),
    }
}

fn real_env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

/// This computer's data dir.
pub fn data_dir() -> Option<PathBuf> {
    data_dir_for(Os::current(), &real_env)
}

/// This computer's cache dir.
pub fn cache_dir() -> Option<PathBuf> {
    cache_dir_for(Os::current(), &real_env)
}

/// Creates `dir` (and parents) readable only by the user: it holds a private key's worth of
/// trust (the host id) or the user's photo library database.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn override_wins_everywhere() {
        let e = env(&[("FERRY_DATA_DIR", "/x"), ("HOME", "/h")]);
        for os in [Os::Linux, Os::MacOs, Os::Windows] {
            assert_eq!(data_dir_for(os, &e), Some(PathBuf::from("/x")));
        }
    }

    #[test]
    fn linux_follows_xdg() {
        let e = env(&[("HOME", "/h")]);
        assert_eq!(
            data_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.local/share/ferry"))
        );
        assert_eq!(
            cache_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.cache/ferry"))
        );
        let e = env(&[
            ("HOME", "/h"),
            ("XDG_DATA_HOME", "/d"),
            ("XDG_CACHE_HOME", "rel"),
        ]);
        assert_eq!(data_dir_for(Os::Linux, &e), Some(PathBuf::from("/d/ferry")));
        // relative XDG paths are invalid per the spec and ignored
        assert_eq!(
            cache_dir_for(Os::Linux, &e),
            Some(PathBuf::from("/h/.cache/ferry"))
        );
    }

    #[test]
    fn macos_and_windows() {
        let e = env(&[("HOME", "/Users/a")]);
        assert_eq!(
            data_dir_for(Os::MacOs, &e),
            Some(PathBuf::from("/Users/a/Library/Application Support/Ferry"))
        );
        let e = env(&[("APPDATA", "C:/R"), ("LOCALAPPDATA", "C:/L")]);
        assert_eq!(
            data_dir_for(Os::Windows, &e),
            Some(PathBuf::from("C:/R").join("Ferry"))
        );
        assert_eq!(
            cache_dir_for(Os::Windows, &e),
            Some(PathBuf::from("C:/L").join("Ferry").join("cache"))
        );
        assert_eq!(data_dir_for(Os::Windows, &env(&[])), None);
    }
}
