//! AFC byte-level behaviour, driven over an in-memory pipe: layouts of every response kind,
//! packet numbers echoed, paths with and without NUL, full-size reads, the jail, refused
//! writes, pipelining without deadlock, and malformed input.

mod common;

use ferry_sim::afc::packet::{self, op, status};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

struct Client {
    io: DuplexStream,
    pn: u64,
}

#[derive(Debug)]
struct Resp {
    this: u64,
    pn: u64,
    op: u64,
    hdr_payload: Vec<u8>,
    payload: Vec<u8>,
}

impl Resp {
    fn value(&self) -> u64 {
        packet::arg_u64(&self.hdr_payload, 0).expect("8-byte value in the header part")
    }
    fn names(&self) -> Vec<String> {
        self.payload
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect()
    }
}

impl Client {
    async fn start(dir: &std::path::Path, cap: usize) -> Client {
        let (a, b) = tokio::io::duplex(cap);
        let phone = common::phone(dir);
        tokio::spawn(ferry_sim::afc::serve(phone, Box::new(b)));
        Client { io: a, pn: 0 }
    }

    fn request(&mut self, opc: u64, args: &[u8]) -> Vec<u8> {
        let len = 40 + args.len() as u64;
        let mut p = packet::header(len, len, self.pn, opc).to_vec();
        p.extend_from_slice(args);
        self.pn += 1;
        p
    }

    async fn send(&mut self, opc: u64, args: &[u8]) {
        let p = self.request(opc, args);
        self.io.write_all(&p).await.expect("write");
    }

    async fn recv(&mut self) -> Resp {
        let mut h = [0u8; 40];
        self.io.read_exact(&mut h).await.expect("header");
        assert_eq!(&h[..8], b"CFA6LPAA");
        let entire = packet::arg_u64(&h, 1).expect("entire");
        let this = packet::arg_u64(&h, 2).expect("this");
        let mut hp = vec![0u8; (this - 40) as usize];
        self.io.read_exact(&mut hp).await.expect("header payload");
        let mut pl = vec![0u8; (entire - this) as usize];
        self.io.read_exact(&mut pl).await.expect("payload");
        Resp {
            this,
            pn: packet::arg_u64(&h, 3).expect("pn"),
            op: packet::arg_u64(&h, 4).expect("op"),
            hdr_payload: hp,
            payload: pl,
        }
    }

    async fn call(&mut self, opc: u64, args: &[u8]) -> Resp {
        let pn = self.pn;
        self.send(opc, args).await;
        let r = self.recv().await;
        assert_eq!(r.pn, pn, "packet number echoed");
        r
    }

    async fn open(&mut self, path: &str) -> u64 {
        let mut a = 1u64.to_le_bytes().to_vec();
        a.extend_from_slice(path.as_bytes());
        let r = self.call(op::FILE_OPEN, &a).await;
        assert_eq!(r.op, op::FILE_OPEN_RES, "{r:?}");
        assert_eq!(r.this, 48);
        r.value()
    }

    async fn read(&mut self, h: u64, n: u64) -> Resp {
        let mut a = h.to_le_bytes().to_vec();
        a.extend_from_slice(&n.to_le_bytes());
        self.call(op::FILE_READ, &a).await
    }
}

fn image() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    common::make_image(t.path(), common::UDID);
    t
}

