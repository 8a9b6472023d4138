//! The exit-code table shared by every command (documented in docs/cli.md; keep in sync).

use ferry_device::{Error, ErrorKind};

/// Unexpected problem (a bug, or an answer from the phone we do not understand).
pub const INTERNAL: u8 = 1;

/// The exit code for an error.
pub fn code(e: &Error) -> u8 {
    match e.kind() {
        ErrorKind::Internal => INTERNAL,
        ErrorKind::Usbmuxd => 3,
        ErrorKind::NoDevice => 4,
        ErrorKind::AmbiguousDevice => 5,
        ErrorKind::NotPaired => 10,
        ErrorKind::TrustTimeout => 11,
        ErrorKind::TrustDenied => 12,
        ErrorKind::Locked => 13,
        ErrorKind::TrustRevoked => 14,
        ErrorKind::Disconnected => 20,
        ErrorKind::Timeout => 21,
        ErrorKind::PhoneFile => 22,
        ErrorKind::Library => 30,
        ErrorKind::LocalIo => 31,
        ErrorKind::Cancelled => 130,
        #[allow(unreachable_patterns)]
        _ => INTERNAL,
    }
}
