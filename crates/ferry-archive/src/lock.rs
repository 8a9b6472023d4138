//! One Ferry run per destination: an OS advisory lock (`flock`, exclusive) on
//! `DIR/.ferry/lock`, tried for up to [`LOCK_PATIENCE`] so that a quick reader (`ferry status`)
//! holding it for a moment does not make a run starting at that instant fail.
//!
//! The kernel drops the lock when the process exits for any reason, including `kill -9`, so
//! there are no stale locks to clean up (unlike restic's lock files). The file's content —
//! pid, host, start time — is for the "who holds it" message only; it is never used to decide
//! anything. `std::fs::File::try_lock` would do the same but needs Rust 1.89 and the workspace
//! MSRV is 1.88, so this uses `rustix::fs::flock` (rustix is already in the dependency tree).
//!
//! Caveat: an flock belongs to the open file description, which a child process forked while
//! the lock is held shares until it execs (the descriptor is close-on-exec). A process that
//! spawns helpers while opening or closing archives can therefore see a brief, spurious
//! [`Error::Busy`]; the archive's own tests serialise their `mount` calls for this reason.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// How long [`DestinationLock::acquire`] waits for a brief holder before reporting
/// [`Error::Busy`].
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

/// A held destination lock; released on drop (or by the OS when the process dies).
#[derive(Debug)]
pub struct DestinationLock {
    _file: File,
    path: PathBuf,
}

impl DestinationLock {
    /// Takes the lock, waiting up to [`LOCK_PATIENCE`] for a short holder (a `ferry status` or
    /// the app reading the catalog) to let go; then fails with [`Error::Busy`] naming the
    /// holder. A real concurrent run holds it far longer.
    pub fn acquire(path: &Path) -> Result<DestinationLock> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| Error::io("open lock file", path, e))?;
        let give_up = std::time::Instant::now() + LOCK_PATIENCE;
        let outcome = loop {
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Err(e)
                    if (e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::AGAIN)
                        && std::time::Instant::now() < give_up =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        match outcome {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::AGAIN => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
                return Err(Error::Busy {
                    path: path.to_path_buf(),
                    holder: if holder.is_empty() {
                        "pid unknown".into()
                    } else {
                        holder
                    },
                });
            }
            Err(e) => return Err(Error::io("lock", path, e.into())),
        }
        // Diagnostics only; failures here do not matter.
        let info = format!(
            "pid {} host {} since {}\n",
            std::process::id(),
            hostname(),
            ferry_photos::record::format_utc_millis(crate::now_millis())
        );
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = file.write_all(info.as_bytes());
        let _ = file.flush();
        Ok(DestinationLock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}