#[tokio::test]
async fn listing_with_and_without_nul_puts_dot_entries_first() {
    let t = image();
    let mut c = Client::start(t.path(), 1 << 20).await;
    for path in [
        &b"/DCIM/100APPLE"[..],
        b"/DCIM/100APPLE\0",
        b"DCIM/./100APPLE/",
    ] {
        let r = c.call(op::READ_DIR, path).await;
        assert_eq!(
            (r.op, r.this),
            (op::DATA, 40),
            "DATA bytes sit in the payload part"
        );
        assert_eq!(
            r.names(),
            [".", "..", "IMG_0001.JPG", "IMG_0002.MOV", "IMG_0003.HEIC"]
        );
    }
    let r = c.call(op::READ_DIR, b"/PhotoData/CPLAssets/group1").await;
    assert_eq!(r.names(), [".", "..", "ÉTÉ.HEIC"]);
    let r = c.call(op::READ_DIR, b"/DCIM/100APPLE/IMG_0001.JPG").await;
    assert_eq!((r.op, r.value()), (op::STATUS, status::READ_ERROR));
    let r = c.call(op::READ_DIR, b"/Nope").await;
    assert_eq!(
        (r.op, r.this, r.value()),
        (op::STATUS, 48, status::OBJECT_NOT_FOUND)
    );
}

