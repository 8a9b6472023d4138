//! Following attach/detach: a Send-able channel of [`DeviceEvent`]s.
//!
//! idevice's `UsbmuxdConnection::listen()` stream is `!Send`, so it cannot live in a
//! `tokio::spawn`ed task or be handed to a GUI. [`DeviceWatcher::start`] runs it on its own
//! thread inside a current-thread runtime and forwards events over a tokio mpsc channel
//! (usable from async code with `recv().await` and from sync code with `blocking_recv()`).
//! `Attached` messages are enriched with a `ListDevices` call because idevice's event drops the
//! link speed. Dropping the watcher (or calling [`DeviceWatcher::stop`]) ends the thread.

use futures::StreamExt;
use idevice::usbmuxd::UsbmuxdListenEvent;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;
use crate::mux::{ConnectionKind, Mux, UsbDevice};

/// What happened on the bus.
#[derive(Debug)]
pub enum DeviceEvent {
    /// Connected to usbmuxd and listening (sent once, before any `Attached`): usbmuxd is up,
    /// whether or not a phone is connected.
    Listening,
    /// A phone appeared (also sent once for every phone already connected).
    Attached(UsbDevice),
    /// The phone with this usbmuxd device id went away.
    Detached {
        /// usbmuxd's id of the attachment (look the UDID up from the `Attached` event).
        device_id: u32,
    },
    /// Listening failed (usbmuxd went away); no more events follow.
    Ended(Error),
}

/// A running listener. Events arrive on the receiver returned by [`DeviceWatcher::start`].
#[derive(Debug)]
pub struct DeviceWatcher {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeviceWatcher {
    /// Starts listening. Fails only if the thread cannot be spawned; connection errors arrive
    /// as [`DeviceEvent::Ended`].
    pub fn start(
        mux: Mux,
    ) -> std::io::Result<(DeviceWatcher, mpsc::UnboundedReceiver<DeviceEvent>)> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("ferry-usbmuxd-listen".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = tx.send(DeviceEvent::Ended(Error::Internal {
                            during: "starting the device listener".into(),
                            detail: e.to_string(),
                        }));
                        return;
                    }
                };
                rt.block_on(async move {
                    tokio::select! {
                        _ = stop_rx => {}
                        end = listen(&mux, &tx) => { let _ = tx.send(DeviceEvent::Ended(end)); }
                    }
                });
            })?;
        Ok((
            DeviceWatcher {
                stop: Some(stop_tx),
                thread: Some(thread),
            },
            rx,
        ))
    }

    /// Stops listening and waits for the thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DeviceWatcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Runs until the connection fails; returns why.
async fn listen(mux: &Mux, tx: &mpsc::UnboundedSender<DeviceEvent>) -> Error {
    let mut conn = match mux.address.addr.connect(0).await {
        Ok(c) => c,
        Err(e) => {
            return Error::MuxUnreachable {
                addr: mux.address.display.clone(),
                source: match e {
                    idevice::IdeviceError::Socket(io) => io,
                    other => std::io::Error::other(other.to_string()),
                },
            }
        }
    };
    let mut events = match conn.listen().await {
        Ok(s) => s,
        Err(e) => return Error::from_idevice(e, "listening for iPhones"),
    };
    let _ = tx.send(DeviceEvent::Listening);
    while let Some(ev) = events.next().await {
        let ev = match ev {
            Ok(UsbmuxdListenEvent::Connected(d)) => {
                // Enrich with ConnectionSpeed etc.; fall back to what the event said.
                let full = mux
                    .list()
                    .await
                    .ok()
                    .and_then(|l| l.into_iter().find(|x| x.device_id == d.device_id));
                DeviceEvent::Attached(full.unwrap_or_else(|| UsbDevice {
                    udid: d.udid.clone(),
                    device_id: d.device_id,
                    connection: match d.connection_type {
                        idevice::usbmuxd::Connection::Usb => ConnectionKind::Usb,
                        idevice::usbmuxd::Connection::Network(_) => ConnectionKind::Network,
                        idevice::usbmuxd::Connection::Unknown(s) => ConnectionKind::Other(s),
                    },
                    link_speed_bps: None,
                    product_id: None,
                    location_id: None,
                }))
            }
            Ok(UsbmuxdListenEvent::Disconnected(id)) => DeviceEvent::Detached { device_id: id },
            Err(e) => return Error::from_idevice(e, "listening for iPhones"),
        };
        if tx.send(ev).is_err() {
            // Nobody is listening any more.
            return Error::Internal {
                during: "listening for iPhones".into(),
                detail: "receiver dropped".into(),
            };
        }
    }
    Error::Disconnected {
        during: "listening for iPhones (usbmuxd closed the connection)".into(),
    }
}
