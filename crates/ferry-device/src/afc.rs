//! AFC sessions: tolerant stat, directory listing and streaming reads.
//!
//! Reads do not use idevice's `FileDescriptor`. Its `Drop` panics in debug builds (and leaks
//! the phone-side handle in release) unless `.close().await` *succeeded* — which cannot be
//! guaranteed once the phone is unplugged or a deadline fires in the middle of a request.
//! Instead we speak the three file opcodes ourselves through `AfcClient::send_op`
//! (`FileRefOpen`, `FileRefRead`, `FileRefClose`) and keep the handle in `RemoteFile`, a
//! plain number whose drop cannot panic:
//!
//! * on the normal path and on every error the phone answers cleanly, the handle is closed
//!   with `FileRefClose` before the read returns;
//! * if the connection itself breaks, or a deadline fires mid-request (the reply may still be
//!   in flight), the session is *poisoned*: every later call fails fast and the caller drops
//!   the session, which closes the AFC connection — and the phone frees every handle of a
//!   closed connection.
//!
//! Each `FileRefRead` asks for [`READ_CHUNK`] (1 MiB) — idevice's `AsyncRead` would ask for the
//! caller's buffer size, 8 KiB with `tokio::io::copy` — and the chunk is written out before
//! the next is requested, so memory stays at about one chunk whatever the file size.
//!
//! One [`AfcSession`] runs one request at a time (AFC has no pipelining in idevice); open
//! several sessions from one [`crate::Session`] for parallel transfers.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use idevice::afc::errors::AfcError;
use idevice::afc::opcode::AfcOpcode;
use idevice::afc::AfcClient;
use idevice::IdeviceError;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::{Error, Result};

/// Bytes asked for in each `FileRefRead`.
pub const READ_CHUNK: usize = 1 << 20;

/// Most symbolic links followed from one path by [`AfcSession::stat_following`]. How many a
/// phone would follow is not known; a chain longer than this is treated as a loop.
pub const MAX_LINK_HOPS: usize = 8;

/// The phone-side absolute paths of the AFC root (spec §3.4: AFC's `/` is
/// `/var/mobile/Media`; `/var` is a link to `/private/var` on iOS).
const MEDIA_PREFIXES: [&str; 2] = ["/private/var/mobile/Media", "/var/mobile/Media"];

/// Why a symbolic link on the phone cannot be followed to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkProblem {
    /// It points outside `/var/mobile/Media`, where AFC cannot read.
    OutsideMedia,
    /// It leads back to itself, or through more than [`MAX_LINK_HOPS`] links.
    Loop,
    /// What it points at does not exist.
    Dangling,
    /// It points at a folder (or something else that is not a file).
    NotAFile,
    /// The phone refused to say what it points at (an AFC error on the target).
    TargetUnreadable,
    /// The phone's stat has no `LinkTarget` for it.
    NoTarget,
}

impl LinkProblem {
    /// The end of the sentence "PATH is a symbolic link on the iPhone (to TARGET) …".
    pub fn describe(self) -> &'static str {
        match self {
            LinkProblem::OutsideMedia => {
                "that points outside the Media folder, which is all the iPhone's USB file service \
                 (AFC) can read"
            }
            LinkProblem::Loop => "that leads in a loop (through itself or too many other links)",
            LinkProblem::Dangling => "that points at a file that does not exist",
            LinkProblem::NotAFile => "that points at a folder, not a file",
            LinkProblem::TargetUnreadable => "whose target the iPhone refused to read",
            LinkProblem::NoTarget => "but the iPhone did not say where it points",
        }
    }
}

/// A path with its symbolic links, if any, followed: see [`AfcSession::stat_following`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The path to read: the one asked for, or the file its links lead to (an AFC path).
    pub path: String,
    /// The phone's stat of `path`.
    pub stat: FileStat,
    /// A link was followed.
    pub via_link: bool,
}