fn kv(r: &Resp) -> std::collections::HashMap<String, String> {
    let names = r.names();
    names
        .chunks(2)
        .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn file_info_has_all_six_keys_and_link_targets() {
    let t = image();
    let mut c = Client::start(t.path(), 1 << 20).await;
    let r = c
        .call(op::GET_FILE_INFO, b"/DCIM/100APPLE/IMG_0002.MOV")
        .await;
    let m = kv(&r);
    for k in [
        "st_size",
        "st_blocks",
        "st_nlink",
        "st_ifmt",
        "st_mtime",
        "st_birthtime",
    ] {
        assert!(m.contains_key(k), "missing {k}: {m:?}");
    }
    assert_eq!(m["st_size"], (10 * 1024 * 1024 + 17).to_string());
    assert_eq!(m["st_ifmt"], "S_IFREG");
    assert!(m["st_mtime"].len() >= 19, "nanoseconds: {}", m["st_mtime"]);
    let m = kv(&c.call(op::GET_FILE_INFO, b"/DCIM").await);
    assert_eq!(m["st_ifmt"], "S_IFDIR");
    let m = kv(&c.call(op::GET_FILE_INFO, b"/DCIM/latest\0").await);
    assert_eq!(m["st_ifmt"], "S_IFLNK");
    assert_eq!(m["LinkTarget"], "100APPLE/IMG_0001.JPG");
    let r = c.call(op::GET_FILE_INFO, b"/DCIM/missing").await;
    assert_eq!(r.value(), status::OBJECT_NOT_FOUND);
    let m = kv(&c.call(op::GET_DEVINFO, b"").await);
    assert_eq!(m["Model"], "iPhone12,1");
    assert_eq!(m["FSTotalBytes"], "128000000000");
    assert_eq!(m["FSFreeBytes"], "23000000000");
    assert_eq!(m["FSBlockSize"], "4096");
}

#[tokio::test]
async fn a_symlink_stats_as_itself_its_size_the_length_of_the_link_target_shown() {
    // Spec §3.6: GET_FILE_INFO on a link reports S_IFLNK, LinkTarget and the link's own size
    // (lstat: the length of the target path), not the target's.
    let t = image();
    let media = t.path().join("Media");
    // A link written with the host's absolute path into Media is shown in the phone's
    // namespace; its st_size must be that of the path shown, not of the host path.
    std::os::unix::fs::symlink(
        media.join("DCIM/100APPLE/IMG_0003.HEIC"),
        media.join("DCIM/abs_link"),
    )
    .expect("symlink");
    let mut c = Client::start(t.path(), 1 << 20).await;
    for (path, shown) in [
        (&b"/DCIM/latest"[..], "100APPLE/IMG_0001.JPG"),
        (
            &b"/DCIM/abs_link"[..],
            "/var/mobile/Media/DCIM/100APPLE/IMG_0003.HEIC",
        ),
    ] {
        let m = kv(&c.call(op::GET_FILE_INFO, path).await);
        assert_eq!(m["st_ifmt"], "S_IFLNK", "{m:?}");
        assert_eq!(m["LinkTarget"], shown, "{m:?}");
        assert_eq!(m["st_size"], shown.len().to_string(), "{m:?}");
        assert_eq!(m["st_blocks"], "0", "{m:?}");
    }
}

#[tokio::test]
async fn reads_are_full_size_and_end_with_empty_data() {
    let t = image();
    let mut c = Client::start(t.path(), 1 << 20).await;
    let h = c.open("/DCIM/100APPLE/IMG_0002.MOV").await;
    assert_ne!(h, 0, "handle 0 is never handed out");
    let want = common::content(2, 10 * 1024 * 1024 + 17);
    let r = c.read(h, 8 << 20).await;
    assert_eq!(r.payload.len(), 8 << 20, "a 8 MiB request gets 8 MiB");
    let r2 = c.read(h, 8 << 20).await;
    assert_eq!(
        r2.payload.len(),
        want.len() - (8 << 20),
        "then the remainder"
    );
    let r3 = c.read(h, 1 << 20).await;
    assert_eq!((r3.op, r3.this, r3.payload.len()), (op::DATA, 40, 0), "EOF");
    assert_eq!([r.payload, r2.payload].concat(), want);
    // Tell and seek.
    let r = c.call(op::FILE_TELL, &h.to_le_bytes()).await;
    assert_eq!(
        (r.op, r.this, r.value()),
        (op::FILE_TELL_RES, 48, want.len() as u64)
    );
    let mut a = h.to_le_bytes().to_vec();
    a.extend_from_slice(&0u64.to_le_bytes());
    a.extend_from_slice(&100u64.to_le_bytes());
    assert_eq!(c.call(op::FILE_SEEK, &a).await.value(), status::SUCCESS);
    assert_eq!(c.read(h, 10).await.payload, want[100..110]);
    let mut a = h.to_le_bytes().to_vec();
    a.extend_from_slice(&1u64.to_le_bytes());
    a.extend_from_slice(&(-1000i64).to_le_bytes());
    assert_eq!(c.call(op::FILE_SEEK, &a).await.value(), status::INVALID_ARG);
    assert_eq!(
        c.call(op::FILE_CLOSE, &h.to_le_bytes()).await.value(),
        status::SUCCESS
    );
    assert_eq!(
        c.call(op::FILE_CLOSE, &h.to_le_bytes()).await.value(),
        status::INVALID_ARG
    );
    assert_eq!(c.read(h, 10).await.value(), status::INVALID_ARG);
    // A symlink inside the tree is followed on open.
    let h2 = c.open("DCIM/latest").await;
    assert_eq!(c.read(h2, 1 << 22).await.payload, common::content(1, 3000));
}

#[tokio::test]
async fn the_jail_holds_and_writes_are_refused() {
    let t = image();
    let mut c = Client::start(t.path(), 1 << 20).await;
    let mut a = 1u64.to_le_bytes().to_vec();
    a.extend_from_slice(b"/DCIM/escape");
    assert_eq!(c.call(op::FILE_OPEN, &a).await.value(), status::PERM_DENIED);
    let mut a = 1u64.to_le_bytes().to_vec();
    a.extend_from_slice(b"../../../../outside-secret\0");
    assert_eq!(
        c.call(op::FILE_OPEN, &a).await.value(),
        status::OBJECT_NOT_FOUND
    );
    let mut a = 1u64.to_le_bytes().to_vec();
    a.extend_from_slice(b"/DCIM");
    assert_eq!(
        c.call(op::FILE_OPEN, &a).await.value(),
        status::OBJECT_IS_DIR
    );
    for mode in [2u64, 3, 4, 5, 6] {
        let mut a = mode.to_le_bytes().to_vec();
        a.extend_from_slice(b"/DCIM/100APPLE/IMG_0001.JPG");
        assert_eq!(c.call(op::FILE_OPEN, &a).await.value(), status::PERM_DENIED);
    }
    for opc in [op::REMOVE_PATH, op::MAKE_DIR, op::REMOVE_PATH_AND_CONTENTS] {
        assert_eq!(
            c.call(opc, b"/DCIM/100APPLE\0").await.value(),
            status::PERM_DENIED
        );
    }
    assert_eq!(
        c.call(op::RENAME_PATH, b"/a\0/b\0").await.value(),
        status::PERM_DENIED
    );
    // FILE_WRITE (data split at this_length = 48) on a read-only handle.
    let h = c.open("/DCIM/100APPLE/IMG_0001.JPG").await;
    let mut p = packet::header(40 + 8 + 3, 48, c.pn, op::FILE_WRITE).to_vec();
    c.pn += 1;
    p.extend_from_slice(&h.to_le_bytes());
    p.extend_from_slice(b"xyz");
    c.io.write_all(&p).await.expect("write");
    assert_eq!(c.recv().await.value(), status::PERM_DENIED);
    assert_eq!(
        std::fs::read(t.path().join("Media/DCIM/100APPLE/IMG_0001.JPG")).expect("read"),
        common::content(1, 3000),
        "the file is untouched"
    );
    assert_eq!(c.call(0x7777, b"").await.value(), status::OP_NOT_SUPPORTED);
}

#[tokio::test]
async fn pipelined_requests_do_not_deadlock_behind_a_large_reply() {
    let t = image();
    // A small pipe: the 8 MiB reply cannot be written until the client reads.
    let mut c = Client::start(t.path(), 64 * 1024).await;
    let h = c.open("/DCIM/100APPLE/IMG_0002.MOV").await;
    let first = c.pn;
    let mut burst = Vec::new();
    let mut a = h.to_le_bytes().to_vec();
    a.extend_from_slice(&(8u64 << 20).to_le_bytes());
    burst.extend(c.request(op::FILE_READ, &a));
    for _ in 0..10 {
        burst.extend(c.request(op::GET_DEVINFO, b""));
    }
    for _ in 0..5 {
        burst.extend(c.request(op::READ_DIR, b"/DCIM\0"));
    }
    // All requests go out before any reply is read.
    c.io.write_all(&burst).await.expect("pipelined write");
    let r = c.recv().await;
    assert_eq!((r.pn, r.payload.len()), (first, 8 << 20));
    for i in 1..=15 {
        let r = c.recv().await;
        assert_eq!(r.pn, first + i, "replies in order, numbers echoed");
        assert_eq!(r.op, op::DATA);
    }
}

#[tokio::test]
async fn malformed_headers_close_only_that_connection() {
    let t = image();
    let bad: Vec<Vec<u8>> = vec![
        b"XXXXXXXX".iter().copied().chain([0u8; 32]).collect(),
        packet::header(40, 39, 0, op::READ_DIR).to_vec(),
        packet::header(48, 56, 0, op::READ_DIR).to_vec(),
    ];
    for b in bad {
        let mut c = Client::start(t.path(), 1 << 20).await;
        c.io.write_all(&b).await.expect("write");
        let mut buf = [0u8; 1];
        assert_eq!(c.io.read(&mut buf).await.expect("read"), 0, "closed");
    }
    // A huge argument block is drained and refused, and the connection goes on.
    let mut c = Client::start(t.path(), 1 << 20).await;
    let n = 200 * 1024;
    let mut p = packet::header(40 + n, 40 + n, 0, op::READ_DIR).to_vec();
    p.extend(std::iter::repeat_n(b'a', n as usize));
    c.pn = 1;
    c.io.write_all(&p).await.expect("write");
    assert_eq!(c.recv().await.value(), status::NO_RESOURCES);
    let r = c.call(op::READ_DIR, b"/").await;
    assert_eq!(r.names(), [".", "..", "DCIM", "PhotoData"]);
    // A read of 2^63 bytes streams what there is, nothing more.
    let h = c.open("/DCIM/100APPLE/IMG_0003.HEIC").await;
    assert_eq!(c.read(h, 1 << 63).await.payload, common::content(3, 5));
}
