//! ferry-sim: a simulated iPhone that real clients cannot tell from a real one on the wire.
//!
//! It plays three roles (device-protocols.md): the **usbmuxd** daemon on a loopback TCP port
//! ([`mux`]), each phone's **lockdownd** on device port 62078 with pairing and TLS sessions
//! ([`lockdown`]), and the **com.apple.afc** file service over the phone image's `Media/`
//! tree ([`afc`]). Faults a real cable and phone produce (unplug mid-transfer, replug with a
//! new DeviceID, stalls, slow links, files vanishing, trust denied or revoked) can be switched
//! on from the command line, from a control socket ([`control`]) or from Rust tests through
//! [`Simulator`].
//!
//! [`storage`] plays iOS downloading and purging originals ("Optimize iPhone Storage") on an
//! image, served or not (`ferry-sim fetch` / `offload`).
//!
//! Where the simulator's behaviour is inferred rather than documented, the code says
//! UNCONFIRMED next to it.

pub mod afc;
pub mod control;
pub mod image;
pub mod io;
pub mod link;
pub mod lockdown;
pub mod mux;
pub mod phone;
pub mod sim;
pub mod state;
pub mod storage;

pub use image::{DeviceSpec, PhoneImage};
pub use link::LinkProfile;
pub use phone::TrustMode;
pub use sim::{PhoneConfig, SimConfig, Simulator};
