//! Helpers that drive the `idevice` crate (0.1.68) as a client of ferry-sim, working around
//! its documented traps (docs/decisions/0001-idevice.md):
//! - the `listen()` stream is `!Send`: it runs on its own thread with a current-thread runtime;
//! - `pair()` retries forever while the trust dialog is pending: always under a timeout;
//! - dropping an AFC file descriptor without a successful `close()` panics in debug builds:
//!   after a failed read or close we defuse it with `get_inner_afc()`.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::StreamExt;
use idevice::afc::opcode::AfcFopenMode;
use idevice::afc::AfcClient;
use idevice::lockdown::LockdownClient;
use idevice::pairing_file::PairingFile;
use idevice::usbmuxd::{UsbmuxdAddr, UsbmuxdDevice, UsbmuxdListenEvent};
use idevice::{IdeviceError, IdeviceService};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncWrite, BufReader};

pub const LABEL: &str = "ferry-e2e";
/// Upper bound for a pairing round (pair() sleeps 1 s per pending reply).
pub const PAIR_TIMEOUT: Duration = Duration::from_secs(60);
/// Upper bound for any one client operation that must not hang.
pub const OP_TIMEOUT: Duration = Duration::from_secs(60);

pub fn addr(sock: SocketAddr) -> UsbmuxdAddr {
    UsbmuxdAddr::TcpSocket(sock)
}

/// Runs a future under [`OP_TIMEOUT`]; a timeout is a test failure ("hang").
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {OP_TIMEOUT:?} (hang)"),
    }
}

pub async fn devices(sock: SocketAddr) -> Result<Vec<UsbmuxdDevice>, IdeviceError> {
    let mut conn = addr(sock).connect(0).await?;
    conn.get_devices().await
}

pub async fn device(sock: SocketAddr, udid: &str) -> Result<UsbmuxdDevice, IdeviceError> {
    let mut conn = addr(sock).connect(0).await?;
    conn.get_device(udid).await
}

/// Pairs once (`pair_once`: pending/denied/locked come back as errors).
pub async fn pair_once(
    sock: SocketAddr,
    dev: &UsbmuxdDevice,
    host_id: &str,
) -> Result<PairingFile, IdeviceError> {
    let provider = dev.to_provider(addr(sock), LABEL);
    let mut ld = LockdownClient::connect(&provider).await?;
    let buid = addr(sock).connect(0).await?.get_buid().await?;
    ld.pair_once(host_id, buid, Some("ferry-e2e-host")).await
}

/// Pairs (looping on PairingDialogResponsePending, under [`PAIR_TIMEOUT`]) and saves the
/// record in the simulator's usbmuxd store, as the idevice pair tool does.
pub async fn pair_and_save(
    sock: SocketAddr,
    dev: &UsbmuxdDevice,
) -> Result<PairingFile, IdeviceError> {
    let provider = dev.to_provider(addr(sock), LABEL);
    let mut ld = LockdownClient::connect(&provider).await?;
    let buid = addr(sock).connect(0).await?.get_buid().await?;
    let host_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let pf =
        match tokio::time::timeout(PAIR_TIMEOUT, ld.pair(host_id, buid, Some("ferry-e2e-host")))
            .await
        {
            Ok(r) => r?,
            Err(_) => panic!("idevice pair() did not finish within {PAIR_TIMEOUT:?}"),
        };
    let mut pf = pf;
    pf.udid = Some(dev.udid.clone());
    let bytes = pf.clone().serialize()?;
    addr(sock)
        .connect(0)
        .await?
        .save_pair_record(&dev.udid, bytes)
        .await?;
    Ok(pf)
}

/// A lockdown client with a TLS session (pair record read back from usbmuxd).
pub async fn session(
    sock: SocketAddr,
    dev: &UsbmuxdDevice,
) -> Result<LockdownClient, IdeviceError> {
    let provider = dev.to_provider(addr(sock), LABEL);
    let pf = addr(sock)
        .connect(0)
        .await?
        .get_pair_record(&dev.udid)
        .await?;
    let mut ld = LockdownClient::connect(&provider).await?;
    ld.start_session(&pf).await?;
    Ok(ld)
}

/// `AfcClient::connect` (lockdown session + StartService com.apple.afc + Connect).
pub async fn afc(sock: SocketAddr, dev: &UsbmuxdDevice) -> Result<AfcClient, IdeviceError> {
    let provider = dev.to_provider(addr(sock), LABEL);
    AfcClient::connect(&provider).await
}

/// An `AsyncWrite` that hashes what it is given.
#[derive(Debug, Default)]
pub struct HashWriter {
    pub hasher: Sha256,
    pub len: u64,
}

impl HashWriter {
    pub fn hex(self) -> String {
        crate::image::hex(&self.hasher.finalize())
    }
}

impl AsyncWrite for HashWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Outcome of [`read_file`].
#[derive(Debug)]
pub struct ReadOutcome {
    /// The client back (None if the descriptor could not be closed; the connection is then
    /// unusable anyway).
    pub client: Option<AfcClient>,
    /// `(sha256 hex, byte count)` or the copy error.
    pub result: Result<(String, u64), String>,
}

