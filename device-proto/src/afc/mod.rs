//! `com.apple.afc`: the file service rooted at `/var/mobile/Media`, read-focused.
//!
//! Requests are read by one task and answered in order by another, so a client that pipelines
//! (pymobiledevice3 keeps several requests in flight) is never blocked behind a large DATA
//! reply: the socket keeps being read while replies are written. FILE_READ replies are
//! streamed from the file (memory stays bounded whatever the size asked for) and return
//! `min(asked, remaining)` bytes in one DATA packet; EOF is an empty DATA packet. Writes get
//! PERM_DENIED, the answer a phone gives outside its writable areas.

pub mod jail;
pub mod packet;

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::io::BoxIo;
use crate::link::Budget;
use crate::phone::Phone;
use jail::JailError;
use packet::{op, status, Header};

/// Open handles per connection.
const MAX_HANDLES: usize = 256;
/// Requests read ahead of the replies.
const QUEUE: usize = 256;
/// File bytes read per step of a DATA reply.
const CHUNK: usize = 256 * 1024;

/// A request as the reader hands it on.
struct Request {
    h: Header,
    args: Vec<u8>,
    /// The argument block was larger than we keep.
    oversized: bool,
}

struct OpenFile {
    file: tokio::fs::File,
    rel: String,
    pos: u64,
}

/// Serves one AFC connection until the client closes it.
pub async fn serve(phone: Arc<Phone>, io: BoxIo) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Request>(QUEUE);
    let reader = async move {
        while let Some(req) = read_request(&mut rd).await {
            if tx.send(req).await.is_err() {
                break;
            }
        }
    };
    let worker = async {
        let mut afc = Afc {
            phone: phone.clone(),
            files: HashMap::new(),
            next_handle: 1,
        };
        while let Some(req) = rx.recv().await {
            phone.link.before_reply().await;
            if afc.answer(req, &mut wr).await.is_err() {
                break;
            }
        }
    };
    // Either side ending ends the connection; pending requests are dropped like a phone
    // dropping them when the socket goes.
    tokio::select! {
        _ = reader => {}
        _ = worker => {}
    }
}

async fn read_request<R: tokio::io::AsyncRead + Unpin>(rd: &mut R) -> Option<Request> {
    let mut hb = [0u8; packet::HEADER_LEN];
    rd.read_exact(&mut hb).await.ok()?;
    let h = match packet::parse_header(&hb) {
        Ok(h) => h,
        Err(e) => {
            // UNCONFIRMED: a phone most likely drops a connection that sends garbage.
            tracing::debug!("afc: {e}; closing");
            return None;
        }
    };
    // Writes keep only their fixed header part; bulk data is drained (writes are refused).
    let plan = packet::arg_plan(&h);
    let mut args = vec![0u8; plan.keep as usize];
    rd.read_exact(&mut args).await.ok()?;
    drain(rd, plan.skip).await?;
    Some(Request {
        h,
        args,
        oversized: plan.oversized,
    })
}

async fn drain<R: tokio::io::AsyncRead + Unpin>(rd: &mut R, mut n: u64) -> Option<()> {
    let mut sink = vec![0u8; 64 * 1024];
    while n > 0 {
        let step = n.min(sink.len() as u64) as usize;
        let got = rd.read(&mut sink[..step]).await.ok()?;
        if got == 0 {
            return None;
        }
        n -= got as u64;
    }
    Some(())
}

struct Afc {
    phone: Arc<Phone>,
    files: HashMap<u64, OpenFile>,
    next_handle: u64,
}

type W = tokio::io::WriteHalf<BoxIo>;

/// The connection must close (write failed, phone unplugged mid-reply, file changed under a
/// promised DATA reply).
struct Fatal;

impl Afc {
    async fn send(&self, w: &mut W, bytes: &[u8]) -> Result<(), Fatal> {
        w.write_all(bytes).await.map_err(|_| Fatal)?;
        w.flush().await.map_err(|_| Fatal)
    }

    async fn status(&self, w: &mut W, pn: u64, code: u64) -> Result<(), Fatal> {
        self.send(w, &packet::status_packet(pn, code)).await
    }

    /// A small DATA reply built in memory, its payload passing through the link.
    async fn data(&self, w: &mut W, pn: u64, bytes: &[u8]) -> Result<(), Fatal> {
        self.send(w, &packet::data_header(pn, bytes.len() as u64))
            .await?;
        self.payload(w, bytes).await
    }

