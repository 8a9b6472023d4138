//! Errors that end a run before or while copying.

/// What ended a run.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The phone (usbmuxd, pairing, AFC, the library database).
    #[error(transparent)]
    Device(#[from] ferry_device::Error),
    /// The destination (marker, lock, disk full, read-only, …).
    #[error(transparent)]
    Archive(#[from] ferry_archive::Error),
    /// The user cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A bug.
    #[error("internal error while {during}: {detail}")]
    Internal {
        /// What was going on.
        during: String,
        /// What went wrong.
        detail: String,
    },
}

impl SyncError {
    /// The stable stop code used in reports.
    pub fn stop_kind(&self) -> &'static str {
        use ferry_device::ErrorKind as K;
        match self {
            SyncError::Device(e) => match e.kind() {
                K::Disconnected => "disconnected",
                K::Timeout => "timeout",
                K::Cancelled => "cancelled",
                K::Locked => "locked",
                K::NotPaired | K::TrustRevoked | K::TrustDenied | K::TrustTimeout => "not_trusted",
                K::NoDevice => "no_device",
                _ => "phone",
            },
            SyncError::Archive(e) => match e {
                ferry_archive::Error::DiskFull { .. } => "disk_full",
                ferry_archive::Error::ReadOnly { .. } => "read_only",
                ferry_archive::Error::Busy { .. } => "busy",
                ferry_archive::Error::DestinationGone { .. } => "destination_gone",
                _ => "destination",
            },
            SyncError::Cancelled => "cancelled",
            SyncError::Internal { .. } => "internal",
        }
    }

    /// What to do.
    pub fn hint(&self) -> String {
        match self {
            SyncError::Device(e) => e.hint(),
            SyncError::Archive(e) => {
                // Archive messages carry their hint after a "\nhint: " line.
                let text = e.to_string();
                text.split_once("\nhint: ")
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_else(|| "check the destination drive and run again".into())
            }
            SyncError::Cancelled => {
                "run the same command again to continue; nothing already copied is copied again"
                    .into()
            }
            SyncError::Internal { .. } => {
                "run again; if it repeats, report it with the output of RUST_LOG=debug".into()
            }
        }
    }

    /// The message without the hint.
    pub fn message(&self) -> String {
        let text = self.to_string();
        match text.split_once("\nhint: ") {
            Some((m, _)) => m.to_string(),
            None => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A run stops on these after it may already have copied files: neither the message nor
    /// the hint may claim that nothing changed, and the hint says what became of those files.
    #[test]
    fn destination_stops_never_claim_that_nothing_changed() {
        let path = PathBuf::from("/media/backup/Photos/Ada/2024/01/IMG_0001.HEIC");
        for e in [
            ferry_archive::Error::ReadOnly { path: path.clone() },
            ferry_archive::Error::PermissionDenied { path: path.clone() },
            ferry_archive::Error::DiskFull {
                path: path.clone(),
                need: 5_000_000,
                available: 10,
            },
        ] {
            let e = SyncError::Archive(e);
            let all = format!("{}\n{}", e.message(), e.hint());
            assert!(!all.contains("nothing was changed"), "{all}");
            assert!(e.hint().contains("already"), "{}", e.hint());
        }
    }
}
