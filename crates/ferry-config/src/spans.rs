//! Best-effort source lines of the keys in a TOML document, so warnings and errors can name a
//! line and a key. A small line scanner (table headers, `key = value` lines, multi-line strings
//! skipped); it only has to be right for files the real parser already accepted or located.

/// One key as written: its full dotted path (segments unquoted) and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLine {
    pub path: Vec<String>,
    pub line: usize,
}

/// Every table header and assigned key of `text`, in order.
pub(crate) fn scan(text: &str) -> Vec<KeyLine> {
    let mut out = Vec::new();
    let mut table: Vec<String> = Vec::new();
    let mut in_multiline: Option<&str> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if let Some(delim) = in_multiline {
            if raw.matches(delim).count() % 2 == 1 {
                in_multiline = None;
            }
            continue;
        }
        let s = raw.trim_start();
        if let Some(rest) = s.strip_prefix("[[") {
            if let Some((segs, _)) = parse_key(rest, ']') {
                table = segs;
                out.push(KeyLine {
                    path: table.clone(),
                    line,
                });
            }
        } else if let Some(rest) = s.strip_prefix('[') {
            if let Some((segs, _)) = parse_key(rest, ']') {
                table = segs;
                out.push(KeyLine {
                    path: table.clone(),
                    line,
                });
            }
        } else if let Some((segs, value)) = parse_key(s, '=') {
            let mut path = table.clone();
            path.extend(segs);
            out.push(KeyLine { path, line });
            for delim in ["\"\"\"", "'''"] {
                if value.matches(delim).count() % 2 == 1 {
                    in_multiline = Some(delim);
                }
            }
        }
    }
    out
}

/// Parses `a."b c".d` up to `end` (`=` or `]`); returns the segments and the text after `end`.
fn parse_key(s: &str, end: char) -> Option<(Vec<String>, &str)> {
    let mut segs = Vec::new();
    let mut rest = s.trim_start();
    loop {
        let (seg, after) = if let Some(r) = rest.strip_prefix('"') {
            let mut seg = String::new();
            let mut chars = r.char_indices();
            let mut close = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, 'n')) => seg.push('\n'),
                        Some((_, 't')) => seg.push('\t'),
                        Some((_, c)) => seg.push(c),
                        None => return None,
                    },
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    c => seg.push(c),
                }
            }
            (seg, &r[close? + 1..])
        } else if let Some(r) = rest.strip_prefix('\'') {
            let close = r.find('\'')?;
            (r[..close].to_string(), &r[close + 1..])
        } else {
            let n = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
                .unwrap_or(rest.len());
            if n == 0 {
                return None;
            }
            (rest[..n].to_string(), &rest[n..])
        };
        segs.push(seg);
        let after = after.trim_start();
        if let Some(r) = after.strip_prefix('.') {
            rest = r.trim_start();
        } else if let Some(r) = after.strip_prefix(end) {
            return Some((segs, r));
        } else {
            return None;
        }
    }
}

/// 1-based line of byte offset `at` in `text`.
pub(crate) fn line_of(text: &str, at: usize) -> usize {
    text.as_bytes()[..at.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The text of 1-based `line`.
pub(crate) fn line_text(text: &str, line: usize) -> Option<&str> {
    text.lines().nth(line.checked_sub(1)?)
}

/// A dotted key path, quoting segments that are not bare keys.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let seg = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        seg
    } else {
        format!("{prefix}.{seg}")
    }
}

/// Dotted display form of a path.
pub(crate) fn dotted(path: &[String]) -> String {
    path.iter().fold(String::new(), |acc, s| join_key(&acc, s))
}

/// The line where `path` is first written.
pub(crate) fn key_line(keys: &[KeyLine], path: &[&str]) -> Option<usize> {
    keys.iter()
        .find(|k| k.path.iter().map(String::as_str).eq(path.iter().copied()))
        .map(|k| k.line)
}

/// The key written on `line`, or the last one before it (a value spanning lines).
pub(crate) fn key_for_line(keys: &[KeyLine], line: usize) -> Option<&KeyLine> {
    keys.iter().rev().find(|k| k.line <= line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys() {
        let text = "a = 1\n\n[phones.\"X Y\"]\nname = \"n=1\"\nb.c = '''\nx = 1\n'''\n[ watch ]\ninterval_seconds = [\n  \"=\",\n]\n";
        let k = scan(text);
        assert_eq!(key_line(&k, &["a"]), Some(1));
        assert_eq!(key_line(&k, &["phones", "X Y"]), Some(3));
        assert_eq!(key_line(&k, &["phones", "X Y", "name"]), Some(4));
        assert_eq!(key_line(&k, &["phones", "X Y", "b", "c"]), Some(5));
        assert_eq!(
            key_line(&k, &["phones", "X Y", "x"]),
            None,
            "inside a string"
        );
        assert_eq!(key_line(&k, &["watch", "interval_seconds"]), Some(9));
        assert_eq!(
            dotted(&key_for_line(&k, 10).unwrap().path),
            "watch.interval_seconds"
        );
        assert_eq!(join_key("phones", "X Y"), "phones.\"X Y\"");
    }
}
