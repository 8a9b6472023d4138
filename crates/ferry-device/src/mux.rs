//! usbmuxd requests: listing phones with their USB facts, pair records and the BUID.
//!
//! These requests use our own framing (16-byte header + XML plist) instead of idevice's
//! `UsbmuxdConnection`, for two reasons: `ListDevices` replies carry `ConnectionSpeed`,
//! `ProductID` and `LocationID`, which idevice's `UsbmuxdDevice` drops; and idevice computes
//! `len - 16` on the reply header without a check (a short header panics in debug builds).
//! Here every length is checked and every request has a deadline. Connections to device
//! ports (`Connect`) and `Listen` still go through idevice.

use std::time::Duration;

use idevice::pairing_file::PairingFile;
use idevice::provider::UsbmuxdProvider;
use plist::{Dictionary, Value};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::addr::MuxAddress;
use crate::error::{Error, Result};

/// Largest usbmuxd reply we accept (a device list of hundreds of phones is ~100 KiB).
const MAX_REPLY: u32 = 16 << 20;
/// Our program name in requests (usbmuxd logs it).
const PROG_NAME: &str = "ferry";

/// How a phone is connected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionKind {
    /// USB cable.
    Usb,
    /// Wi-Fi sync.
    Network,
    /// Something else usbmuxd reported.
    Other(String),
}

/// A phone as usbmuxd lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbDevice {
    /// UDID (usbmuxd's `SerialNumber`).
    pub udid: String,
    /// usbmuxd's handle for this attachment; changes on every replug.
    pub device_id: u32,
    /// USB or network.
    pub connection: ConnectionKind,
    /// Negotiated link speed in bit/s (`ConnectionSpeed`), when reported.
    pub link_speed_bps: Option<u64>,
    /// USB product id, when reported.
    pub product_id: Option<u64>,
    /// USB location (bus << 16 | address), when reported.
    pub location_id: Option<u64>,
}

impl UsbDevice {
    /// Parses one `DeviceList` entry or `Attached` message; `None` if it names no device.
    pub fn from_plist(entry: &Dictionary) -> Option<UsbDevice> {
        let props = entry.get("Properties")?.as_dictionary()?;
        let int = |d: &Dictionary, k: &str| d.get(k).and_then(Value::as_unsigned_integer);
        let device_id = int(entry, "DeviceID")
            .or_else(|| int(props, "DeviceID"))
            .and_then(|v| u32::try_from(v).ok())?;
        let udid = props.get("SerialNumber")?.as_string()?.to_string();
        if udid.is_empty() {
            return None;
        }
        let connection = match props.get("ConnectionType").and_then(Value::as_string) {
            Some("USB") => ConnectionKind::Usb,
            Some("Network") => ConnectionKind::Network,
            Some(other) => ConnectionKind::Other(other.to_string()),
            None => ConnectionKind::Other(String::new()),
        };
        Some(UsbDevice {
            udid,
            device_id,
            connection,
            link_speed_bps: int(props, "ConnectionSpeed").filter(|s| *s > 0),
            product_id: int(props, "ProductID"),
            location_id: int(props, "LocationID"),
        })
    }

    /// "USB 2.0 (480 Mbit/s)" and the like; `None` when unknown.
    pub fn link_speed_label(&self) -> Option<String> {
        self.link_speed_bps.map(link_speed_label)
    }
}

/// Names a USB signalling rate the way users know it.
pub fn link_speed_label(bps: u64) -> String {
    let generation = match bps {
        0..=1_500_000 => "USB 1.0 low speed",
        1_500_001..=12_000_000 => "USB 1.1",
        12_000_001..=480_000_000 => "USB 2.0",
        480_000_001..=5_000_000_000 => "USB 3",
        5_000_000_001..=10_000_000_000 => "USB 3.2 Gen 2",
        _ => "USB4",
    };
    let rate = if bps >= 1_000_000_000 {
        let g = bps as f64 / 1e9;
        if g.fract() == 0.0 {
            format!("{g:.0} Gbit/s")
        } else {
            format!("{g:.1} Gbit/s")
        }
    } else {
        format!("{} Mbit/s", bps / 1_000_000)
    };
    format!("{generation} ({rate})")
}

