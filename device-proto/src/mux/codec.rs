//! usbmuxd packet codec (both protocol versions).
//!
//! Every packet is a 16-byte header of little-endian u32s (`length` including the header,
//! `version` 0 = binary / 1 = plist, `message`, `tag`) and a payload. [`decode`] checks that a
//! whole packet is in the buffer before parsing anything, so a reader can call it after every
//! read and never act on a partial frame. Replies are built in one buffer so each goes out in a
//! single `write` (libusbmuxd 2.0.2 reads the header with one `recv`).

use plist::Value;

/// Header size.
pub const HEADER_LEN: usize = 16;
/// The daemon's command buffer: a longer packet closes the connection.
pub const MAX_PACKET: u32 = 0x10000;

/// Message types.
pub mod msg {
    pub const RESULT: u32 = 1;
    pub const CONNECT: u32 = 2;
    pub const LISTEN: u32 = 3;
    pub const DEVICE_ADD: u32 = 4;
    pub const DEVICE_REMOVE: u32 = 5;
    pub const DEVICE_PAIRED: u32 = 6;
    pub const PLIST: u32 = 8;
}

/// Result codes.
pub mod result {
    pub const OK: u64 = 0;
    pub const BADCOMMAND: u64 = 1;
    pub const BADDEV: u64 = 2;
    pub const CONNREFUSED: u64 = 3;
    pub const BADVERSION: u64 = 6;
    /// errno values reused by the pair-record calls.
    pub const ENOENT: u64 = 2;
    pub const EINVAL: u64 = 22;
}

/// A complete packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub version: u32,
    pub message: u32,
    pub tag: u32,
    pub payload: Vec<u8>,
}

/// A framing error: the connection cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("packet length {0} is shorter than the 16-byte header")]
    TooShort(u32),
    #[error("packet length {0} exceeds the 64 KiB command buffer")]
    TooLong(u32),
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// Decodes one packet from the front of `buf`: `Ok(None)` when more bytes are needed,
/// `Ok(Some((packet, consumed)))` when one is complete.
pub fn decode(buf: &[u8]) -> Result<Option<(Packet, usize)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let length = le32(buf, 0);
    if (length as usize) < HEADER_LEN {
        return Err(FrameError::TooShort(length));
    }
    if length > MAX_PACKET {
        return Err(FrameError::TooLong(length));
    }
    let length = length as usize;
    if buf.len() < length {
        return Ok(None);
    }
    Ok(Some((
        Packet {
            version: le32(buf, 4),
            message: le32(buf, 8),
            tag: le32(buf, 12),
            payload: buf[HEADER_LEN..length].to_vec(),
        },
        length,
    )))
}

/// Parses a plist-protocol payload into the request dictionary; `None` for anything else
/// (not a plist, not a dictionary, or a plist that would expand or nest without bound, see
/// [`plist_bounds`]).
pub fn plist_request(payload: &[u8]) -> Option<plist::Dictionary> {
    plist_bounds::check(payload, plist_bounds::Limits::DEFAULT).ok()?;
    match Value::from_reader(std::io::Cursor::new(payload)) {
        Ok(Value::Dictionary(d)) => Some(d),
        _ => None,
    }
}

/// Encodes a packet: header and payload in one buffer.
pub fn encode(version: u32, message: u32, tag: u32, payload: &[u8]) -> Vec<u8> {
    let len = (HEADER_LEN + payload.len()) as u32;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&message.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Serialises a plist reply as XML (libusbmuxd parses replies with `plist_from_xml` only).
pub fn xml(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail for a well-formed Value.
    if value.to_writer_xml(&mut out).is_err() {
        out.clear();
    }
    out
}

/// A plist-protocol packet (version 1, message PLIST) carrying `value`.
pub fn plist_packet(tag: u32, value: &Value) -> Vec<u8> {
    encode(1, msg::PLIST, tag, &xml(value))
}

/// `{MessageType: Result, Number: n}` in the plist protocol.
pub fn plist_result(tag: u32, number: u64) -> Vec<u8> {
    let mut d = plist::Dictionary::new();
    d.insert("MessageType".into(), Value::String("Result".into()));
    d.insert("Number".into(), Value::Integer(number.into()));
    plist_packet(tag, &Value::Dictionary(d))
}

/// A binary-protocol RESULT packet.
pub fn binary_result(tag: u32, number: u32) -> Vec<u8> {
    encode(0, msg::RESULT, tag, &number.to_le_bytes())
}

/// A binary-protocol DEVICE_ADD packet: u32 id, u16 product id, char serial[256], u16 padding,
/// u32 location (268 bytes, packed).
pub fn binary_device_add(device_id: u32, product_id: u16, serial: &str, location: u32) -> Vec<u8> {
    let mut p = Vec::with_capacity(268);
    p.extend_from_slice(&device_id.to_le_bytes());
    p.extend_from_slice(&product_id.to_le_bytes());
    let mut s = [0u8; 256];
    let bytes = serial.as_bytes();
    let n = bytes.len().min(255);
    s[..n].copy_from_slice(&bytes[..n]);
    p.extend_from_slice(&s);
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&location.to_le_bytes());
    encode(0, msg::DEVICE_ADD, 0, &p)
}

/// A binary-protocol DEVICE_REMOVE packet.
pub fn binary_device_remove(device_id: u32) -> Vec<u8> {
    encode(0, msg::DEVICE_REMOVE, 0, &device_id.to_le_bytes())
}

/// The TCP port from a Connect request: clients send `htons(port)` in a host-order integer,
/// so on the wire (little-endian) the two bytes are swapped. 62078 arrives as 32498.
pub fn decode_port(port_number: u64) -> u16 {
    u16::from_be((port_number as u16).to_le())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_bytes_match_the_spec_example() {
        // Appendix A: len=300, version 1, PLIST, tag 7.
        let p = encode(1, msg::PLIST, 7, &[0u8; 284]);
        assert_eq!(
            &p[..16],
            &[0x2c, 0x01, 0, 0, 1, 0, 0, 0, 8, 0, 0, 0, 7, 0, 0, 0]
        );
    }

    #[test]
    fn connect_port_is_byte_swapped() {
        assert_eq!(decode_port(32498), 62078);
        assert_eq!(decode_port(43200), 49320);
    }

    #[test]
    fn decode_waits_for_whole_packets() {
        let p = plist_result(5, 0);
        for cut in 0..p.len() {
            assert_eq!(decode(&p[..cut]), Ok(None), "cut at {cut}");
        }
        let (pkt, used) = decode(&p).expect("ok").expect("complete");
        assert_eq!(used, p.len());
        assert_eq!((pkt.version, pkt.message, pkt.tag), (1, msg::PLIST, 5));
        assert!(pkt.payload.starts_with(b"<?xml"));
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut p = encode(1, 8, 1, b"");
        p[0..4].copy_from_slice(&8u32.to_le_bytes());
        assert_eq!(decode(&p), Err(FrameError::TooShort(8)));
        p[0..4].copy_from_slice(&0x10001u32.to_le_bytes());
        assert_eq!(decode(&p), Err(FrameError::TooLong(0x10001)));
    }

    #[test]
    fn binary_device_add_is_268_bytes() {
        let p = binary_device_add(3, 0x12a8, "00008030001A2B3C4D5E802E", 0x10005);
        assert_eq!(p.len(), 16 + 268);
        assert_eq!(&p[16..20], &3u32.to_le_bytes());
        assert_eq!(&p[20..22], &0x12a8u16.to_le_bytes());
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes);
        }
    }
}
