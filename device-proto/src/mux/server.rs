//! One usbmuxd client connection, from its first packet to `Connect` (after which the socket
//! belongs to a phone service) or to its close.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use plist::{Dictionary, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{self, msg, result, Packet};
use crate::io::{BoxIo, Prefixed};
use crate::phone::{MuxEvent, Phone, ServiceKind, LOCKDOWN_PORT};
use crate::sim::Shared;

/// What the daemon remembers of a client for ListListeners.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub id: u64,
    pub prog_name: Option<String>,
    pub bundle_id: Option<String>,
    pub version_string: Option<String>,
    pub libusbmux_version: Option<u64>,
}

/// Clients currently in Listen mode.
#[derive(Debug, Default)]
pub struct Listeners {
    next: AtomicU64,
    list: Mutex<Vec<ClientInfo>>,
}

impl Listeners {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst) + 1
    }
    fn add(&self, c: ClientInfo) {
        if let Ok(mut l) = self.list.lock() {
            l.push(c);
        }
    }
    fn remove(&self, id: u64) {
        if let Ok(mut l) = self.list.lock() {
            l.retain(|c| c.id != id);
        }
    }
    fn snapshot(&self) -> Vec<ClientInfo> {
        self.list.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

struct Conn {
    shared: Arc<Shared>,
    io: BoxIo,
    buf: Vec<u8>,
    /// The protocol version replies use: 0 until the client sent a plist packet.
    proto: u32,
    info: ClientInfo,
}

enum Next {
    Continue,
    Close,
    /// The socket now belongs to a phone service.
    Pipe(Arc<Phone>, PipeTo),
    Listen(u32),
}

enum PipeTo {
    Lockdown,
    Service(ServiceKind),
}

/// Serves one accepted usbmuxd client until it closes, is piped to a phone, or the simulator
/// stops.
pub async fn serve_connection(shared: Arc<Shared>, io: BoxIo) {
    let id = shared.listeners.next_id();
    let mut conn = Conn {
        shared,
        io,
        buf: Vec::with_capacity(1024),
        proto: 0,
        info: ClientInfo {
            id,
            ..ClientInfo::default()
        },
    };
    let stop = conn.shared.shutdown.clone();
    loop {
        // An idle client must not keep a stopping simulator alive.
        let pkt = tokio::select! {
            p = conn.read_packet() => match p {
                Some(p) => p,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        match conn.handle(pkt).await {
            Next::Continue => {}
            Next::Close => return,
            Next::Listen(tag) => {
                conn.listen(tag).await;
                return;
            }
            Next::Pipe(phone, to) => {
                conn.pipe(phone, to).await;
                return;
            }
        }
    }
}

impl Conn {
    /// Reads until one whole packet is buffered. `None`: EOF, a read error or a framing error
    /// (the daemon closes the connection on a bad length).
    async fn read_packet(&mut self) -> Option<Packet> {
        loop {
            match codec::decode(&self.buf) {
                Ok(Some((pkt, used))) => {
                    self.buf.drain(..used);
                    return Some(pkt);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("usbmuxd client {}: {e}; closing", self.info.id);
                    return None;
                }
            }
            let mut chunk = [0u8; 8192];
            match self.io.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.io.write_all(bytes).await.is_ok() && self.io.flush().await.is_ok()
    }

    async fn reply_result(&mut self, tag: u32, number: u64) -> bool {
        let bytes = if self.proto == 1 {
            codec::plist_result(tag, number)
        } else {
            codec::binary_result(tag, number as u32)
        };
        self.send(&bytes).await
    }

    async fn reply_plist(&mut self, tag: u32, d: Dictionary) -> bool {
        self.send(&codec::plist_packet(tag, &Value::Dictionary(d)))
            .await
    }

    fn plugged(&self) -> Vec<(u32, Arc<Phone>)> {
        self.shared
            .phones
            .iter()
            .filter_map(|p| p.device_id().map(|id| (id, p.clone())))
            .collect()
    }

    fn find(&self, device_id: u32) -> Option<Arc<Phone>> {
        self.shared
            .phones
            .iter()
            .find(|p| p.device_id() == Some(device_id))
            .cloned()
    }

    async fn handle(&mut self, pkt: Packet) -> Next {
        match pkt.version {
            0 => self.handle_binary(pkt).await,
            1 => {
                self.proto = 1;
                if pkt.message != msg::PLIST {
                    return self.result_then(pkt.tag, result::BADCOMMAND).await;
                }
                let dict = match codec::plist_request(&pkt.payload) {
                    Some(d) => d,
                    None => {
                        tracing::debug!(
                            "usbmuxd client {}: payload is not a plist dict",
                            self.info.id
                        );
                        return self.result_then(pkt.tag, result::BADCOMMAND).await;
                    }
                };
                self.handle_plist(pkt.tag, dict).await
            }
            other => {
                tracing::debug!("usbmuxd client {}: protocol version {other}", self.info.id);
                self.result_then(pkt.tag, result::BADVERSION).await
            }
        }
    }

    async fn result_then(&mut self, tag: u32, number: u64) -> Next {
        if self.reply_result(tag, number).await {
            Next::Continue
        } else {
            Next::Close
        }
    }

    async fn handle_binary(&mut self, pkt: Packet) -> Next {
        match pkt.message {
            msg::LISTEN => Next::Listen(pkt.tag),
            msg::CONNECT if pkt.payload.len() >= 8 => {
                let mut id = [0u8; 4];
                id.copy_from_slice(&pkt.payload[0..4]);
                let device_id = u32::from_le_bytes(id);
                // Binary Connect carries the port in network byte order.
                let port = u16::from_be_bytes([pkt.payload[4], pkt.payload[5]]);
                self.connect(pkt.tag, device_id, port).await
            }
            _ => self.result_then(pkt.tag, result::BADCOMMAND).await,
        }
    }

    fn note_client(&mut self, d: &Dictionary) {
        let s = |k: &str| d.get(k).and_then(Value::as_string).map(str::to_string);
        if let Some(v) = s("ProgName") {
            self.info.prog_name = Some(v);
        }
        if let Some(v) = s("BundleID") {
            self.info.bundle_id = Some(v);
        }
        if let Some(v) = s("ClientVersionString") {
            self.info.version_string = Some(v);
        }
        if let Some(v) = d
            .get("kLibUSBMuxVersion")
            .and_then(Value::as_unsigned_integer)
        {
            self.info.libusbmux_version = Some(v);
        }
    }

    async fn handle_plist(&mut self, tag: u32, d: Dictionary) -> Next {
        self.note_client(&d);
        let Some(kind) = d
            .get("MessageType")
            .and_then(Value::as_string)
            .map(str::to_string)
        else {
            return self.result_then(tag, result::BADCOMMAND).await;
        };
        let uint = |k: &str| d.get(k).and_then(Value::as_unsigned_integer);
        let string = |k: &str| d.get(k).and_then(Value::as_string).map(str::to_string);
        match kind.as_str() {
            "ListDevices" => {
                let list: Vec<Value> = self
                    .plugged()
                    .iter()
                    .map(|(id, p)| Value::Dictionary(attached_dict(*id, p)))
                    .collect();
                let mut r = Dictionary::new();
                r.insert("DeviceList".into(), Value::Array(list));
                ok_or_close(self.reply_plist(tag, r).await)
            }
            "Listen" => Next::Listen(tag),
            "Connect" => {
                let Some(device_id) = uint("DeviceID") else {
                    return self.result_then(tag, result::BADDEV).await;
                };
                let Some(port) = uint("PortNumber") else {
                    return self.result_then(tag, result::BADCOMMAND).await;
                };
                let device_id = u32::try_from(device_id).unwrap_or(0);
                self.connect(tag, device_id, codec::decode_port(port)).await
            }
            "ReadBUID" => {
                let mut r = Dictionary::new();
                r.insert(
                    "BUID".into(),
                    Value::String(self.shared.store.buid().to_string()),
                );
                ok_or_close(self.reply_plist(tag, r).await)
            }
            "ReadPairRecord" => {
                let Some(id) = string("PairRecordID") else {
                    return self.result_then(tag, result::EINVAL).await;
                };
                match self.shared.store.read(&id) {
                    Some(data) => {
                        let mut r = Dictionary::new();
                        r.insert("PairRecordData".into(), Value::Data(data));
                        ok_or_close(self.reply_plist(tag, r).await)
                    }
                    None => self.result_then(tag, result::ENOENT).await,
                }
            }
            "SavePairRecord" => {
                let id = string("PairRecordID");
                let data = d
                    .get("PairRecordData")
                    .and_then(Value::as_data)
                    .map(<[u8]>::to_vec);
                let (Some(id), Some(data)) = (id, data) else {
                    return self.result_then(tag, result::EINVAL).await;
                };
                if let Err(e) = self.shared.store.save(&id, &data) {
                    tracing::warn!("cannot save pair record {id}: {e:#}");
                    return self.result_then(tag, result::EINVAL).await;
                }
                let next = self.result_then(tag, result::OK).await;
                // The daemon tells listeners a device was paired when the request names a
                // connected device whose serial is the record id.
                if let Some(dev) = uint("DeviceID").and_then(|v| u32::try_from(v).ok()) {
                    if let Some(p) = self.find(dev) {
                        if p.udid() == id {
                            p.announce_paired(dev);
                        }
                    }
                }
                next
            }
            "DeletePairRecord" => {
                let Some(id) = string("PairRecordID") else {
                    return self.result_then(tag, result::EINVAL).await;
                };
                let n = match self.shared.store.delete(&id) {
                    Ok(()) => result::OK,
                    Err(_) => result::EINVAL,
                };
                self.result_then(tag, n).await
            }
            "ListListeners" => {
                let list = self
                    .shared
                    .listeners
                    .snapshot()
                    .into_iter()
                    .map(|c| {
                        let prog = c.prog_name.clone().unwrap_or_default();
                        let mut e = Dictionary::new();
                        e.insert("Blacklisted".into(), Value::Boolean(false));
                        if let Some(b) = c.bundle_id {
                            e.insert("BundleID".into(), Value::String(b));
                        }
                        e.insert("ConnType".into(), Value::Integer(0.into()));
                        e.insert(
                            "ID String".into(),
                            Value::String(format!("{}-{}", c.id, prog)),
                        );
                        e.insert("ProgName".into(), Value::String(prog));
                        e.insert(
                            "kLibUSBMuxVersion".into(),
                            Value::Integer(c.libusbmux_version.unwrap_or(3).into()),
                        );
                        Value::Dictionary(e)
                    })
                    .collect();
                let mut r = Dictionary::new();
                r.insert("ListenerList".into(), Value::Array(list));
                ok_or_close(self.reply_plist(tag, r).await)
            }
            other => {
                tracing::debug!(
                    "usbmuxd client {}: unknown MessageType {other:?}",
                    self.info.id
                );
                self.result_then(tag, result::BADCOMMAND).await
            }
        }
    }

    async fn connect(&mut self, tag: u32, device_id: u32, port: u16) -> Next {
        let Some(phone) = self.find(device_id) else {
            return self.result_then(tag, result::BADDEV).await;
        };
        let to = if port == LOCKDOWN_PORT {
            PipeTo::Lockdown
        } else if let Some(kind) = phone.take_service_port(port) {
            PipeTo::Service(kind)
        } else {
            // Nothing listens there: the phone answers RST.
            return self.result_then(tag, result::CONNREFUSED).await;
        };
        if !self.reply_result(tag, result::OK).await {
            return Next::Close;
        }
        Next::Pipe(phone, to)
    }

    /// After a successful Connect: the socket is a raw pipe to the phone's port until either
    /// side closes, the phone is unplugged, or the simulator stops.
    async fn pipe(self, phone: Arc<Phone>, to: PipeTo) {
        let Some(unplugged) = phone.plug_token() else {
            return;
        };
        let stop = self.shared.shutdown.clone();
        let io: BoxIo = Box::new(Prefixed::new(self.buf, self.io));
        let work = async {
            match to {
                PipeTo::Lockdown => crate::lockdown::serve(phone.clone(), io).await,
                PipeTo::Service(ServiceKind::Afc) => crate::afc::serve(phone.clone(), io).await,
            }
        };
        tokio::select! {
            _ = work => {}
            // Unplugged: the pipe dies with no goodbye (no TLS close_notify, no AFC status).
            _ = unplugged.cancelled() => {}
            _ = stop.cancelled() => {}
        }
    }

    /// Listen mode: Result 0, an Attached per present phone, then notifications until the
    /// client goes away. Any further command gets BADCOMMAND and the connection is closed.
    async fn listen(mut self, tag: u32) {
        let bus = self.shared.bus.clone();
        let (mut rx, present) = {
            let _order = bus.order.lock().await;
            (bus.subscribe(), self.plugged())
        };
        // Registered before the Result goes out, so a client that has read it already shows
        // in ListListeners.
        self.shared.listeners.add(self.info.clone());
        self.listen_loop(tag, &mut rx, present).await;
        self.shared.listeners.remove(self.info.id);
    }

    async fn listen_loop(
        &mut self,
        tag: u32,
        rx: &mut tokio::sync::broadcast::Receiver<MuxEvent>,
        present: Vec<(u32, Arc<Phone>)>,
    ) {
        if !self.reply_result(tag, result::OK).await {
            return;
        }
        for (id, phone) in &present {
            let bytes = self.event_bytes(&MuxEvent::Attached {
                device_id: *id,
                phone: phone.clone(),
            });
            if !self.send(&bytes).await {
                return;
            }
        }
        let id = self.info.id;
        let stop = self.shared.shutdown.clone();
        loop {
            let mut chunk = [0u8; 1024];
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        let bytes = self.event_bytes(&ev);
                        if !bytes.is_empty() && !self.send(&bytes).await {
                            break;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!("listener {id} missed {n} events");
                    }
                    Err(_) => break,
                },
                r = self.io.read(&mut chunk) => match r {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        self.buf.extend_from_slice(&chunk[..n]);
                        match codec::decode(&self.buf) {
                            Ok(None) => {}
                            Ok(Some((pkt, _))) => {
                                let _ = self.reply_result(pkt.tag, result::BADCOMMAND).await;
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                },
                _ = stop.cancelled() => break,
            }
        }
    }

    fn event_bytes(&self, ev: &MuxEvent) -> Vec<u8> {
        if self.proto == 1 {
            let d = match ev {
                MuxEvent::Attached { device_id, phone } => attached_dict(*device_id, phone),
                MuxEvent::Detached { device_id } => {
                    let mut d = Dictionary::new();
                    d.insert("DeviceID".into(), Value::Integer((*device_id).into()));
                    d.insert("MessageType".into(), Value::String("Detached".into()));
                    d
                }
                MuxEvent::Paired { device_id } => {
                    let mut d = Dictionary::new();
                    d.insert("DeviceID".into(), Value::Integer((*device_id).into()));
                    d.insert("MessageType".into(), Value::String("Paired".into()));
                    d
                }
            };
            codec::plist_packet(0, &Value::Dictionary(d))
        } else {
            match ev {
                MuxEvent::Attached { device_id, phone } => codec::binary_device_add(
                    *device_id,
                    phone.spec.usb_product_id,
                    &phone.spec.udid.replace('-', ""),
                    location_id(*device_id),
                ),
                MuxEvent::Detached { device_id } => codec::binary_device_remove(*device_id),
                MuxEvent::Paired { device_id } => {
                    codec::encode(0, msg::DEVICE_PAIRED, 0, &device_id.to_le_bytes())
                }
            }
        }
    }
}

fn ok_or_close(sent: bool) -> Next {
    if sent {
        Next::Continue
    } else {
        Next::Close
    }
}

/// `(bus << 16) | address`. A replugged device gets a new address, as on a real bus.
fn location_id(device_id: u32) -> u32 {
    (1 << 16) | ((device_id % 120) + 2)
}

/// A device entry as the Linux daemon builds it for ListDevices and Attached.
pub fn attached_dict(device_id: u32, phone: &Phone) -> Dictionary {
    let mut props = Dictionary::new();
    props.insert(
        "ConnectionSpeed".into(),
        Value::Integer(phone.link.profile().connection_speed().into()),
    );
    props.insert("ConnectionType".into(), Value::String("USB".into()));
    props.insert("DeviceID".into(), Value::Integer(device_id.into()));
    props.insert(
        "LocationID".into(),
        Value::Integer(location_id(device_id).into()),
    );
    props.insert(
        "ProductID".into(),
        Value::Integer(u64::from(phone.spec.usb_product_id).into()),
    );
    props.insert(
        "SerialNumber".into(),
        Value::String(phone.spec.udid.clone()),
    );
    let mut d = Dictionary::new();
    d.insert("DeviceID".into(), Value::Integer(device_id.into()));
    d.insert("MessageType".into(), Value::String("Attached".into()));
    d.insert("Properties".into(), Value::Dictionary(props));
    d
}
