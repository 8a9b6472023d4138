//! Errors of the reader.
//!
//! Policy (after rustic_core's `error.rs`): every public function returns [`Error`]. Each
//! variant names the file it is about, says what was wrong in words a user can act on, and
//! ends with a `hint:` line of guidance. Nothing read from the phone is trusted: a malformed
//! value becomes an error or an exclusion reason, never a panic.
//!
//! [`Error::is_retryable`] tells callers which errors may go away if the database is copied
//! again (the phone was writing while we copied), and which are permanent.

use std::path::PathBuf;

/// The reader's error type.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened at all.
    #[error(
        "cannot open {path}: {source}\n  hint: open a private copy of Photos.sqlite (and its -wal) \
         in a writable directory; see ferry_photos::snapshot"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// A readable SQLite database, but not an iOS Photos library.
    #[error(
        "{path} is not a Photos library database: {detail}\n  hint: the file should be \
         /var/mobile/Media/PhotoData/Photos.sqlite from the phone"
    )]
    NotPhotosDatabase {
        /// The database file.
        path: PathBuf,
        /// What was found instead.
        detail: String,
    },

    /// A Photos database whose tables or columns this reader does not know.
    #[error(
        "{path} uses a Photos.sqlite schema this version of Ferry does not understand \
         (model version {model}): missing {missing}{note}\n  hint: this usually means a very old \
         (iOS 12 or earlier) or a brand-new iOS; please report it with the iOS version",
        model = model_version.map_or_else(|| "unknown".to_string(), |v| v.to_string()),
        missing = missing.join(", "),
        note = note.as_deref().map(|n| format!(" ({n})")).unwrap_or_default()
    )]
    UnsupportedSchema {
        /// The database file.
        path: PathBuf,
        /// `TABLE` or `TABLE.COLUMN` entries that are required but absent.
        missing: Vec<String>,
        /// `PLModelVersion` from `Z_METADATA`, if readable.
        model_version: Option<i64>,
        /// A guess at what kind of database this is (e.g. "looks like iOS 12").
        note: Option<String>,
    },

    /// SQLite reports the file as damaged or not a database at all.
    #[error(
        "{path} is corrupt: {detail}\n  hint: a copy cut short looks like this once; when \
         every copy does, the database on the phone itself is damaged"
    )]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// SQLite's or our description of the damage.
        detail: String,
    },

    /// The write-ahead log ends in the middle of a committed transaction's frame.
    #[error(
        "the write-ahead log {path} is truncated: {detail}\n  hint: the copy was cut short or \
         the phone was writing; copy Photos.sqlite and Photos.sqlite-wal again"
    )]
    TruncatedWal {
        /// The `-wal` file.
        path: PathBuf,
        /// Where it was cut.
        detail: String,
    },

    /// The write-ahead log is damaged in a way SQLite would *silently* ignore, losing the
    /// newest assets.
    #[error(
        "the write-ahead log {path} is corrupt: {detail}\n  hint: SQLite would silently ignore \
         the damaged part and miss the newest photos; copy both files again"
    )]
    CorruptWal {
        /// The `-wal` file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// A query failed for a reason other than corruption (locking, I/O, …).
    #[error(
        "reading {path} failed: {source}\n  hint: retry; if it persists, copy the database again"
    )]
    Query {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// Local file I/O (the private copy, the WAL check).
    #[error("{action} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "creating", …).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },

    /// Reading from the byte source (e.g. the phone over AFC) failed.
    #[error("copying {name} from {source_name} failed: {source}\n  hint: check the cable and that the phone is unlocked")]
    Source {
        /// Which file (`Photos.sqlite`, `Photos.sqlite-wal`).
        name: String,
        /// The source's description.
        source_name: String,
        /// The error.
        source: std::io::Error,
    },

    /// The database kept changing while we copied it.
    #[error(
        "Photos.sqlite on {source_name} changed during each of {attempts} copy attempts\n  hint: \
         the phone is busy (iCloud sync, import or analysis); wait a minute, or keep the phone \
         unlocked and connected, and retry"
    )]
    SourceKeptChanging {
        /// The source's description.
        source_name: String,
        /// How many times we tried.
        attempts: u32,
    },
}

/// What a failure to read the library means for the person running Ferry: it decides the
/// words and the advice front ends show (one classification, used everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The phone wrote the database while it was copied (or the copy was cut short):
    /// running again helps.
    Changing,
    /// The database or its write-ahead log is damaged. [`crate::snapshot::take_snapshot`]
    /// copies again before it gives up with this (its message says how many copies were
    /// damaged), so from a snapshot it means the phone's file is damaged: running again as it
    /// is does not help.
    Damaged,
    /// Not a Photos library, or a schema this version does not know.
    Unsupported,
    /// Reading the phone or a local file failed, or SQLite failed for another reason.
    Io,
}

impl Error {
    /// What this failure means (see [`Fault`]).
    pub fn fault(&self) -> Fault {
        match self {
            Error::Corrupt { .. } | Error::CorruptWal { .. } => Fault::Damaged,
            Error::TruncatedWal { .. } | Error::SourceKeptChanging { .. } => Fault::Changing,
            Error::NotPhotosDatabase { .. } | Error::UnsupportedSchema { .. } => Fault::Unsupported,
            Error::Open { .. } | Error::Query { .. } | Error::Io { .. } | Error::Source { .. } => {
                Fault::Io
            }
        }
    }

    /// The error a snapshot gives up with: damage is named as the source's file (the private
    /// copy's temporary path means nothing to the user, and is gone by then) with how many
    /// copies showed it.
    pub(crate) fn in_copies_of(self, source: &str, copies: u32) -> Error {
        let note = |detail: String| {
            if copies > 1 {
                format!("{detail} (the same in each of {copies} copies)")
            } else {
                detail
            }
        };
        match self {
            Error::Corrupt { detail, .. } => Error::Corrupt {
                path: PathBuf::from(format!("Photos.sqlite from {source}")),
                detail: note(detail),
            },
            Error::CorruptWal { detail, .. } => Error::CorruptWal {
                path: PathBuf::from(format!("Photos.sqlite-wal from {source}")),
                detail: note(detail),
            },
            other => other,
        }
    }

    /// True if copying the database again may help (torn WAL, file changed while copying,
    /// transient SQLite or source errors). Schema and "not a Photos database" errors are
    /// permanent.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Corrupt { .. }
                | Error::TruncatedWal { .. }
                | Error::CorruptWal { .. }
                | Error::Query { .. }
                | Error::Source { .. }
                | Error::SourceKeptChanging { .. }
        )
    }

    /// Maps a SQLite error on `path` to the most specific variant.
    pub(crate) fn from_sqlite(path: &std::path::Path, err: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(f, msg) = &err {
            let detail = msg.clone().unwrap_or_else(|| f.to_string());
            match f.code {
                ErrorCode::NotADatabase => {
                    return Error::Corrupt {
                        path: path.to_path_buf(),
                        detail: format!("not an SQLite database ({detail})"),
                    }
                }
                ErrorCode::DatabaseCorrupt => {
                    return Error::Corrupt {
                        path: path.to_path_buf(),
                        detail,
                    }
                }
                ErrorCode::CannotOpen => {
                    return Error::Open {
                        path: path.to_path_buf(),
                        source: err,
                    }
                }
                _ => {}
            }
        }
        Error::Query {
            path: path.to_path_buf(),
            source: err,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
