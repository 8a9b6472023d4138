//! What the destination's file system is, how much room it has, and what it can store.
//!
//! Detection is one `statfs` call; turning its answer into an [`FsKind`] is a pure mapping
//! ([`fs_kind_from_linux_magic`], [`fs_kind_from_macos_name`]) tested on Linux, so the macOS
//! path is covered by tests too even though it only runs there.

use std::path::Path;

/// The file systems Ferry treats differently (or names in messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsKind {
    /// FAT12/16/32 (`vfat`, macOS `msdos`): files up to 4 GiB − 1.
    Fat,
    /// exFAT.
    ExFat,
    /// NTFS.
    Ntfs,
    /// APFS.
    Apfs,
    /// HFS+.
    Hfs,
    /// ext2/3/4.
    Ext4,
    /// Btrfs.
    Btrfs,
    /// XFS.
    Xfs,
    /// tmpfs (tests).
    Tmpfs,
    /// A FUSE file system (exfat-fuse, ntfs-3g, …): the real type is unknown.
    Fuse,
    /// A network file system (NFS, SMB, AFP, WebDAV).
    Network,
    /// Anything else.
    Other,
}

impl FsKind {
    /// The largest file this file system stores, if it has a limit Ferry must check.
    pub fn max_file_size(self) -> Option<u64> {
        match self {
            FsKind::Fat => Some(FAT_MAX_FILE_SIZE),
            _ => None,
        }
    }

    /// A display name.
    pub fn as_str(self) -> &'static str {
        match self {
            FsKind::Fat => "FAT32",
            FsKind::ExFat => "exFAT",
            FsKind::Ntfs => "NTFS",
            FsKind::Apfs => "APFS",
            FsKind::Hfs => "HFS+",
            FsKind::Ext4 => "ext4",
            FsKind::Btrfs => "Btrfs",
            FsKind::Xfs => "XFS",
            FsKind::Tmpfs => "tmpfs",
            FsKind::Fuse => "FUSE",
            FsKind::Network => "network",
            FsKind::Other => "unknown",
        }
    }
}

impl std::fmt::Display for FsKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// FAT's per-file limit: 4 GiB − 1 bytes.
pub const FAT_MAX_FILE_SIZE: u64 = u32::MAX as u64;

/// Maps Linux `statfs.f_type` to a kind (magic numbers from `linux/magic.h`).
pub fn fs_kind_from_linux_magic(magic: u64) -> FsKind {
    match magic {
        0x4d44 => FsKind::Fat,
        0x2011_bab0 => FsKind::ExFat,
        0x5346_544e => FsKind::Ntfs, // ntfs and ntfs3
        0xef53 => FsKind::Ext4,
        0x9123_683e => FsKind::Btrfs,
        0x5846_5342 => FsKind::Xfs,
        0x0102_1994 => FsKind::Tmpfs,
        0x4244 | 0x482b => FsKind::Hfs,
        0x6573_5546 => FsKind::Fuse,
        0x6969 | 0xff53_4d42 | 0xfe53_4d42 | 0x517b => FsKind::Network,
        _ => FsKind::Other,
    }
}

/// Maps macOS `statfs.f_fstypename` to a kind.
pub fn fs_kind_from_macos_name(name: &str) -> FsKind {
    match name.to_ascii_lowercase().as_str() {
        "msdos" => FsKind::Fat,
        "exfat" => FsKind::ExFat,
        "ntfs" | "ufsd_ntfs" | "tuxera_ntfs" | "paragon_ntfs" => FsKind::Ntfs,
        "apfs" => FsKind::Apfs,
        "hfs" => FsKind::Hfs,
        "smbfs" | "nfs" | "afpfs" | "webdav" => FsKind::Network,
        n if n.starts_with("fuse") || n.starts_with("macfuse") || n.starts_with("osxfuse") => {
            FsKind::Fuse
        }
        _ => FsKind::Other,
    }
}

