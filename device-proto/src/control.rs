//! The control socket: a UNIX socket on which tests and `ferry-sim ctl` play the user and the
//! cable while the simulator runs. One JSON request per line, one JSON reply per line:
//!
//! ```text
//! {"cmd":"unplug","udid":null}          -> {"ok":true}
//! {"cmd":"replug"}                      -> {"ok":true,"device_id":3}
//! {"cmd":"stall"} / {"cmd":"unstall"}   -> {"ok":true}
//! {"cmd":"revoke"}                      -> {"ok":true}
//! {"cmd":"trust","mode":"after:2"}      -> {"ok":true}
//! {"cmd":"unplug_after","bytes":1000}   -> {"ok":true}
//! {"cmd":"stall_after","bytes":1000}    -> {"ok":true}
//! {"cmd":"status"}                      -> {"ok":true,"phones":[…]}
//! anything wrong                         -> {"ok":false,"error":"…"}
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::phone::TrustMode;
use crate::sim::{PhoneStatus, Simulator};

/// A control request.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    Unplug {
        #[serde(default)]
        udid: Option<String>,
    },
    Replug {
        #[serde(default)]
        udid: Option<String>,
    },
    Stall {
        #[serde(default)]
        udid: Option<String>,
    },
    Unstall {
        #[serde(default)]
        udid: Option<String>,
    },
    Revoke {
        #[serde(default)]
        udid: Option<String>,
    },
    Trust {
        mode: String,
        #[serde(default)]
        udid: Option<String>,
    },
    UnplugAfter {
        bytes: Option<u64>,
        #[serde(default)]
        udid: Option<String>,
    },
    StallAfter {
        bytes: Option<u64>,
        #[serde(default)]
        udid: Option<String>,
    },
    Status,
}

/// A control reply.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phones: Option<Vec<serde_json::Value>>,
}

/// Runs one command against a simulator.
pub async fn execute(sim: &Simulator, cmd: Command) -> Reply {
    let r: anyhow::Result<Reply> = async {
        let ok = Reply {
            ok: true,
            ..Reply::default()
        };
        Ok(match cmd {
            Command::Unplug { udid } => {
                sim.unplug(udid.as_deref()).await?;
                ok
            }
            Command::Replug { udid } => Reply {
                device_id: Some(sim.replug(udid.as_deref()).await?),
                ..ok
            },
            Command::Stall { udid } => {
                sim.stall(udid.as_deref(), true)?;
                ok
            }
            Command::Unstall { udid } => {
                sim.stall(udid.as_deref(), false)?;
                ok
            }
            Command::Revoke { udid } => {
                sim.revoke(udid.as_deref())?;
                ok
            }
            Command::Trust { mode, udid } => {
                let m: TrustMode = mode.parse().map_err(anyhow::Error::msg)?;
                sim.set_trust(udid.as_deref(), m)?;
                ok
            }
            Command::UnplugAfter { bytes, udid } => {
                sim.unplug_after(udid.as_deref(), bytes)?;
                ok
            }
            Command::StallAfter { bytes, udid } => {
                sim.stall_after(udid.as_deref(), bytes)?;
                ok
            }
            Command::Status => Reply {
                phones: Some(
                    sim.status()
                        .iter()
                        .map(|s: &PhoneStatus| serde_json::to_value(s).unwrap_or_default())
                        .collect(),
                ),
                ..ok
            },
        })
    }
    .await;
    r.unwrap_or_else(|e| Reply {
        ok: false,
        error: Some(format!("{e:#}")),
        ..Reply::default()
    })
}

/// Serves the control socket at `path` until `stop` is cancelled.
pub async fn serve(
    sim: Arc<Simulator>,
    path: &Path,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((sock, _)) = r else { continue };
                let sim = sim.clone();
                tokio::spawn(async move { handle(sim, sock).await });
            }
            _ = stop.cancelled() => break,
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

async fn handle(sim: Arc<Simulator>, sock: UnixStream) {
    let (rd, mut wr) = sock.into_split();
    let mut lines = BufReader::new(rd).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match serde_json::from_str::<Command>(&line) {
            Ok(cmd) => execute(&sim, cmd).await,
            Err(e) => Reply {
                ok: false,
                error: Some(format!("not a control command: {e}")),
                ..Reply::default()
            },
        };
        let mut out = serde_json::to_string(&reply).unwrap_or_else(|_| "{\"ok\":false}".into());
        out.push('\n');
        if wr.write_all(out.as_bytes()).await.is_err() {
            break;
        }
    }
}

/// Sends one command to a control socket (the `ferry-sim ctl` side).
pub async fn send(path: &Path, cmd: &Command) -> anyhow::Result<Reply> {
    let sock = UnixStream::connect(path).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the simulator's control socket {}: {e} (is `ferry-sim serve --control {}` running?)",
            path.display(),
            path.display()
        )
    })?;
    let (rd, mut wr) = sock.into_split();
    let mut line = serde_json::to_string(cmd)?;
    line.push('\n');
    wr.write_all(line.as_bytes()).await?;
    let mut lines = BufReader::new(rd).lines();
    let reply = lines
        .next_line()
        .await?
        .ok_or_else(|| anyhow::anyhow!("the simulator closed the control socket"))?;
    Ok(serde_json::from_str(&reply)?)
}
