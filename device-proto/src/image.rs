//! Phone images: a directory holding `device.toml` (who the phone is) and `Media/` (what AFC
//! serves, i.e. the phone's `/var/mobile/Media`).
//!
//! `device.toml` is re-read whenever a value that can change while the phone is served is asked
//! for (free space), so that tools which play iOS downloading or purging originals can update it
//! underneath a running simulator.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// The name of the AFC root inside an image.
pub const MEDIA_DIR: &str = "Media";
/// The name of the identity file inside an image.
pub const DEVICE_TOML: &str = "device.toml";

/// The contents of `device.toml`. Required keys have no default; everything else defaults to
/// values a current iPhone would report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceSpec {
    /// The UDID: `XXXXXXXX-XXXXXXXXXXXXXXXX` (2018 and later) or 40 hex digits (older).
    pub udid: String,
    /// The user-visible name ("Ada's iPhone").
    pub name: String,
    /// Model identifier, e.g. `iPhone12,1`.
    pub product_type: String,
    /// iOS version, e.g. `17.6.1`.
    pub product_version: String,
    /// iOS build, e.g. `21G93`.
    pub build_version: String,
    /// Hardware serial number (not the UDID).
    pub serial_number: String,
    /// Capacity of the data volume in decimal bytes (a "128 GB" phone: 128000000000).
    pub total_bytes: u64,
    /// Free bytes on the data volume.
    pub free_bytes: u64,
    #[serde(default = "default_device_class")]
    pub device_class: String,
    /// Wi-Fi MAC address. Defaults to one derived from the UDID.
    #[serde(default)]
    pub wifi_address: Option<String>,
    /// ECID. Defaults to one derived from the UDID.
    #[serde(default)]
    pub unique_chip_id: Option<u64>,
    /// Board name, e.g. `N104AP`.
    #[serde(default)]
    pub hardware_model: Option<String>,
    /// USB product id reported by usbmuxd (0x12a8 for modern iPhones).
    #[serde(default = "default_product_id")]
    pub usb_product_id: u16,
}

fn default_device_class() -> String {
    "iPhone".to_string()
}

fn default_product_id() -> u16 {
    0x12a8
}

impl DeviceSpec {
    /// Checks the values a client will choke on if they are wrong.
    pub fn validate(&self) -> anyhow::Result<()> {
        let udid_ok = match self.udid.len() {
            25 => {
                let (a, b) = self.udid.split_at(8);
                a.chars().all(|c| c.is_ascii_hexdigit())
                    && b.starts_with('-')
                    && b[1..].chars().all(|c| c.is_ascii_hexdigit())
            }
            40 => self.udid.chars().all(|c| c.is_ascii_hexdigit()),
            _ => false,
        };
        if !udid_ok {
            bail!(
                "udid {:?} is not a UDID: use 8 hex digits, a dash and 16 hex digits \
                 (00008030-001A2B3C4D5E802E) or 40 hex digits",
                self.udid
            );
        }
        let major = self
            .product_version
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok());
        match major {
            Some(m) if m >= 10 => {}
            _ => bail!(
                "product_version {:?} is not an iOS version >= 10 (clients cap TLS at 1.0 below that)",
                self.product_version
            ),
        }
        if self.free_bytes > self.total_bytes {
            bail!(
                "free_bytes ({}) is larger than total_bytes ({})",
                self.free_bytes,
                self.total_bytes
            );
        }
        Ok(())
    }

    /// The Wi-Fi MAC address, derived from the UDID when device.toml has none.
    pub fn wifi_address(&self) -> String {
        self.wifi_address
            .clone()
            .unwrap_or_else(|| derived_mac(&self.udid, 0))
    }

    /// The Bluetooth MAC address: the Wi-Fi address + 1, as on real phones (inferred).
    pub fn bluetooth_address(&self) -> String {
        derived_mac(&self.udid, 1)
    }

    /// The ECID.
    pub fn unique_chip_id(&self) -> u64 {
        self.unique_chip_id.unwrap_or_else(|| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in self.udid.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            h & 0x000f_ffff_ffff_ffff
        })
    }

    /// The board name.
    pub fn hardware_model(&self) -> String {
        self.hardware_model
            .clone()
            .unwrap_or_else(|| "N104AP".to_string())
    }
}

fn derived_mac(udid: &str, add: u8) -> String {
    let digits: Vec<u8> = udid
        .bytes()
        .filter(u8::is_ascii_hexdigit)
        .rev()
        .take(10)
        .collect();
    let mut bytes = [0xf0u8, 0, 0, 0, 0, 0];
    for (i, pair) in digits.chunks(2).enumerate().take(5) {
        let hex: String = pair.iter().rev().map(|b| *b as char).collect();
        bytes[5 - i] = u8::from_str_radix(&hex, 16).unwrap_or(0);
    }
    bytes[5] = bytes[5].wrapping_add(add);
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A phone image on disk.
#[derive(Debug, Clone)]
pub struct PhoneImage {
    root: PathBuf,
}

impl PhoneImage {
    /// Opens an image directory, checking that it has `device.toml` and `Media/`.
    pub fn open(root: &Path) -> anyhow::Result<(Self, DeviceSpec)> {
        let image = PhoneImage {
            root: root.to_path_buf(),
        };
        let media = image.media();
        if !media.is_dir() {
            bail!(
                "{} is not a phone image: it has no {MEDIA_DIR}/ directory (create one with \
                 `ferry-sim make-phone --out DIR`)",
                root.display()
            );
        }
        let spec = image.read_spec()?;
        Ok((image, spec))
    }

    /// The image directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The AFC root.
    pub fn media(&self) -> PathBuf {
        self.root.join(MEDIA_DIR)
    }

    /// Reads and validates `device.toml`.
    pub fn read_spec(&self) -> anyhow::Result<DeviceSpec> {
        let path = self.root.join(DEVICE_TOML);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let spec: DeviceSpec =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        spec.validate()
            .with_context(|| format!("{} is not valid", path.display()))?;
        Ok(spec)
    }

    /// Free bytes as device.toml says now; `fallback` if it cannot be read at the moment
    /// (e.g. a tool is rewriting it).
    pub fn current_free_bytes(&self, fallback: u64) -> u64 {
        self.read_spec().map(|s| s.free_bytes).unwrap_or(fallback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DeviceSpec {
        toml::from_str(
            r#"
udid = "00008030-001A2B3C4D5E802E"
name = "Ada's iPhone"
product_type = "iPhone12,1"
product_version = "17.6.1"
build_version = "21G93"
serial_number = "F2LXK0AAAAAA"
total_bytes = 128000000000
free_bytes = 23000000000
"#,
        )
        .expect("valid toml")
    }

    #[test]
    fn defaults_fill_in() {
        let s = spec();
        s.validate().expect("valid");
        assert_eq!(s.device_class, "iPhone");
        assert_eq!(s.usb_product_id, 0x12a8);
        assert_eq!(s.wifi_address(), "f0:3c:4d:5e:80:2e");
        assert_eq!(s.bluetooth_address(), "f0:3c:4d:5e:80:2f");
    }

    #[test]
    fn bad_udid_and_version_are_refused() {
        let mut s = spec();
        s.udid = "not-a-udid".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.product_version = "9.3".into();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.free_bytes = s.total_bytes + 1;
        assert!(s.validate().is_err());
    }
}
