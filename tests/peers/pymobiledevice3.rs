//! pymobiledevice3 (pinned by scripts/install-peers.sh) against ferry-sim. Each test has its
//! own HOME / XDG_DATA_HOME so no pair record from elsewhere is ever used.

use std::path::Path;

use ferry_e2e::image::{
    self, sha256_hex, PhoneImage, BIG_FILE, BIG_FILE_LEN, MTIME_NS, NON_ASCII_FILE, SMALL_JPEG,
    SYMLINK, UDID,
};
use ferry_e2e::peers::{pymobiledevice3, PeerEnv, PeerRun};
use ferry_e2e::raw;
use ferry_e2e::sim::{Sim, SimOpts};

fn pmd3(env: &PeerEnv, args: &[&str]) -> PeerRun {
    env.run(&pymobiledevice3(), args)
}

fn json(r: &PeerRun) -> serde_json::Value {
    serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{r}"))
}

fn file_sha(p: &Path) -> String {
    sha256_hex(&std::fs::read(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display())))
}

#[test]
fn usbmux_list_shows_the_phone() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    let r = pmd3(&env, &["usbmux", "list"]).ok(&sim);
    let v = json(&r);
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("not a JSON list:\n{r}"));
    assert_eq!(list.len(), 1, "{r}");
    let d = &list[0];
    assert_eq!(d["UniqueDeviceID"], UDID, "{r}");
    assert_eq!(d["ConnectionType"], "USB", "{r}");
    assert_eq!(
        d["ProductVersion"],
        img.spec.product_version.as_str(),
        "{r}"
    );
    assert_eq!(d["ProductType"], img.spec.product_type.as_str(), "{r}");
    assert_eq!(d["DeviceName"], img.spec.name.as_str(), "{r}");
    assert_eq!(d["BuildVersion"], img.spec.build_version.as_str(), "{r}");
    let r = pmd3(&env, &["usbmux", "list", "--simple"]).ok(&sim);
    assert!(r.stdout.contains(UDID), "{r}");
    sim.stop();
}

#[test]
fn lockdown_info_pairs_automatically_and_reads_the_session_dict() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).trust("auto"));
    let env = PeerEnv::new(&sim);
    let r = pmd3(&env, &["lockdown", "info"]).ok(&sim);
    let v = json(&r);
    assert_eq!(v["UniqueDeviceID"], UDID, "{r}");
    assert_eq!(
        v["ProductVersion"],
        img.spec.product_version.as_str(),
        "{r}"
    );
    assert_eq!(v["DeviceName"], img.spec.name.as_str(), "{r}");
    assert_eq!(v["SerialNumber"], img.spec.serial_number.as_str(), "{r}");
    // pymobiledevice3 saved its record through usbmuxd SavePairRecord.
    let mut mux = raw::Mux::connect(sim.addr).expect("connect usbmuxd");
    let reply = mux
        .request(
            3,
            &raw::dict(&[
                ("MessageType", raw::s("ReadPairRecord")),
                ("PairRecordID", raw::s(UDID)),
            ]),
        )
        .expect("ReadPairRecord");
    let d = reply.plist().expect("plist reply");
    assert!(
        d.get("PairRecordData")
            .and_then(plist::Value::as_data)
            .is_some(),
        "no PairRecordData after pymobiledevice3 paired: {d:?}"
    );
    drop(mux);
    // A second run reuses the record (no second Pair needed) and still works.
    let r = pmd3(&env, &["lockdown", "info"]).ok(&sim);
    assert_eq!(json(&r)["UniqueDeviceID"], UDID, "{r}");
    sim.stop();
}

#[test]
fn afc_ls_lists_the_camera_roll() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    let r = pmd3(&env, &["afc", "ls", "/DCIM/100APPLE"]).ok(&sim);
    // `afc ls` prints the root, then the full path of each entry. pymobiledevice3 drops the
    // first two READ_DIR names unconditionally, so a sim that does not put `.`/`..` first
    // loses real files here.
    let mut got: Vec<&str> = r.stdout.lines().filter(|l| !l.is_empty()).collect();
    got.sort();
    let mut want: Vec<String> = img
        .list("DCIM/100APPLE")
        .into_iter()
        .map(|n| format!("/DCIM/100APPLE/{n}"))
        .collect();
    want.push("/DCIM/100APPLE".into());
    want.sort();
    assert_eq!(got, want, "{r}");
    let non_ascii = format!("/{NON_ASCII_FILE}");
    assert!(got.contains(&non_ascii.as_str()), "{r}");
    sim.stop();
}

