//! The device layer's error type.
//!
//! Policy (after restic/rustic): every variant says *what happened* in its `Display` text and
//! *what the user should do* in [`Error::hint`]. Front ends (the `ferry` CLI, the GUI) show
//! both and map [`Error::kind`] to an exit code or an icon; they never have to look inside an
//! `idevice` error. Errors from the phone are data, not bugs: nothing here panics on them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The broad class of an error. Stable: the CLI maps each to an exit code (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// usbmuxd is not running or its address is wrong.
    Usbmuxd,
    /// No iPhone is connected, or the one asked for is not.
    NoDevice,
    /// Several iPhones are connected and none was chosen.
    AmbiguousDevice,
    /// The phone has not been paired with this computer.
    NotPaired,
    /// The Trust prompt was not answered in time, or pairing was cancelled.
    TrustTimeout,
    /// The user tapped "Don't Trust".
    TrustDenied,
    /// The phone is locked with a passcode.
    Locked,
    /// The phone no longer trusts this computer (trust was reset on the phone).
    TrustRevoked,
    /// The phone went away (unplugged, cable, sleep) during the operation.
    Disconnected,
    /// The phone stopped answering.
    Timeout,
    /// A file operation on the phone failed.
    PhoneFile,
    /// The photo library (Photos.sqlite) could not be read.
    Library,
    /// The user cancelled (Ctrl-C, a Cancel button).
    Cancelled,
    /// A local file operation failed.
    LocalIo,
    /// The phone answered something we do not understand, or a bug.
    Internal,
}

