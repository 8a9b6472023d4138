//! lockdownd framing: a 4-byte big-endian length, then a plist of that many bytes. Clients
//! send XML; replies are XML starting with `<?xml` (libimobiledevice 1.3.0 parses a reply as
//! XML only when it starts so), and go out as length + body in one write.

use plist::{Dictionary, Value};

/// Largest request body accepted. Real requests are a few KiB (Pair, with three PEM
/// certificates, is the largest); a bigger length is garbage or hostile and closes the
/// connection. UNCONFIRMED: lockdownd's own limit is unknown.
pub const MAX_BODY: u32 = 1 << 20;

/// Why a request could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("request length {0} exceeds the {MAX_BODY}-byte limit")]
    TooLong(u32),
    #[error("request is not a plist dictionary")]
    NotADict,
    #[error("request refused: {0}")]
    Bounds(#[from] plist_bounds::BoundsError),
}

/// Checks a length prefix.
pub fn check_len(prefix: [u8; 4]) -> Result<usize, FrameError> {
    let n = u32::from_be_bytes(prefix);
    if n > MAX_BODY {
        return Err(FrameError::TooLong(n));
    }
    Ok(n as usize)
}

/// Parses a request body (XML or binary plist) into a dictionary.
/// Plists that would expand or nest without bound are refused first ([`plist_bounds`]).
pub fn parse_body(body: &[u8]) -> Result<Dictionary, FrameError> {
    plist_bounds::check(body, plist_bounds::Limits::DEFAULT)?;
    match Value::from_reader(std::io::Cursor::new(body)) {
        Ok(Value::Dictionary(d)) => Ok(d),
        _ => Err(FrameError::NotADict),
    }
}

/// Checks completeness, then parses, for a buffered stream: `Ok(None)` until the 4-byte
/// length and that many body bytes are in `buf`, then the request and the bytes used. The
/// connection reads with the same two steps ([`check_len`] before allocating, then
/// [`parse_body`]).
pub fn decode(buf: &[u8]) -> Result<Option<(Dictionary, usize)>, FrameError> {
    let Some(prefix) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let n = check_len(*prefix)?;
    let Some(body) = buf.get(4..4 + n) else {
        return Ok(None);
    };
    Ok(Some((parse_body(body)?, 4 + n)))
}

/// Encodes a reply: length prefix and XML body in one buffer.
pub fn encode(d: Dictionary) -> Vec<u8> {
    let mut body = Vec::new();
    if Value::Dictionary(d).to_writer_xml(&mut body).is_err() {
        body.clear();
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn replies_are_xml_with_big_endian_length() {
        let mut d = Dictionary::new();
        d.insert("Request".into(), Value::String("QueryType".into()));
        let out = encode(d);
        let n = u32::from_be_bytes([out[0], out[1], out[2], out[3]]) as usize;
        assert_eq!(n, out.len() - 4);
        assert!(out[4..].starts_with(b"<?xml"));
        let back = parse_body(&out[4..]).expect("parses");
        assert_eq!(
            back.get("Request").and_then(Value::as_string),
            Some("QueryType")
        );
    }

    #[test]
    fn limits_and_garbage() {
        assert!(check_len([0, 0x10, 0, 1]).is_err());
        assert_eq!(check_len([0, 0, 1, 0x29]).expect("ok"), 297);
        assert!(parse_body(b"garbage").is_err());
        assert!(parse_body(b"<?xml version=\"1.0\"?><plist><array/></plist>").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_body(&bytes);
        }
    }
}
