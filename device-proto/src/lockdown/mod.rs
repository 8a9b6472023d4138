//! lockdownd on device port 62078: identity values, pairing with the "Trust this computer?"
//! dialog, sessions that switch the socket to TLS, and starting services.
//!
//! Every reply echoes `Request`; success is the absence of `Error`; errors are the strings
//! lockdownd uses (device-protocols.md §2.10).

mod frame;
mod pair;
mod tls;
mod values;

pub use frame::{check_len, decode, parse_body, FrameError, MAX_BODY};

use std::sync::Arc;
use std::time::Duration;

use plist::{Dictionary, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::server::TlsStream;

use crate::io::BoxIo;
use crate::phone::{PairDecision, Phone, ServiceKind};
use tls::RecordReader;

/// How long the phone waits for the ClientHello after a StartSession reply.
/// libimobiledevice makes a usbmuxd round trip in between; ≥ 10 s is generous.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the phone waits for the host's close_notify after StopSession.
const UNWRAP_TIMEOUT: Duration = Duration::from_secs(10);

enum Wire {
    Plain(RecordReader),
    Tls(Box<TlsStream<RecordReader>>),
    Closed,
}

struct Session {
    id: String,
    host_id: String,
}

struct Lockdown {
    phone: Arc<Phone>,
    wire: Wire,
    session: Option<Session>,
}

/// Serves one connection to port 62078 until the client closes it.
pub async fn serve(phone: Arc<Phone>, io: BoxIo) {
    let mut ld = Lockdown {
        phone,
        wire: Wire::Plain(RecordReader::new(io)),
        session: None,
    };
    ld.run().await;
}

fn reply(verb: &str) -> Dictionary {
    let mut d = Dictionary::new();
    d.insert("Request".into(), Value::String(verb.to_string()));
    d
}

fn error(verb: &str, err: &str) -> Dictionary {
    let mut d = reply(verb);
    d.insert("Error".into(), Value::String(err.to_string()));
    d
}

fn get_str<'a>(d: &'a Dictionary, k: &str) -> Option<&'a str> {
    d.get(k).and_then(Value::as_string)
}

impl Lockdown {
    async fn run(&mut self) {
        loop {
            let req = match self.read_request().await {
                Some(r) => r,
                None => break,
            };
            self.phone.link.before_reply().await;
            let verb = get_str(&req, "Request").unwrap_or("").to_string();
            tracing::debug!(udid = %self.phone.udid(), "lockdown request {verb:?}");
            let ok = match verb.as_str() {
                "QueryType" => {
                    let mut d = reply("QueryType");
                    d.insert(
                        "Type".into(),
                        Value::String("com.apple.mobile.lockdown".into()),
                    );
                    self.send(d).await
                }
                "GetValue" => {
                    let d = self.get_value(&req);
                    self.send(d).await
                }
                "SetValue" | "RemoveValue" => {
                    // Accepted and ignored: a backup tool needs none of these (usbmuxd's
                    // preflight sets UntrustedHostBUID).
                    let mut d = reply(&verb);
                    for k in ["Domain", "Key"] {
                        if let Some(v) = req.get(k) {
                            d.insert(k.into(), v.clone());
                        }
                    }
                    self.send(d).await
                }
                "Pair" => {
                    let d = self.pair(&req);
                    self.send(d).await
                }
                "ValidatePair" => {
                    let known = pair::host_id_of(&req)
                        .and_then(|h| self.phone.store.trusted(&h))
                        .is_some();
                    let d = if known {
                        reply("ValidatePair")
                    } else {
                        error("ValidatePair", "InvalidHostID")
                    };
                    self.send(d).await
                }
                "Unpair" => {
                    if let Some(h) = pair::host_id_of(&req) {
                        if let Err(e) = self.phone.store.forget(&h) {
                            tracing::warn!("cannot update the trust list: {e:#}");
                        }
                    }
                    self.send(reply("Unpair")).await
                }
                "StartSession" => self.start_session(&req).await,
                "StopSession" => self.stop_session().await,
                "StartService" => {
                    let d = self.start_service(&req);
                    self.send(d).await
                }
                "Goodbye" => {
                    let _ = self.send(reply("Goodbye")).await;
                    false
                }
                _ => {
                    // UNCONFIRMED: the string for an unknown request.
                    self.send(error(&verb, "InvalidRequest")).await
                }
            };
            if !ok {
                break;
            }
        }
        self.close().await;
    }