/// Everything that can go wrong talking to a phone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `USBMUXD_SOCKET_ADDRESS` could not be parsed or resolved.
    #[error("USBMUXD_SOCKET_ADDRESS={value:?} is not a usable address: {reason}")]
    BadMuxAddress {
        /// The variable's value.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// Could not connect to usbmuxd.
    #[error("cannot reach usbmuxd at {addr}: {source}")]
    MuxUnreachable {
        /// Where we looked.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// No phone is connected.
    #[error("no iPhone is connected")]
    NoDevice,
    /// The phone named with `--udid` is not connected.
    #[error("no connected iPhone has UDID {udid}{}", connected_list(connected))]
    DeviceNotFound {
        /// The UDID asked for.
        udid: String,
        /// `(udid, name)` of the phones that are connected.
        connected: Vec<(String, String)>,
    },
    /// Several phones are connected and none was chosen.
    #[error("{} iPhones are connected; which one?{}", devices.len(), connected_list(devices))]
    AmbiguousDevice {
        /// `(udid, name)` of every connected phone.
        devices: Vec<(String, String)>,
    },
    /// No pair record exists for the phone.
    #[error("this computer is not paired with the iPhone {udid}")]
    NotPaired {
        /// The phone.
        udid: String,
    },
    /// The Trust prompt was not answered before the deadline.
    #[error("the iPhone did not answer the \"Trust This Computer?\" prompt within {}s", .waited.as_secs())]
    TrustTimeout {
        /// How long we waited.
        waited: Duration,
    },
    /// Pairing was cancelled by the user of this program.
    #[error("pairing was cancelled")]
    PairCancelled,
    /// The user tapped "Don't Trust".
    #[error("the iPhone refused to trust this computer (\"Don't Trust\" was tapped)")]
    TrustDenied,
    /// The phone is locked with a passcode.
    #[error("the iPhone is locked with a passcode")]
    Locked,
    /// StartSession said InvalidHostID: the phone forgot this computer.
    #[error("the iPhone no longer trusts this computer (its trust settings were reset)")]
    TrustRevoked,
    /// The phone disappeared (or the connection to it broke) while `during`.
    #[error("the iPhone was disconnected while {during}")]
    Disconnected {
        /// What we were doing.
        during: String,
    },
    /// The phone stopped answering while `during`.
    #[error("the iPhone stopped responding while {during} (no answer for {}s)", .after.as_secs())]
    Timeout {
        /// What we were doing.
        during: String,
        /// How long we waited.
        after: Duration,
    },
    /// An AFC operation on one path failed.
    #[error("cannot {op} {path} on the iPhone: {reason}")]
    PhoneFile {
        /// What we tried (`read`, `list`, `stat`, `open`).
        op: &'static str,
        /// The AFC path.
        path: String,
        /// The phone's answer.
        reason: String,
    },
    /// A file the library names is a symbolic link on the phone that cannot be followed
    /// (see [`crate::afc::AfcSession::stat_following`]).
    #[error("{path} is a symbolic link on the iPhone (to {target}) {}", problem.describe())]
    PhoneLink {
        /// The AFC path of the link.
        path: String,
        /// Where it points, as the phone said (`LinkTarget`).
        target: String,
        /// Why it cannot be followed.
        problem: crate::afc::LinkProblem,
    },
    /// The photo library could not be read.
    #[error(transparent)]
    Library(#[from] ferry_photos::Error),
    /// A local file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    LocalIo {
        /// What we tried.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Something unexpected from the phone or inside this program.
    #[error("unexpected problem while {during}: {detail}")]
    Internal {
        /// What we were doing.
        during: String,
        /// Details for a bug report.
        detail: String,
    },
}

fn connected_list(devs: &[(String, String)]) -> String {
    if devs.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n  connected:");
    for (udid, name) in devs {
        if name.is_empty() {
            s.push_str(&format!("\n    {udid}"));
        } else {
            s.push_str(&format!("\n    {udid}  ({})", crate::text::printable(name)));
        }
    }
    s
}

impl Error {
    /// The broad class (drives exit codes and retry decisions).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::BadMuxAddress { .. } | Error::MuxUnreachable { .. } => ErrorKind::Usbmuxd,
            Error::NoDevice | Error::DeviceNotFound { .. } => ErrorKind::NoDevice,
            Error::AmbiguousDevice { .. } => ErrorKind::AmbiguousDevice,
            Error::NotPaired { .. } => ErrorKind::NotPaired,
            Error::TrustTimeout { .. } => ErrorKind::TrustTimeout,
            Error::PairCancelled => ErrorKind::Cancelled,
            Error::TrustDenied => ErrorKind::TrustDenied,
            Error::Locked => ErrorKind::Locked,
            Error::TrustRevoked => ErrorKind::TrustRevoked,
            Error::Disconnected { .. } => ErrorKind::Disconnected,
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::PhoneFile { .. } | Error::PhoneLink { .. } => ErrorKind::PhoneFile,
            Error::Library(_) => ErrorKind::Library,
            Error::LocalIo { .. } => ErrorKind::LocalIo,
            Error::Internal { .. } => ErrorKind::Internal,
        }
    }

    /// True if trying again later (after replugging, unlocking, …) may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Library(e) => e.is_retryable(),
            _ => matches!(
                self.kind(),
                ErrorKind::Usbmuxd
                    | ErrorKind::NoDevice
                    | ErrorKind::TrustTimeout
                    | ErrorKind::Locked
                    | ErrorKind::Disconnected
                    | ErrorKind::Timeout
            ),
        }
    }

    /// What the user should do about it, in one or two sentences.
    pub fn hint(&self) -> String {
        match self {
            Error::BadMuxAddress { .. } => "unset USBMUXD_SOCKET_ADDRESS to use the system usbmuxd, or set it to \
                 UNIX:/path/to/socket, /path/to/socket or host:port"
                .into(),
            Error::MuxUnreachable { .. } => crate::addr::missing_daemon_hint(crate::addr::Os::current()).into(),
            Error::NoDevice => "connect the iPhone with a USB cable, unlock it, and run the command again".into(),
            Error::DeviceNotFound { .. } => "check the UDID with `ferry devices`; if the iPhone is missing there, replug it and unlock it".into(),
            Error::AmbiguousDevice { .. } => "choose one with --udid UDID (see `ferry devices`)".into(),
            Error::NotPaired { .. } => "run `ferry pair`, then unlock the iPhone and tap \"Trust\"".into(),
            Error::TrustTimeout { .. } => "unlock the iPhone, run `ferry pair` again and tap \"Trust\" when the prompt appears; \
                 if no prompt appears, unplug and replug the cable"
                .into(),
            Error::PairCancelled => "run `ferry pair` again when you are ready".into(),
            Error::TrustDenied => "unplug and replug the iPhone, run `ferry pair` again and tap \"Trust\" this time \
                 (if the prompt no longer appears: Settings > General > Transfer or Reset iPhone > Reset > \
                 Reset Location & Privacy)"
                .into(),
            Error::Locked => "unlock the iPhone with its passcode and keep it unlocked, then run the command again".into(),
            Error::TrustRevoked => "run `ferry pair` to pair again: unlock the iPhone and tap \"Trust\"".into(),
            Error::Disconnected { .. } => "reconnect the iPhone and run the command again; if this keeps happening, \
                 try another cable or a USB port directly on the computer (not a hub)"
                .into(),
            Error::Timeout { .. } => "unlock the iPhone and keep it awake, then unplug and replug the cable and run \
                 the command again; if it keeps happening, try another cable or USB port"
                .into(),
            Error::PhoneFile { .. } => "run the command again; if the same file keeps failing, open it in the Photos \
                 app on the iPhone"
                .into(),
            Error::PhoneLink { .. } => "Ferry follows links only to files inside the iPhone's Media folder, and backs up \
                 the other files as usual; if the Photos app on the iPhone still shows this photo, share it from there \
                 (AirDrop, Save to Files) to keep a copy"
                .into(),
            Error::Library(e) => match e.fault() {
                ferry_photos::Fault::Changing => "the photo library was changing while it was read; run the command \
                     again (closing the Photos app on the iPhone helps)"
                    .into(),
                ferry_photos::Fault::Damaged => "the photo library database on the iPhone is damaged: every copy of it \
                     failed SQLite's check the same way, so running again as it is will not help. Restart the iPhone \
                     and open the Photos app, then run again; if it is still damaged, please report it with the error \
                     above (an iCloud or Finder backup copies the library another way meanwhile)"
                    .into(),
                ferry_photos::Fault::Unsupported => "the photo library on the iPhone could not be read; please report \
                     this with the error above and the iPhone's iOS version"
                    .into(),
                ferry_photos::Fault::Io => "reading the photo library failed; check the cable, keep the iPhone \
                     unlocked and run the command again"
                    .into(),
            },
            Error::LocalIo { .. } => "check that the folder exists, is writable and the disk is not full".into(),
            Error::Internal { .. } => "run the command again; if it happens again, please report it with the error above \
                 (set RUST_LOG=debug for details)"
                .into(),
        }
    }

    /// Maps an idevice error that happened while `during` to ours.
    pub(crate) fn from_idevice(e: idevice::IdeviceError, during: &str) -> Error {
        use idevice::IdeviceError as I;
        match e {
            I::InvalidHostID => Error::TrustRevoked,
            I::PasswordProtected | I::DeviceLocked => Error::Locked,
            I::UserDeniedPairing => Error::TrustDenied,
            I::Socket(io) => io_to_error(io, during),
            I::Timeout => Error::Timeout {
                during: during.into(),
                after: Duration::ZERO,
            },
            I::Usbmuxd(idevice::usbmuxd::errors::UsbmuxdError::BadDevice)
            | I::Usbmuxd(idevice::usbmuxd::errors::UsbmuxdError::ConnectionRefused)
            | I::DeviceNotFound => Error::Disconnected {
                during: during.into(),
            },
            I::Rustls(_) => Error::Disconnected {
                during: format!("{during} (the secure connection failed)"),
            },
            other => Error::Internal {
                during: during.into(),
                detail: other.to_string(),
            },
        }
    }
}

