//! Settings: the nightly mirror (on/off and time, through `ferry-config`'s schedule: a systemd
//! user timer or a launchd agent), back up on plug-in (a `ferry watch` service), hidden photos
//! for this phone, and the appearance (follow the system's light/dark, or choose). Applying runs as a Task in the root.

use ferry_config::Appearance;
use iced::widget::{button, checkbox, column, row, text, text_input};
use iced::Element;

/// Messages of the settings part.
#[derive(Debug, Clone)]
pub enum Message {
    /// Nightly mirror on/off.
    Nightly(bool),
    /// The time field.
    At(String),
    /// Back up on plug-in.
    OnPlug(bool),
    /// Include hidden photos.
    Hidden(bool),
    /// Light, dark or the system's.
    Appearance(Appearance),
    /// "Apply".
    Apply,
}

/// What the settings ask for when applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Nightly mirror on.
    pub nightly: bool,
    /// "HH:MM".
    pub at: String,
    /// Also on plug-in.
    pub on_plug: bool,
    /// Include hidden photos (for the connected phone).
    pub include_hidden: bool,
}

/// The root's follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing.
    None,
    /// Apply these settings.
    Apply(Request),
    /// Switch the colours (and remember the choice).
    Appearance(Appearance),
}

/// The settings' state.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Nightly mirror on.
    pub nightly: bool,
    /// Time, "HH:MM".
    pub at: String,
    /// On plug-in.
    pub on_plug: bool,
    /// Hidden photos included.
    pub include_hidden: bool,
    /// Light, dark or the system's (applies at once; kept in the config's `[app]`).
    pub appearance: Appearance,
    /// Applying.
    pub applying: bool,
    /// The last apply's outcome, for people.
    pub status: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nightly: false,
            at: "02:30".into(),
            on_plug: false,
            include_hidden: true,
            appearance: Appearance::System,
            applying: false,
            status: None,
        }
    }
}

impl Settings {
    /// Handles a message.
    pub fn update(&mut self, m: Message) -> Action {
        match m {
            Message::Nightly(b) => self.nightly = b,
            Message::At(s) => self.at = s,
            Message::OnPlug(b) => self.on_plug = b,
            Message::Hidden(b) => self.include_hidden = b,
            Message::Appearance(a) => {
                self.appearance = a;
                return Action::Appearance(a);
            }
            Message::Apply => {
                if self.nightly && self.at.parse::<ferry_config::TimeOfDay>().is_err() {
                    self.status = Some(format!(
                        "{:?} is not a time: write it as HH:MM, e.g. 02:30",
                        self.at
                    ));
                    return Action::None;
                }
                self.applying = true;
                self.status = None;
                return Action::Apply(Request {
                    nightly: self.nightly,
                    at: self.at.clone(),
                    on_plug: self.on_plug,
                    include_hidden: self.include_hidden,
                });
            }
        }
        Action::None
    }

    /// One choice of the colours (the chosen one highlighted). Buttons rather than radios:
    /// iced 0.14's radio does not expose its label to widget operations, so neither
    /// `iced_test` nor assistive tooling can find it.
    fn appearance_button(&self, label: &'static str, a: Appearance) -> Element<'_, Message> {
        let style = if self.appearance == a {
            button::primary
        } else {
            button::secondary
        };
        button(label)
            .style(style)
            .on_press(Message::Appearance(a))
            .into()
    }

    /// Draws the settings.
    pub fn view(&self) -> Element<'_, Message> {
        let mut col = column![
            text("Settings").size(20),
            row![
                checkbox(self.nightly)
                    .label("Back up every night at")
                    .on_toggle(Message::Nightly),
                text_input("02:30", &self.at)
                    .on_input(Message::At)
                    .width(80),
            ]
            .spacing(8),
            checkbox(self.on_plug)
                .label("Also back up whenever the iPhone is plugged in")
                .on_toggle(Message::OnPlug),
            checkbox(self.include_hidden)
                .label("Include hidden photos")
                .on_toggle(Message::Hidden),
            row![
                text("Colours:"),
                self.appearance_button("Like the system", Appearance::System),
                self.appearance_button("Light", Appearance::Light),
                self.appearance_button("Dark", Appearance::Dark),
            ]
            .spacing(8),
            button(if self.applying {
                "Applying…"
            } else {
                "Apply"
            })
            .on_press_maybe((!self.applying).then_some(Message::Apply)),
        ]
        .spacing(8);
        if let Some(s) = &self.status {
            col = col.push(text(s.clone()));
        }
        col.into()
    }
}
