//! Test harness for Ferry's end-to-end tests.
//!
//! - [`image`]: deterministic phone images (`device.toml` + `Media/`) in temp dirs;
//! - [`sim`]: builds/locates `ferry-sim`, spawns `ferry-sim serve`, waits for its
//!   `USBMUXD_SOCKET_ADDRESS` line, stops it with SIGTERM, drives `ferry-sim ctl`;
//! - [`peers`]: finds and runs the third-party peer clients (libimobiledevice-utils,
//!   pymobiledevice3) with an isolated HOME; a missing tool is a failure, never a skip;
//! - [`idev`]: the `idevice` crate as a client, with its documented traps worked around;
//! - [`raw`]: small independent wire clients for usbmuxd, lockdownd and AFC.
//!
//! See docs/testing.md.

pub mod idev;
pub mod image;
pub mod mount;
pub mod peers;
pub mod raw;
pub mod sim;