/// Socket errors from the phone: every "connection gone" flavour is a disconnect.
pub(crate) fn io_to_error(io: std::io::Error, during: &str) -> Error {
    use std::io::ErrorKind as K;
    match io.kind() {
        K::UnexpectedEof
        | K::ConnectionReset
        | K::ConnectionAborted
        | K::BrokenPipe
        | K::NotConnected
        | K::ConnectionRefused => Error::Disconnected {
            during: during.into(),
        },
        K::TimedOut => Error::Timeout {
            during: during.into(),
            after: Duration::ZERO,
        },
        _ => Error::Internal {
            during: during.into(),
            detail: io.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_hint_and_kind() {
        let all = vec![
            Error::BadMuxAddress {
                value: "x".into(),
                reason: "y".into(),
            },
            Error::MuxUnreachable {
                addr: "/var/run/usbmuxd".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            Error::NoDevice,
            Error::DeviceNotFound {
                udid: "a".into(),
                connected: vec![("b".into(), "B".into())],
            },
            Error::AmbiguousDevice {
                devices: vec![("a".into(), "A".into()), ("b".into(), String::new())],
            },
            Error::NotPaired { udid: "a".into() },
            Error::TrustTimeout {
                waited: Duration::from_secs(5),
            },
            Error::PairCancelled,
            Error::TrustDenied,
            Error::Locked,
            Error::TrustRevoked,
            Error::Disconnected { during: "x".into() },
            Error::Timeout {
                during: "x".into(),
                after: Duration::from_secs(1),
            },
            Error::PhoneFile {
                op: "read",
                path: "p".into(),
                reason: "r".into(),
            },
            Error::PhoneLink {
                path: "/DCIM/100APPLE/IMG_0001.HEIC".into(),
                target: "/private/var/root/x".into(),
                problem: crate::afc::LinkProblem::OutsideMedia,
            },
            Error::LocalIo {
                action: "write",
                path: "/x".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            Error::Internal {
                during: "x".into(),
                detail: "y".into(),
            },
        ];
        for e in all {
            assert!(!e.to_string().is_empty());
            assert!(e.hint().len() > 20, "{e:?}");
            let _ = e.kind();
        }
    }

    #[test]
    fn ambiguous_lists_every_phone() {
        let e = Error::AmbiguousDevice {
            devices: vec![("U1".into(), "One".into()), ("U2".into(), "Two".into())],
        };
        let s = e.to_string();
        assert!(
            s.contains("U1") && s.contains("U2") && s.contains("One"),
            "{s}"
        );
    }

    #[test]
    fn idevice_errors_map_to_user_meaning() {
        use idevice::IdeviceError as I;
        assert_eq!(
            Error::from_idevice(I::InvalidHostID, "x").kind(),
            ErrorKind::TrustRevoked
        );
        assert_eq!(
            Error::from_idevice(I::PasswordProtected, "x").kind(),
            ErrorKind::Locked
        );
        assert_eq!(
            Error::from_idevice(I::UserDeniedPairing, "x").kind(),
            ErrorKind::TrustDenied
        );
        assert_eq!(
            Error::from_idevice(
                I::Socket(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
                "x"
            )
            .kind(),
            ErrorKind::Disconnected
        );
    }
}