    /// Reads one request; `None` ends the connection (EOF, I/O error, bad frame).
    async fn read_request(&mut self) -> Option<Dictionary> {
        let mut len = [0u8; 4];
        let body = match &mut self.wire {
            Wire::Plain(w) => read_frame(w, &mut len).await,
            Wire::Tls(t) => read_frame(t.as_mut(), &mut len).await,
            Wire::Closed => None,
        }?;
        match frame::parse_body(&body) {
            Ok(d) => Some(d),
            Err(e) => {
                // UNCONFIRMED: what lockdownd does with a malformed request; closing is the
                // conservative choice.
                tracing::debug!("lockdown: {e}; closing");
                None
            }
        }
    }

    async fn send(&mut self, d: Dictionary) -> bool {
        let bytes = frame::encode(d);
        let r = match &mut self.wire {
            Wire::Plain(w) => write_all_flush(w, &bytes).await,
            Wire::Tls(t) => write_all_flush(t.as_mut(), &bytes).await,
            Wire::Closed => Err(std::io::ErrorKind::NotConnected.into()),
        };
        r.is_ok()
    }

    async fn close(&mut self) {
        if let Wire::Tls(t) = &mut self.wire {
            // Always end TLS with close_notify: 1.3.0 on OpenSSL 3 treats a bare EOF as an
            // error.
            t.get_mut().1.send_close_notify();
            let _ = t.flush().await;
        }
        self.wire = Wire::Closed;
    }

    fn get_value(&self, req: &Dictionary) -> Dictionary {
        let key = get_str(req, "Key");
        let domain = get_str(req, "Domain");
        let mut d = reply("GetValue");
        if let Some(dom) = domain {
            d.insert("Domain".into(), Value::String(dom.to_string()));
        }
        if let Some(k) = key {
            d.insert("Key".into(), Value::String(k.to_string()));
        }
        let in_session = self.session.is_some();
        let dict = match domain {
            None => {
                if in_session {
                    values::in_session(&self.phone)
                } else {
                    values::pre_session(&self.phone)
                }
            }
            Some(dom) => {
                if !in_session {
                    // UNCONFIRMED: domains are assumed to need a session.
                    d.insert("Error".into(), Value::String("GetProhibited".into()));
                    return d;
                }
                // UNCONFIRMED: an unknown domain gives an empty dictionary.
                values::domain(&self.phone, dom).unwrap_or_default()
            }
        };
        match key {
            None => {
                d.insert("Value".into(), Value::Dictionary(dict));
            }
            Some(k) => match dict.get(k) {
                Some(v) => {
                    d.insert("Value".into(), v.clone());
                }
                None => {
                    let private = domain.is_none()
                        && !in_session
                        && values::in_session(&self.phone).contains_key(k);
                    // UNCONFIRMED: session-only keys read without a session.
                    let err = if private {
                        "GetProhibited"
                    } else {
                        "MissingValue"
                    };
                    d.insert("Error".into(), Value::String(err.into()));
                }
            },
        }
        d
    }

    fn pair(&self, req: &Dictionary) -> Dictionary {
        let pkcs1 = match self.phone.store.public_key_pkcs1_der() {
            Ok(k) => k,
            Err(_) => return error("Pair", "InvalidPairRecord"),
        };
        let escrow: Vec<u8> = (0..128).map(|_| rand::random::<u8>()).collect();
        let host = match pair::validate(req, &pkcs1, escrow.clone()) {
            Ok(h) => h,
            Err(e) => {
                tracing::info!(udid = %self.phone.udid(), "Pair refused: {e}");
                return error("Pair", "InvalidPairRecord");
            }
        };
        match self.phone.decide_pair() {
            PairDecision::Pending => error("Pair", "PairingDialogResponsePending"),
            PairDecision::Denied => error("Pair", "UserDeniedPairing"),
            PairDecision::Locked => error("Pair", "PasswordProtected"),
            PairDecision::Accept => {
                tracing::info!(udid = %self.phone.udid(), host_id = %host.host_id, "host trusted");
                if let Err(e) = self.phone.store.trust(host) {
                    tracing::warn!("cannot save the trust list: {e:#}");
                    return error("Pair", "SavePairRecordFailed");
                }
                let mut d = reply("Pair");
                d.insert("EscrowBag".into(), Value::Data(escrow));
                d
            }
        }
    }

