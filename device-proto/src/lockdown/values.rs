//! The values lockdownd serves through GetValue: what any host may read before a session, what
//! a paired host reads inside one, and the domains a photo-backup tool cares about.
//!
//! UNCONFIRMED: the exact key sets of iOS 17/18 are not documented; these follow a real
//! in-session dump (facebook/idb #795) and the keys clients are known to read
//! (device-protocols.md §2.4).

use std::time::{SystemTime, UNIX_EPOCH};

use plist::{Dictionary, Value};

use crate::phone::Phone;

fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

fn i(v: u64) -> Value {
    Value::Integer(v.into())
}

/// Keys any host can read without pairing.
pub fn pre_session(phone: &Phone) -> Dictionary {
    let spec = &phone.spec;
    let mut d = Dictionary::new();
    d.insert("BasebandCertId".into(), i(2_315_222_105));
    d.insert(
        "BasebandSerialNumber".into(),
        Value::Data(vec![0x2a, 0x3b, 0x11, 0x7c]),
    );
    d.insert("BasebandVersion".into(), s("5.00.00"));
    d.insert("BoardId".into(), i(8));
    d.insert("BuildVersion".into(), s(&spec.build_version));
    d.insert("CPUArchitecture".into(), s("arm64e"));
    d.insert("ChipID".into(), i(0x8030));
    d.insert("DeviceClass".into(), s(&spec.device_class));
    d.insert("DeviceColor".into(), s("1"));
    d.insert("DeviceName".into(), s(&spec.name));
    if let Ok(pem) = phone.store.public_key_pem() {
        d.insert("DevicePublicKey".into(), Value::Data(pem.into_bytes()));
    }
    d.insert("DieID".into(), i(spec.unique_chip_id() ^ 0x5a5a));
    d.insert("HardwareModel".into(), s(spec.hardware_model()));
    d.insert("HasSiDP".into(), Value::Boolean(true));
    d.insert("PartitionType".into(), s("GUID_partition_scheme"));
    d.insert("ProductName".into(), s("iPhone OS"));
    d.insert("ProductType".into(), s(&spec.product_type));
    d.insert("ProductVersion".into(), s(&spec.product_version));
    d.insert("ProductionSOC".into(), Value::Boolean(true));
    d.insert("ProtocolVersion".into(), s("2"));
    d.insert("SupportedDeviceFamilies".into(), Value::Array(vec![i(1)]));
    d.insert("TelephonyCapability".into(), Value::Boolean(true));
    d.insert("UniqueChipID".into(), i(spec.unique_chip_id()));
    d.insert("UniqueDeviceID".into(), s(&spec.udid));
    d.insert("WiFiAddress".into(), s(spec.wifi_address()));
    d
}

/// Everything a paired host reads inside a session (the pre-session keys plus the private
/// ones).
pub fn in_session(phone: &Phone) -> Dictionary {
    let spec = &phone.spec;
    let mut d = pre_session(phone);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    d.insert("ActivationState".into(), s("Activated"));
    d.insert("ActivationStateAcknowledged".into(), Value::Boolean(true));
    d.insert("BluetoothAddress".into(), s(spec.bluetooth_address()));
    d.insert("BrickState".into(), Value::Boolean(false));
    d.insert("FirmwareVersion".into(), s("iBoot-10151.1.1"));
    d.insert("HostAttached".into(), Value::Boolean(true));
    d.insert("ModelNumber".into(), s("MWLT2"));
    d.insert("PasswordProtected".into(), Value::Boolean(true));
    d.insert("RegionInfo".into(), s("LL/A"));
    d.insert("SerialNumber".into(), s(&spec.serial_number));
    d.insert("TimeIntervalSince1970".into(), Value::Real(now));
    d.insert("TimeZone".into(), s("Europe/London"));
    d.insert("TimeZoneOffsetFromUTC".into(), Value::Real(0.0));
    d.insert("TrustedHostAttached".into(), Value::Boolean(true));
    d.insert("Uses24HourClock".into(), Value::Boolean(true));
    d
}

/// A GetValue domain, or `None` for one this phone does not know.
pub fn domain(phone: &Phone, name: &str) -> Option<Dictionary> {
    let spec = &phone.spec;
    match name {
        "com.apple.disk_usage" | "com.apple.disk_usage.factory" => {
            let total = spec.total_bytes;
            let free = phone.free_bytes();
            // The system volume takes a slice of the disk; UNCONFIRMED proportions.
            let system = (total / 16).min(16_000_000_000);
            let data = total.saturating_sub(system);
            let reserved = 200_000_000u64.min(free);
            let mut d = Dictionary::new();
            d.insert("AmountDataAvailable".into(), i(free));
            d.insert("AmountDataReserved".into(), i(reserved));
            d.insert("AmountRestoreAvailable".into(), i(data));
            d.insert(
                "TotalDataAvailable".into(),
                i(free.saturating_add(reserved)),
            );
            d.insert("TotalDataCapacity".into(), i(data));
            d.insert("TotalDiskCapacity".into(), i(total));
            d.insert("TotalSystemAvailable".into(), i(system / 4));
            d.insert("TotalSystemCapacity".into(), i(system));
            Some(d)
        }
        "com.apple.mobile.battery" => {
            let mut d = Dictionary::new();
            d.insert("BatteryCurrentCapacity".into(), i(87));
            d.insert("BatteryIsCharging".into(), Value::Boolean(true));
            d.insert("ExternalChargeCapable".into(), Value::Boolean(true));
            d.insert("ExternalConnected".into(), Value::Boolean(true));
            d.insert("FullyCharged".into(), Value::Boolean(false));
            Some(d)
        }
        "com.apple.international" => {
            let mut d = Dictionary::new();
            d.insert("Language".into(), s("en"));
            d.insert("Locale".into(), s("en_GB"));
            Some(d)
        }
        _ => None,
    }
}
