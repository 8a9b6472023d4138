//! The USB link between host and phone: how fast payload moves, how long a request takes to
//! turn around, and the faults a cable or a phone can produce (unplug mid-transfer, stall).
//!
//! Pacing never splits a protocol header across writes: callers write each header in one
//! `write` and only payload bytes pass through [`Link::pace`]. libimobiledevice 1.3.0 reads
//! headers with a single `recv`, and a real usbmuxd most likely delivers each header in one USB
//! packet (inferred, see device-protocols.md §5), so splitting would be a simulator artefact.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// A link profile: the payload bandwidth and per-request latency of a cable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkProfile {
    /// USB 2.0 High-Speed (480 Mbit/s on the wire).
    Usb2,
    /// USB 3 SuperSpeed (5 Gbit/s on the wire).
    Usb3,
    /// No pacing at all (fast tests). Reported to clients as SuperSpeed.
    Unlimited,
}

impl std::str::FromStr for LinkProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "usb2" => Ok(LinkProfile::Usb2),
            "usb3" => Ok(LinkProfile::Usb3),
            "unlimited" => Ok(LinkProfile::Unlimited),
            other => Err(format!(
                "unknown link profile {other:?}: use usb2, usb3 or unlimited"
            )),
        }
    }
}

impl LinkProfile {
    /// `ConnectionSpeed` as Linux usbmuxd reports it (bits/s of the negotiated USB speed).
    pub fn connection_speed(self) -> u64 {
        match self {
            LinkProfile::Usb2 => 480_000_000,
            LinkProfile::Usb3 | LinkProfile::Unlimited => 5_000_000_000,
        }
    }

    /// Payload bytes per second through AFC. UNCONFIRMED: USB 2.0 AFC throughput is reported
    /// at 20–40 MB/s by users (field survey); USB 3 iPhones reach a few hundred MB/s. These
    /// are plausible middles, not measurements.
    pub fn bytes_per_second(self) -> Option<u64> {
        match self {
            LinkProfile::Usb2 => Some(32_000_000),
            LinkProfile::Usb3 => Some(300_000_000),
            LinkProfile::Unlimited => None,
        }
    }

    /// Turn-around time added before each reply. UNCONFIRMED: inferred from USB frame timing
    /// (1 ms frames on High-Speed, 125 µs micro-frames) plus device-side work.
    pub fn request_latency(self) -> Duration {
        match self {
            LinkProfile::Usb2 => Duration::from_micros(1000),
            LinkProfile::Usb3 => Duration::from_micros(250),
            LinkProfile::Unlimited => Duration::ZERO,
        }
    }
}

/// What the link decides about the next payload chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// Send this many bytes of the chunk (the whole chunk when nothing is armed).
    Send(usize),
    /// Send this many bytes, then the phone is unplugged.
    SendThenUnplug(usize),
}

/// Faults and pacing shared by every connection to one phone.
#[derive(Debug)]
pub struct Link {
    profile: Mutex<LinkProfile>,
    /// AFC payload bytes sent since the phone was plugged in.
    afc_bytes: AtomicU64,
    unplug_after: Mutex<Option<u64>>,
    stall_after: Mutex<Option<u64>>,
    stalled: watch::Sender<bool>,
    unplug_fired: AtomicBool,
    /// Pacing clock: the instant at which the link is free again.
    free_at: Mutex<Option<Instant>>,
}

impl Link {
    pub fn new(profile: LinkProfile) -> Self {
        Link {
            profile: Mutex::new(profile),
            afc_bytes: AtomicU64::new(0),
            unplug_after: Mutex::new(None),
            stall_after: Mutex::new(None),
            stalled: watch::channel(false).0,
            unplug_fired: AtomicBool::new(false),
            free_at: Mutex::new(None),
        }
    }

    pub fn profile(&self) -> LinkProfile {
        self.profile
            .lock()
            .map(|p| *p)
            .unwrap_or(LinkProfile::Unlimited)
    }

    pub fn set_profile(&self, p: LinkProfile) {
        if let Ok(mut g) = self.profile.lock() {
            *g = p;
        }
    }

    /// Arms "unplug after N more AFC payload bytes" (counted from now).
    pub fn arm_unplug_after(&self, n: Option<u64>) {
        let base = self.afc_bytes.load(Ordering::SeqCst);
        if let Ok(mut g) = self.unplug_after.lock() {
            *g = n.map(|n| base.saturating_add(n));
        }
        self.unplug_fired.store(false, Ordering::SeqCst);
    }

    /// Arms "stall after N more AFC payload bytes".
    pub fn arm_stall_after(&self, n: Option<u64>) {
        let base = self.afc_bytes.load(Ordering::SeqCst);
        if let Ok(mut g) = self.stall_after.lock() {
            *g = n.map(|n| base.saturating_add(n));
        }
    }