    async fn start_session(&mut self, req: &Dictionary) -> bool {
        if self.session.is_some() {
            // UNCONFIRMED string.
            return self.send(error("StartSession", "SessionActive")).await;
        }
        let Some(host_id) = get_str(req, "HostID").map(str::to_string) else {
            return self.send(error("StartSession", "InvalidHostID")).await;
        };
        let Some(host) = self.phone.store.trusted(&host_id) else {
            tracing::info!(udid = %self.phone.udid(), %host_id, "StartSession from an untrusted host");
            return self.send(error("StartSession", "InvalidHostID")).await;
        };
        let config = match self
            .phone
            .store
            .private_key_pkcs8_der()
            .and_then(|k| tls::server_config(&host, k, false))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("cannot set up TLS for host {host_id}: {e:#}");
                return self.send(error("StartSession", "InvalidHostID")).await;
            }
        };
        let session_id = uuid::Uuid::new_v4().to_string().to_uppercase();
        let mut d = reply("StartSession");
        d.insert("EnableSessionSSL".into(), Value::Boolean(true));
        d.insert("SessionID".into(), Value::String(session_id.clone()));
        if !self.send(d).await {
            return false;
        }
        let Wire::Plain(mut rr) = std::mem::replace(&mut self.wire, Wire::Closed) else {
            return false;
        };
        rr.set_records(true);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(rr)).await {
            Ok(Ok(t)) => {
                self.wire = Wire::Tls(Box::new(t));
                self.session = Some(Session {
                    id: session_id,
                    host_id,
                });
                true
            }
            Ok(Err(e)) => {
                tracing::info!(udid = %self.phone.udid(), "TLS handshake failed: {e}");
                false
            }
            Err(_) => {
                tracing::info!(udid = %self.phone.udid(), "no TLS ClientHello in time");
                false
            }
        }
    }

    async fn stop_session(&mut self) -> bool {
        if self.session.is_none() {
            return self.send(error("StopSession", "SessionInactive")).await;
        }
        let mut d = reply("StopSession");
        // pymobiledevice3 requires Result: Success here.
        d.insert("Result".into(), Value::String("Success".into()));
        if !self.send(d).await {
            return false;
        }
        let session = self.session.take();
        if let Some(s) = &session {
            tracing::debug!(session = %s.id, host = %s.host_id, "session stopped");
        }
        let Wire::Tls(mut t) = std::mem::replace(&mut self.wire, Wire::Closed) else {
            return false;
        };
        // Back to plaintext: our close_notify, then the host's (or its EOF).
        t.get_mut().1.send_close_notify();
        if t.flush().await.is_err() {
            return false;
        }
        let mut sink = [0u8; 512];
        let drained = tokio::time::timeout(UNWRAP_TIMEOUT, async {
            loop {
                match t.read(&mut sink).await {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(_) => return false,
                }
            }
        })
        .await;
        if drained != Ok(true) {
            return false;
        }
        let (mut rr, _) = t.into_inner();
        rr.set_records(false);
        self.wire = Wire::Plain(rr);
        true
    }

    fn start_service(&self, req: &Dictionary) -> Dictionary {
        let name = get_str(req, "Service").unwrap_or("").to_string();
        let mut d = reply("StartService");
        d.insert("Service".into(), Value::String(name.clone()));
        if self.session.is_none() {
            // UNCONFIRMED: the exact string for StartService without a session.
            d.insert("Error".into(), Value::String("SessionInactive".into()));
            return d;
        }
        let kind = match name.as_str() {
            "com.apple.afc" => ServiceKind::Afc,
            _ => {
                d.insert("Error".into(), Value::String("InvalidService".into()));
                return d;
            }
        };
        match self.phone.open_service_port(kind) {
            Some(port) => {
                // Over USB, com.apple.afc has no EnableServiceSSL: the service socket is
                // plaintext.
                d.insert("Port".into(), Value::Integer(u64::from(port).into()));
            }
            None => {
                d.insert("Error".into(), Value::String("ServiceLimit".into()));
            }
        }
        d
    }
}

async fn read_frame<R: tokio::io::AsyncRead + Unpin + ?Sized>(
    r: &mut R,
    len: &mut [u8; 4],
) -> Option<Vec<u8>> {
    r.read_exact(len).await.ok()?;
    let n = match frame::check_len(*len) {
        Ok(n) => n,
        Err(e) => {
            tracing::debug!("lockdown: {e}; closing");
            return None;
        }
    };
    let mut body = vec![0u8; n];
    r.read_exact(&mut body).await.ok()?;
    Some(body)
}

async fn write_all_flush<W: tokio::io::AsyncWrite + Unpin + ?Sized>(
    w: &mut W,
    bytes: &[u8],
) -> std::io::Result<()> {
    w.write_all(bytes).await?;
    w.flush().await
}