    /// Payload bytes through the link: pacing, the stall gate, and unplug-after-N-bytes.
    async fn payload(&self, w: &mut W, mut bytes: &[u8]) -> Result<(), Fatal> {
        while !bytes.is_empty() {
            self.phone.link.wait_unstalled().await;
            let step = bytes.len().min(CHUNK);
            let (n, unplug) = match self.phone.link.afc_budget(step) {
                Budget::Send(n) => (n, false),
                Budget::SendThenUnplug(n) => (n, true),
            };
            if n > 0 {
                self.phone.link.pace(n).await;
                w.write_all(&bytes[..n]).await.map_err(|_| Fatal)?;
                w.flush().await.map_err(|_| Fatal)?;
            }
            if unplug {
                tracing::info!(udid = %self.phone.udid(), "fault: unplugging mid-transfer");
                self.phone.unplug().await;
                return Err(Fatal);
            }
            bytes = &bytes[n..];
        }
        Ok(())
    }

    fn resolve(&self, args: &[u8], follow: bool) -> Result<jail::Resolved, u64> {
        let path = packet::path_arg(args);
        match jail::resolve(&self.phone.image.media(), path, follow) {
            Ok(r) if self.phone.has_vanished(&r.rel) => Err(status::OBJECT_NOT_FOUND),
            Ok(r) => Ok(r),
            Err(JailError::NotFound) => Err(status::OBJECT_NOT_FOUND),
            Err(JailError::Denied) => Err(status::PERM_DENIED),
        }
    }

    async fn answer(&mut self, req: Request, w: &mut W) -> Result<(), Fatal> {
        let pn = req.h.packet_num;
        if req.oversized {
            return self.status(w, pn, status::NO_RESOURCES).await;
        }
        let a = &req.args;
        match req.h.op {
            op::READ_DIR => match self.read_dir(a) {
                Ok(list) => self.data(w, pn, &list).await,
                Err(code) => self.status(w, pn, code).await,
            },
            op::GET_FILE_INFO => match self.file_info(a) {
                Ok(kv) => self.data(w, pn, &kv).await,
                Err(code) => self.status(w, pn, code).await,
            },
            op::GET_DEVINFO => {
                let spec = &self.phone.spec;
                let kv = packet::kv(&[
                    ("Model", spec.product_type.clone()),
                    ("FSTotalBytes", spec.total_bytes.to_string()),
                    ("FSFreeBytes", self.phone.free_bytes().to_string()),
                    ("FSBlockSize", "4096".to_string()),
                ]);
                self.data(w, pn, &kv).await
            }
            op::FILE_OPEN => match self.open(a).await {
                Ok(handle) => self.send(w, &packet::open_res(pn, handle)).await,
                Err(code) => self.status(w, pn, code).await,
            },
            op::FILE_READ => self.read(w, pn, a).await,
            op::FILE_SEEK => {
                let code = self.seek(a).await;
                self.status(w, pn, code).await
            }
            op::FILE_TELL => match packet::arg_u64(a, 0).and_then(|h| self.files.get(&h)) {
                Some(f) => self.send(w, &packet::tell_res(pn, f.pos)).await,
                None => self.status(w, pn, status::INVALID_ARG).await,
            },
            op::FILE_CLOSE => {
                let closed = packet::arg_u64(a, 0).and_then(|h| self.files.remove(&h));
                let code = if closed.is_some() {
                    status::SUCCESS
                } else {
                    status::INVALID_ARG
                };
                self.status(w, pn, code).await
            }
            op::FILE_LOCK => {
                // Advisory (the iTunes sync lock); nothing else writes here.
                let known = packet::arg_u64(a, 0).is_some_and(|h| self.files.contains_key(&h));
                let code = if known {
                    status::SUCCESS
                } else {
                    status::INVALID_ARG
                };
                self.status(w, pn, code).await
            }
            op::FILE_WRITE | op::FILE_SET_SIZE => {
                let known = packet::arg_u64(a, 0).is_some_and(|h| self.files.contains_key(&h));
                let code = if known {
                    status::PERM_DENIED
                } else {
                    status::INVALID_ARG
                };
                self.status(w, pn, code).await
            }
            op::WRITE_FILE
            | op::WRITE_PART
            | op::TRUNCATE
            | op::REMOVE_PATH
            | op::MAKE_DIR
            | op::WRITE_FILE_ATOM
            | op::RENAME_PATH
            | op::MAKE_LINK
            | op::SET_FILE_MOD_TIME
            | op::REMOVE_PATH_AND_CONTENTS => self.status(w, pn, status::PERM_DENIED).await,
            op::SET_CON_OPTIONS | op::SET_FS_BS | op::SET_SOCKET_BS => {
                self.status(w, pn, status::SUCCESS).await
            }
            // UNCONFIRMED: real phones may answer UNKNOWN_PACKET_TYPE (6) instead.
            _ => self.status(w, pn, status::OP_NOT_SUPPORTED).await,
        }
    }