/// Opens `path` read-only, streams it through `BufReader::with_capacity(1 MiB)` +
/// `copy_buf` (1 MiB AFC reads) into a hasher, and always closes the descriptor (or defuses
/// it when the connection is gone, so the debug-build drop assertion cannot fire).
pub async fn read_file(afc: AfcClient, path: &str) -> Result<ReadOutcome, IdeviceError> {
    let fd = afc.open_owned(path, AfcFopenMode::RdOnly).await?;
    let mut rd = BufReader::with_capacity(1 << 20, fd);
    let mut sink = HashWriter::default();
    let copied = tokio::io::copy_buf(&mut rd, &mut sink).await;
    let fd = rd.into_inner();
    match copied {
        Ok(n) => {
            let client = fd.close().await?;
            Ok(ReadOutcome {
                client: Some(client),
                result: Ok((sink.hex(), n)),
            })
        }
        Err(e) => {
            // SAFETY (API contract, not memory): takes the client out without sending
            // FILE_CLOSE; the connection failed, so the remote handle is gone with it.
            let _client = unsafe { fd.get_inner_afc() };
            Ok(ReadOutcome {
                client: None,
                result: Err(e.to_string()),
            })
        }
    }
}

/// Events from a usbmuxd `Listen` connection running on its own thread.
#[derive(Debug)]
pub struct Listener {
    rx: mpsc::Receiver<Result<UsbmuxdListenEvent, String>>,
}

impl Listener {
    /// Starts listening (the `!Send` stream lives on a dedicated thread).
    pub fn start(sock: SocketAddr) -> Listener {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(format!("runtime: {e}")));
                    return;
                }
            };
            rt.block_on(async move {
                let mut conn = match addr(sock).connect(0).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(format!("connect: {e:?}")));
                        return;
                    }
                };
                let mut events = match conn.listen().await {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Err(format!("listen: {e:?}")));
                        return;
                    }
                };
                while let Some(ev) = events.next().await {
                    let stop = ev.is_err();
                    if tx.send(ev.map_err(|e| format!("{e:?}"))).is_err() || stop {
                        return;
                    }
                }
                let _ = tx.send(Err("listen stream ended".into()));
            });
        });
        Listener { rx }
    }

    /// The next event, or a panic after `timeout` (a missing event is a failure, not a skip).
    pub fn next(&self, timeout: Duration) -> UsbmuxdListenEvent {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(ev)) => ev,
            Ok(Err(e)) => panic!("usbmuxd listen failed: {e}"),
            Err(e) => panic!("no usbmuxd listen event within {timeout:?} ({e})"),
        }
    }
}

/// A raw (plaintext) AFC connection obtained through a real lockdown session: the `idevice`
/// crate pairs (optionally), starts a TLS session and StartService `com.apple.afc`; then a
/// fresh usbmuxd Connect to the returned port gives a socket the test can write any bytes to.
#[derive(Debug)]
pub struct RawAfc {
    // Field order = drop order: the lockdown client before the runtime it lives on.
    lockdown: LockdownClient,
    rt: tokio::runtime::Runtime,
    sock: SocketAddr,
    pub device_id: u32,
    pub port: u16,
}

impl RawAfc {
    /// Pairs with `--trust auto` semantics (when `pair` is true), starts a session and the
    /// AFC service.
    pub fn start(sock: SocketAddr, udid: &str, pair: bool) -> RawAfc {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
        let (lockdown, device_id) = rt.block_on(async {
            let dev = within("device", device(sock, udid))
                .await
                .unwrap_or_else(|e| panic!("device {udid}: {e:?}"));
            if pair {
                within("pair", pair_and_save(sock, &dev))
                    .await
                    .unwrap_or_else(|e| panic!("pair: {e:?}"));
            }
            let ld = within("session", session(sock, &dev))
                .await
                .unwrap_or_else(|e| panic!("session: {e:?}"));
            (ld, dev.device_id)
        });
        let mut me = RawAfc {
            lockdown,
            rt,
            sock,
            device_id,
            port: 0,
        };
        me.port = me.new_port();
        me
    }

    /// Another StartService com.apple.afc on the same session (ports may accept one
    /// connection each).
    pub fn new_port(&mut self) -> u16 {
        let ld = &mut self.lockdown;
        let (port, ssl) = self.rt.block_on(async {
            within("StartService", ld.start_service("com.apple.afc"))
                .await
                .unwrap_or_else(|e| panic!("StartService com.apple.afc: {e:?}"))
        });
        assert!(!ssl, "com.apple.afc over USB must not set EnableServiceSSL");
        port
    }

    /// A new raw connection to a freshly started AFC service.
    pub fn connect(&mut self) -> std::net::TcpStream {
        let port = self.new_port();
        self.port = port;
        match crate::raw::connect_port(self.sock, u64::from(self.device_id), port) {
            Ok(Ok(s)) => s,
            Ok(Err(n)) => panic!("usbmuxd Connect to AFC port {port} → Result {n}"),
            Err(e) => panic!("usbmuxd Connect to AFC port {port}: {e:#}"),
        }
    }
}