/// Where a link at `link` (an AFC path) whose `LinkTarget` is `target` leads, as an absolute
/// AFC path; `None` if that is outside Media. A relative target is taken from the link's
/// folder; an absolute one must be under `/var/mobile/Media` (or `/private/var/mobile/Media`);
/// `..` may not climb above the Media root.
pub fn link_destination(link: &str, target: &str) -> Option<String> {
    let (mut parts, rest): (Vec<&str>, &str) = if target.starts_with('/') {
        let inside = MEDIA_PREFIXES.iter().find_map(|p| {
            target
                .strip_prefix(p)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        })?;
        (Vec::new(), inside)
    } else {
        let mut dir: Vec<&str> = link
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        dir.pop(); // the link's own name
        (dir, target)
    };
    for c in rest.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// What kind of object a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// `S_IFREG`
    File,
    /// `S_IFDIR`
    Dir,
    /// `S_IFLNK`
    Symlink,
    /// Anything else, or `st_ifmt` missing.
    Other,
}

/// `GetFileInfo`, read leniently: any key may be missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// `st_size`.
    pub size: Option<u64>,
    /// `st_mtime` in nanoseconds since the Unix epoch.
    pub mtime_ns: Option<u64>,
    /// `st_birthtime` in nanoseconds.
    pub birthtime_ns: Option<u64>,
    /// `st_ifmt`.
    pub kind: FileKind,
    /// Every key as the phone sent it.
    pub raw: HashMap<String, String>,
}

impl FileStat {
    /// Where a symbolic link points (spec §3.6: `LinkTarget`; idevice and go-ios name the key
    /// `st_link_target` / `st_linktarget`, accepted too).
    pub fn link_target(&self) -> Option<&str> {
        ["LinkTarget", "st_link_target", "st_linktarget"]
            .iter()
            .find_map(|k| self.raw.get(*k))
            .map(String::as_str)
            .filter(|t| !t.is_empty())
    }

    /// Parses the key/value payload of `GetFileInfo`.
    pub fn from_raw(raw: HashMap<String, String>) -> FileStat {
        let num = |k: &str| raw.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        let kind = match raw.get("st_ifmt").map(String::as_str) {
            Some("S_IFREG") => FileKind::File,
            Some("S_IFDIR") => FileKind::Dir,
            Some("S_IFLNK") => FileKind::Symlink,
            _ => FileKind::Other,
        };
        FileStat {
            size: num("st_size"),
            mtime_ns: num("st_mtime"),
            birthtime_ns: num("st_birthtime"),
            kind,
            raw,
        }
    }
}

/// An open phone-side file handle. Closed by [`AfcSession::read_to`] on every path; if it is
/// ever dropped without `FileRefClose`, its session is poisoned (see the module docs).
#[derive(Debug)]
struct RemoteFile {
    handle: u64,
}

/// One AFC connection.
#[derive(Debug)]
pub struct AfcSession {
    client: AfcClient,
    timeout: Duration,
    poisoned: Option<String>,
    /// Number of `FileRefRead` requests sent (for tests and statistics).
    pub read_requests: u64,
    /// Handles currently open (0 between calls; for tests).
    open_handles: u32,
}

impl AfcSession {
    pub(crate) fn new(client: AfcClient, timeout: Duration) -> AfcSession {
        AfcSession {
            client,
            timeout,
            poisoned: None,
            read_requests: 0,
            open_handles: 0,
        }
    }

    /// The per-request deadline.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once the connection broke or a deadline fired; drop the session and open a new one.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// File handles this session holds open on the phone right now (always 0 between calls).
    pub fn open_handles(&self) -> u32 {
        self.open_handles
    }

    /// Stats `path`; `None` if it does not exist.
    pub async fn stat(&mut self, path: &str) -> Result<Option<FileStat>> {
        match guard(
            &mut self.poisoned,
            self.timeout,
            || format!("checking {path}"),
            self.client.get_file_info_raw(path),
        )
        .await
        {
            Ok(raw) => Ok(Some(FileStat::from_raw(raw))),
            Err(OpError::Status(AfcError::ObjectNotFound)) => Ok(None),
            Err(e) => Err(e.into_error("stat", path)),
        }
    }