    fn read_dir(&self, a: &[u8]) -> Result<Vec<u8>, u64> {
        let r = self.resolve(a, true)?;
        let meta = std::fs::metadata(&r.host).map_err(|_| status::OBJECT_NOT_FOUND)?;
        if !meta.is_dir() {
            return Err(status::READ_ERROR);
        }
        let mut names: Vec<Vec<u8>> = std::fs::read_dir(&r.host)
            .map_err(|_| status::READ_ERROR)?
            .filter_map(Result::ok)
            .map(|e| e.file_name().as_bytes().to_vec())
            .filter(|n| {
                let rel = if r.rel.is_empty() {
                    String::from_utf8_lossy(n).into_owned()
                } else {
                    format!("{}/{}", r.rel, String::from_utf8_lossy(n))
                };
                !self.phone.has_vanished(&rel)
            })
            .collect();
        // UNCONFIRMED: APFS order; clients do not depend on it. `.` and `..` must come first
        // (pymobiledevice3 drops the first two entries unconditionally).
        names.sort();
        let mut out = b".\0..\0".to_vec();
        for n in names {
            out.extend_from_slice(&n);
            out.push(0);
        }
        self.phone.note_listed(&r.rel);
        Ok(out)
    }

    /// GET_FILE_INFO is an lstat (spec §3.6): a symlink is reported as itself, `S_IFLNK`, with
    /// its `LinkTarget` and its own size, the length of the target path (as shown to the
    /// client). Intermediate links in the path are followed (jail rules).
    fn file_info(&self, a: &[u8]) -> Result<Vec<u8>, u64> {
        let r = self.resolve(a, false)?;
        let m = std::fs::symlink_metadata(&r.host).map_err(|_| status::OBJECT_NOT_FOUND)?;
        let ft = m.file_type();
        let link_target = if ft.is_symlink() {
            let target = std::fs::read_link(&r.host).map_err(|_| status::OBJECT_NOT_FOUND)?;
            Some(jail::phone_link_target(&self.phone.image.media(), &target))
        } else {
            None
        };
        let ns = |secs: i64, nsec: i64| (secs as i128 * 1_000_000_000 + nsec as i128).to_string();
        let mtime = ns(m.mtime(), m.mtime_nsec());
        let birth = m
            .created()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos().to_string())
            .unwrap_or_else(|| mtime.clone());
        let (ifmt, size, blocks) = if ft.is_dir() {
            // UNCONFIRMED: APFS reports small directory sizes (64 for a fresh one).
            let entries = std::fs::read_dir(&r.host).map(|d| d.count()).unwrap_or(0) as u64;
            ("S_IFDIR", 64 + 32 * entries, 0)
        } else if let Some(t) = &link_target {
            // A link's st_size is the length of its target path (lstat; spec §3.6). The host's
            // link may hold another path than the one shown (an absolute host path is shown
            // in the phone's namespace), so the size is that of the path shown, as on a phone.
            // UNCONFIRMED: st_blocks 0 (APFS keeps a short link target inline: inferred, not
            // observed on a phone).
            ("S_IFLNK", t.len() as u64, 0)
        } else {
            let kind = if ft.is_file() {
                "S_IFREG"
            } else {
                use std::os::unix::fs::FileTypeExt;
                if ft.is_fifo() {
                    "S_IFIFO"
                } else if ft.is_socket() {
                    "S_IFSOCK"
                } else if ft.is_block_device() {
                    "S_IFBLK"
                } else {
                    "S_IFCHR"
                }
            };
            // UNCONFIRMED: APFS allocates 4 KiB blocks; st_blocks counts 512-byte units.
            (kind, m.len(), m.len().div_ceil(4096) * 8)
        };
        let mut pairs = vec![
            ("st_size", size.to_string()),
            ("st_blocks", blocks.to_string()),
            ("st_nlink", m.nlink().to_string()),
            ("st_ifmt", ifmt.to_string()),
            ("st_mtime", mtime),
            ("st_birthtime", birth),
        ];
        if let Some(t) = link_target {
            // `LinkTarget`: the key libimobiledevice and pymobiledevice3 read (spec §3.6, open
            // question 6: idevice and go-ios expect other names).
            pairs.push(("LinkTarget", t));
        }
        Ok(packet::kv(&pairs))
    }

    async fn open(&mut self, a: &[u8]) -> Result<u64, u64> {
        let mode = packet::arg_u64(a, 0).ok_or(status::OP_HEADER_INVALID)?;
        if !(1..=6).contains(&mode) {
            return Err(status::INVALID_ARG);
        }
        if mode != 1 {
            // Media is read-only here: a write mode is refused whether or not the file exists
            // (creating it would need write permission too), as a phone refuses outside its
            // writable areas.
            return Err(status::PERM_DENIED);
        }
        // A symlink is followed (inside the jail only). UNCONFIRMED on a phone: the clients in
        // the spec resolve links themselves through LinkTarget before they open (pymobiledevice3
        // `resolve_path`), so iOS's FILE_OPEN on a link was never observed. Ferry does not
        // depend on it: it opens the file a link leads to by that file's own path.
        let r = self.resolve(&a[8..], true)?;
        let meta = std::fs::metadata(&r.host).map_err(|_| status::OBJECT_NOT_FOUND)?;
        if meta.is_dir() {
            // UNCONFIRMED status for opening a directory.
            return Err(status::OBJECT_IS_DIR);
        }
        if !meta.is_file() {
            return Err(status::PERM_DENIED);
        }
        if self.files.len() >= MAX_HANDLES {
            return Err(status::NO_RESOURCES);
        }
        let file = tokio::fs::File::open(&r.host)
            .await
            .map_err(|_| status::OBJECT_NOT_FOUND)?;
        // Handle 0 is never handed out: libimobiledevice treats it as invalid.
        let handle = self.next_handle;
        self.next_handle += 1;
        self.files.insert(
            handle,
            OpenFile {
                file,
                rel: r.rel,
                pos: 0,
            },
        );
        Ok(handle)
    }

    async fn seek(&mut self, a: &[u8]) -> u64 {
        let (Some(h), Some(whence), Some(off)) = (
            packet::arg_u64(a, 0),
            packet::arg_u64(a, 1),
            packet::arg_u64(a, 2),
        ) else {
            return status::OP_HEADER_INVALID;
        };
        let Some(f) = self.files.get_mut(&h) else {
            return status::INVALID_ARG;
        };
        let off = off as i64;
        let base: i64 = match whence {
            0 => 0,
            1 => f.pos as i64,
            2 => match f.file.metadata().await {
                Ok(m) => m.len() as i64,
                Err(_) => return status::IO_ERROR,
            },
            _ => return status::INVALID_ARG,
        };
        match base.checked_add(off) {
            Some(p) if p >= 0 => {
                f.pos = p as u64;
                status::SUCCESS
            }
            _ => status::INVALID_ARG,
        }
    }

    async fn read(&mut self, w: &mut W, pn: u64, a: &[u8]) -> Result<(), Fatal> {
        let (Some(h), Some(want)) = (packet::arg_u64(a, 0), packet::arg_u64(a, 1)) else {
            return self.status(w, pn, status::OP_HEADER_INVALID).await;
        };
        self.phone.note_read_request(want);
        let Some(mut f) = self.files.remove(&h) else {
            return self.status(w, pn, status::INVALID_ARG).await;
        };
        let result = self.read_into(w, pn, &mut f, want).await;
        self.files.insert(h, f);
        result
    }

    async fn read_into(
        &self,
        w: &mut W,
        pn: u64,
        f: &mut OpenFile,
        want: u64,
    ) -> Result<(), Fatal> {
        let len = match f.file.metadata().await {
            Ok(m) => m.len(),
            Err(_) => return self.status(w, pn, status::IO_ERROR).await,
        };
        let n = want.min(len.saturating_sub(f.pos));
        if f.file.seek(std::io::SeekFrom::Start(f.pos)).await.is_err() {
            return self.status(w, pn, status::IO_ERROR).await;
        }
        self.send(w, &packet::data_header(pn, n)).await?;
        let mut left = n;
        let mut buf = vec![0u8; CHUNK.min(n as usize)];
        while left > 0 {
            let step = left.min(buf.len() as u64) as usize;
            let got = f.file.read(&mut buf[..step]).await.map_err(|_| Fatal)?;
            if got == 0 {
                // The file shrank under a DATA reply whose length is already on the wire.
                tracing::warn!("afc: {} shrank while being read; closing", f.rel);
                return Err(Fatal);
            }
            self.payload(w, &buf[..got]).await?;
            left -= got as u64;
            f.pos += got as u64;
        }
        Ok(())
    }
}