    /// Stops (or restarts) the phone answering.
    pub fn set_stalled(&self, on: bool) {
        self.stalled.send_replace(on);
    }

    pub fn is_stalled(&self) -> bool {
        *self.stalled.borrow()
    }

    pub fn afc_bytes(&self) -> u64 {
        self.afc_bytes.load(Ordering::SeqCst)
    }

    /// Waits while the phone is stalled. Returns at once otherwise.
    pub async fn wait_unstalled(&self) {
        let mut rx = self.stalled.subscribe();
        // An error means the sender is gone: the phone is being dropped, nothing to wait for.
        let _ = rx.wait_for(|s| !*s).await;
    }

    /// Called before every reply: the turn-around latency, and the stall gate.
    pub async fn before_reply(&self) {
        self.wait_unstalled().await;
        let lat = self.profile().request_latency();
        if !lat.is_zero() {
            self.advance(lat).await;
        }
    }

    /// Moves the link's clock on by `cost` and sleeps once it runs ahead of real time by
    /// more than the timer's granularity. Sleeping for every sub-millisecond step would make
    /// each one cost a whole timer tick; keeping a clock makes the average rate right.
    async fn advance(&self, cost: Duration) {
        const SLACK: Duration = Duration::from_millis(2);
        let wake = {
            let Ok(mut g) = self.free_at.lock() else {
                return;
            };
            let now = Instant::now();
            // An idle link banks no credit.
            let start = g.filter(|t| *t > now).unwrap_or(now);
            let end = start + cost;
            *g = Some(end);
            (end > now + SLACK).then_some(end)
        };
        if let Some(t) = wake {
            tokio::time::sleep_until(t).await;
        }
    }

    /// Decides how much of an AFC payload chunk may go out, counting it, and arms a stall
    /// when the stall threshold is crossed.
    pub fn afc_budget(&self, chunk: usize) -> Budget {
        let before = self.afc_bytes.load(Ordering::SeqCst);
        let chunk64 = chunk as u64;
        let mut allowed = chunk64;
        let mut unplug = false;
        if let Ok(g) = self.unplug_after.lock() {
            if let Some(limit) = *g {
                if !self.unplug_fired.load(Ordering::SeqCst)
                    && before.saturating_add(chunk64) >= limit
                {
                    allowed = limit.saturating_sub(before).min(chunk64);
                    unplug = true;
                }
            }
        }
        if let Ok(mut g) = self.stall_after.lock() {
            if let Some(limit) = *g {
                if before.saturating_add(allowed) >= limit {
                    allowed = allowed.min(limit.saturating_sub(before));
                    *g = None;
                    self.set_stalled(true);
                }
            }
        }
        self.afc_bytes.fetch_add(allowed, Ordering::SeqCst);
        let allowed = usize::try_from(allowed).unwrap_or(chunk);
        if unplug {
            self.unplug_fired.store(true, Ordering::SeqCst);
            Budget::SendThenUnplug(allowed)
        } else {
            Budget::Send(allowed)
        }
    }

    /// Paces `n` payload bytes to the profile's bandwidth. The link is shared: two
    /// connections to one phone share its bandwidth, as on one cable.
    pub async fn pace(&self, n: usize) {
        let Some(bps) = self.profile().bytes_per_second() else {
            return;
        };
        self.advance(Duration::from_secs_f64(n as f64 / bps as f64))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unplug_budget_cuts_inside_a_chunk() {
        let l = Link::new(LinkProfile::Unlimited);
        l.arm_unplug_after(Some(1000));
        assert_eq!(l.afc_budget(600), Budget::Send(600));
        assert_eq!(l.afc_budget(600), Budget::SendThenUnplug(400));
        assert_eq!(l.afc_bytes(), 1000);
        // Fires once.
        assert_eq!(l.afc_budget(600), Budget::Send(600));
    }

    #[test]
    fn stall_budget_stops_at_threshold() {
        let l = Link::new(LinkProfile::Unlimited);
        l.arm_stall_after(Some(100));
        assert!(!l.is_stalled());
        assert_eq!(l.afc_budget(64), Budget::Send(64));
        assert_eq!(l.afc_budget(64), Budget::Send(36));
        assert!(l.is_stalled());
        l.set_stalled(false);
        assert_eq!(l.afc_budget(64), Budget::Send(64));
    }

    #[test]
    fn profiles_report_usb_speeds() {
        assert_eq!(LinkProfile::Usb2.connection_speed(), 480_000_000);
        assert!(LinkProfile::Usb3.connection_speed() >= 5_000_000_000);
        assert_eq!("usb3".parse::<LinkProfile>(), Ok(LinkProfile::Usb3));
        assert!("usb4".parse::<LinkProfile>().is_err());
    }
}
