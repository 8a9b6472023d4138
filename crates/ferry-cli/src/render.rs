//! Terminal output: short tables for people, JSON for scripts, and errors with a hint.

use ferry_device::scan::ScanReport;
use ferry_device::{printable, Error};
use serde::Serialize;

use crate::DeviceRow;

/// Prints `v` as pretty JSON on stdout.
pub fn json(v: &impl Serialize) {
    match serde_json::to_string_pretty(v) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot write JSON: {e}"),
    }
}

/// Prints an error and what to do, on stderr; with `json`, also a JSON object on stdout.
pub fn error(e: &Error, json_too: bool) {
    eprintln!("error: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
    eprintln!("hint: {}", e.hint());
    if json_too {
        json(&serde_json::json!({
            "format": 1,
            "error": {
                "kind": e.kind(),
                "exit_code": crate::exit::code(e),
                "message": e.to_string(),
                "hint": e.hint(),
            }
        }));
    }
}

/// Human-readable byte counts (decimal units, as phones and disks are sold).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            line.push_str(cell);
            if c + 1 < r.len() {
                let pad = widths[c].saturating_sub(cell.chars().count()) + 2;
                line.push_str(&" ".repeat(pad));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// `ferry devices`.
pub fn devices(rows: &[DeviceRow]) {
    if rows.is_empty() {
        println!("No iPhone connected.");
        eprintln!("hint: connect the iPhone with a USB cable and unlock it");
        return;
    }
    let dash = || "-".to_string();
    let mut t = vec![vec![
        "NAME".to_string(),
        "MODEL".into(),
        "IOS".into(),
        "UDID".into(),
        "PAIRED".into(),
        "LINK".into(),
        "FREE".into(),
    ]];
    for r in rows {
        let f = &r.facts;
        t.push(vec![
            f.name
                .as_deref()
                .map(|n| printable(n).into_owned())
                .unwrap_or_else(dash),
            f.model.clone().unwrap_or_else(dash),
            f.ios_version.clone().unwrap_or_else(dash),
            f.udid.clone(),
            if f.paired { "yes".into() } else { "no".into() },
            f.link_speed.clone().unwrap_or_else(dash),
            r.disk
                .and_then(|d| d.free_bytes)
                .map(bytes)
                .unwrap_or_else(dash),
        ]);
    }
    table(&t);
    for r in rows {
        if let Some(e) = &r.error {
            eprintln!("warning: {}: {e}", r.facts.udid);
        }
    }
    if rows.iter().any(|r| !r.facts.paired) {
        eprintln!("hint: run `ferry pair` to pair with an unpaired iPhone");
    }
}

/// `ferry scan`.
pub fn scan(r: &ScanReport) {
    let name = printable(r.name.as_deref().unwrap_or("iPhone"));
    let ios = r.ios_version.as_deref().unwrap_or("?");
    println!(
        "{name} ({}), iOS {ios}: {} assets in the library",
        r.udid, r.assets
    );
    if r.snapshot.reused {
        println!("Library database unchanged since the last scan (cached copy used).");
    } else {
        println!(
            "Library database copied: {} in {} attempt(s).",
            bytes(r.snapshot.copied_bytes),
            r.snapshot.attempts
        );
    }
    println!();
    let l = &r.local_originals;
    let i = &r.icloud_only;
    let mut t = vec![vec![
        String::new(),
        "ASSETS".into(),
        "FILES".into(),
        "SIZE".into(),
    ]];
    t.push(vec![
        "On this iPhone (will be backed up)".into(),
        l.assets.to_string(),
        l.files.to_string(),
        bytes(l.bytes),
    ]);
    t.push(vec![
        "  of which only on this iPhone (not in iCloud yet)".into(),
        String::new(),
        l.only_on_this_phone.files.to_string(),
        bytes(l.only_on_this_phone.bytes),
    ]);
    t.push(vec![
        "Only in iCloud (download on the iPhone first)".into(),
        i.assets.to_string(),
        i.files.to_string(),
        bytes(i.bytes),
    ]);
    let class = |k: &str| r.classifications.get(k).copied().unwrap_or(0);
    t.push(vec![
        "Unavailable (neither here nor in iCloud)".into(),
        class("unavailable").to_string(),
        r.unavailable.files.to_string(),
        bytes(r.unavailable.bytes),
    ]);
    if r.retry_later.files > 0 {
        t.push(vec![
            "Downloading from iCloud (retry later)".into(),
            class("retry_later").to_string(),
            r.retry_later.files.to_string(),
            bytes(r.retry_later.bytes),
        ]);
    }
    t.push(vec![
        "Excluded".into(),
        class("excluded").to_string(),
        String::new(),
        String::new(),
    ]);
    for (reason, n) in &r.excluded {
        t.push(vec![
            format!("  {}", reason.replace('_', " ")),
            n.to_string(),
            String::new(),
            String::new(),
        ]);
    }
    table(&t);
    println!();
    let d = &r.disagreements;
    if d.total > 0 {
        println!(
            "Database and files disagree for {} file(s) (the files were trusted): {} missing although \
             listed as on the iPhone, {} present although listed as in iCloud, {} with another size.",
            d.total, d.db_local_file_missing, d.db_remote_file_present, d.size_mismatch
        );
    }
    if let (Some(a), Some(b)) = (&i.oldest, &i.newest) {
        println!(
            "iCloud-only items were taken between {} and {}.",
            day(a),
            day(b)
        );
        println!(
            "To back them up, download them on the iPhone first (Settings > Photos > Download and Keep Originals)."
        );
    }
    if let Some(items) = &r.items {
        println!();
        let mut t = vec![vec![
            "ACTION".to_string(),
            "ROLE".into(),
            "PATH".into(),
            "SIZE".into(),
            "TAKEN".into(),
            "NOTE".into(),
        ]];
        for it in items {
            let note = match (it.exclusion, it.disagreement, it.only_on_this_phone) {
                (Some(e), _, _) => e.to_string(),
                (_, Some(d), _) => d.to_string(),
                (_, _, true) => "only on this iPhone".into(),
                _ => String::new(),
            };
            t.push(vec![
                it.action.unwrap_or("-").to_string(),
                it.role.unwrap_or("-").to_string(),
                it.path.clone().unwrap_or_else(|| "-".into()),
                it.size
                    .or(it.db_size)
                    .map(bytes)
                    .unwrap_or_else(|| "-".into()),
                it.created_utc
                    .as_deref()
                    .map(day)
                    .unwrap_or_else(|| "-".into()),
                note,
            ]);
        }
        table(&t);
    }
}

/// The date part of an RFC 3339 time.
fn day(s: &str) -> String {
    s.chars().take(10).collect()
}