    /// Stats `path` and, when the phone says it is a symbolic link, follows the link to the
    /// file it stands for. The phone reports a link as itself (spec §3.6: `st_ifmt` `S_IFLNK`,
    /// `st_size` the link's own size, `LinkTarget`), so its size says nothing about the
    /// photo: the target is stat'ed (and later read) instead, by its own path. Links are
    /// followed only inside Media, at most [`MAX_LINK_HOPS`] deep; anything else is an
    /// [`Error::PhoneLink`] naming the problem. `None` if `path` itself does not exist.
    pub async fn stat_following(&mut self, path: &str) -> Result<Option<Resolved>> {
        let Some(mut stat) = self.stat(path).await? else {
            return Ok(None);
        };
        let mut cur = path.to_string();
        let mut first_target: Option<String> = None;
        let mut hops = 0usize;
        while stat.kind == FileKind::Symlink {
            let target = stat.link_target().map(str::to_string);
            let shown = first_target.clone().or_else(|| target.clone());
            let fail = |problem: LinkProblem| Error::PhoneLink {
                path: path.to_string(),
                target: shown.clone().unwrap_or_else(|| "?".into()),
                problem,
            };
            let Some(target) = target else {
                return Err(fail(LinkProblem::NoTarget));
            };
            first_target.get_or_insert_with(|| target.clone());
            hops += 1;
            if hops > MAX_LINK_HOPS {
                return Err(fail(LinkProblem::Loop));
            }
            let next =
                link_destination(&cur, &target).ok_or_else(|| fail(LinkProblem::OutsideMedia))?;
            stat = match self.stat(&next).await {
                Ok(Some(s)) => s,
                Ok(None) => return Err(fail(LinkProblem::Dangling)),
                Err(e) if e.kind() == crate::ErrorKind::PhoneFile => {
                    return Err(fail(LinkProblem::TargetUnreadable))
                }
                Err(e) => return Err(e),
            };
            cur = next;
        }
        if hops > 0 && stat.kind != FileKind::File {
            return Err(Error::PhoneLink {
                path: path.to_string(),
                target: first_target.unwrap_or_default(),
                problem: LinkProblem::NotAFile,
            });
        }
        Ok(Some(Resolved {
            path: cur,
            stat,
            via_link: hops > 0,
        }))
    }

    /// Names in directory `path` (without `.` and `..`); `None` if it does not exist.
    pub async fn list(&mut self, path: &str) -> Result<Option<Vec<String>>> {
        match guard(
            &mut self.poisoned,
            self.timeout,
            || format!("listing {path}"),
            self.client.list_dir(path),
        )
        .await
        {
            Ok(mut names) => {
                names.retain(|n| n != "." && n != ".." && !n.is_empty());
                Ok(Some(names))
            }
            Err(OpError::Status(AfcError::ObjectNotFound)) => Ok(None),
            Err(e) => Err(e.into_error("list", path)),
        }
    }

    /// Filesystem facts from AFC (`GetDeviceInfo`): `FSTotalBytes`, `FSFreeBytes`, `Model`, …
    pub async fn device_info(&mut self) -> Result<HashMap<String, String>> {
        guard(
            &mut self.poisoned,
            self.timeout,
            || "reading the iPhone's storage facts".into(),
            self.client.get_device_info_raw(),
        )
        .await
        .map_err(|e| e.into_error("query", "/"))
    }

