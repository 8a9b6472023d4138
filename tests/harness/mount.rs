//! Size-limited and read-only destinations for tests: a tmpfs mounted on a fresh temp dir.
//!
//! Mounting needs root (or CAP_SYS_ADMIN); without it the tests FAIL with a message saying so,
//! they never pass silently. `chmod` is no substitute: root ignores permission bits, so the
//! read-only case uses `mount -o remount,ro`.

use std::path::PathBuf;
use std::process::Command;

/// A tmpfs of `size` mounted on a fresh temp dir; unmounted on drop. Panics with a clear
/// message if it cannot be mounted (needs root / CAP_SYS_ADMIN): such a test must fail, not
/// pass silently.
/// A mounted tmpfs; unmounted (lazily) on drop.
pub struct TmpfsMount {
    pub dir: PathBuf,
    _holder: tempfile::TempDir,
}

impl TmpfsMount {
    pub fn new(size: &str) -> TmpfsMount {
        let holder = tempfile::tempdir().unwrap();
        let dir = holder.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .output()
            .expect("running mount(8)");
        assert!(
            out.status.success(),
            "this test needs a size-limited tmpfs and could not mount one at {} \
             (run the tests as root, or in a container with CAP_SYS_ADMIN): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        TmpfsMount {
            dir,
            _holder: holder,
        }
    }

    /// Remounts with other options (`size=8m`, `rw`).
    pub fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.dir)
            .output()
            .expect("running mount(8)");
        assert!(
            out.status.success(),
            "remount {opts}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn remount_ro(&self) {
        let out = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "remount ro: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl TmpfsMount {
    /// Unmounts it now, lazily (`umount -l`), as a drive pulled while Ferry holds files open
    /// on it: the mount point is left behind, an empty folder on the system disk.
    pub fn unmount_lazy(&self) {
        let out = Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .output()
            .expect("running umount(8)");
        assert!(
            out.status.success(),
            "umount -l: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
