//! Link-profile benchmark: AFC read throughput and request round trips through ferry-sim for
//! each `--link` profile, over an in-memory pipe (so the figures are the simulator's pacing,
//! not the machine's loopback). Prints a table.
//!
//! Run: `cargo bench -p ferry-sim --bench afc_link`

use std::sync::Arc;
use std::time::Instant;

use ferry_sim::afc::packet::{self, op};
use ferry_sim::phone::{Bus, Phone};
use ferry_sim::state::DeviceStore;
use ferry_sim::{LinkProfile, PhoneImage, TrustMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

const FILE_BYTES: usize = 48 << 20;

fn image(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("Media/DCIM/100APPLE")).expect("mkdir");
    std::fs::write(
        dir.join("device.toml"),
        "udid = \"00008030-001A2B3C4D5E802E\"\nname = \"Bench\"\nproduct_type = \"iPhone12,1\"\n\
         product_version = \"17.6.1\"\nbuild_version = \"21G93\"\nserial_number = \"X\"\n\
         total_bytes = 128000000000\nfree_bytes = 1000000000\n",
    )
    .expect("toml");
    std::fs::write(
        dir.join("Media/DCIM/100APPLE/IMG_0001.MOV"),
        vec![7u8; FILE_BYTES],
    )
    .expect("file");
}

async fn call(io: &mut DuplexStream, pn: u64, opc: u64, args: &[u8]) -> usize {
    let len = 40 + args.len() as u64;
    let mut p = packet::header(len, len, pn, opc).to_vec();
    p.extend_from_slice(args);
    io.write_all(&p).await.expect("write");
    let mut h = [0u8; 40];
    io.read_exact(&mut h).await.expect("header");
    let entire = packet::arg_u64(&h, 1).expect("len") as usize;
    let mut rest = vec![0u8; entire - 40];
    io.read_exact(&mut rest).await.expect("body");
    rest.len()
}

async fn run(dir: &std::path::Path, profile: LinkProfile) -> (f64, f64) {
    let (img, spec) = PhoneImage::open(dir).expect("image");
    let store = DeviceStore::open(&dir.join(".ferry-sim/device")).expect("store");
    let phone = Arc::new(Phone::new(
        spec,
        img,
        store,
        profile,
        TrustMode::Auto,
        Arc::new(Bus::default()),
    ));
    let (mut a, b) = tokio::io::duplex(4 << 20);
    tokio::spawn(ferry_sim::afc::serve(phone, Box::new(b)));
    let mut pn = 0;
    // Round trips: GET_FILE_INFO.
    let n = 200;
    let t = Instant::now();
    for _ in 0..n {
        call(
            &mut a,
            pn,
            op::GET_FILE_INFO,
            b"/DCIM/100APPLE/IMG_0001.MOV",
        )
        .await;
        pn += 1;
    }
    let rtt = t.elapsed().as_secs_f64() / n as f64;
    // Throughput: 1 MiB reads of the whole file.
    let mut open = 1u64.to_le_bytes().to_vec();
    open.extend_from_slice(b"/DCIM/100APPLE/IMG_0001.MOV");
    let len = 40 + open.len() as u64;
    let mut p = packet::header(len, len, pn, op::FILE_OPEN).to_vec();
    p.extend_from_slice(&open);
    a.write_all(&p).await.expect("open");
    let mut r = [0u8; 48];
    a.read_exact(&mut r).await.expect("open res");
    let handle = packet::arg_u64(&r, 5).expect("handle");
    pn += 1;
    let t = Instant::now();
    let mut total = 0;
    loop {
        let mut args = handle.to_le_bytes().to_vec();
        args.extend_from_slice(&(1u64 << 20).to_le_bytes());
        let got = call(&mut a, pn, op::FILE_READ, &args).await;
        pn += 1;
        if got == 0 {
            break;
        }
        total += got;
    }
    assert_eq!(total, FILE_BYTES);
    let mbps = total as f64 / t.elapsed().as_secs_f64() / 1e6;
    (mbps, rtt * 1e3)
}

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    image(dir.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!("| link profile | AFC read, 1 MiB requests (MB/s) | GET_FILE_INFO round trip (ms) |");
    println!("|---|---:|---:|");
    for (name, p) in [
        ("usb2", LinkProfile::Usb2),
        ("usb3", LinkProfile::Usb3),
        ("unlimited", LinkProfile::Unlimited),
    ] {
        let (mbps, rtt) = rt.block_on(run(dir.path(), p));
        println!("| {name} | {mbps:.1} | {rtt:.3} |");
    }
}
