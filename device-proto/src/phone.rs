//! A simulated phone while it is being served: identity, trust, plug state, service ports and
//! the faults armed on it, plus the bus that tells usbmuxd listeners about plug events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::image::{DeviceSpec, PhoneImage};
use crate::link::{Link, LinkProfile};
use crate::state::DeviceStore;

/// How the phone answers a `Pair` request: what the user does with "Trust this computer?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrustMode {
    /// The user taps Trust at once.
    Auto,
    /// The dialog is up for N `Pair` requests (PairingDialogResponsePending), then the user
    /// taps Trust.
    After(u32),
    /// The user taps Don't Trust (UserDeniedPairing).
    Deny,
    /// The phone is locked with a passcode, so no dialog can be shown (PasswordProtected).
    Locked,
}

impl std::str::FromStr for TrustMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TrustMode::Auto),
            "deny" => Ok(TrustMode::Deny),
            "locked" => Ok(TrustMode::Locked),
            _ => match s.strip_prefix("after:").map(str::parse::<u32>) {
                Some(Ok(n)) => Ok(TrustMode::After(n)),
                _ => Err(format!(
                    "unknown trust mode {s:?}: use auto, after:N, deny or locked"
                )),
            },
        }
    }
}

impl std::fmt::Display for TrustMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustMode::Auto => write!(f, "auto"),
            TrustMode::After(n) => write!(f, "after:{n}"),
            TrustMode::Deny => write!(f, "deny"),
            TrustMode::Locked => write!(f, "locked"),
        }
    }
}

/// What a `Pair` request gets, given the trust mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairDecision {
    Accept,
    Pending,
    Denied,
    Locked,
}

/// Plug and unplug notifications, as usbmuxd's Listen clients receive them.
#[derive(Debug, Clone)]
pub enum MuxEvent {
    Attached { device_id: u32, phone: Arc<Phone> },
    Detached { device_id: u32 },
    Paired { device_id: u32 },
}

/// Shared by every phone of one simulator: the DeviceID counter and the event channel.
#[derive(Debug)]
pub struct Bus {
    next_id: AtomicU32,
    events: broadcast::Sender<MuxEvent>,
    /// Held while plug state changes and while a listener takes its snapshot, so that a
    /// listener sees every device exactly once (snapshot + later events, no gap, no double).
    pub order: tokio::sync::Mutex<()>,
}

impl Default for Bus {
    fn default() -> Self {
        Bus {
            // usbmuxd's counter starts at 1 and only grows.
            next_id: AtomicU32::new(1),
            events: broadcast::channel(1024).0,
            order: tokio::sync::Mutex::new(()),
        }
    }
}

impl Bus {
    pub fn subscribe(&self) -> broadcast::Receiver<MuxEvent> {
        self.events.subscribe()
    }

    pub fn send(&self, ev: MuxEvent) {
        // No receivers is fine: nobody is listening.
        let _ = self.events.send(ev);
    }
}

/// A service a client may connect to after `StartService` handed out its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    Afc,
}

#[derive(Debug)]
struct PendingPort {
    kind: ServiceKind,
    opened: Instant,
}

#[derive(Debug)]
struct Plug {
    device_id: Option<u32>,
    cancel: CancellationToken,
}

#[derive(Debug)]
struct Vanishing {
    path: String,
    listed: bool,
}

/// Lockdown's port.
pub const LOCKDOWN_PORT: u16 = 62078;

/// How long a port from `StartService` waits for its one connection. UNCONFIRMED: real
/// lockdownd's accept timeout is not documented; clients connect immediately.
const PORT_TTL: Duration = Duration::from_secs(60);

/// One simulated phone.
#[derive(Debug)]
pub struct Phone {
    pub spec: DeviceSpec,
    pub image: PhoneImage,
    pub store: DeviceStore,
    pub link: Link,
    bus: Arc<Bus>,
    trust: Mutex<TrustMode>,
    pending_answers: AtomicU32,
    plug: Mutex<Plug>,
    ports: Mutex<HashMap<u16, PendingPort>>,
    vanish: Mutex<Vec<Vanishing>>,
    /// FILE_READ requests served, and how many asked for less than 1 MiB (clients that read
    /// in small requests are slow on a real phone; tests use this to prove they don't).
    pub read_requests: AtomicU64,
    pub small_read_requests: AtomicU64,
}

impl Phone {
    pub fn new(
        spec: DeviceSpec,
        image: PhoneImage,
        store: DeviceStore,
        profile: LinkProfile,
        trust: TrustMode,
        bus: Arc<Bus>,
    ) -> Self {
        Phone {
            spec,
            image,
            store,
            link: Link::new(profile),
            bus,
            trust: Mutex::new(trust),
            pending_answers: AtomicU32::new(0),
            plug: Mutex::new(Plug {
                device_id: None,
                cancel: CancellationToken::new(),
            }),
            ports: Mutex::new(HashMap::new()),
            vanish: Mutex::new(Vec::new()),
            read_requests: AtomicU64::new(0),
            small_read_requests: AtomicU64::new(0),
        }
    }

    pub fn udid(&self) -> &str {
        &self.spec.udid
    }

    /// The DeviceID while plugged in.
    pub fn device_id(&self) -> Option<u32> {
        self.plug.lock().ok().and_then(|p| p.device_id)
    }

