//! The simulator: phones, the usbmuxd listener, and the handle tests and the control socket
//! use to play a user (unplug, replug, revoke trust) or a fault (stall).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::image::PhoneImage;
use crate::link::LinkProfile;
use crate::mux::serve_connection;
use crate::phone::{Bus, Phone, TrustMode};
use crate::state::{DeviceStore, MuxStore};

/// The state directory used inside an image when `--state` is not given.
pub const IMAGE_STATE_DIR: &str = ".ferry-sim";

/// One phone to serve and how.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    pub image: PathBuf,
    pub trust: TrustMode,
    /// The phone forgot every host before being plugged in.
    pub revoke: bool,
    pub link: LinkProfile,
    pub unplug_after_bytes: Option<u64>,
    pub stall_after_bytes: Option<u64>,
    /// AFC paths that vanish once their directory was listed.
    pub vanish: Vec<String>,
    /// Start with the cable out: the phone is announced only on `ctl replug`.
    pub unplugged: bool,
}

impl PhoneConfig {
    pub fn new(image: impl Into<PathBuf>) -> Self {
        PhoneConfig {
            image: image.into(),
            trust: TrustMode::Auto,
            revoke: false,
            link: LinkProfile::Unlimited,
            unplug_after_bytes: None,
            stall_after_bytes: None,
            vanish: Vec::new(),
            unplugged: false,
        }
    }
}

/// What to serve and where.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub phones: Vec<PhoneConfig>,
    pub listen: SocketAddr,
    /// Root of all simulator state; `None`: inside each image (`.ferry-sim/`), usbmuxd's part
    /// inside the first image.
    pub state: Option<PathBuf>,
}

/// What every connection task needs.
#[derive(Debug)]
pub struct Shared {
    pub phones: Vec<Arc<Phone>>,
    pub store: MuxStore,
    pub bus: Arc<Bus>,
    pub listeners: crate::mux::Listeners,
    pub shutdown: CancellationToken,
}

/// A phone's state as `status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PhoneStatus {
    pub udid: String,
    pub name: String,
    pub device_id: Option<u32>,
    pub trust: String,
    pub trusted_hosts: usize,
    pub stalled: bool,
    pub afc_bytes: u64,
    /// FILE_READ requests served, and of those how many asked for less than 1 MiB.
    pub read_requests: u64,
    pub small_read_requests: u64,
    pub link: String,
}

/// A running simulator.
pub struct Simulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    tasks: TaskTracker,
}

fn device_state_dir(state: &Option<PathBuf>, image: &Path, udid: &str) -> PathBuf {
    match state {
        Some(s) => s.join("devices").join(udid),
        None => image.join(IMAGE_STATE_DIR).join("device"),
    }
}

