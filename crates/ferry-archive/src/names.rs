//! File and folder names that are safe on every file system a backup drive may carry:
//! exFAT, FAT32, NTFS, APFS/HFS+ and ext4.
//!
//! All functions here are pure and unit/property-tested. The rules (see `docs/archive.md`):
//!
//! * Unicode NFC (macOS hands out NFD; APFS and exFAT would see two spellings as one name).
//! * Characters illegal on exFAT/FAT/NTFS (`/ \ : * ? " < > |`, U+0000–U+001F, U+007F) and
//!   bidirectional-override characters (which disguise extensions) become `_`.
//! * No trailing dots or spaces (Windows drops them), no leading spaces, no leading dot
//!   (hidden on Unix, and Ferry's own temp files start with one).
//! * Windows device names (`CON`, `NUL`, `COM1`, `LPT¹`, … with any extension) get a `_` prefix.
//! * At most [`MAX_NAME_BYTES`] bytes of UTF-8 — which also bounds the UTF-16 length, since a
//!   character never takes more UTF-16 units than UTF-8 bytes — cut on a character boundary.
//! * Clashes are judged on [`fold_key`] (NFC + lower case), because exFAT, FAT, NTFS and
//!   APFS (by default) are case-insensitive.

use unicode_normalization::UnicodeNormalization;

/// The longest name (in UTF-8 bytes) Ferry ever creates: ext4's and APFS's limit; exFAT,
/// FAT32 (long names) and NTFS allow 255 UTF-16 units, which is never less.
pub const MAX_NAME_BYTES: usize = 255;

/// The longest stem of a file's base name; leaves room for a clash suffix (` (123456)`),
/// a role suffix (`_edited`) and an extension.
pub const MAX_BASE_BYTES: usize = 180;

/// The longest extension kept (without the dot); longer "extensions" are part of the stem.
pub const MAX_EXT_BYTES: usize = 16;

/// The prefix of every temporary file Ferry creates. Nothing else ever gets a name starting
/// with a dot (see [`sanitize_component`]), so the prefix is unambiguous.
pub const TEMP_PREFIX: &str = ".ferry-tmp-";

/// Number of hex digits after [`TEMP_PREFIX`].
pub const TEMP_RANDOM_LEN: usize = 16;

/// Name used when nothing usable is left of an input.
pub const FALLBACK_NAME: &str = "unnamed";

/// The folder for assets whose capture date is unknown.
pub const UNKNOWN_DATE_FOLDER: &str = "unknown-date";

const RESERVED: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];

fn is_forbidden(c: char) -> bool {
    matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        || (c as u32) < 0x20
        || c == '\u{7f}'
        // Bidirectional overrides and isolates: "IMG_\u{202E}CIEH.exe" would display as a photo.
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// True if `stem` (the part before the first dot, trailing spaces ignored) is a Windows
/// device name: `CON`, `PRN`, `AUX`, `NUL`, `COM0-9`, `LPT0-9` (also with superscript digits),
/// `CONIN$`, `CONOUT$`. Windows refuses these with any extension.
pub fn is_reserved_device_name(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if RESERVED.contains(&upper.as_str()) || upper == "CONIN$" || upper == "CONOUT$" {
        return true;
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    if prefix != "COM" && prefix != "LPT" {
        return false;
    }
    let rest: Vec<char> = chars.collect();
    rest.len() == 1 && (rest[0].is_ascii_digit() || matches!(rest[0], '¹' | '²' | '³'))
}

/// Cuts `s` to at most `max` UTF-8 bytes on a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn trim_name_edges(s: &str) -> &str {
    s.trim_start_matches(' ').trim_end_matches(['.', ' '])
}

/// Makes one path component safe (a file or folder name), limited to `max_bytes`
/// (at most [`MAX_NAME_BYTES`]). Never returns an empty string, `.`, `..`, a name with a
/// separator, NUL or a control character, a leading dot, or a trailing dot or space.
pub fn sanitize_component_max(input: &str, max_bytes: usize) -> String {
    let max_bytes = max_bytes.clamp(FALLBACK_NAME.len() + 1, MAX_NAME_BYTES);
    let mapped: String = input
        .nfc()
        .map(|c| if is_forbidden(c) { '_' } else { c })
        .collect();
    let mut name = trim_name_edges(&mapped).to_string();
    if name.starts_with('.') {
        name.replace_range(0..1, "_");
    }
    if name.is_empty() {
        name = FALLBACK_NAME.to_string();
    }
    if is_reserved_device_name(&name) {
        name.insert(0, '_');
    }
    // Cutting can expose a trailing dot/space, split a combining sequence or leave a device
    // name (`CON` + 300 spaces + `x` is cut to `CON`): repeat until stable. Each round only
    // shortens, except the `_` prefix, which can be added once (a name starting with `_` is
    // never a device name), so this ends.
    loop {
        let cut = trim_name_edges(truncate_bytes(&name, max_bytes));
        let mut next: String = cut.nfc().collect();
        if next.is_empty() {
            next = FALLBACK_NAME.to_string();
        }
        if is_reserved_device_name(&next) {
            next.insert(0, '_');
        }
        if next == name && name.len() <= max_bytes {
            return name;
        }
        name = next;
    }
}

/// [`sanitize_component_max`] with the full [`MAX_NAME_BYTES`].
pub fn sanitize_component(input: &str) -> String {
    sanitize_component_max(input, MAX_NAME_BYTES)
}

/// The key names are compared on: NFC, then lower case. Two names with the same key are a
/// clash on a case-insensitive or normalisation-insensitive file system.
pub fn fold_key(name: &str) -> String {
    let lower: String = name.nfc().collect::<String>().to_lowercase();
    lower.nfc().collect()
}

/// Splits a file name into (stem, extension) where the extension is 1–[`MAX_EXT_BYTES`]
/// ASCII alphanumerics after the last dot and the stem is not empty. Otherwise the whole name
/// is the stem.
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    match name.rsplit_once('.') {
        Some((stem, ext))
            if !stem.trim_matches(['.', ' ']).is_empty()
                && !ext.is_empty()
                && ext.len() <= MAX_EXT_BYTES
                && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            (stem, Some(ext))
        }
        _ => (name, None),
    }
}

