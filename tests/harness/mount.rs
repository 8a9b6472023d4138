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

/// Which file system a [`LoopMount`] carries, and through which driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopFs {
    /// `mkfs.exfat` (exfatprogs), mounted with `mount.exfat-fuse` (exfat-fuse).
    ExFatFuse,
    /// `mkfs.vfat -F 32` (dosfstools), mounted with the kernel's `vfat` driver.
    Fat32Kernel,
    /// `mkfs.vfat -F 32`, mounted with `fusefat -o rw+`.
    Fat32Fuse,
}

impl LoopFs {
    fn tools(self) -> &'static [(&'static str, &'static str)] {
        match self {
            LoopFs::ExFatFuse => &[
                ("mkfs.exfat", "exfatprogs"),
                ("mount.exfat-fuse", "exfat-fuse"),
            ],
            LoopFs::Fat32Kernel => &[("mkfs.vfat", "dosfstools")],
            LoopFs::Fat32Fuse => &[("mkfs.vfat", "dosfstools"), ("fusefat", "fusefat")],
        }
    }
}

fn have_tool(name: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .any(|d| d.join(name).is_file())
}

fn run(what: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(format!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// A file-system image on a loop device, mounted on a fresh temp dir. `Drop` unmounts it and
/// detaches the loop device, also when the test fails.
///
/// Needs root (loop devices, mounts, FUSE) and the tools of `scripts/install-peers.sh`.
pub struct LoopMount {
    pub dir: PathBuf,
    pub fs: LoopFs,
    pub device: String,
    mounted: bool,
    _holder: tempfile::TempDir,
}

impl LoopMount {
    /// Makes a sparse image of `size_mib` MiB, formats it, attaches it with
    /// `losetup -f --show` and mounts it. Errors say exactly what is missing.
    pub fn try_new(fs: LoopFs, size_mib: u64) -> Result<LoopMount, String> {
        for (tool, package) in fs.tools() {
            if !have_tool(tool) {
                return Err(format!(
                    "{tool} not found (Debian package {package}): run `bash scripts/install-peers.sh`"
                ));
            }
        }
        if unsafe { libc::geteuid() } != 0 {
            return Err(
                "loop devices and mounts need root: run the tests as root (CI does)".to_string(),
            );
        }
        let holder = tempfile::Builder::new()
            .prefix("ferry-loop-")
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let image = holder.path().join("fs.img");
        let dir = holder.path().join("mnt");
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let f = std::fs::File::create(&image).map_err(|e| format!("create image: {e}"))?;
        f.set_len(size_mib << 20)
            .map_err(|e| format!("truncate image: {e}"))?;
        drop(f);
        match fs {
            LoopFs::ExFatFuse => run("mkfs.exfat", Command::new("mkfs.exfat").arg(&image))?,
            LoopFs::Fat32Kernel | LoopFs::Fat32Fuse => run(
                "mkfs.vfat",
                Command::new("mkfs.vfat").args(["-F", "32"]).arg(&image),
            )?,
        };
        let device = run(
            "losetup -f --show",
            Command::new("losetup").args(["-f", "--show"]).arg(&image),
        )?;
        let mut m = LoopMount {
            dir,
            fs,
            device,
            mounted: false,
            _holder: holder,
        };
        let mounted = match fs {
            LoopFs::ExFatFuse => run(
                "mount.exfat-fuse",
                Command::new("mount.exfat-fuse").arg(&m.device).arg(&m.dir),
            ),
            LoopFs::Fat32Kernel => run(
                "mount -t vfat",
                Command::new("mount")
                    .args(["-t", "vfat"])
                    .arg(&m.device)
                    .arg(&m.dir),
            ),
            LoopFs::Fat32Fuse => run(
                "fusefat",
                Command::new("fusefat")
                    .args(["-o", "rw+"])
                    .arg(&m.device)
                    .arg(&m.dir),
            ),
        };
        // On error, `m`'s Drop detaches the loop device.
        mounted?;
        m.mounted = true;
        Ok(m)
    }

    /// Like [`LoopMount::try_new`]; panics with the reason (a test that needs the file system
    /// fails, it never passes silently).
    pub fn new(fs: LoopFs, size_mib: u64) -> LoopMount {
        LoopMount::try_new(fs, size_mib).unwrap_or_else(|e| {
            panic!("this test needs a {fs:?} file system on a loop device: {e}")
        })
    }

    /// Kills the FUSE daemon serving this mount (`SIGKILL`), as when a USB drive is pulled or
    /// the driver crashes: from then on every call on the mount point fails with `ENOTCONN`
    /// ("Transport endpoint is not connected"). Then unmounts it lazily, leaving the empty
    /// mount point. Panics when this is not a FUSE mount or no daemon is found.
    pub fn kill_fuse_daemon(&self) {
        let daemon = match self.fs {
            LoopFs::ExFatFuse => "mount.exfat-fuse",
            LoopFs::Fat32Fuse => "fusefat",
            LoopFs::Fat32Kernel => panic!("not a FUSE mount"),
        };
        let dir = self.dir.as_os_str().as_encoded_bytes();
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_daemon = args.first().is_some_and(|a| a.ends_with(daemon.as_bytes()));
            if is_daemon && args.contains(&dir) {
                // SAFETY: kill(2) with a pid read from /proc.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                killed += 1;
            }
        }
        assert!(
            killed > 0,
            "no {daemon} process serves {}",
            self.dir.display()
        );
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }

    /// The file-system type the kernel reports for the mount (`/proc/self/mounts`).
    pub fn mount_type(&self) -> Option<String> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let dir = self.dir.to_str()?;
        mounts
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[1] == dir)
            .map(|f| f[2].to_string())
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted {
            // A FUSE daemon exits when its mount goes; `umount` waits for open files to close.
            if Command::new("umount")
                .arg(&self.dir)
                .status()
                .map(|s| !s.success())
                .unwrap_or(true)
            {
                let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
            }
        }
        // Detaches now, or (still busy) as soon as the last user lets go.
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}
