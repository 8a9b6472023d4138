//! The usbmuxd daemon: the socket every client talks to first. It lists phones, tells
//! listeners when phones come and go, keeps pair records and the host's BUID, and turns a
//! connection into a raw pipe to a port on a phone (`Connect`).

pub mod codec;
mod server;

pub use server::Listeners;

pub use server::serve_connection;