/// A usbmuxd endpoint plus the deadline applied to every request.
#[derive(Debug, Clone)]
pub struct Mux {
    /// Where usbmuxd listens.
    pub address: MuxAddress,
    /// Deadline for each request to usbmuxd or the phone.
    pub timeout: Duration,
}

impl Mux {
    /// usbmuxd at `address` with a per-request deadline.
    pub fn new(address: MuxAddress, timeout: Duration) -> Mux {
        Mux { address, timeout }
    }

    /// usbmuxd from `USBMUXD_SOCKET_ADDRESS` (or the default), 30 s deadline.
    pub fn from_env() -> Result<Mux> {
        Ok(Mux::new(MuxAddress::from_env()?, Duration::from_secs(30)))
    }

    async fn request(&self, req: Dictionary, during: &str) -> Result<Dictionary> {
        let fut = async {
            let mut sock =
                self.address
                    .addr
                    .to_socket()
                    .await
                    .map_err(|e| Error::MuxUnreachable {
                        addr: self.address.display.clone(),
                        source: match e {
                            idevice::IdeviceError::Socket(io) => io,
                            other => std::io::Error::other(other.to_string()),
                        },
                    })?;
            let mut body = Vec::new();
            plist::to_writer_xml(&mut body, &Value::Dictionary(req)).map_err(|e| {
                Error::Internal {
                    during: during.into(),
                    detail: e.to_string(),
                }
            })?;
            let io = |e: std::io::Error| crate::error::io_to_error(e, during);
            let len = u32::try_from(body.len() + 16).map_err(|_| Error::Internal {
                during: during.into(),
                detail: "request too large".into(),
            })?;
            let mut pkt = Vec::with_capacity(body.len() + 16);
            for v in [len, 1, 8, 1] {
                pkt.extend_from_slice(&v.to_le_bytes());
            }
            pkt.extend_from_slice(&body);
            sock.write_all(&pkt).await.map_err(io)?;
            let mut head = [0u8; 16];
            sock.read_exact(&mut head).await.map_err(io)?;
            let total = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if !(16..=MAX_REPLY).contains(&total) {
                return Err(Error::Internal {
                    during: during.into(),
                    detail: format!("usbmuxd reply claims {total} bytes"),
                });
            }
            let mut body = vec![0u8; (total - 16) as usize];
            sock.read_exact(&mut body).await.map_err(io)?;
            // Bounded before parsing: a small plist can expand or nest without bound.
            plist_bounds::check(&body, plist_bounds::Limits::DEFAULT).map_err(|e| {
                Error::Internal {
                    during: during.into(),
                    detail: format!("usbmuxd reply refused: {e}"),
                }
            })?;
            plist::from_bytes::<Dictionary>(&body).map_err(|e| Error::Internal {
                during: during.into(),
                detail: format!("usbmuxd reply is not a plist dictionary: {e}"),
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                during: during.into(),
                after: self.timeout,
            }),
        }
    }

    fn base(message_type: &str) -> Dictionary {
        let mut d = Dictionary::new();
        d.insert("MessageType".into(), message_type.into());
        d.insert("ClientVersionString".into(), "ferry".into());
        d.insert("ProgName".into(), PROG_NAME.into());
        d.insert("kLibUSBMuxVersion".into(), 3.into());
        d
    }

