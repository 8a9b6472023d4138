//! launchd agents for the nightly mirror on macOS: `org.ferry.nightly.plist` (a calendar
//! interval) and `org.ferry.watch.plist` (`ferry watch`, kept alive). Pure XML text
//! generation; the tests parse it back with the `plist` crate.

use std::path::Path;

use super::marker;
use crate::TimeOfDay;

/// The nightly agent's label (also its file name without `.plist`).
pub const NIGHTLY_LABEL: &str = "org.ferry.nightly";
/// The on-plug agent's label.
pub const WATCH_LABEL: &str = "org.ferry.watch";

/// A string cannot go into a plist: XML 1.0 has no way to write most control characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} contains a control character, which a launchd plist (XML) cannot hold")]
pub struct NotXmlText(pub String);

/// Escapes `&`, `<`, `>` for XML text; refuses control characters other than tab/newline/CR.
pub fn xml_escape(s: &str) -> Result<String, NotXmlText> {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c as u32 == 0x7f || c == '\u{fffe}' || c == '\u{ffff}' => {
                return Err(NotXmlText(s.to_string()))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn string(s: &str) -> Result<String, NotXmlText> {
    Ok(format!("<string>{}</string>", xml_escape(s)?))
}

fn document(label: &str, args: &[String], log: &Path, extra: &str) -> Result<String, NotXmlText> {
    let log = log.to_string_lossy();
    let mut program = String::new();
    for a in args {
        program.push_str(&format!("\t\t{}\n", string(a)?));
    }
    let text = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         {}\n\
         <plist version=\"1.0\">\n\
         <dict>\n\
         \t<key>Label</key>\n\
         \t{}\n\
         \t<key>ProgramArguments</key>\n\
         \t<array>\n\
         {program}\
         \t</array>\n\
         {extra}\
         \t<key>StandardOutPath</key>\n\
         \t{log}\n\
         \t<key>StandardErrorPath</key>\n\
         \t{log}\n\
         \t<key>ProcessType</key>\n\
         \t<string>Background</string>\n\
         </dict>\n\
         </plist>\n",
        marker::marker_line("<!-- ", " -->"),
        string(label)?,
        log = string(&log)?,
    );
    Ok(marker::seal(&text))
}

/// `org.ferry.nightly.plist`: runs `args` every day at `at`, logging to `log`.
pub fn nightly_plist(args: &[String], at: TimeOfDay, log: &Path) -> Result<String, NotXmlText> {
    let extra = format!(
        "\t<key>StartCalendarInterval</key>\n\
         \t<dict>\n\
         \t\t<key>Hour</key>\n\
         \t\t<integer>{}</integer>\n\
         \t\t<key>Minute</key>\n\
         \t\t<integer>{}</integer>\n\
         \t</dict>\n",
        at.hour(),
        at.minute()
    );
    document(NIGHTLY_LABEL, args, log, &extra)
}

/// `org.ferry.watch.plist`: starts `args` at login and restarts it when it fails.
pub fn watch_plist(args: &[String], log: &Path) -> Result<String, NotXmlText> {
    let extra = "\t<key>RunAtLoad</key>\n\
                 \t<true/>\n\
                 \t<key>KeepAlive</key>\n\
                 \t<dict>\n\
                 \t\t<key>SuccessfulExit</key>\n\
                 \t\t<false/>\n\
                 \t</dict>\n\
                 \t<key>ThrottleInterval</key>\n\
                 \t<integer>30</integer>\n";
    document(WATCH_LABEL, args, log, extra)
}

/// What a parsed agent says: its program arguments and calendar time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentInfo {
    /// `ProgramArguments`.
    pub args: Vec<String>,
    /// `StartCalendarInterval` Hour/Minute, if present.
    pub at: Option<TimeOfDay>,
}

/// Parses a plist's `ProgramArguments` and `StartCalendarInterval`.
pub fn parse_agent(text: &str) -> Option<AgentInfo> {
    let v = plist::Value::from_reader_xml(text.as_bytes()).ok()?;
    let d = v.as_dictionary()?;
    let args = d
        .get("ProgramArguments")?
        .as_array()?
        .iter()
        .map(|a| a.as_string().map(str::to_string))
        .collect::<Option<Vec<_>>>()?;
    let at = d
        .get("StartCalendarInterval")
        .and_then(|c| c.as_dictionary())
        .and_then(|c| {
            let h = c.get("Hour")?.as_unsigned_integer()?;
            let m = c.get("Minute")?.as_unsigned_integer()?;
            TimeOfDay::new(u8::try_from(h).ok()?, u8::try_from(m).ok()?)
        });
    Some(AgentInfo { args, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nightly_plist_parses_back() {
        let args: Vec<String> = [
            "/Applications/Ferry.app/Contents/MacOS/ferry",
            "sync",
            "--unattended",
            "--dest",
            "/Volumes/My <Photos> & \"Videos\" ü",
            "--wait",
            "30m",
        ]
        .map(String::from)
        .to_vec();
        let log = Path::new("/Users/a b/Library/Logs/ferry/nightly.log");
        let text = nightly_plist(&args, TimeOfDay::new(3, 7).unwrap(), log).unwrap();
        assert!(text.contains("&lt;Photos&gt; &amp; \"Videos\""), "{text}");
        assert_eq!(marker::classify(&text), marker::FileState::Ferry);
        let v = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(d["Label"].as_string(), Some(NIGHTLY_LABEL));
        let pa: Vec<&str> = d["ProgramArguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_string().unwrap())
            .collect();
        assert_eq!(pa, args.iter().map(String::as_str).collect::<Vec<_>>());
        let cal = d["StartCalendarInterval"].as_dictionary().unwrap();
        assert_eq!(cal["Hour"].as_unsigned_integer(), Some(3));
        assert_eq!(cal["Minute"].as_unsigned_integer(), Some(7));
        assert_eq!(
            d["StandardOutPath"].as_string(),
            Some("/Users/a b/Library/Logs/ferry/nightly.log")
        );
        assert_eq!(
            d["StandardErrorPath"].as_string(),
            d["StandardOutPath"].as_string()
        );
        assert_eq!(
            parse_agent(&text),
            Some(AgentInfo {
                args,
                at: TimeOfDay::new(3, 7)
            })
        );
    }

    #[test]
    fn watch_plist_keeps_alive() {
        let args: Vec<String> = ["/usr/local/bin/ferry", "watch", "--dest", "/Volumes/P"]
            .map(String::from)
            .to_vec();
        let text = watch_plist(&args, Path::new("/l/watch.log")).unwrap();
        let v = plist::Value::from_reader_xml(text.as_bytes()).unwrap();
        let d = v.as_dictionary().unwrap();
        assert_eq!(d["Label"].as_string(), Some(WATCH_LABEL));
        assert_eq!(d["RunAtLoad"].as_boolean(), Some(true));
        assert_eq!(
            d["KeepAlive"].as_dictionary().unwrap()["SuccessfulExit"].as_boolean(),
            Some(false)
        );
        assert!(d.get("StartCalendarInterval").is_none());
        assert_eq!(parse_agent(&text).unwrap().args, args);
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(xml_escape("/a\u{1}b").is_err());
        assert_eq!(xml_escape("a&<>b").unwrap(), "a&amp;&lt;&gt;b");
    }
}
