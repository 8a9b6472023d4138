//! Text from the phone, made safe to print on a terminal.
//!
//! A phone's name, and the names and paths in its library, are whatever the phone says. Printed
//! raw, `ESC` sequences could retitle the terminal, clear it or move the cursor, `BEL` rings,
//! and Unicode direction overrides make text read differently from what it is. Every place that
//! prints phone-supplied text for people goes through [`printable`]; stored data (the catalog,
//! reports, `--json`) keep the text exactly as the phone sent it.

use std::borrow::Cow;

/// `s` with every control character (C0, DEL, C1) and every Unicode direction override or
/// isolate shown as a visible escape (`\u{1b}`), so that it prints as the plain text it is.
/// Borrowed when nothing needed escaping.
pub fn printable(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_sent() {
        assert!(matches!(
            printable("Ada’s iPhone"),
            Cow::Borrowed("Ada’s iPhone")
        ));
        assert_eq!(
            printable("Evil\u{1b}]0;x\u{7}\u{1b}[2J"),
            "Evil\\u{1b}]0;x\\u{7}\\u{1b}[2J"
        );
        assert_eq!(printable("a\u{9b}b\u{7f}"), "a\\u{9b}b\\u{7f}");
        assert_eq!(printable("x\u{202e}gpj.exe"), "x\\u{202e}gpj.exe");
        assert_eq!(printable("tab\tnew\nline"), "tab\\u{9}new\\u{a}line");
    }
}