/// The safe base name (stem) of an asset from its original file name, e.g. `IMG_1234` from
/// `IMG_1234.HEIC`; at most [`MAX_BASE_BYTES`].
pub fn base_from_original(original: &str) -> String {
    // Only the last path component counts: a hostile "../../x.jpg" names "x".
    let last = original
        .rsplit(['/', '\\'])
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let (stem, _) = split_name(last);
    sanitize_component_max(stem, MAX_BASE_BYTES)
}

/// The safe extension of a file name (without the dot), if it has one.
pub fn extension_of(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    split_name(last).1.map(str::to_string)
}

/// Builds a final file name: `base`, an optional clash number ` (n)`, a role suffix such as
/// `_edited`, and the extension. The base is cut further if needed so the whole name stays
/// within [`MAX_NAME_BYTES`] and safe.
pub fn file_name(base: &str, clash: u32, role_suffix: &str, ext: Option<&str>) -> String {
    let clash_part = if clash == 0 {
        String::new()
    } else {
        format!(" ({clash})")
    };
    let role_suffix = sanitize_tail(role_suffix);
    let ext_part = match ext {
        Some(e) if !e.is_empty() => format!(".{}", sanitize_tail(truncate_bytes(e, MAX_EXT_BYTES))),
        _ => String::new(),
    };
    let room = MAX_NAME_BYTES.saturating_sub(clash_part.len() + role_suffix.len() + ext_part.len());
    let base = sanitize_component_max(base, room);
    sanitize_component(&format!("{base}{clash_part}{role_suffix}{ext_part}"))
}

