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

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation, OFlags};

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
    /// Takes the lock file `path` (its folder is opened by path; the file itself is never
    /// reached through a link). See [`DestinationLock::acquire_at`].
    pub fn acquire(path: &Path) -> Result<DestinationLock> {
        let (dir, name) = crate::root::open_parent(path)?;
        DestinationLock::acquire_at(dir.as_fd(), name, path, Mode::Exclusive)
    }

    /// Takes the lock on `name` in the held metadata folder `dir`, waiting up to
    /// [`LOCK_PATIENCE`] for a short holder (a `ferry status` or the app reading the catalog)
    /// to let go; then fails with [`Error::Busy`] naming the holder. A real concurrent run
    /// holds it far longer. A link in place of the lock file is refused
    /// ([`Error::UnsafePath`]): following it would truncate whatever it points at.
    ///
    /// [`Mode::Shared`] is for commands that only read (`status`, `verify`): they exclude a
    /// writer but not each other, and never write the holder line.
    pub(crate) fn acquire_at(
        dir: BorrowedFd<'_>,
        name: &str,
        path: &Path,
        mode: Mode,
    ) -> Result<DestinationLock> {
        let flags = match mode {
            Mode::Exclusive => OFlags::RDWR | OFlags::CREATE,
            Mode::Shared => OFlags::RDONLY,
        };
        let mut file = crate::root::open_file_at(
            dir,
            name,
            flags,
            crate::root::META_FILE_MODE,
            path,
            "open lock file",
        )?;
        let op = match mode {
            Mode::Exclusive => FlockOperation::NonBlockingLockExclusive,
            Mode::Shared => FlockOperation::NonBlockingLockShared,
        };
        let give_up = std::time::Instant::now() + LOCK_PATIENCE;
        let outcome = loop {
            match flock(&file, op) {
                Err(e) if held_elsewhere(e) && std::time::Instant::now() < give_up => {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other,
            }
        };
        match outcome {
            Ok(()) => {}
            Err(e) if held_elsewhere(e) => {
                return Err(Error::Busy {
                    path: path.to_path_buf(),
                    holder: read_holder(&mut file),
                });
            }
            Err(e) => return Err(Error::io("lock", path, e.into())),
        }
        if mode == Mode::Exclusive {
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
        }
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

/// How a destination is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A run that writes: alone.
    Exclusive,
    /// A command that only reads: beside other readers, never beside a writer.
    Shared,
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

/// The flock error that means "another open file holds it".
fn held_elsewhere(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::WOULDBLOCK || e == rustix::io::Errno::AGAIN
}

/// What the lock file says about its holder, on one line ("pid unknown" when it says nothing).
fn read_holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "pid unknown".into()
    } else {
        text
    }
}

/// Who holds the lock file `path` right now, without taking it: `Some(holder)` ("pid 42 host
/// nas since …") while another process holds it, `None` when it is free or does not exist.
/// For screens that want to say "another Ferry run is using this folder" before starting; the
/// answer can be stale a moment later, so a run still relies on [`DestinationLock::acquire`].
pub fn holder(path: &Path) -> Option<String> {
    let (dir, name) = crate::root::open_parent(path).ok()?;
    let mut file =
        crate::root::open_file_at(dir.as_fd(), name, OFlags::RDONLY, 0, path, "open").ok()?;
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => {
            let _ = flock(&file, FlockOperation::Unlock);
            None
        }
        Err(e) if held_elsewhere(e) => Some(read_holder(&mut file)),
        // Cannot tell (an unusual file system): say nothing; the run's own lock decides.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_the_process_holding_the_lock_and_none_once_released() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("lock");
        assert_eq!(holder(&path), None, "no lock file: free");
        let held = DestinationLock::acquire(&path).unwrap();
        let h = holder(&path).expect("held");
        assert!(
            h.starts_with(&format!("pid {} host ", std::process::id())),
            "{h}"
        );
        // Probing does not disturb the holder, and leaves the lock free once released.
        assert!(holder(&path).is_some());
        drop(held);
        assert_eq!(holder(&path), None);
        let again = DestinationLock::acquire(&path);
        assert!(again.is_ok(), "{again:?}");
    }
}
