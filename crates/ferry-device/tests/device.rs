//! The device layer against `ferry-sim serve`, through the library API: attach/detach events,
//! pairing states, several AFC connections at once, handles released on errors.

use std::time::Duration;

use ferry_device::{
    pair, DeviceEvent, DeviceWatcher, ErrorKind, HostIdentity, Mux, PairOptions, PairState, Session,
};
use ferry_e2e::sim::{sim_bin, Sim, SimOpts};

fn make_phone(dir: &std::path::Path, args: &[&str]) -> std::path::PathBuf {
    let out = dir.join("phone");
    let mut cmd = std::process::Command::new(sim_bin());
    cmd.arg("make-phone").arg("--out").arg(&out).args(args);
    let o = ferry_e2e::sim::run_with_deadline(cmd, Duration::from_secs(300)).expect("make-phone");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn mux_for(sim: &Sim) -> Mux {
    let addr = ferry_device::addr::parse(Some(&sim.mux_env()), ferry_device::addr::Os::Linux)
        .expect("address");
    Mux::new(addr, Duration::from_secs(30))
}

async fn paired(sim: &Sim, host_dir: &std::path::Path) -> (Mux, ferry_device::UsbDevice) {
    let mux = mux_for(sim);
    let dev = mux.list().await.unwrap().remove(0);
    let host = HostIdentity::load_or_create_in(host_dir).unwrap();
    let mut states = Vec::new();
    pair(&mux, &dev, &host, &PairOptions::default(), |s| {
        states.push(s.clone())
    })
    .await
    .unwrap();
    assert_eq!(states.first(), Some(&PairState::Checking));
    assert_eq!(states.last(), Some(&PairState::Paired));
    (mux, dev)
}

#[test]
fn watcher_reports_attach_and_detach() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        &["--assets", "5", "--schema", "ios17", "--seed", "1"],
    );
    let sim = Sim::start(SimOpts::phone(&img).link("usb3"));
    let (watcher, mut rx) = DeviceWatcher::start(mux_for(&sim)).unwrap();
    let next = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<DeviceEvent>| {
        let end = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            match rx.try_recv() {
                Ok(ev) => return ev,
                Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                    assert!(std::time::Instant::now() < end, "no event within 30 s");
                    std::thread::sleep(Duration::from_millis(20)); // polling with a deadline
                }
                Err(e) => panic!("channel closed: {e}"),
            }
        }
    };
    assert!(
        matches!(next(&mut rx), DeviceEvent::Listening),
        "Listening comes first"
    );
    let first = match next(&mut rx) {
        DeviceEvent::Attached(d) => d,
        other => panic!("{other:?}"),
    };
    assert_eq!(first.link_speed_bps, Some(5_000_000_000));
    sim.ctl(&["unplug"]);
    match next(&mut rx) {
        DeviceEvent::Detached { device_id } => assert_eq!(device_id, first.device_id),
        other => panic!("{other:?}"),
    }
    sim.ctl(&["replug"]);
    match next(&mut rx) {
        DeviceEvent::Attached(d) => {
            assert_eq!(d.udid, first.udid);
            assert_ne!(d.device_id, first.device_id, "replug gets a new device id");
        }
        other => panic!("{other:?}"),
    }
    watcher.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_afc_connections_at_once_and_handles_are_released() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        &[
            "--assets",
            "30",
            "--schema",
            "ios18",
            "--seed",
            "3",
            "--media-size",
            "realistic",
            "--icloud-photos",
            "off",
        ],
    );
    let media = img.join("Media");
    let mut files: Vec<String> = Vec::new();
    for e in std::fs::read_dir(media.join("DCIM/100APPLE")).unwrap() {
        let e = e.unwrap();
        if e.metadata().unwrap().len() > 1 << 20 {
            files.push(format!("DCIM/100APPLE/{}", e.file_name().to_string_lossy()));
        }
    }
    files.sort();
    assert!(files.len() >= 3, "need 3 files over 1 MiB: {files:?}");
    files.truncate(3);
    let vanish = files[2].clone();
    let sim = Sim::start(SimOpts::phone(&img).vanish(&format!("/{vanish}")));
    let host = tempfile::tempdir().unwrap();
    let (mux, dev) = paired(&sim, host.path()).await;
    let mut session = Session::open(&mux, &dev).await.unwrap();
    let usage = session.disk_usage().await.unwrap();
    assert!(
        usage.free_bytes.unwrap() > 0 && usage.total_bytes.unwrap() > usage.free_bytes.unwrap()
    );
    let mut a = session.afc().await.unwrap();
    let mut b = session.afc().await.unwrap();
    let mut c = session.afc().await.unwrap();
    let (f0, f1) = (files[0].clone(), files[1].clone());
    let mut out0 = Vec::new();
    let mut out1 = Vec::new();
    let mut out2 = Vec::new();
    let (p0, p1) = (format!("/{f0}"), format!("/{f1}"));
    let (r0, r1, r2) = tokio::join!(
        a.read_to(&p0, &mut out0, |_| {}),
        b.read_to(&p1, &mut out1, |_| {}),
        c.read_to(&p1, &mut out2, |_| {}),
    );
    assert_eq!(r0.unwrap() as usize, out0.len());
    r1.unwrap();
    r2.unwrap();
    assert_eq!(out0, std::fs::read(media.join(&f0)).unwrap());
    assert_eq!(out1, std::fs::read(media.join(&f1)).unwrap());
    assert_eq!(out1, out2);
    for s in [&a, &b, &c] {
        assert_eq!(s.open_handles(), 0);
        assert!(s.read_requests > 0);
    }
    // A file that vanishes after its directory was listed: a clean per-file error, no handle
    // left open, and the connection stays usable.
    let names = a.list("/DCIM/100APPLE").await.unwrap().unwrap();
    assert!(
        names.iter().any(|n| vanish.ends_with(n.as_str())),
        "{names:?}"
    );
    let e = a
        .read_to(&format!("/{vanish}"), &mut Vec::new(), |_| {})
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PhoneFile, "{e}");
    assert!(!a.is_poisoned());
    assert_eq!(a.open_handles(), 0);
    assert_eq!(a.stat(&format!("/{vanish}")).await.unwrap(), None);
    let st = a.stat(&format!("/{f0}")).await.unwrap().unwrap();
    assert_eq!(st.size, Some(out0.len() as u64));
    // A directory cannot be read as a file: error, handle released.
    assert!(a.read_to("/DCIM", &mut Vec::new(), |_| {}).await.is_err());
    assert_eq!(a.open_handles(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplug_mid_read_poisons_the_session_without_panicking() {
    let tmp = tempfile::tempdir().unwrap();
    let img = make_phone(
        tmp.path(),
        &[
            "--assets",
            "10",
            "--schema",
            "ios18",
            "--seed",
            "4",
            "--icloud-photos",
            "off",
            "--sparse-video-bytes",
            "67108864",
        ],
    );
    let sim = Sim::start(SimOpts::phone(&img));
    let host = tempfile::tempdir().unwrap();
    let (mux, dev) = paired(&sim, host.path()).await;
    let exp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(img.join("expected.json")).unwrap()).unwrap();
    let big = exp["assets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| a["resources"].as_array().unwrap().iter())
        .find(|r| r["size"].as_u64() == Some(67108864))
        .and_then(|r| r["afc_path"].as_str())
        .unwrap()
        .to_string();
    sim.ctl(&["unplug-after", "10000000"]);
    let m2 = mux.clone();
    let r = ferry_device::guarded("test", async move {
        let mut s = Session::open(&m2, &dev).await?;
        let mut afc = s.afc().await?;
        let r = afc
            .read_to(&format!("/{big}"), &mut tokio::io::sink(), |_| {})
            .await;
        assert!(afc.is_poisoned());
        assert_eq!(afc.open_handles(), 0);
        r
    });
    let e = r.await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Disconnected, "{e}");
}