/// Keeps only characters that are safe anywhere in a name (for suffixes and extensions).
fn sanitize_tail(s: &str) -> String {
    s.chars()
        .map(|c| {
            if is_forbidden(c) || c == '.' || c == ' ' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// True if `name` is one of Ferry's temporary files: [`TEMP_PREFIX`] followed by exactly
/// [`TEMP_RANDOM_LEN`] lower-case hex digits.
pub fn is_temp_name(name: &str) -> bool {
    name.strip_prefix(TEMP_PREFIX).is_some_and(|rest| {
        rest.len() == TEMP_RANDOM_LEN
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// A fresh temporary file name.
pub fn temp_name() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{TEMP_PREFIX}{}", &id[..TEMP_RANDOM_LEN])
}

/// The date folder (`YYYY/MM`, as two components) for a capture time in Unix milliseconds
/// (UTC) and the asset's offset from UTC in seconds. A missing date, an offset outside ±18 h
/// (treated as unknown: UTC is used) or a year outside 1000–9999 give
/// [`UNKNOWN_DATE_FOLDER`].
pub fn date_folder(capture_utc_millis: Option<i64>, tz_offset_seconds: Option<i64>) -> Vec<String> {
    let Some(ms) = capture_utc_millis else {
        return vec![UNKNOWN_DATE_FOLDER.to_string()];
    };
    // A range check, not `o.abs()`: the offset comes from the phone's database and
    // `i64::MIN.abs()` overflows.
    let offset = tz_offset_seconds
        .filter(|o| (-18 * 3600..=18 * 3600).contains(o))
        .unwrap_or(0);
    let Some(local_ms) = ms.checked_add(offset * 1000) else {
        return vec![UNKNOWN_DATE_FOLDER.to_string()];
    };
    let days = local_ms.div_euclid(86_400_000);
    let (y, m, _) = civil_from_days(days);
    if !(1000..=9999).contains(&y) {
        return vec![UNKNOWN_DATE_FOLDER.to_string()];
    }
    vec![format!("{y:04}"), format!("{m:02}")]
}

/// Howard Hinnant's days-since-epoch → (year, month, day), proleptic Gregorian.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe.saturating_add(era.saturating_mul(400));
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y.saturating_add(1) } else { y }, m, d)
}

/// Checks that a relative path from the catalog or journal is made of safe components only
/// (each equal to its own sanitised form, or a temp name) and returns its components.
/// Refuses empty, absolute, `.`/`..`, backslashes, NUL and anything sanitising would change.
pub fn validate_relative(rel: &str) -> Result<Vec<&str>, String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.starts_with('/') {
        return Err("absolute path".into());
    }
    let parts: Vec<&str> = rel.split('/').collect();
    for p in &parts {
        if *p == "." || *p == ".." || p.is_empty() {
            return Err(format!("component {p:?} not allowed"));
        }
        if sanitize_component(p) != *p && !is_temp_name(p) {
            return Err(format!("component {p:?} is not a safe name"));
        }
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::{Component, Path};

    #[test]
    fn keeps_ordinary_names() {
        for n in [
            "IMG_1234.HEIC",
            "Café_写真_0005.JPG",
            "RPReplay_Final1700000000.MP4",
            "a b.c",
        ] {
            assert_eq!(sanitize_component(n), n);
        }
    }

    #[test]
    fn replaces_illegal_characters() {
        assert_eq!(
            sanitize_component("a:b*c?d\"e<f>g|h\\i/j"),
            "a_b_c_d_e_f_g_h_i_j"
        );
        assert_eq!(sanitize_component("a\0b\u{1}c\u{7f}"), "a_b_c_");
        assert_eq!(sanitize_component("IMG_\u{202e}CIEH.exe"), "IMG__CIEH.exe");
    }

    #[test]
    fn trailing_dots_spaces_and_leading_dot() {
        assert_eq!(sanitize_component("photo. . "), "photo");
        assert_eq!(sanitize_component("  x"), "x");
        assert_eq!(sanitize_component(".hidden"), "_hidden");
        assert_eq!(
            sanitize_component(".ferry-tmp-0123456789abcdef"),
            "_ferry-tmp-0123456789abcdef"
        );
        assert_eq!(sanitize_component(".."), FALLBACK_NAME);
        assert_eq!(sanitize_component("."), FALLBACK_NAME);
        assert_eq!(sanitize_component(""), FALLBACK_NAME);
        assert_eq!(sanitize_component("...."), FALLBACK_NAME);
    }

    #[test]
    fn reserved_device_names() {
        for n in [
            "CON", "con.txt", "Nul.HEIC", "COM1", "lpt9.jpg", "COM¹", "CONIN$", "AUX .x",
        ] {
            assert!(is_reserved_device_name(n), "{n}");
            assert!(sanitize_component(n).starts_with('_'), "{n}");
        }
        for n in ["CONTACT.jpg", "COM10", "NULL", "IMG_0001.JPG", "LPT"] {
            assert!(!is_reserved_device_name(n), "{n}");
        }
    }

    #[test]
    fn nfc_and_folding() {
        let nfd = "Cafe\u{301}.JPG";
        assert_eq!(sanitize_component(nfd), "Café.JPG");
        assert_eq!(fold_key(nfd), fold_key("CAFÉ.jpg"));
        assert_ne!(fold_key("IMG_1.HEIC"), fold_key("IMG_2.HEIC"));
    }

    #[test]
    fn long_names_are_cut_on_char_boundaries() {
        let long = "写".repeat(200); // 600 bytes, 200 UTF-16 units
        let s = sanitize_component(&long);
        assert!(s.len() <= MAX_NAME_BYTES);
        assert_eq!(s.len() % 3, 0);
        let n = file_name(&"a".repeat(300), 12, "_edited", Some("HEIC"));
        assert!(n.len() <= MAX_NAME_BYTES, "{}", n.len());
        assert!(n.ends_with(" (12)_edited.HEIC"), "{n}");
    }

    #[test]
    fn file_names() {
        assert_eq!(file_name("IMG_1234", 0, "", Some("HEIC")), "IMG_1234.HEIC");
        assert_eq!(
            file_name("IMG_1234", 2, "", Some("MOV")),
            "IMG_1234 (2).MOV"
        );
        assert_eq!(
            file_name("IMG_1234", 0, "_edited", Some("jpg")),
            "IMG_1234_edited.jpg"
        );
        assert_eq!(file_name("IMG_1234", 0, "", None), "IMG_1234");
        assert_eq!(file_name("CON", 0, "", Some("JPG")), "_CON.JPG");
    }

    #[test]
    fn bases_and_extensions() {
        assert_eq!(base_from_original("IMG_1234.HEIC"), "IMG_1234");
        assert_eq!(base_from_original("../../etc/passwd"), "passwd");
        assert_eq!(base_from_original("/abs/x.jpg"), "x");
        assert_eq!(base_from_original("a\\b\\c.png"), "c");
        assert_eq!(base_from_original(".jpg"), "_jpg");
        assert_eq!(base_from_original(""), FALLBACK_NAME);
        assert_eq!(
            extension_of("DCIM/100APPLE/IMG_1.MOV").as_deref(),
            Some("MOV")
        );
        assert_eq!(extension_of("noext"), None);
        assert_eq!(extension_of("weird.ex/t"), None);
        assert_eq!(extension_of("a.tar.gz").as_deref(), Some("gz"));
        assert_eq!(extension_of("a.toolongextension1234"), None);
    }

    #[test]
    fn temp_names() {
        let t = temp_name();
        assert!(is_temp_name(&t), "{t}");
        assert!(!is_temp_name(".ferry-tmp-0123"));
        assert!(!is_temp_name(".ferry-tmp-0123456789ABCDEF"));
        assert!(!is_temp_name("IMG_1.HEIC"));
    }

    #[test]
    fn date_folders() {
        // 2024-01-31T23:30:00Z
        let ms = 1_706_743_800_000;
        assert_eq!(date_folder(Some(ms), Some(0)), ["2024", "01"]);
        // +02:00 → 2024-02-01 local
        assert_eq!(date_folder(Some(ms), Some(7200)), ["2024", "02"]);
        // −10:00 stays in January
        assert_eq!(date_folder(Some(ms), Some(-36000)), ["2024", "01"]);
        // Unknown offset → UTC; absurd offset → UTC.
        assert_eq!(date_folder(Some(ms), None), ["2024", "01"]);
        assert_eq!(date_folder(Some(ms), Some(999_999)), ["2024", "01"]);
        assert_eq!(date_folder(None, Some(0)), [UNKNOWN_DATE_FOLDER]);
        assert_eq!(
            date_folder(Some(i64::MAX), Some(3600)),
            [UNKNOWN_DATE_FOLDER]
        );
        assert_eq!(date_folder(Some(i64::MIN), None), [UNKNOWN_DATE_FOLDER]);
        assert_eq!(date_folder(Some(-1), Some(0)), ["1969", "12"]);
        assert_eq!(date_folder(Some(951_782_400_000), Some(0)), ["2000", "02"]);
    }

    #[test]
    fn relative_validation() {
        assert!(validate_relative("Anna's iPhone/2024/01/IMG_1.HEIC").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "a//b",
            "./a",
            "a/b\\c",
            "a/\0",
            "a/CON",
            "a/x.",
        ] {
            assert!(validate_relative(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_input_gives_a_safe_name(s in any::<String>()) {
            check_safe(&sanitize_component(&s));
        }

        #[test]
        fn any_bytes_give_a_safe_name(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            check_safe(&sanitize_component(&String::from_utf8_lossy(&b)));
        }

        #[test]
        fn file_names_are_safe(base in any::<String>(), clash in 0u32..1_000_000, ext in any::<String>()) {
            let n = file_name(&base_from_original(&base), clash, "_edited", extension_of(&ext).as_deref());
            check_safe(&n);
        }

        #[test]
        fn sanitize_is_idempotent(s in any::<String>()) {
            let once = sanitize_component(&s);
            prop_assert_eq!(sanitize_component(&once), once.clone());
            prop_assert!(validate_relative(&once).is_ok());
        }
    }

    fn check_safe(n: &str) {
        assert!(!n.is_empty());
        assert!(n.len() <= MAX_NAME_BYTES, "{} bytes", n.len());
        assert!(n.encode_utf16().count() <= MAX_NAME_BYTES);
        assert!(!n.chars().any(is_forbidden), "{n:?}");
        assert!(!n.starts_with('.') && !n.starts_with(' '), "{n:?}");
        assert!(!n.ends_with('.') && !n.ends_with(' '), "{n:?}");
        assert!(!is_reserved_device_name(n), "{n:?}");
        assert!(unicode_normalization::is_nfc(n), "{n:?}");
        assert!(!is_temp_name(n));
        // Joined to a folder, it is exactly one normal component inside that folder.
        let dir = Path::new("/dest/phone/2024/01");
        let p = dir.join(n);
        assert_eq!(p.parent(), Some(dir));
        assert!(matches!(
            p.components().next_back(),
            Some(Component::Normal(_))
        ));
        assert_eq!(p.components().count(), dir.components().count() + 1);
    }
}
