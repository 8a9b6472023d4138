//! systemd user units for the nightly mirror: `ferry-nightly.service` + `ferry-nightly.timer`,
//! and `ferry-watch.service` for on-plug backups. Pure text generation, plus the command-line
//! quoting of systemd.syntax(7) / systemd.service(5) "Command lines".

use super::marker;
use crate::TimeOfDay;

/// The oneshot service the timer starts.
pub const NIGHTLY_SERVICE: &str = "ferry-nightly.service";
/// The timer.
pub const NIGHTLY_TIMER: &str = "ferry-nightly.timer";
/// The long-running `ferry watch` service (on-plug).
pub const WATCH_SERVICE: &str = "ferry-watch.service";

fn is_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || "/._-+,:=@".contains(c)
}

/// Quotes one argument for an `ExecStart=` line so systemd passes it to the program byte for
/// byte: specifiers (`%` → `%%`), environment expansion (`$` → `$$`), and the C-style escapes
/// of a double-quoted word (`\\`, `\"`, control characters as `\n`, `\t`, `\r`, `\xNN`).
/// Non-ASCII text passes through as UTF-8. Arguments made only of `[A-Za-z0-9/._+,:=@-]` are
/// left bare.
pub fn quote_arg(arg: &str) -> String {
    quote(arg, true)
}

/// Quotes the executable (the first word of `ExecStart=`). Like [`quote_arg`] except `$`:
/// systemd expands `$` only in arguments, never in the executable path, so `$` stays single
/// (verified with `systemd-analyze verify` on systemd 252). systemd also refuses executable
/// paths containing `"`, `'`, `\` or control characters however they are quoted
/// ("Executable name contains special characters"); `install` rejects those up front.
pub fn quote_exec_path(path: &str) -> String {
    quote(path, false)
}