#[test]
fn afc_pull_big_file_is_byte_identical() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    let dst = env.home().join("big.mov");
    let remote = format!("/{BIG_FILE}");
    let dst_s = dst.display().to_string();
    pmd3(&env, &["afc", "pull", &remote, &dst_s]).ok(&sim);
    let len = std::fs::metadata(&dst).expect("pulled file").len();
    assert_eq!(len, BIG_FILE_LEN as u64, "pulled size");
    assert_eq!(
        file_sha(&dst),
        sha256_hex(&img.read(BIG_FILE)),
        "SHA-256 differs"
    );
    // pull applies st_mtime (nanoseconds on the wire) with os.utime.
    let mtime = std::fs::metadata(&dst)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after epoch")
        .as_secs();
    assert_eq!(mtime, MTIME_NS / 1_000_000_000, "st_mtime not preserved");
    sim.stop();
}

#[test]
fn afc_pull_small_non_ascii_and_symlinked_files() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()));
    let env = PeerEnv::new(&sim);
    for (remote, expect_from) in [
        (SMALL_JPEG, SMALL_JPEG),
        (NON_ASCII_FILE, NON_ASCII_FILE),
        // pull resolves S_IFLNK through LinkTarget (relative to the link's folder).
        (SYMLINK, SMALL_JPEG),
    ] {
        let dst = env.home().join("out.bin");
        let remote = format!("/{remote}");
        let dst_s = dst.display().to_string();
        pmd3(&env, &["afc", "pull", &remote, &dst_s]).ok(&sim);
        assert_eq!(
            file_sha(&dst),
            sha256_hex(&img.read(expect_from)),
            "pulled {remote} differs from {expect_from}"
        );
        std::fs::remove_file(&dst).expect("remove pulled file");
    }
    sim.stop();
}

#[test]
fn afc_pull_whole_dcim_tree_is_byte_identical() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).link("usb3"));
    let env = PeerEnv::new(&sim);
    let dst = env.home().join("pulled");
    std::fs::create_dir_all(&dst).expect("mkdir");
    let dst_s = dst.display().to_string();
    pmd3(&env, &["afc", "pull", "/DCIM", &dst_s]).ok(&sim);
    let mut checked = 0;
    for (path, kind) in img.tree() {
        let Some(rel) = path.strip_prefix("/DCIM/") else {
            continue;
        };
        if let image::EntryKind::File { sha256, len } = kind {
            let local = dst.join("DCIM").join(rel);
            let meta = std::fs::metadata(&local)
                .unwrap_or_else(|e| panic!("{} not pulled: {e}", local.display()));
            assert_eq!(meta.len(), len, "{path} size");
            assert_eq!(file_sha(&local), sha256, "{path} content");
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} files compared");
    sim.stop();
}

#[test]
fn afc_pull_fails_cleanly_when_unplugged_mid_transfer() {
    let img = PhoneImage::standard();
    let sim = Sim::start(SimOpts::phone(img.root()).unplug_after_bytes(3 * 1024 * 1024));
    let env = PeerEnv::new(&sim);
    let dst = env.home().join("partial.mov");
    let remote = format!("/{BIG_FILE}");
    let dst_s = dst.display().to_string();
    // Pair first (lockdown info) so the pull only has AFC left to do.
    pmd3(&env, &["lockdown", "info"]).ok(&sim);
    let r = pmd3(&env, &["afc", "pull", &remote, &dst_s]);
    assert!(
        !r.success(),
        "pull must fail when the phone is unplugged:\n{r}"
    );
    let partial = std::fs::read(&dst).unwrap_or_default();
    assert_ne!(
        sha256_hex(&partial),
        sha256_hex(&img.read(BIG_FILE)),
        "a full copy arrived despite the unplug"
    );
    // The phone is gone from usbmuxd.
    let r = pmd3(&env, &["usbmux", "list", "--simple"]).ok(&sim);
    assert!(
        !r.stdout.contains(UDID),
        "device still listed after unplug:\n{r}"
    );
    sim.stop();
}