    async fn open(&mut self, path: &str) -> Result<RemoteFile> {
        let mut hp = 1u64.to_le_bytes().to_vec(); // AFC_FOPEN_RDONLY
        hp.extend_from_slice(path.as_bytes());
        let pkt = guard(
            &mut self.poisoned,
            self.timeout,
            || format!("opening {path}"),
            self.client.send_op(AfcOpcode::FileOpen, hp, Vec::new()),
        )
        .await
        .map_err(|e| e.into_error("open", path))?;
        let handle = pkt
            .header_payload
            .get(..8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
            .ok_or_else(|| Error::Internal {
                during: format!("opening {path}"),
                detail: "FileRefOpen reply has no handle".into(),
            })?;
        self.open_handles += 1;
        Ok(RemoteFile { handle })
    }

    async fn read_chunk(
        &mut self,
        f: &RemoteFile,
        path: &str,
        len: usize,
    ) -> Result<Vec<u8>, OpError> {
        let hp = [f.handle.to_le_bytes(), (len as u64).to_le_bytes()].concat();
        self.read_requests += 1;
        let pkt = guard(
            &mut self.poisoned,
            self.timeout,
            || format!("reading {path}"),
            self.client.send_op(AfcOpcode::Read, hp, Vec::new()),
        )
        .await?;
        Ok(pkt.payload)
    }

    async fn close(&mut self, f: RemoteFile, path: &str) -> Result<()> {
        let RemoteFile { handle } = f;
        let hp = handle.to_le_bytes().to_vec();
        // The handle is accounted as closed either way: a clean close frees it, and any failure
        // poisons the session, whose connection the caller must drop (freeing it on the phone).
        self.open_handles = self.open_handles.saturating_sub(1);
        guard(
            &mut self.poisoned,
            self.timeout,
            || format!("closing {path}"),
            self.client.send_op(AfcOpcode::FileClose, hp, Vec::new()),
        )
        .await
        .map(|_| ())
        .map_err(|e| e.into_error("close", path))
    }

    /// Streams `path` into `out` in [`READ_CHUNK`] requests; returns the bytes copied. The
    /// phone-side handle is closed on every path (see the module docs). `progress` is called
    /// after each chunk with the running total.
    pub async fn read_to<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        path: &str,
        out: &mut W,
        progress: impl FnMut(u64),
    ) -> Result<u64> {
        self.read_range(path, out, READ_CHUNK, None, progress).await
    }

    /// Reads the first `len` bytes of `path` (a single request when `len` ≤ 1 MiB).
    pub async fn read_head(&mut self, path: &str, len: usize) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len.min(READ_CHUNK));
        let chunk = len.clamp(1, READ_CHUNK);
        self.read_range(path, &mut buf, chunk, Some(len as u64), |_| {})
            .await?;
        Ok(buf)
    }

    async fn read_range<W: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        path: &str,
        out: &mut W,
        chunk: usize,
        limit: Option<u64>,
        mut progress: impl FnMut(u64),
    ) -> Result<u64> {
        let f = self.open(path).await?;
        let mut total = 0u64;
        let body: Result<u64> = async {
            loop {
                let want = match limit {
                    Some(l) if total >= l => return Ok(total),
                    Some(l) => chunk.min((l - total) as usize),
                    None => chunk,
                };
                let data = self
                    .read_chunk(&f, path, want)
                    .await
                    .map_err(|e| e.into_error("read", path))?;
                if data.is_empty() {
                    return Ok(total);
                }
                if data.len() > want {
                    return Err(Error::Internal {
                        during: format!("reading {path}"),
                        detail: format!("asked for {want} bytes, the phone sent {}", data.len()),
                    });
                }
                let take = data.len();
                out.write_all(&data).await.map_err(|e| Error::LocalIo {
                    action: "write a copy of",
                    path: path.into(),
                    source: e,
                })?;
                total += take as u64;
                progress(total);
            }
        }
        .await;
        if self.is_poisoned() {
            // The connection is gone or out of step: no close can succeed; the caller drops the
            // session, which frees the handle on the phone.
            self.open_handles = self.open_handles.saturating_sub(1);
            return body;
        }
        let closed = self.close(f, path).await;
        let n = body?;
        closed?;
        Ok(n)
    }
}

