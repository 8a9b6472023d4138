//! Pairing ("Trust This Computer?") as a state machine both the CLI and the GUI drive.
//!
//! ```text
//!  Checking ──record works──────────────────────────────────────────▶ AlreadyPaired
//!     │ no record            │ InvalidHostID
//!     │                      ▼
//!     │                  TrustRevoked (tell the user; pair again)
//!     ▼                      │
//!  Requesting ◀──────────────┘
//!     │ PairingDialogResponsePending
//!     ▼
//!  WaitingForTrust { deadline }  ── "unlock your iPhone and tap Trust"
//!     │ Trust        │ Don't Trust   │ locked         │ deadline / cancel
//!     ▼              ▼               ▼                ▼
//!  Saving ─▶ Paired  Err(TrustDenied) Err(Locked)     Err(TrustTimeout) / Err(PairCancelled)
//! ```
//!
//! Every state is reported through a callback as it is entered. idevice's `pair()` retries
//! forever while the dialog is up, so it always runs under the deadline and the cancel token;
//! a first `pair_once()` tells "dialog shown" from "answered at once". The record is saved
//! through usbmuxd (so libimobiledevice tools on the same computer can use it) and checked by
//! starting a session with it. The HostID comes from [`crate::HostIdentity`], so it is the
//! same on every run.

use std::time::Duration;

use idevice::lockdown::LockdownClient;
use idevice::{IdeviceError, IdeviceService};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::host::HostIdentity;
use crate::mux::{Mux, UsbDevice};
use crate::session::{timed, Session};

/// Where pairing is. Sent to the observer on entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PairState {
    /// Looking for an existing pair record and trying it.
    Checking,
    /// A pair record exists but the phone has forgotten this computer (InvalidHostID).
    TrustRevoked,
    /// Sending the pair request.
    Requesting,
    /// The phone shows "Trust This Computer?". The user must unlock it and tap Trust.
    WaitingForTrust {
        /// Time left before giving up.
        remaining_secs: u64,
    },
    /// Trust was granted; storing the record in usbmuxd and checking it.
    Saving,
    /// Done: a new record was stored.
    Paired,
    /// Done: the existing record works; nothing was changed.
    AlreadyPaired,
}

impl PairState {
    /// A sentence for the user.
    pub fn message(&self) -> String {
        match self {
            PairState::Checking => "Checking whether this computer is already trusted…".into(),
            PairState::TrustRevoked => "This iPhone no longer trusts this computer (its trust \
                 settings were reset). Pairing again."
                .into(),
            PairState::Requesting => "Asking the iPhone to trust this computer…".into(),
            PairState::WaitingForTrust { remaining_secs } => format!(
                "Unlock your iPhone and tap \"Trust\" on the \"Trust This Computer?\" prompt \
                 (then enter your passcode). Waiting up to {remaining_secs}s…"
            ),
            PairState::Saving => "Trusted. Saving the pairing…".into(),
            PairState::Paired => "Paired.".into(),
            PairState::AlreadyPaired => "Already paired: this iPhone trusts this computer.".into(),
        }
    }
}

/// How it ended (when it did not fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairOutcome {
    /// New pairing stored.
    Paired,
    /// The phone had revoked trust; a new pairing was stored.
    RePaired,
    /// The existing pairing works.
    AlreadyPaired,
}

/// Options for [`pair`].
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// How long to wait for the user to tap Trust.
    pub timeout: Duration,
    /// Cancel from elsewhere (Ctrl-C, a GUI button).
    pub cancel: CancellationToken,
    /// Pair even if a working record exists.
    pub force: bool,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            timeout: Duration::from_secs(120),
            cancel: CancellationToken::new(),
            force: false,
        }
    }
}

/// Runs the state machine for `dev`, reporting every state to `observe`.
pub async fn pair(
    mux: &Mux,
    dev: &UsbDevice,
    host: &HostIdentity,
    opts: &PairOptions,
    mut observe: impl FnMut(&PairState) + Send,
) -> Result<PairOutcome> {
    let deadline = tokio::time::Instant::now() + opts.timeout;
    observe(&PairState::Checking);
    let mut revoked = false;
    if let Some(record) = mux.pair_record(&dev.udid).await? {
        match Session::open_with(mux, dev, record).await {
            Ok(_) if !opts.force => {
                observe(&PairState::AlreadyPaired);
                return Ok(PairOutcome::AlreadyPaired);
            }
            Ok(_) => {}
            Err(Error::TrustRevoked) => {
                revoked = true;
                observe(&PairState::TrustRevoked);
            }
            Err(e) => return Err(e),
        }
    }

    observe(&PairState::Requesting);
    let buid = mux.buid().await?;
    let provider = mux.provider(dev);
    let mut ld = timed(
        mux.timeout,
        "connecting to the iPhone",
        LockdownClient::connect(&provider),
    )
    .await?;
    let host_name = Some(host.host_name.as_str());
    let first = tokio::time::timeout(
        mux.timeout,
        ld.pair_once(host.host_id.clone(), buid.clone(), host_name),
    )
    .await;
    let mut record = match first {
        Err(_) => {
            return Err(Error::Timeout {
                during: "asking the iPhone to trust this computer".into(),
                after: mux.timeout,
            })
        }
        Ok(Ok(r)) => r,
        Ok(Err(IdeviceError::PairingDialogResponsePending)) => {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            observe(&PairState::WaitingForTrust {
                remaining_secs: remaining.as_secs(),
            });
            tokio::select! {
                r = tokio::time::timeout_at(deadline, ld.pair(host.host_id.clone(), buid, host_name)) => match r {
                    Ok(Ok(r)) => r,
                    Ok(Err(e)) => return Err(Error::from_idevice(e, "waiting for Trust")),
                    Err(_) => return Err(Error::TrustTimeout { waited: opts.timeout }),
                },
                _ = opts.cancel.cancelled() => return Err(Error::PairCancelled),
            }
        }
        Ok(Err(e)) => {
            return Err(Error::from_idevice(
                e,
                "asking the iPhone to trust this computer",
            ))
        }
    };

    observe(&PairState::Saving);
    record.udid = Some(dev.udid.clone());
    let bytes = record
        .clone()
        .serialize()
        .map_err(|e: IdeviceError| Error::Internal {
            during: "saving the pair record".into(),
            detail: e.to_string(),
        })?;
    mux.save_pair_record(dev, bytes).await?;
    Session::open_with(mux, dev, record).await?;
    observe(&PairState::Paired);
    Ok(if revoked {
        PairOutcome::RePaired
    } else {
        PairOutcome::Paired
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_message_tells_what_to_do() {
        let m = PairState::WaitingForTrust { remaining_secs: 30 }.message();
        assert!(
            m.contains("Unlock") && m.contains("Trust") && m.contains("30s"),
            "{m}"
        );
    }
}
