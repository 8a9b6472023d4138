//! Shared test helpers: a small phone image in a temp dir and an in-process phone.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use ferry_sim::phone::{Bus, Phone};
use ferry_sim::state::DeviceStore;
use ferry_sim::{LinkProfile, PhoneImage, TrustMode};

pub const UDID: &str = "00008030-001A2B3C4D5E802E";

/// Deterministic bytes for a test file.
pub fn content(seed: u8, len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Writes a small phone image: DCIM with a few files (one > 9 MiB), PhotoData, a symlink.
pub fn make_image(dir: &Path, udid: &str) {
    let media = dir.join("Media");
    std::fs::create_dir_all(media.join("DCIM/100APPLE")).expect("mkdir");
    std::fs::create_dir_all(media.join("PhotoData/CPLAssets/group1")).expect("mkdir");
    std::fs::write(
        dir.join("device.toml"),
        format!(
            r#"udid = "{udid}"
name = "Test iPhone"
product_type = "iPhone12,1"
product_version = "17.6.1"
build_version = "21G93"
serial_number = "F2LXK0AAAAAA"
total_bytes = 128000000000
free_bytes = 23000000000
"#
        ),
    )
    .expect("device.toml");
    std::fs::write(media.join("DCIM/100APPLE/IMG_0001.JPG"), content(1, 3000)).expect("write");
    std::fs::write(
        media.join("DCIM/100APPLE/IMG_0002.MOV"),
        content(2, 10 * 1024 * 1024 + 17),
    )
    .expect("write");
    std::fs::write(media.join("DCIM/100APPLE/IMG_0003.HEIC"), content(3, 5)).expect("write");
    std::fs::write(
        media.join("PhotoData/CPLAssets/group1/ÉTÉ.HEIC"),
        content(4, 100),
    )
    .expect("write");
    std::os::unix::fs::symlink("100APPLE/IMG_0001.JPG", media.join("DCIM/latest"))
        .expect("symlink");
    std::fs::write(dir.join("outside-secret"), b"host file").expect("write");
    std::os::unix::fs::symlink("../../outside-secret", media.join("DCIM/escape")).expect("symlink");
}

/// A phone served in-process (not plugged into any usbmuxd).
pub fn phone(dir: &Path) -> Arc<Phone> {
    let (image, spec) = PhoneImage::open(dir).expect("image");
    let store = DeviceStore::open(&dir.join(".ferry-sim/device")).expect("store");
    Arc::new(Phone::new(
        spec,
        image,
        store,
        LinkProfile::Unlimited,
        TrustMode::Auto,
        Arc::new(Bus::default()),
    ))
}