fn quote(arg: &str, dollar: bool) -> String {
    if !arg.is_empty() && arg.chars().all(is_safe) {
        return arg.to_string();
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('"');
    for c in arg.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '%' => s.push_str("%%"),
            '$' if dollar => s.push_str("$$"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                s.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// An `ExecStart=` value: the executable quoted with [`quote_exec_path`], every argument
/// with [`quote_arg`], joined by spaces.
pub fn exec_line<S: AsRef<str>>(args: &[S]) -> String {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                quote_exec_path(a.as_ref())
            } else {
                quote_arg(a.as_ref())
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Splits an `ExecStart=` value back into arguments the way systemd does (specifiers `%%`,
/// quotes, C escapes, `$$`). Used by `status` to show what runs, and by the tests as the
/// inverse of [`exec_line`]. `None` for text this crate would never write (other
/// specifiers, unbalanced quotes, bad escapes).
pub fn split_exec_line(line: &str) -> Option<Vec<String>> {
    // 1. specifiers are expanded on the whole line first
    let mut spec = String::with_capacity(line.len());
    let mut it = line.chars();
    while let Some(c) = it.next() {
        if c == '%' && it.next()? != '%' {
            return None;
        }
        spec.push(c);
    }
    // 2. words, quotes and escapes
    let mut words = Vec::new();
    let mut chars = spec.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut w = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_ascii_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => w.push(unescape_one(&mut chars)?),
                (_, c) => w.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        // 3. `$$` → `$` in arguments (other `$` would be environment expansion at run time:
        //    kept as is); the executable path is never expanded
        if words.is_empty() {
            words.push(w);
        } else {
            words.push(w.replace("$$", "$"));
        }
    }
    Some(words)
}

fn unescape_one(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<char> {
    let hex = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, n: usize| {
        let s: String = (0..n).filter_map(|_| chars.next()).collect();
        if s.len() != n {
            return None;
        }
        u32::from_str_radix(&s, 16).ok().and_then(char::from_u32)
    };
    Some(match chars.next()? {
        'a' => '\u{7}',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'v' => '\u{b}',
        's' => ' ',
        '\\' => '\\',
        '"' => '"',
        '\'' => '\'',
        'x' => hex(chars, 2)?,
        'u' => hex(chars, 4)?,
        'U' => hex(chars, 8)?,
        _ => return None,
    })
}

fn unit(sections: &str) -> String {
    marker::seal(&format!("{}\n{sections}", marker::marker_line("# ", "")))
}

/// `ferry-nightly.service`: a oneshot running `args` (binary first), niced, idle I/O.
pub fn nightly_service(args: &[String]) -> String {
    unit(&format!(
        "[Unit]\n\
         Description=Ferry: nightly iPhone photo backup\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n",
        exec_line(args)
    ))
}

/// `ferry-nightly.timer`: every day at `at` (local time); `Persistent=true` runs a missed
/// night at the next boot or login.
pub fn nightly_timer(at: TimeOfDay) -> String {
    unit(&format!(
        "[Unit]\n\
         Description=Ferry: nightly iPhone photo backup at {at}\n\
         \n\
         [Timer]\n\
         OnCalendar=*-*-* {at}:00\n\
         Persistent=true\n\
         Unit={NIGHTLY_SERVICE}\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    ))
}

/// `ferry-watch.service`: `ferry watch` kept running, restarted when it fails.
pub fn watch_service(args: &[String]) -> String {
    unit(&format!(
        "[Unit]\n\
         Description=Ferry: back up the iPhone when it is plugged in\n\
         \n\
         [Service]\n\
         Type=simple\n\
         ExecStart={}\n\
         Restart=on-failure\n\
         RestartSec=30\n\
         Nice=10\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        exec_line(args)
    ))
}

/// The time of day of a Ferry timer's `OnCalendar=*-*-* HH:MM:00` line.
pub fn timer_time(text: &str) -> Option<TimeOfDay> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("OnCalendar="))?;
    let hm = v.trim().strip_prefix("*-*-* ")?.strip_suffix(":00")?;
    hm.parse().ok()
}

/// The arguments of a unit's `ExecStart=` line.
pub fn exec_args(text: &str) -> Option<Vec<String>> {
    let v = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("ExecStart="))?;
    split_exec_line(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const NASTY: &[&str] = &[
        "/media/My Photos",
        "/a/\"quoted\" name",
        "/a/it's",
        "/100% done",
        "/$HOME/${USER}/$$",
        "/back\\slash\\",
        "/ünïcödé/日本語/📷",
        "/tab\there",
        "/new\nline",
        "/semi;colon ;",
        ";",
        "/%h%%",
        "",
        "-",
        "/\x01ctl\x7f",
    ];

    #[test]
    fn quoting_examples() {
        assert_eq!(quote_arg("/usr/bin/ferry"), "/usr/bin/ferry");
        assert_eq!(quote_arg("--dest"), "--dest");
        assert_eq!(quote_arg("30m"), "30m");
        assert_eq!(quote_arg("/media/My Photos"), "\"/media/My Photos\"");
        assert_eq!(quote_arg("/a/\"q\""), "\"/a/\\\"q\\\"\"");
        assert_eq!(quote_arg("/100%"), "\"/100%%\"");
        assert_eq!(quote_arg("/$HOME"), "\"/$$HOME\"");
        assert_eq!(quote_arg("/b\\s"), "\"/b\\\\s\"");
        assert_eq!(quote_arg("/ü 日"), "\"/ü 日\"");
        assert_eq!(quote_arg("/t\tn\n"), "\"/t\\tn\\n\"");
        assert_eq!(quote_arg("/x\x01"), "\"/x\\x01\"");
        assert_eq!(quote_arg(""), "\"\"");
        assert_eq!(quote_arg("it's"), "\"it's\"");
        assert_eq!(quote_exec_path("/a$b/%c d"), "\"/a$b/%%c d\"");
    }

    #[test]
    fn quoting_round_trips_through_systemds_rules() {
        let mut args = vec!["/opt/$x/100% \"q\"/ferry".to_string()];
        args.extend(NASTY.iter().map(|s| s.to_string()));
        let line = exec_line(&args);
        assert_eq!(split_exec_line(&line), Some(args), "{line}");
    }

    #[test]
    fn splitter_follows_systemd() {
        assert_eq!(
            split_exec_line(r#"/bin/a 'x y' "p\"q" \x41 %% $$ a\sb"#),
            Some(
                ["/bin/a", "x y", "p\"q", "A", "%", "$", "a b"]
                    .map(String::from)
                    .to_vec()
            )
        );
        assert_eq!(split_exec_line("/bin/a %h"), None);
        assert_eq!(split_exec_line("/bin/a \"open"), None);
    }

    #[test]
    fn units_have_the_expected_lines() {
        let args: Vec<String> = [
            "/opt/fer ry/ferry",
            "sync",
            "--unattended",
            "--dest",
            "/m/P 1",
            "--wait",
            "30m",
        ]
        .map(String::from)
        .to_vec();
        let s = nightly_service(&args);
        assert!(s.starts_with("# Generated by Ferry"), "{s}");
        assert!(s.contains("\nType=oneshot\n"));
        assert!(s.contains(
            "\nExecStart=\"/opt/fer ry/ferry\" sync --unattended --dest \"/m/P 1\" --wait 30m\n"
        ), "{s}");
        assert_eq!(exec_args(&s), Some(args.clone()));
        assert_eq!(marker::classify(&s), marker::FileState::Ferry);

        let t = nightly_timer(TimeOfDay::new(2, 5).unwrap());
        assert!(
            t.contains("\nOnCalendar=*-*-* 02:05:00\nPersistent=true\n"),
            "{t}"
        );
        assert!(t.contains("\n[Install]\nWantedBy=timers.target\n"), "{t}");
        assert_eq!(timer_time(&t), TimeOfDay::new(2, 5));

        let w = watch_service(
            &args[..1]
                .iter()
                .cloned()
                .chain(["watch".into(), "--dest".into(), "/d".into()])
                .collect::<Vec<_>>(),
        );
        assert!(
            w.contains("\nExecStart=\"/opt/fer ry/ferry\" watch --dest /d\nRestart=on-failure\n"),
            "{w}"
        );
        assert!(w.contains("\nWantedBy=default.target\n"), "{w}");
    }
}
