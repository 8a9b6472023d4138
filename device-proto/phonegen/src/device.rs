//! `device.toml`: who the simulated phone is. Keys match the simulator's `DeviceSpec`
//! (`device-proto/src/image.rs`); values are derived from the seed and the schema version.

use serde::Serialize;

use crate::IosSchema;

/// The file's contents.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceToml {
    /// `XXXXXXXX-XXXXXXXXXXXXXXXX`: chip id, dash, ECID.
    pub udid: String,
    /// "Ada’s iPhone" (with the typographic apostrophe iOS uses by default).
    pub name: String,
    /// Model identifier.
    pub product_type: String,
    /// iOS version matching the schema.
    pub product_version: String,
    /// iOS build.
    pub build_version: String,
    /// Serial number.
    pub serial_number: String,
    /// Capacity in decimal bytes.
    pub total_bytes: u64,
    /// Free bytes, consistent with what the image holds.
    pub free_bytes: u64,
    /// Always "iPhone".
    pub device_class: String,
    /// Board name.
    pub hardware_model: String,
    /// ECID (the UDID's second half).
    pub unique_chip_id: u64,
}

const NAMES: &[&str] = &[
    "Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis",
];

/// Builds the device identity; `used_bytes` is what the image's media and database take.
pub fn device(schema: IosSchema, seed: u64, used_bytes: u64, name: Option<&str>) -> DeviceToml {
    // (product type, chip id, board, iOS version, build): a phone that shipped with or was
    // updated to that iOS.
    let (product, chip, board, version, build) = match schema {
        IosSchema::Ios13 => ("iPhone12,1", 0x8030u32, "N104AP", "13.7", "17H35"),
        IosSchema::Ios14 => ("iPhone13,2", 0x8101, "D53gAP", "14.8.1", "18H107"),
        IosSchema::Ios15 => ("iPhone14,5", 0x8110, "D17AP", "15.8.3", "19H386"),
        IosSchema::Ios16 => ("iPhone15,2", 0x8120, "D73AP", "16.7.10", "20H350"),
        IosSchema::Ios17 => ("iPhone15,4", 0x8120, "D37AP", "17.6.1", "21G93"),
        IosSchema::Ios18 => ("iPhone17,1", 0x8140, "D93AP", "18.1", "22B83"),
    };
    let mut h = splitmix(seed ^ 0xFE88_u64);
    let ecid = h & 0x000F_FFFF_FFFF_FFFF;
    h = splitmix(h);
    let serial_alphabet = b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
    let serial: String = (0..10)
        .map(|i| serial_alphabet[((h >> (i * 5)) % serial_alphabet.len() as u64) as usize] as char)
        .collect();
    let owner = NAMES[(seed % NAMES.len() as u64) as usize];
    // System + apps: 14–40 GB.
    let other = 14_000_000_000 + splitmix(h) % 26_000_000_000;
    let used = used_bytes + other;
    let total = [128u64, 256, 512, 1024, 2048]
        .iter()
        .map(|gb| gb * 1_000_000_000)
        .find(|t| *t >= used + 4_000_000_000)
        .unwrap_or(used + 4_000_000_000);
    DeviceToml {
        udid: format!("{chip:08X}-{ecid:016X}"),
        name: name.map_or_else(|| format!("{owner}\u{2019}s iPhone"), str::to_string),
        product_type: product.into(),
        product_version: version.into(),
        build_version: build.into(),
        serial_number: format!("F{serial}Q"),
        total_bytes: total,
        free_bytes: total - used,
        device_class: "iPhone".into(),
        hardware_model: board.into(),
        unique_chip_id: ecid,
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}