impl Simulator {
    /// Loads the phones, binds the listener and starts serving. The phones are plugged in
    /// (announced) before this returns, except those configured `unplugged`.
    pub async fn start(cfg: SimConfig) -> anyhow::Result<Self> {
        if cfg.phones.is_empty() {
            bail!("no phone to serve: give at least one --phone DIR");
        }
        let mux_dir = match &cfg.state {
            Some(s) => s.join("usbmuxd"),
            None => cfg.phones[0].image.join(IMAGE_STATE_DIR).join("usbmuxd"),
        };
        let store = MuxStore::open(&mux_dir)?;
        let bus = Arc::new(Bus::default());
        let mut phones = Vec::new();
        for pc in &cfg.phones {
            let (image, spec) = PhoneImage::open(&pc.image)
                .with_context(|| format!("cannot load phone image {}", pc.image.display()))?;
            if phones.iter().any(|p: &Arc<Phone>| p.udid() == spec.udid) {
                bail!("two phones share the UDID {}", spec.udid);
            }
            let dev = DeviceStore::open(&device_state_dir(&cfg.state, &pc.image, &spec.udid))?;
            if pc.revoke {
                dev.forget_all()?;
            }
            let phone = Arc::new(Phone::new(spec, image, dev, pc.link, pc.trust, bus.clone()));
            for v in &pc.vanish {
                let rel = crate::afc::jail::normalise(v.as_bytes())
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                phone.arm_vanish(rel);
            }
            phones.push(phone);
        }
        let listener = TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            phones,
            store,
            bus,
            listeners: Default::default(),
            shutdown: CancellationToken::new(),
        });
        for (p, pc) in shared.phones.iter().zip(&cfg.phones) {
            if !pc.unplugged {
                p.plug_in().await;
            }
            p.link.arm_unplug_after(pc.unplug_after_bytes);
            p.link.arm_stall_after(pc.stall_after_bytes);
        }
        let tasks = TaskTracker::new();
        let s = shared.clone();
        let t = tasks.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    r = listener.accept() => match r {
                        Ok((sock, _)) => {
                            let _ = sock.set_nodelay(true);
                            let s2 = s.clone();
                            t.spawn(async move { serve_connection(s2, Box::new(sock)).await });
                        }
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                        }
                    },
                    _ = s.shutdown.cancelled() => break,
                }
            }
        });
        Ok(Simulator {
            shared,
            addr,
            tasks,
        })
    }

    /// The usbmuxd address clients use (`USBMUXD_SOCKET_ADDRESS`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn phone(&self, udid: Option<&str>) -> anyhow::Result<Arc<Phone>> {
        match udid {
            Some(u) => self
                .shared
                .phones
                .iter()
                .find(|p| p.udid() == u)
                .cloned()
                .with_context(|| format!("no phone with UDID {u}")),
            None if self.shared.phones.len() == 1 => Ok(self.shared.phones[0].clone()),
            None => bail!("several phones are served: name one with --udid"),
        }
    }

    /// Unplugs a phone (Detached to listeners, pipes closed).
    pub async fn unplug(&self, udid: Option<&str>) -> anyhow::Result<()> {
        self.phone(udid)?.unplug().await;
        Ok(())
    }

    /// Plugs a phone back in with a new DeviceID (unplugging it first if needed).
    pub async fn replug(&self, udid: Option<&str>) -> anyhow::Result<u32> {
        let p = self.phone(udid)?;
        p.unplug().await;
        Ok(p.plug_in().await)
    }

    /// The phone stops answering mid-reply (`true`) or carries on (`false`).
    pub fn stall(&self, udid: Option<&str>, on: bool) -> anyhow::Result<()> {
        self.phone(udid)?.link.set_stalled(on);
        Ok(())
    }

    /// The user resets trust on the phone: every host is forgotten; hosts keep their records.
    pub fn revoke(&self, udid: Option<&str>) -> anyhow::Result<()> {
        self.phone(udid)?.store.forget_all()
    }

    /// Changes how the trust dialog is answered.
    pub fn set_trust(&self, udid: Option<&str>, mode: TrustMode) -> anyhow::Result<()> {
        self.phone(udid)?.set_trust_mode(mode);
        Ok(())
    }

    /// Arms "unplug after N more AFC payload bytes".
    pub fn unplug_after(&self, udid: Option<&str>, bytes: Option<u64>) -> anyhow::Result<()> {
        self.phone(udid)?.link.arm_unplug_after(bytes);
        Ok(())
    }

    /// Arms (or with `None` disarms) "stop answering after N more AFC payload bytes" (until
    /// unstalled): a phone that hangs in the middle of a copy.
    pub fn stall_after(&self, udid: Option<&str>, bytes: Option<u64>) -> anyhow::Result<()> {
        self.phone(udid)?.link.arm_stall_after(bytes);
        Ok(())
    }

    /// Every phone's state.
    pub fn status(&self) -> Vec<PhoneStatus> {
        self.shared
            .phones
            .iter()
            .map(|p| PhoneStatus {
                udid: p.udid().to_string(),
                name: p.spec.name.clone(),
                device_id: p.device_id(),
                trust: p.trust_mode().to_string(),
                trusted_hosts: p.store.trusted_count(),
                stalled: p.link.is_stalled(),
                afc_bytes: p.link.afc_bytes(),
                read_requests: p.read_requests.load(std::sync::atomic::Ordering::Relaxed),
                small_read_requests: p
                    .small_read_requests
                    .load(std::sync::atomic::Ordering::Relaxed),
                link: format!("{:?}", p.link.profile()).to_lowercase(),
            })
            .collect()
    }

    /// Stops accepting, closes every connection and waits for the tasks to end.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        for p in &self.shared.phones {
            // Let stalled replies end.
            p.link.set_stalled(false);
        }
        self.tasks.close();
        self.tasks.wait().await;
    }
}
