//! Choosing a phone, reading its facts, and trusted lockdown sessions that hand out AFC
//! connections.
//!
//! [`Session::open`] is the single door to everything that needs trust: it reads the pair
//! record from usbmuxd (none → [`Error::NotPaired`]), starts the TLS session (InvalidHostID →
//! [`Error::TrustRevoked`]), and then starts `com.apple.afc` as often as asked, so several AFC
//! connections can run at once.

use std::future::Future;
use std::time::Duration;

use idevice::afc::AfcClient;
use idevice::lockdown::LockdownClient;
use idevice::pairing_file::PairingFile;
use idevice::provider::{IdeviceProvider, UsbmuxdProvider};
use idevice::{IdeviceError, IdeviceService};
use plist::Value;
use serde::Serialize;

use crate::afc::AfcSession;
use crate::error::{Error, Result};
use crate::mux::{ConnectionKind, Mux, UsbDevice};

/// Runs `fut` with `d` as deadline, mapping idevice errors while `during`.
pub(crate) async fn timed<T>(
    d: Duration,
    during: &str,
    fut: impl Future<Output = Result<T, IdeviceError>>,
) -> Result<T> {
    match tokio::time::timeout(d, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(Error::from_idevice(e, during)),
        Err(_) => Err(Error::Timeout {
            during: during.into(),
            after: d,
        }),
    }
}

/// Runs device work in its own tokio task, so that a panic inside idevice (it has a few on
/// malformed phone data) becomes [`Error::Internal`] instead of taking the program down.
pub async fn guarded<T, F>(during: &str, fut: F) -> Result<T>
where
    T: Send + 'static,
    F: Future<Output = Result<T>> + Send + 'static,
{
    match tokio::spawn(fut).await {
        Ok(r) => r,
        Err(e) => Err(Error::Internal {
            during: during.into(),
            detail: if e.is_panic() {
                let p = e.into_panic();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                format!("internal failure: {msg}")
            } else {
                "cancelled".into()
            },
        }),
    }
}

/// Picks the phone: the one with `udid`, else the only one connected, else an error that
/// lists them. `names` gives a display name per UDID for the error message.
pub fn choose<'a>(
    devices: &'a [UsbDevice],
    udid: Option<&str>,
    names: &dyn Fn(&str) -> String,
) -> Result<&'a UsbDevice> {
    let listed = || {
        devices
            .iter()
            .map(|d| (d.udid.clone(), names(&d.udid)))
            .collect::<Vec<_>>()
    };
    match udid {
        Some(u) => devices
            .iter()
            .find(|d| d.udid.eq_ignore_ascii_case(u))
            .ok_or_else(|| Error::DeviceNotFound {
                udid: u.to_string(),
                connected: listed(),
            }),
        None => match devices {
            [] => Err(Error::NoDevice),
            [one] => Ok(one),
            _ => Err(Error::AmbiguousDevice { devices: listed() }),
        },
    }
}

/// What `ferry devices` shows about a phone. Values the phone did not give are `None`.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceFacts {
    /// UDID.
    pub udid: String,
    /// usbmuxd device id (changes on replug).
    pub device_id: u32,
    /// The name the user gave the phone (`DeviceName`).
    pub name: Option<String>,
    /// Model identifier (`ProductType`, e.g. `iPhone17,1`).
    pub model: Option<String>,
    /// iOS version (`ProductVersion`).
    pub ios_version: Option<String>,
    /// iOS build (`BuildVersion`).
    pub build: Option<String>,
    /// USB or network.
    pub connection: ConnectionKind,
    /// Negotiated link speed in bit/s.
    pub link_speed_bps: Option<u64>,
    /// Human form of the link speed.
    pub link_speed: Option<String>,
    /// usbmuxd holds a pair record for this phone (the phone may still have revoked it).
    pub paired: bool,
}

/// Reads the facts any computer may read without trust (lockdown `GetValue` before a
/// session) plus whether usbmuxd has a pair record.
pub async fn facts(mux: &Mux, dev: &UsbDevice) -> Result<DeviceFacts> {
    let provider = mux.provider(dev);
    let during = "reading the iPhone's name and version";
    let all = timed(mux.timeout, during, async {
        let mut ld = LockdownClient::connect(&provider).await?;
        ld.get_value(None, None).await
    })
    .await?;
    let s = |k: &str| {
        all.as_dictionary()
            .and_then(|d| d.get(k))
            .and_then(Value::as_string)
            .map(str::to_string)
    };
    let paired = mux.pair_record(&dev.udid).await?.is_some();
    Ok(DeviceFacts {
        udid: dev.udid.clone(),
        device_id: dev.device_id,
        name: s("DeviceName"),
        model: s("ProductType"),
        ios_version: s("ProductVersion"),
        build: s("BuildVersion"),
        connection: dev.connection.clone(),
        link_speed_bps: dev.link_speed_bps,
        link_speed: dev.link_speed_label(),
        paired,
    })
}