/// Detects the file system holding `path`.
pub fn detect(path: &Path) -> std::io::Result<FsKind> {
    let st = rustix::fs::statfs(path)?;
    Ok(kind_of(&st))
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn kind_of(st: &rustix::fs::StatFs) -> FsKind {
    // f_type's integer type differs between architectures; it carries a 32-bit magic.
    #[allow(clippy::unnecessary_cast)]
    let magic = st.f_type as u64 & 0xffff_ffff;
    fs_kind_from_linux_magic(magic)
}

#[cfg(target_vendor = "apple")]
fn kind_of(st: &rustix::fs::StatFs) -> FsKind {
    let bytes: Vec<u8> = st
        .f_fstypename
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    fs_kind_from_macos_name(&String::from_utf8_lossy(&bytes))
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn kind_of(_st: &rustix::fs::StatFs) -> FsKind {
    FsKind::Other
}

/// Detects the file system holding the open folder or file `fd`.
pub fn detect_fd(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<FsKind> {
    let st = rustix::fs::fstatfs(fd)?;
    Ok(kind_of(&st))
}

/// Bytes available to an unprivileged writer on the file system holding `path`
/// (`statvfs`: `f_bavail × f_frsize`).
pub fn available_bytes(path: &Path) -> std::io::Result<u64> {
    // The file may not exist (yet): ask about the nearest existing ancestor.
    let mut p = path;
    loop {
        match rustix::fs::statvfs(p) {
            Ok(st) => return Ok(st.f_bavail.saturating_mul(st.f_frsize)),
            Err(e) if e == rustix::io::Errno::NOENT => match p.parent() {
                Some(parent) => p = parent,
                None => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_magics() {
        assert_eq!(fs_kind_from_linux_magic(0x4d44), FsKind::Fat);
        assert_eq!(fs_kind_from_linux_magic(0x2011_bab0), FsKind::ExFat);
        assert_eq!(fs_kind_from_linux_magic(0x5346_544e), FsKind::Ntfs);
        assert_eq!(fs_kind_from_linux_magic(0xef53), FsKind::Ext4);
        assert_eq!(fs_kind_from_linux_magic(0x0102_1994), FsKind::Tmpfs);
        assert_eq!(fs_kind_from_linux_magic(0x6573_5546), FsKind::Fuse);
        assert_eq!(fs_kind_from_linux_magic(0x6969), FsKind::Network);
        assert_eq!(fs_kind_from_linux_magic(0x1234), FsKind::Other);
    }

    #[test]
    fn macos_names() {
        assert_eq!(fs_kind_from_macos_name("msdos"), FsKind::Fat);
        assert_eq!(fs_kind_from_macos_name("exfat"), FsKind::ExFat);
        assert_eq!(fs_kind_from_macos_name("apfs"), FsKind::Apfs);
        assert_eq!(fs_kind_from_macos_name("hfs"), FsKind::Hfs);
        assert_eq!(fs_kind_from_macos_name("ntfs"), FsKind::Ntfs);
        assert_eq!(fs_kind_from_macos_name("smbfs"), FsKind::Network);
        assert_eq!(fs_kind_from_macos_name("macfuse"), FsKind::Fuse);
        assert_eq!(fs_kind_from_macos_name("zfs"), FsKind::Other);
    }

    #[test]
    fn fat_limit() {
        assert_eq!(
            FsKind::Fat.max_file_size(),
            Some(4 * 1024 * 1024 * 1024 - 1)
        );
        assert_eq!(FsKind::ExFat.max_file_size(), None);
    }

    #[test]
    fn detects_this_machine() {
        let dir = tempfile::tempdir().unwrap();
        // Whatever /tmp is, detection answers and free space is known.
        let _ = detect(dir.path()).unwrap();
        assert!(available_bytes(&dir.path().join("not/yet/there")).unwrap() > 0);
    }
}
