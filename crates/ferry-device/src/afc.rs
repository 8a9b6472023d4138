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
