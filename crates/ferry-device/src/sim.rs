//! Test support (feature `sim`): a simulated iPhone served in-process, reached through its
//! usbmuxd address and paired like a real one. One place for the setup that `ferry demo`,
//! ferry-sync's engine tests and its throughput bench all need.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use ferry_sim::sim::{PhoneConfig, SimConfig, Simulator};

use crate::{HostIdentity, Mux, PairOptions, PairState, UsbDevice};

/// A served, paired simulated phone.
pub struct SimPhone {
    /// The simulator (fault controls: unplug, stall, …). Call [`Simulator::shutdown`] when done.
    pub sim: Simulator,
    /// A usbmuxd client for it.
    pub mux: Mux,
    /// The phone as usbmuxd lists it.
    pub device: UsbDevice,
}

/// A [`Mux`] for a running simulator, with `timeout` for every request.
pub fn mux_for(sim: &Simulator, timeout: Duration) -> anyhow::Result<Mux> {
    let addr = crate::addr::parse(Some(&sim.addr().to_string()), crate::addr::Os::current())?;
    Ok(Mux::new(addr, timeout))
}

/// Serves `phone` on a free loopback port (simulator state in `work/sim`), lists it and pairs
/// with a host identity kept in `work/host`. `timeout` is the client's I/O timeout.
pub async fn serve_paired(
    phone: PhoneConfig,
    work: &Path,
    timeout: Duration,
    observe: impl FnMut(&PairState) + Send,
) -> anyhow::Result<SimPhone> {
    let sim = Simulator::start(SimConfig {
        phones: vec![phone],
        listen: "127.0.0.1:0".parse()?,
        state: Some(work.join("sim")),
    })
    .await
    .context("starting the simulated iPhone")?;
    let mux = mux_for(&sim, timeout)?;
    let device = mux
        .list()
        .await?
        .into_iter()
        .next()
        .context("the simulated iPhone is not listed")?;
    let host = HostIdentity::load_or_create_in(&work.join("host"))?;
    crate::pair(&mux, &device, &host, &PairOptions::default(), observe).await?;
    Ok(SimPhone { sim, mux, device })
}
