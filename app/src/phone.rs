//! The phone part: waiting for a phone, usbmuxd missing, the device card and its trust state
//! with the exact instruction and a button to (re)try.

use iced::widget::{button, column, row, text};
use iced::Element;

use crate::work::{Failure, PhoneFacts};
use crate::Message;

/// Whether the phone trusts this computer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustState {
    /// Opening a session to find out.
    Checking,
    /// It does.
    Trusted,
    /// It does not (yet), with why and what to do.
    NotTrusted(Failure),
    /// Pairing in progress: the current instruction.
    Pairing(String),
}

/// The phone.
#[derive(Debug, Clone, PartialEq, Eq)]
// One value per app: the size difference between variants costs nothing.
#[allow(clippy::large_enum_variant)]
pub enum PhoneState {
    /// No phone connected.
    Waiting,
    /// usbmuxd cannot be reached.
    NoUsbmuxd(Failure),
    /// A phone is connected.
    Connected {
        /// usbmuxd's view of it.
        dev: ferry_device::UsbDevice,
        /// Name, model, iOS, … once read.
        facts: Option<PhoneFacts>,
        /// Trust.
        trust: TrustState,
    },
}

impl PhoneState {
    /// The connected phone.
    pub fn device(&self) -> Option<&ferry_device::UsbDevice> {
        match self {
            PhoneState::Connected { dev, .. } => Some(dev),
            _ => None,
        }
    }
}

/// What to tell the user for a trust failure.
pub fn trust_instruction(f: &Failure) -> String {
    match f.kind.as_str() {
        "NotPaired" => "This computer is not trusted yet. Unlock your iPhone, press Trust below \
                        and tap \"Trust\" on the phone."
            .into(),
        "TrustDenied" => {
            "Trust was denied — unplug the iPhone, plug it back in and tap Trust.".into()
        }
        "Locked" => {
            "The iPhone is locked with its passcode. Unlock it and keep it unlocked.".into()
        }
        "TrustRevoked" => "The iPhone no longer trusts this computer (its trust settings were \
                           reset). Press Trust and tap \"Trust\" on the phone."
            .into(),
        "TrustTimeout" => {
            "\"Trust\" was not tapped in time. Unlock the iPhone and try again.".into()
        }
        _ => format!("{} — {}", f.message, f.hint),
    }
}

fn bytes(n: u64) -> String {
    ferry_archive::human_bytes(n)
}

/// Draws the phone part.
pub fn view(state: &PhoneState) -> Element<'_, Message> {
    match state {
        PhoneState::Waiting => column![
            text("Connect your iPhone with a cable").size(20),
            text("Unlock it when it is connected. Ferry backs it up to a folder you choose."),
        ]
        .spacing(6)
        .into(),
        PhoneState::NoUsbmuxd(f) => column![
            text("Connect your iPhone with a cable").size(20),
            text(format!(
                "Ferry cannot talk to the iPhone service (usbmuxd): {}",
                f.message
            )),
            text(f.hint.clone()),
        ]
        .spacing(6)
        .into(),
        PhoneState::Connected { dev, facts, trust } => {
            let f = facts.clone().unwrap_or_default();
            // The phone names itself: shown through the CLI's helper (control characters escaped).
            let name = ferry_device::printable(f.name.as_deref().unwrap_or("iPhone")).into_owned();
            let mut details = vec![
                f.model.clone().unwrap_or_default(),
                f.ios
                    .as_ref()
                    .map(|v| format!("iOS {v}"))
                    .unwrap_or_default(),
            ];
            if let Some(free) = f.free_bytes {
                details.push(format!("{} free", bytes(free)));
            }
            if let Some(l) = &f.link {
                details.push(l.clone());
            }
            details.retain(|d| !d.is_empty());
            let mut col = column![
                text(name).size(20),
                text(details.join(" · ")),
                text(format!("UDID {}", dev.udid)).size(12),
            ]
            .spacing(4);
            if f.usb2 {
                col = col.push(text(
                    "Connected at USB 2 speed: large libraries take hours. A USB 3 cable (iPhone 15 \
                     Pro and later) is up to 10× faster.",
                ));
            }
            let trust_row: Element<'_, Message> = match trust {
                TrustState::Checking => text("Checking whether this computer is trusted…").into(),
                TrustState::Trusted => text("Trusted ✓").into(),
                TrustState::Pairing(s) => {
                    row![text(s.clone()), button("Cancel").on_press(Message::Cancel)]
                        .spacing(12)
                        .into()
                }
                TrustState::NotTrusted(f) => column![
                    text(trust_instruction(f)),
                    button(if f.kind == "NotPaired" || f.kind == "TrustRevoked" {
                        "Trust"
                    } else {
                        "Try again"
                    })
                    .on_press(Message::Pair),
                ]
                .spacing(6)
                .into(),
            };
            col.push(trust_row).into()
        }
    }
}