/// Runs one AFC request with the deadline; transport failures and deadlines poison the
/// session (`poisoned`), after which nothing more is sent on it.
async fn guard<T>(
    poisoned: &mut Option<String>,
    timeout: Duration,
    during: impl FnOnce() -> String,
    fut: impl Future<Output = Result<T, IdeviceError>>,
) -> Result<T, OpError> {
    if let Some(why) = poisoned.as_ref() {
        return Err(OpError::Fatal(Error::Disconnected {
            during: format!("{} (connection already failed: {why})", during()),
        }));
    }
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(IdeviceError::Afc(code))) if is_status(&code) => Err(OpError::Status(code)),
        Ok(Err(e)) => {
            let d = during();
            *poisoned = Some(e.to_string());
            Err(OpError::Fatal(Error::from_idevice(e, &d)))
        }
        Err(_) => {
            *poisoned = Some("timed out".into());
            Err(OpError::Fatal(Error::Timeout {
                during: during(),
                after: timeout,
            }))
        }
    }
}

/// AFC statuses that are an answer about one path, after which the connection is still fine.
fn is_status(code: &AfcError) -> bool {
    !matches!(
        code,
        AfcError::UnknownOpcode
            | AfcError::InvalidMagic
            | AfcError::MuxError
            | AfcError::NotEnoughData
            | AfcError::ServiceNotConnected
    )
}

enum OpError {
    /// The phone answered with an AFC status: the connection is still usable.
    Status(AfcError),
    /// The connection is broken or out of step.
    Fatal(Error),
}

impl OpError {
    fn into_error(self, op: &'static str, path: &str) -> Error {
        match self {
            OpError::Fatal(e) => e,
            OpError::Status(code) => Error::PhoneFile {
                op,
                path: path.to_string(),
                reason: match code {
                    AfcError::ObjectNotFound => "it does not exist (any more)".into(),
                    AfcError::PermDenied => {
                        "permission denied (unlock the iPhone: files are protected until the first unlock)"
                            .into()
                    }
                    other => other.to_string(),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_destinations_stay_inside_media() {
        let d = |l: &str, t: &str| link_destination(l, t);
        assert_eq!(
            d("/DCIM/100APPLE/IMG_0002.HEIC", "IMG_0001.HEIC").as_deref(),
            Some("/DCIM/100APPLE/IMG_0001.HEIC")
        );
        assert_eq!(
            d("/DCIM/100APPLE/A.JPG", "../../PhotoData/x/./B.JPG").as_deref(),
            Some("/PhotoData/x/B.JPG")
        );
        assert_eq!(
            d("/DCIM/A.JPG", "/var/mobile/Media/DCIM/B.JPG").as_deref(),
            Some("/DCIM/B.JPG")
        );
        assert_eq!(
            d("/DCIM/A.JPG", "/private/var/mobile/Media/B.JPG").as_deref(),
            Some("/B.JPG")
        );
        assert_eq!(d("/DCIM/A.JPG", "/var/mobile/MediaX/B.JPG"), None);
        assert_eq!(d("/DCIM/A.JPG", "/private/var/root/secret"), None);
        assert_eq!(d("/DCIM/100APPLE/A.JPG", "../../../etc/passwd"), None);
        assert_eq!(d("/A.JPG", "..//B.JPG"), None);
    }

    #[test]
    fn link_targets_are_read_under_every_clients_key() {
        for key in ["LinkTarget", "st_link_target", "st_linktarget"] {
            let mut raw = HashMap::new();
            raw.insert("st_ifmt".to_string(), "S_IFLNK".to_string());
            raw.insert(key.to_string(), "IMG_0001.HEIC".to_string());
            let s = FileStat::from_raw(raw);
            assert_eq!(s.kind, FileKind::Symlink);
            assert_eq!(s.link_target(), Some("IMG_0001.HEIC"), "{key}");
        }
    }

    #[test]
    fn stat_is_tolerant() {
        let mut raw = HashMap::new();
        raw.insert("st_size".to_string(), "123".to_string());
        raw.insert("st_ifmt".to_string(), "S_IFREG".to_string());
        let s = FileStat::from_raw(raw.clone());
        assert_eq!(s.size, Some(123));
        assert_eq!(s.mtime_ns, None);
        assert_eq!(s.kind, FileKind::File);
        raw.insert("st_size".to_string(), "-1".to_string());
        raw.remove("st_ifmt");
        let s = FileStat::from_raw(raw);
        assert_eq!(s.size, None);
        assert_eq!(s.kind, FileKind::Other);
    }
}