/// Free and total space (lockdown domain `com.apple.disk_usage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Size of the whole disk.
    pub total_bytes: Option<u64>,
    /// Capacity of the data partition.
    pub data_capacity_bytes: Option<u64>,
    /// Free space for user data.
    pub free_bytes: Option<u64>,
}

/// A trusted lockdown session with one phone.
pub struct Session {
    mux: Mux,
    device: UsbDevice,
    provider: UsbmuxdProvider,
    lockdown: LockdownClient,
    pairing: PairingFile,
    legacy: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a trusted session. Errors: [`Error::NotPaired`], [`Error::TrustRevoked`],
    /// [`Error::Locked`], [`Error::Disconnected`], [`Error::Timeout`].
    pub async fn open(mux: &Mux, device: &UsbDevice) -> Result<Session> {
        let pairing = mux
            .pair_record(&device.udid)
            .await?
            .ok_or_else(|| Error::NotPaired {
                udid: device.udid.clone(),
            })?;
        Self::open_with(mux, device, pairing).await
    }

    /// Opens a session with a given pair record (used right after pairing).
    pub async fn open_with(mux: &Mux, device: &UsbDevice, pairing: PairingFile) -> Result<Session> {
        let provider = mux.provider(device);
        let (lockdown, legacy) = timed(mux.timeout, "starting a secure session", async {
            let mut ld = LockdownClient::connect(&provider).await?;
            let legacy = ld.start_session(&pairing).await?;
            Ok((ld, legacy))
        })
        .await?;
        Ok(Session {
            mux: mux.clone(),
            device: device.clone(),
            provider,
            lockdown,
            pairing,
            legacy,
        })
    }

    /// The phone.
    pub fn device(&self) -> &UsbDevice {
        &self.device
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.mux.timeout
    }

    /// Reads a lockdown value inside the session.
    pub async fn value(&mut self, key: Option<&str>, domain: Option<&str>) -> Result<Value> {
        let d = self.mux.timeout;
        timed(
            d,
            "reading a value from the iPhone",
            self.lockdown.get_value(key, domain),
        )
        .await
    }

    /// Free and total space.
    pub async fn disk_usage(&mut self) -> Result<DiskUsage> {
        let v = self.value(None, Some("com.apple.disk_usage")).await?;
        let n = |k: &str| {
            v.as_dictionary()
                .and_then(|d| d.get(k))
                .and_then(Value::as_unsigned_integer)
        };
        Ok(DiskUsage {
            total_bytes: n("TotalDiskCapacity"),
            data_capacity_bytes: n("TotalDataCapacity"),
            free_bytes: n("AmountDataAvailable"),
        })
    }

    /// Starts a new `com.apple.afc` connection. Call several times for parallel transfers.
    pub async fn afc(&mut self) -> Result<AfcSession> {
        let d = self.mux.timeout;
        let (port, ssl) = timed(
            d,
            "starting the file service",
            self.lockdown.start_service("com.apple.afc"),
        )
        .await?;
        let provider = &self.provider;
        let pairing = &self.pairing;
        let legacy = self.legacy;
        let idevice = timed(d, "connecting to the file service", async move {
            let mut conn = provider.connect(port).await?;
            if ssl {
                conn.start_session(pairing, legacy).await?;
            }
            Ok(conn)
        })
        .await?;
        Ok(AfcSession::new(AfcClient::new(idevice), d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(u: &str) -> UsbDevice {
        UsbDevice {
            udid: u.into(),
            device_id: 1,
            connection: ConnectionKind::Usb,
            link_speed_bps: None,
            product_id: None,
            location_id: None,
        }
    }

    #[test]
    fn choosing() {
        let names = |u: &str| format!("name-{u}");
        assert!(matches!(choose(&[], None, &names), Err(Error::NoDevice)));
        let one = [dev("A")];
        assert_eq!(choose(&one, None, &names).unwrap().udid, "A");
        let two = [dev("A"), dev("B")];
        match choose(&two, None, &names) {
            Err(Error::AmbiguousDevice { devices }) => assert_eq!(devices.len(), 2),
            other => panic!("{other:?}"),
        }
        assert_eq!(choose(&two, Some("b"), &names).unwrap().udid, "B");
        assert!(matches!(
            choose(&two, Some("C"), &names),
            Err(Error::DeviceNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn guarded_turns_panics_into_errors() {
        let r: Result<()> = guarded("testing", async { panic!("boom") }).await;
        match r {
            Err(Error::Internal { detail, .. }) => assert!(detail.contains("boom")),
            other => panic!("{other:?}"),
        }
    }
}
