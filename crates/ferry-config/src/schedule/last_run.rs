//! The last unattended run's result: a small JSON file (`last-run.json`) the nightly run
//! writes into the state dir and `ferry schedule status` reads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// File name inside the state dir.
pub const LAST_RUN_FILE: &str = "last-run.json";

/// How the last unattended run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastRun {
    /// When it finished, RFC 3339 in UTC (`2026-11-03T02:31:07Z`).
    pub finished_at: String,
    /// The process exit code (0 = success; see the CLI's exit codes).
    pub exit_code: i32,
    /// One line for people: what was copied, or what went wrong.
    pub summary: String,
}

impl LastRun {
    /// A result finishing now.
    pub fn now(exit_code: i32, summary: impl Into<String>) -> LastRun {
        LastRun {
            finished_at: rfc3339_utc(SystemTime::now()),
            exit_code,
            summary: summary.into(),
        }
    }
}

impl fmt::Display for LastRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let outcome = if self.exit_code == 0 { "ok" } else { "failed" };
        write!(
            f,
            "{} — {outcome} (exit {}): {}",
            self.finished_at, self.exit_code, self.summary
        )
    }
}

/// Formats `t` as RFC 3339 UTC with whole seconds.
pub fn rfc3339_utc(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Reading or writing the last-run file failed.
#[derive(Debug, thiserror::Error)]
pub enum LastRunError {
    /// I/O.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// "read" / "write".
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not the JSON Ferry writes.
    #[error("{} is not a Ferry last-run report ({source}); delete it, the next run rewrites it", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// Writes `run` to `state_dir/last-run.json` atomically; returns the path.
pub fn record_last_run(state_dir: &Path, run: &LastRun) -> Result<PathBuf, LastRunError> {
    let path = state_dir.join(LAST_RUN_FILE);
    let mut text = serde_json::to_string_pretty(run).map_err(|source| LastRunError::Parse {
        path: path.clone(),
        source,
    })?;
    text.push('\n');
    crate::atomic::write_atomic(&path, text.as_bytes(), 0o644).map_err(|source| {
        LastRunError::Io {
            op: "write",
            path: path.clone(),
            source,
        }
    })?;
    Ok(path)
}

/// Reads `state_dir/last-run.json`; `None` if no run has recorded one yet.
pub fn read_last_run(state_dir: &Path) -> Result<Option<LastRun>, LastRunError> {
    let path = state_dir.join(LAST_RUN_FILE);
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| LastRunError::Parse { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LastRunError::Io {
            op: "read",
            path,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "2024-02-29T12:34:56Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(4_102_444_799)),
            "2099-12-31T23:59:59Z"
        );
    }

    #[test]
    fn record_and_read() {
        let d = tempfile::tempdir().unwrap();
        let state = d.path().join("state");
        assert_eq!(read_last_run(&state).unwrap(), None);
        let run = LastRun::now(0, "copied 12 photos, 0 failed");
        let p = record_last_run(&state, &run).unwrap();
        assert_eq!(p, state.join("last-run.json"));
        assert_eq!(read_last_run(&state).unwrap(), Some(run.clone()));
        assert!(run.to_string().contains("ok (exit 0): copied 12 photos"));
        std::fs::write(&p, "{").unwrap();
        let e = read_last_run(&state).unwrap_err().to_string();
        assert!(e.contains("is not a Ferry last-run report"), "{e}");
    }
}
