//! Minimal, independent wire clients (blocking std sockets) for usbmuxd, lockdownd and AFC.
//! Written from the spec, not from any client library, so that conformance and hostile-input
//! tests can send exactly the bytes they want. Every read has a deadline: a peer that never
//! answers makes the test fail instead of hang.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use plist::{Dictionary, Value};

/// Read deadline for any single reply.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub const MUX_RESULT: u32 = 1;
pub const MUX_PLIST: u32 = 8;
pub const LOCKDOWN_PORT: u16 = 62078;

/// Opens a TCP connection with read/write deadlines.
pub fn tcp(addr: SocketAddr) -> Result<TcpStream> {
    let s = TcpStream::connect(addr).with_context(|| format!("connect {addr}"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    s.set_nodelay(true)?;
    Ok(s)
}

pub fn xml(dict: &Dictionary) -> Vec<u8> {
    let mut out = Vec::new();
    // Serialising an in-memory dictionary into a Vec cannot fail.
    let _ = plist::to_writer_xml(&mut out, dict);
    out
}

pub fn dict(pairs: &[(&str, Value)]) -> Dictionary {
    let mut d = Dictionary::new();
    for (k, v) in pairs {
        d.insert((*k).to_string(), v.clone());
    }
    d
}

pub fn s(v: &str) -> Value {
    Value::String(v.into())
}

pub fn int(v: u64) -> Value {
    Value::Integer(v.into())
}

/// One usbmuxd packet: 16-byte LE header + payload.
pub fn mux_packet(version: u32, message: u32, tag: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + payload.len()).unwrap_or(u32::MAX);
    let mut v = Vec::with_capacity(16 + payload.len());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&message.to_le_bytes());
    v.extend_from_slice(&tag.to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// A usbmuxd reply.
#[derive(Debug, Clone)]
pub struct MuxReply {
    pub version: u32,
    pub message: u32,
    pub tag: u32,
    pub payload: Vec<u8>,
}

impl MuxReply {
    pub fn plist(&self) -> Result<Dictionary> {
        plist::from_bytes(&self.payload).with_context(|| {
            format!(
                "usbmuxd reply payload is not a plist dict: {:?}",
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
    /// `Number` of a `{MessageType: Result}` reply.
    pub fn result_number(&self) -> Result<u64> {
        let d = self.plist()?;
        if d.get("MessageType").and_then(Value::as_string) != Some("Result") {
            bail!("not a Result reply: {d:?}");
        }
        d.get("Number")
            .and_then(Value::as_unsigned_integer)
            .ok_or_else(|| anyhow!("Result without Number: {d:?}"))
    }
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[off..off + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[off..off + 8]);
    u64::from_le_bytes(a)
}

/// Reads one usbmuxd packet.
pub fn read_mux(s: &mut TcpStream) -> Result<MuxReply> {
    let mut h = [0u8; 16];
    s.read_exact(&mut h).context("reading usbmuxd header")?;
    let len = u32_at(&h, 0);
    if !(16..=16 * 1024 * 1024).contains(&len) {
        bail!("usbmuxd reply with absurd length {len}");
    }
    let mut payload = vec![0u8; (len - 16) as usize];
    s.read_exact(&mut payload)
        .context("reading usbmuxd payload")?;
    Ok(MuxReply {
        version: u32_at(&h, 4),
        message: u32_at(&h, 8),
        tag: u32_at(&h, 12),
        payload,
    })
}

/// A usbmuxd client connection in COMMAND state.
#[derive(Debug)]
pub struct Mux {
    pub stream: TcpStream,
}

impl Mux {
    pub fn connect(addr: SocketAddr) -> Result<Self> {
        Ok(Self { stream: tcp(addr)? })
    }

    /// Sends a plist request with `tag` and reads one reply; checks version 1 / message 8 /
    /// echoed tag as every client requires.
    pub fn request(&mut self, tag: u32, req: &Dictionary) -> Result<MuxReply> {
        self.stream
            .write_all(&mux_packet(1, MUX_PLIST, tag, &xml(req)))?;
        let r = read_mux(&mut self.stream)?;
        if r.version != 1 || r.message != MUX_PLIST || r.tag != tag {
            bail!(
                "usbmuxd reply header version={} message={} tag={} (expected 1/8/{tag}) for {req:?}",
                r.version,
                r.message,
                r.tag
            );
        }
        Ok(r)
    }
}

/// `ListDevices` on a fresh connection → the `DeviceList` entries.
pub fn list_devices(addr: SocketAddr) -> Result<Vec<Dictionary>> {
    let mut m = Mux::connect(addr)?;
    let r = m.request(
        1,
        &dict(&[
            ("MessageType", s("ListDevices")),
            ("ClientVersionString", s("ferry-e2e-raw")),
            ("ProgName", s("ferry-e2e")),
            ("kLibUSBMuxVersion", int(3)),
        ]),
    )?;
    let d = r.plist()?;
    let list = d
        .get("DeviceList")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("ListDevices reply without DeviceList: {d:?}"))?;
    list.iter()
        .map(|v| {
            v.as_dictionary()
                .cloned()
                .ok_or_else(|| anyhow!("DeviceList entry is not a dict: {v:?}"))
        })
        .collect()
}

/// The DeviceID of the device with this UDID (from `Properties.SerialNumber`).
pub fn device_id(addr: SocketAddr, udid: &str) -> Result<u64> {
    for e in list_devices(addr)? {
        let props = e.get("Properties").and_then(Value::as_dictionary);
        if props
            .and_then(|p| p.get("SerialNumber"))
            .and_then(Value::as_string)
            == Some(udid)
        {
            return e
                .get("DeviceID")
                .and_then(Value::as_unsigned_integer)
                .ok_or_else(|| anyhow!("entry without DeviceID: {e:?}"));
        }
    }
    bail!("device {udid} not in ListDevices")
}

/// usbmuxd `Connect`; Ok(stream) is a raw pipe to the device port, Err carries the Result
/// number (or an I/O problem).
pub fn connect_port(
    addr: SocketAddr,
    device_id: u64,
    port: u16,
) -> Result<std::result::Result<TcpStream, u64>> {
    let mut m = Mux::connect(addr)?;
    let r = m.request(
        2,
        &dict(&[
            ("MessageType", s("Connect")),
            ("DeviceID", int(device_id)),
            // Network byte order in a host-order integer, as every client sends it.
            ("PortNumber", int(u64::from(port.to_be()))),
            ("ProgName", s("ferry-e2e")),
        ]),
    )?;
    let n = r.result_number()?;
    Ok(if n == 0 { Ok(m.stream) } else { Err(n) })
}

/// Connect to lockdownd of the device with this UDID.
pub fn lockdown(addr: SocketAddr, udid: &str) -> Result<TcpStream> {
    let id = device_id(addr, udid)?;
    connect_port(addr, id, LOCKDOWN_PORT)?
        .map_err(|n| anyhow!("Connect to lockdownd failed with Result {n}"))
}

/// One lockdown frame: 4-byte BE length + body.
pub fn ld_frame(body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + body.len());
    v.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    v.extend_from_slice(body);
    v
}

pub fn ld_send(s: &mut TcpStream, req: &Dictionary) -> Result<()> {
    s.write_all(&ld_frame(&xml(req)))?;
    Ok(())
}

/// Reads one plaintext lockdown reply; checks it is XML starting with `<?xml` (what
/// libimobiledevice 1.3.0 needs).
pub fn ld_recv(s: &mut TcpStream) -> Result<Dictionary> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).context("reading lockdown length")?;
    let len = u32::from_be_bytes(h);
    if len > 16 * 1024 * 1024 {
        bail!("lockdown reply with absurd length {len}");
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body).context("reading lockdown body")?;
    if !body.starts_with(b"<?xml") {
        bail!(
            "lockdown reply does not start with <?xml: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(64)])
        );
    }
    plist::from_bytes(&body).context("lockdown reply is not a plist dict")
}

pub fn ld_request(s: &mut TcpStream, req: &Dictionary) -> Result<Dictionary> {
    ld_send(s, req)?;
    ld_recv(s)
}

/// AFC magic "CFA6LPAA".
pub const AFC_MAGIC: &[u8; 8] = b"CFA6LPAA";

pub mod afc_op {
    pub const STATUS: u64 = 0x01;
    pub const DATA: u64 = 0x02;
    pub const READ_DIR: u64 = 0x03;
    pub const REMOVE_PATH: u64 = 0x08;
    pub const MAKE_DIR: u64 = 0x09;
    pub const GET_FILE_INFO: u64 = 0x0A;
    pub const GET_DEVINFO: u64 = 0x0B;
    pub const FILE_OPEN: u64 = 0x0D;
    pub const FILE_OPEN_RES: u64 = 0x0E;
    pub const FILE_READ: u64 = 0x0F;
    pub const FILE_WRITE: u64 = 0x10;
    pub const FILE_SEEK: u64 = 0x11;
    pub const FILE_TELL: u64 = 0x12;
    pub const FILE_TELL_RES: u64 = 0x13;
    pub const FILE_CLOSE: u64 = 0x14;
}

/// An AFC packet with explicit lengths (hostile tests set them inconsistently).
pub fn afc_packet_raw(
    magic: &[u8; 8],
    entire: u64,
    this: u64,
    num: u64,
    op: u64,
    body: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + body.len());
    v.extend_from_slice(magic);
    v.extend_from_slice(&entire.to_le_bytes());
    v.extend_from_slice(&this.to_le_bytes());
    v.extend_from_slice(&num.to_le_bytes());
    v.extend_from_slice(&op.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// A well-formed AFC request: everything in the header part (this = entire).
pub fn afc_packet(num: u64, op: u64, header_payload: &[u8]) -> Vec<u8> {
    let n = 40 + header_payload.len() as u64;
    afc_packet_raw(AFC_MAGIC, n, n, num, op, header_payload)
}

/// An AFC reply.
#[derive(Debug, Clone)]
pub struct AfcReply {
    pub entire: u64,
    pub this: u64,
    pub num: u64,
    pub op: u64,
    pub header_payload: Vec<u8>,
    pub payload: Vec<u8>,
}

impl AfcReply {
    /// STATUS code (0 = success), checking the spec's layout (this = entire = 48).
    pub fn status(&self) -> Result<u64> {
        if self.op != afc_op::STATUS {
            bail!("expected STATUS, got {self:?}");
        }
        if self.this != 48 || self.entire != 48 {
            bail!(
                "STATUS reply with this={} entire={} (expected 48/48)",
                self.this,
                self.entire
            );
        }
        Ok(u64_at(&self.header_payload, 0))
    }
    /// DATA contents, checking they sit in the payload part (this = 40).
    pub fn data(&self) -> Result<&[u8]> {
        if self.op != afc_op::DATA {
            bail!(
                "expected DATA, got op {:#x} (status {:?})",
                self.op,
                self.status().ok()
            );
        }
        if self.this != 40 {
            bail!("DATA reply with this={} (expected 40)", self.this);
        }
        Ok(&self.payload)
    }
    /// The u64 of a FILE_OPEN_RES / FILE_TELL_RES (this = entire = 48).
    pub fn value(&self, op: u64) -> Result<u64> {
        if self.op != op || self.this != 48 || self.entire != 48 {
            bail!("expected op {op:#x} with this=entire=48, got {self:?}");
        }
        Ok(u64_at(&self.header_payload, 0))
    }
    /// `key\0value\0` pairs of a DATA reply.
    pub fn kv(&self) -> Result<Vec<(String, String)>> {
        let d = self.data()?;
        let parts: Vec<&[u8]> = d.split(|b| *b == 0).collect();
        let mut out = Vec::new();
        let mut it = parts.into_iter().filter(|p| !p.is_empty());
        while let Some(k) = it.next() {
            let v = it.next().unwrap_or_default();
            out.push((
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ));
        }
        Ok(out)
    }
}

/// Reads one AFC reply (bounded: refuses absurd lengths instead of allocating them).
pub fn read_afc(s: &mut TcpStream) -> Result<AfcReply> {
    let mut h = [0u8; 40];
    s.read_exact(&mut h).context("reading AFC header")?;
    if &h[..8] != AFC_MAGIC {
        bail!("AFC reply with bad magic {:?}", &h[..8]);
    }
    let entire = u64_at(&h, 8);
    let this = u64_at(&h, 16);
    if this < 40 || entire < this || entire > 256 * 1024 * 1024 {
        bail!("AFC reply with bad lengths entire={entire} this={this}");
    }
    let mut header_payload = vec![0u8; (this - 40) as usize];
    s.read_exact(&mut header_payload)?;
    let mut payload = vec![0u8; (entire - this) as usize];
    s.read_exact(&mut payload)?;
    Ok(AfcReply {
        entire,
        this,
        num: u64_at(&h, 24),
        op: u64_at(&h, 32),
        header_payload,
        payload,
    })
}

pub fn afc_request(
    s: &mut TcpStream,
    num: u64,
    op: u64,
    header_payload: &[u8],
) -> Result<AfcReply> {
    s.write_all(&afc_packet(num, op, header_payload))?;
    let r = read_afc(s)?;
    if r.num != num {
        bail!("AFC reply packet_num {} for request {num}", r.num);
    }
    Ok(r)
}

/// Reads until the peer closes (EOF or reset) and returns what arrived before. Errors if the
/// connection is still open when `deadline` passes or more than `cap` bytes arrive.
pub fn read_until_closed(s: &mut TcpStream, deadline: Duration, cap: usize) -> Result<Vec<u8>> {
    let end = Instant::now() + deadline;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "connection still open {deadline:?} after the hostile input ({} bytes received)",
                got.len()
            );
        }
        s.set_read_timeout(Some(left))?;
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                if got.len() > cap {
                    bail!("peer sent more than {cap} bytes instead of closing");
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                ) =>
            {
                return Ok(got)
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Writes bytes, tolerating the peer closing early (it may reject a header before the body).
pub fn write_lenient(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
    let _ = s.flush();
}

/// Half-closes our side (the peer sees EOF).
pub fn shutdown_write(s: &TcpStream) {
    let _ = s.shutdown(Shutdown::Write);
}

/// A fresh ordinary client still works: ListDevices shows `udid`, and on a new lockdown
/// connection QueryType and GetValue ProductVersion answer properly.
pub fn check_healthy(addr: SocketAddr, udid: &str, product_version: &str) -> Result<()> {
    let mut ld = lockdown(addr, udid).context("health check: Connect to lockdownd")?;
    let r = ld_request(
        &mut ld,
        &dict(&[("Label", s("ferry-e2e")), ("Request", s("QueryType"))]),
    )
    .context("health check: QueryType")?;
    if r.get("Type").and_then(Value::as_string) != Some("com.apple.mobile.lockdown") {
        bail!("health check: QueryType reply {r:?}");
    }
    let r = ld_request(
        &mut ld,
        &dict(&[
            ("Label", s("ferry-e2e")),
            ("Request", s("GetValue")),
            ("Key", s("ProductVersion")),
        ]),
    )
    .context("health check: GetValue ProductVersion")?;
    if r.get("Value").and_then(Value::as_string) != Some(product_version) {
        bail!("health check: GetValue ProductVersion reply {r:?}");
    }
    Ok(())
}