    /// Every phone usbmuxd knows, USB first, in usbmuxd's order.
    pub async fn list(&self) -> Result<Vec<UsbDevice>> {
        let reply = self
            .request(Self::base("ListDevices"), "listing iPhones")
            .await?;
        let list = reply
            .get("DeviceList")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::Internal {
                during: "listing iPhones".into(),
                detail: "usbmuxd reply has no DeviceList".into(),
            })?;
        let mut devs: Vec<UsbDevice> = list
            .iter()
            .filter_map(Value::as_dictionary)
            .filter_map(UsbDevice::from_plist)
            .collect();
        // A phone on USB and Wi-Fi at once is listed twice: keep the USB entry.
        devs.sort_by_key(|d| d.connection != ConnectionKind::Usb);
        let mut seen = std::collections::HashSet::new();
        devs.retain(|d| seen.insert(d.udid.clone()));
        Ok(devs)
    }

    /// The phone's pair record stored in usbmuxd, or `None` if it has none.
    pub async fn pair_record(&self, udid: &str) -> Result<Option<PairingFile>> {
        let mut req = Self::base("ReadPairRecord");
        req.insert("PairRecordID".into(), udid.into());
        let reply = self.request(req, "reading the pair record").await?;
        match reply.get("PairRecordData").and_then(Value::as_data) {
            Some(data) if plist_bounds::check(data, plist_bounds::Limits::DEFAULT).is_err() => {
                tracing::warn!(udid, "pair record too large or too deep; treating as not paired");
                Ok(None)
            }
            Some(data) => PairingFile::from_bytes(data).map(Some).map_err(|e| {
                tracing::warn!(udid, error = %e, "unusable pair record; treating as not paired");
                e
            }).or(Ok(None)),
            None => Ok(None),
        }
    }

    /// usbmuxd's system BUID (part of every pair record).
    pub async fn buid(&self) -> Result<String> {
        let reply = self
            .request(Self::base("ReadBUID"), "reading the system BUID")
            .await?;
        reply
            .get("BUID")
            .and_then(Value::as_string)
            .map(str::to_string)
            .ok_or_else(|| Error::Internal {
                during: "reading the system BUID".into(),
                detail: "usbmuxd reply has no BUID".into(),
            })
    }

    /// Stores a pair record in usbmuxd (so other tools on this computer can use it too).
    pub async fn save_pair_record(&self, dev: &UsbDevice, record: Vec<u8>) -> Result<()> {
        let mut req = Self::base("SavePairRecord");
        req.insert("PairRecordID".into(), dev.udid.as_str().into());
        req.insert("PairRecordData".into(), Value::Data(record));
        req.insert("DeviceID".into(), dev.device_id.into());
        let reply = self.request(req, "saving the pair record").await?;
        match reply.get("Number").and_then(Value::as_unsigned_integer) {
            Some(0) => Ok(()),
            n => Err(Error::Internal {
                during: "saving the pair record".into(),
                detail: format!("usbmuxd answered {n:?}"),
            }),
        }
    }

    /// An idevice provider that opens connections to `dev` through this usbmuxd.
    pub fn provider(&self, dev: &UsbDevice) -> UsbmuxdProvider {
        UsbmuxdProvider {
            addr: self.address.addr.clone(),
            tag: dev.device_id,
            udid: dev.udid.clone(),
            device_id: dev.device_id,
            label: "ferry".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_linux_usbmuxd_entry() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<plist version="1.0"><dict>
<key>DeviceID</key><integer>7</integer><key>MessageType</key><string>Attached</string>
<key>Properties</key><dict>
<key>ConnectionSpeed</key><integer>480000000</integer><key>ConnectionType</key><string>USB</string>
<key>DeviceID</key><integer>7</integer><key>LocationID</key><integer>65538</integer>
<key>ProductID</key><integer>4776</integer><key>SerialNumber</key><string>00008140-000621A056919661</string>
</dict></dict></plist>"#;
        let d: Dictionary = plist::from_bytes(xml.as_bytes()).unwrap();
        let dev = UsbDevice::from_plist(&d).unwrap();
        assert_eq!(dev.device_id, 7);
        assert_eq!(dev.udid, "00008140-000621A056919661");
        assert_eq!(dev.connection, ConnectionKind::Usb);
        assert_eq!(dev.link_speed_bps, Some(480_000_000));
        assert_eq!(dev.link_speed_label().unwrap(), "USB 2.0 (480 Mbit/s)");
    }

    #[test]
    fn tolerates_missing_fields() {
        let mut d = Dictionary::new();
        assert!(UsbDevice::from_plist(&d).is_none());
        let mut p = Dictionary::new();
        p.insert("SerialNumber".into(), "U".into());
        d.insert("Properties".into(), Value::Dictionary(p));
        assert!(UsbDevice::from_plist(&d).is_none(), "no device id");
        d.insert("DeviceID".into(), 3.into());
        let dev = UsbDevice::from_plist(&d).unwrap();
        assert_eq!(dev.link_speed_bps, None);
        d.insert("DeviceID".into(), Value::String("x".into()));
        assert!(UsbDevice::from_plist(&d).is_none());
    }

    /// Serves one usbmuxd reply carrying `body` to the first request.
    async fn fake_usbmuxd(body: Vec<u8>) -> Mux {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut head = [0u8; 16];
            s.read_exact(&mut head).await.expect("header");
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let mut req = vec![0u8; len - 16];
            s.read_exact(&mut req).await.expect("request");
            let mut reply = Vec::new();
            for v in [(body.len() + 16) as u32, 1, 8, 1] {
                reply.extend_from_slice(&v.to_le_bytes());
            }
            reply.extend_from_slice(&body);
            s.write_all(&reply).await.expect("reply");
        });
        let addr = crate::addr::parse(
            Some(&format!("127.0.0.1:{port}")),
            crate::addr::Os::current(),
        )
        .expect("address");
        Mux::new(addr, Duration::from_secs(20))
    }

    /// Found with the plist fuzz harness's inputs (device-proto/tests/fuzz_plist.rs): a binary plist whose objects share
    /// children expands to 2^40 values; `<array>` nested 100 000 deep overflows the stack in
    /// serde. A usbmuxd reply like that is now a typed error, at once.
    #[tokio::test]
    async fn regression_unbounded_usbmuxd_reply_is_refused() {
        // {DeviceList: a}, where a = [b, b], b = [c, c], … 40 levels, then an integer.
        let mut bomb = b"bplist00".to_vec();
        let mut offsets = vec![bomb.len() as u8];
        bomb.extend_from_slice(&[0xd1, 42, 1]);
        for i in 1..=40u8 {
            offsets.push(bomb.len() as u8);
            bomb.extend_from_slice(&[0xa2, i + 1, i + 1]);
        }
        offsets.push(bomb.len() as u8);
        bomb.extend_from_slice(&[0x10, 1]);
        offsets.push(bomb.len() as u8);
        bomb.push(0x5a);
        bomb.extend_from_slice(b"DeviceList");
        let table = bomb.len() as u64;
        bomb.extend_from_slice(&offsets);
        bomb.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 1]);
        bomb.extend_from_slice(&43u64.to_be_bytes());
        bomb.extend_from_slice(&0u64.to_be_bytes());
        bomb.extend_from_slice(&table.to_be_bytes());
        let deep = format!(
            "<plist><dict><key>DeviceList</key>{}{}</dict></plist>",
            "<array>".repeat(100_000),
            "</array>".repeat(100_000)
        )
        .into_bytes();
        for body in [bomb, deep] {
            let t0 = std::time::Instant::now();
            let err = fake_usbmuxd(body).await.list().await.expect_err("refused");
            assert!(err.to_string().contains("refused"), "{err}");
            assert!(t0.elapsed() < Duration::from_secs(10));
        }
    }

    #[test]
    fn speed_labels() {
        assert_eq!(link_speed_label(5_000_000_000), "USB 3 (5 Gbit/s)");
        assert_eq!(
            link_speed_label(10_000_000_000),
            "USB 3.2 Gen 2 (10 Gbit/s)"
        );
        assert_eq!(link_speed_label(12_000_000), "USB 1.1 (12 Mbit/s)");
    }
}