    /// A token cancelled when the phone is unplugged; every pipe to the phone watches it.
    pub fn plug_token(&self) -> Option<CancellationToken> {
        let p = self.plug.lock().ok()?;
        p.device_id.map(|_| p.cancel.child_token())
    }

    /// Plugs the phone in with a fresh DeviceID and announces it. No-op when already plugged.
    pub async fn plug_in(self: &Arc<Self>) -> u32 {
        let _order = self.bus.order.lock().await;
        let id = {
            let Ok(mut p) = self.plug.lock() else {
                return 0;
            };
            if let Some(id) = p.device_id {
                return id;
            }
            let id = self.bus.next_id.fetch_add(1, Ordering::SeqCst);
            p.device_id = Some(id);
            p.cancel = CancellationToken::new();
            id
        };
        self.link.arm_unplug_after(None);
        tracing::info!(udid = %self.spec.udid, device_id = id, "attached");
        self.bus.send(MuxEvent::Attached {
            device_id: id,
            phone: self.clone(),
        });
        id
    }

    /// Unplugs the phone: listeners get Detached, every open pipe is closed, new Connects get
    /// BADDEV. No-op when not plugged.
    pub async fn unplug(&self) {
        let _order = self.bus.order.lock().await;
        let id = {
            let Ok(mut p) = self.plug.lock() else {
                return;
            };
            let Some(id) = p.device_id.take() else {
                return;
            };
            p.cancel.cancel();
            id
        };
        if let Ok(mut ports) = self.ports.lock() {
            ports.clear();
        }
        tracing::info!(udid = %self.spec.udid, device_id = id, "detached");
        self.bus.send(MuxEvent::Detached { device_id: id });
    }

    /// Announces `Paired` to listeners (after a SavePairRecord naming this phone).
    pub fn announce_paired(&self, device_id: u32) {
        self.bus.send(MuxEvent::Paired { device_id });
    }

    pub fn trust_mode(&self) -> TrustMode {
        self.trust.lock().map(|t| *t).unwrap_or(TrustMode::Auto)
    }

    pub fn set_trust_mode(&self, m: TrustMode) {
        if let Ok(mut t) = self.trust.lock() {
            *t = m;
        }
        self.pending_answers.store(0, Ordering::SeqCst);
    }

    /// What the user does with the trust dialog for this `Pair` request.
    pub fn decide_pair(&self) -> PairDecision {
        match self.trust_mode() {
            TrustMode::Auto => PairDecision::Accept,
            TrustMode::Deny => PairDecision::Denied,
            TrustMode::Locked => PairDecision::Locked,
            TrustMode::After(n) => {
                let seen = self.pending_answers.fetch_add(1, Ordering::SeqCst);
                if seen < n {
                    PairDecision::Pending
                } else {
                    // Trust was tapped; the next host to pair sees the dialog again.
                    self.pending_answers.store(0, Ordering::SeqCst);
                    PairDecision::Accept
                }
            }
        }
    }

    /// Opens a port for one connection to `kind` and returns it.
    pub fn open_service_port(&self, kind: ServiceKind) -> Option<u16> {
        let mut ports = self.ports.lock().ok()?;
        ports.retain(|_, p| p.opened.elapsed() < PORT_TTL);
        // Ephemeral range, as real phones use (49152–65535).
        for _ in 0..64 {
            let port: u16 = rand::random::<u16>() | 0xC000;
            if port != LOCKDOWN_PORT && !ports.contains_key(&port) {
                ports.insert(
                    port,
                    PendingPort {
                        kind,
                        opened: Instant::now(),
                    },
                );
                return Some(port);
            }
        }
        None
    }

    /// Takes the service behind a port for the one connection it accepts.
    pub fn take_service_port(&self, port: u16) -> Option<ServiceKind> {
        let mut ports = self.ports.lock().ok()?;
        let p = ports.remove(&port)?;
        (p.opened.elapsed() < PORT_TTL).then_some(p.kind)
    }

    /// Arms a path (relative to Media, normalised) to vanish once its directory was listed.
    pub fn arm_vanish(&self, path: String) {
        if let Ok(mut v) = self.vanish.lock() {
            v.push(Vanishing {
                path,
                listed: false,
            });
        }
    }

    /// Called when `dir` was listed: any armed path inside it is now "deleted".
    pub fn note_listed(&self, dir: &str) {
        if let Ok(mut v) = self.vanish.lock() {
            for x in v.iter_mut() {
                let parent = x.path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                if parent == dir {
                    x.listed = true;
                }
            }
        }
    }

    /// Whether `path` has vanished (listed once, gone since).
    pub fn has_vanished(&self, path: &str) -> bool {
        self.vanish
            .lock()
            .map(|v| v.iter().any(|x| x.listed && x.path == path))
            .unwrap_or(false)
    }

    /// Counts a FILE_READ request of `len` bytes.
    pub fn note_read_request(&self, len: u64) {
        self.read_requests.fetch_add(1, Ordering::Relaxed);
        if len < 1 << 20 {
            self.small_read_requests.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Free bytes on the data volume, as device.toml says now.
    pub fn free_bytes(&self) -> u64 {
        self.image.current_free_bytes(self.spec.free_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trust_modes_parse_and_print() {
        for m in ["auto", "after:3", "deny", "locked"] {
            let parsed: TrustMode = m.parse().expect("parses");
            assert_eq!(parsed.to_string(), m);
        }
        assert!("after:x".parse::<TrustMode>().is_err());
        assert!("maybe".parse::<TrustMode>().is_err());
    }
}
