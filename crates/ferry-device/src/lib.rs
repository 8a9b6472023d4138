//! Ferry's device layer: finding iPhones through usbmuxd, pairing with them, and reading
//! their files over AFC, on top of the [`idevice`] crate.
//!
//! ```no_run
//! # async fn demo() -> ferry_device::Result<()> {
//! use ferry_device::{choose, scan, Mux, ScanOptions};
//! let mux = Mux::from_env()?;                     // USBMUXD_SOCKET_ADDRESS or the default
//! let phones = mux.list().await?;
//! let phone = choose(&phones, None, &|_| String::new())?; // the only one, or an error
//! let report = scan(&mux, phone, &ScanOptions::default()).await?;
//! println!("{} assets, {} only in iCloud", report.assets, report.icloud_only.assets);
//! # Ok(()) }
//! ```
//!
//! Design rules, each answering a trap of idevice 0.1.68 (see `shared/specs/idevice-notes.md`):
//!
//! * every request to usbmuxd or the phone has a deadline ([`Mux::timeout`]); pairing waits
//!   under its own deadline and a cancel token ([`pairing`]);
//! * device work can run under [`guarded`] (a `tokio::spawn`), so an idevice panic on bad
//!   phone data becomes [`Error::Internal`];
//! * the `!Send` listen stream lives on its own thread ([`watch`]);
//! * AFC reads ask for 1 MiB per request, stream with bounded memory and always release the
//!   phone-side handle without idevice's panicking `FileDescriptor` ([`afc`]);
//! * `USBMUXD_SOCKET_ADDRESS` is parsed like libusbmuxd does ([`addr`]);
//! * every [`Error`] carries a [`hint`](Error::hint) telling the user what to do.
//!
//! Nothing here writes to a terminal; front ends render [`Error`], [`PairState`] and
//! [`ScanReport`].

#![deny(missing_docs)]

pub mod addr;
pub mod afc;
pub mod error;
pub mod host;
pub mod mux;
pub mod pairing;
pub mod paths;
pub mod scan;
pub mod session;
#[cfg(feature = "sim")]
#[doc(hidden)]
pub mod sim;
pub mod text;
pub mod watch;

pub use addr::MuxAddress;
pub use afc::{AfcSession, FileKind, FileStat, LinkProblem, Resolved, READ_CHUNK};
pub use error::{Error, ErrorKind, Result};
pub use host::HostIdentity;
pub use mux::{ConnectionKind, Mux, UsbDevice};
pub use pairing::{pair, PairOptions, PairOutcome, PairState};
pub use scan::{db_fingerprint, scan, ClassifiedAsset, DbFingerprint, ScanOptions, ScanReport};
pub use session::{choose, facts, guarded, DeviceFacts, DiskUsage, Session};
pub use text::printable;
pub use watch::{DeviceEvent, DeviceWatcher};
