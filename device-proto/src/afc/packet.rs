//! AFC packets: a 40-byte header of little-endian u64s (magic `CFA6LPAA`, entire length,
//! this length = header + header-payload, packet number, operation), then the header-payload
//! (fixed arguments, paths) and the payload (bulk data).
//!
//! Response layouts matter to clients: STATUS, FILE_OPEN_RES and FILE_TELL_RES carry their
//! 8-byte value in the header part (this = entire = 48); DATA carries its bytes in the payload
//! part (this = 40). Every response echoes the request's packet number.

/// `CFA6LPAA`.
pub const MAGIC: [u8; 8] = *b"CFA6LPAA";
/// Header size.
pub const HEADER_LEN: usize = 40;

/// Operations (requests and responses).
pub mod op {
    pub const STATUS: u64 = 0x01;
    pub const DATA: u64 = 0x02;
    pub const READ_DIR: u64 = 0x03;
    pub const READ_FILE: u64 = 0x04;
    pub const WRITE_FILE: u64 = 0x05;
    pub const WRITE_PART: u64 = 0x06;
    pub const TRUNCATE: u64 = 0x07;
    pub const REMOVE_PATH: u64 = 0x08;
    pub const MAKE_DIR: u64 = 0x09;
    pub const GET_FILE_INFO: u64 = 0x0A;
    pub const GET_DEVINFO: u64 = 0x0B;
    pub const WRITE_FILE_ATOM: u64 = 0x0C;
    pub const FILE_OPEN: u64 = 0x0D;
    pub const FILE_OPEN_RES: u64 = 0x0E;
    pub const FILE_READ: u64 = 0x0F;
    pub const FILE_WRITE: u64 = 0x10;
    pub const FILE_SEEK: u64 = 0x11;
    pub const FILE_TELL: u64 = 0x12;
    pub const FILE_TELL_RES: u64 = 0x13;
    pub const FILE_CLOSE: u64 = 0x14;
    pub const FILE_SET_SIZE: u64 = 0x15;
    pub const GET_CON_INFO: u64 = 0x16;
    pub const SET_CON_OPTIONS: u64 = 0x17;
    pub const RENAME_PATH: u64 = 0x18;
    pub const SET_FS_BS: u64 = 0x19;
    pub const SET_SOCKET_BS: u64 = 0x1A;
    pub const FILE_LOCK: u64 = 0x1B;
    pub const MAKE_LINK: u64 = 0x1C;
    pub const SET_FILE_MOD_TIME: u64 = 0x1E;
    pub const REMOVE_PATH_AND_CONTENTS: u64 = 0x22;
}

/// Status codes.
pub mod status {
    pub const SUCCESS: u64 = 0;
    pub const OP_HEADER_INVALID: u64 = 2;
    pub const NO_RESOURCES: u64 = 3;
    pub const READ_ERROR: u64 = 4;
    pub const INVALID_ARG: u64 = 7;
    pub const OBJECT_NOT_FOUND: u64 = 8;
    pub const OBJECT_IS_DIR: u64 = 9;
    pub const PERM_DENIED: u64 = 10;
    pub const OP_NOT_SUPPORTED: u64 = 15;
    pub const IO_ERROR: u64 = 20;
}

/// A parsed request header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub entire_len: u64,
    pub this_len: u64,
    pub packet_num: u64,
    pub op: u64,
}

impl Header {
    /// Bytes of header-payload that follow the header.
    pub fn header_payload_len(&self) -> u64 {
        self.this_len - HEADER_LEN as u64
    }
    /// Bytes of payload after the header-payload.
    pub fn payload_len(&self) -> u64 {
        self.entire_len - self.this_len
    }
}

/// A header the connection cannot recover from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 8]),
    #[error("this_length {0} is shorter than the 40-byte header")]
    ThisTooShort(u64),
    #[error("entire_length {entire} is shorter than this_length {this}")]
    EntireTooShort { entire: u64, this: u64 },
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses and checks a request header.
pub fn parse_header(b: &[u8; HEADER_LEN]) -> Result<Header, HeaderError> {
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&b[0..8]);
    if magic != MAGIC {
        return Err(HeaderError::BadMagic(magic));
    }
    let h = Header {
        entire_len: le64(b, 8),
        this_len: le64(b, 16),
        packet_num: le64(b, 24),
        op: le64(b, 32),
    };
    if h.this_len < HEADER_LEN as u64 {
        return Err(HeaderError::ThisTooShort(h.this_len));
    }
    if h.entire_len < h.this_len {
        return Err(HeaderError::EntireTooShort {
            entire: h.entire_len,
            this: h.this_len,
        });
    }
    Ok(h)
}

/// Largest argument block kept for a request (paths are at most 1024 bytes on iOS; writes
/// keep only their fixed part). A larger block is drained and answered NO_RESOURCES.
pub const MAX_ARGS: u64 = 64 * 1024;

/// How the bytes after a request's header are read: `keep` bytes of arguments into memory,
/// then `skip` bytes discarded as they arrive (never buffered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgPlan {
    /// Argument bytes to read into memory (at most [`MAX_ARGS`]).
    pub keep: u64,
    /// Bytes to drain after them.
    pub skip: u64,
    /// The argument block exceeded [`MAX_ARGS`]: nothing is kept.
    pub oversized: bool,
}

/// The read plan for a checked header. Writes keep only their fixed header part (their bulk
/// data is drained: the simulator refuses writes).
pub fn arg_plan(h: &Header) -> ArgPlan {
    let is_write = matches!(h.op, op::FILE_WRITE | op::WRITE_FILE | op::WRITE_PART);
    let total = h.entire_len - HEADER_LEN as u64;
    let keep = if is_write {
        h.header_payload_len()
    } else {
        total
    };
    if keep > MAX_ARGS {
        ArgPlan {
            keep: 0,
            skip: total,
            oversized: true,
        }
    } else {
        ArgPlan {
            keep,
            skip: total - keep,
            oversized: false,
        }
    }
}

/// One request decoded from the front of a buffer by [`decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    /// The checked header.
    pub header: Header,
    /// The kept argument bytes.
    pub args: &'a [u8],
    /// The argument block was too large to keep.
    pub oversized: bool,
    /// Bytes of `buf` used (header + kept arguments).
    pub consumed: usize,
    /// Bytes still to discard from the stream after `consumed` (possibly not received yet).
    pub skip: u64,
}

/// Checks completeness, then parses: `Ok(None)` until the header and the kept arguments are
/// in `buf`. The connection reads with the same two steps ([`parse_header`], [`arg_plan`]).
pub fn decode(buf: &[u8]) -> Result<Option<Decoded<'_>>, HeaderError> {
    let Some(hb) = buf.first_chunk::<HEADER_LEN>() else {
        return Ok(None);
    };
    let header = parse_header(hb)?;
    let plan = arg_plan(&header);
    // keep <= MAX_ARGS, so this cannot overflow.
    let consumed = HEADER_LEN + plan.keep as usize;
    let Some(args) = buf.get(HEADER_LEN..consumed) else {
        return Ok(None);
    };
    Ok(Some(Decoded {
        header,
        args,
        oversized: plan.oversized,
        consumed,
        skip: plan.skip,
    }))
}

/// Encodes a header.
pub fn header(entire: u64, this: u64, packet_num: u64, op: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..16].copy_from_slice(&entire.to_le_bytes());
    h[16..24].copy_from_slice(&this.to_le_bytes());
    h[24..32].copy_from_slice(&packet_num.to_le_bytes());
    h[32..40].copy_from_slice(&op.to_le_bytes());
    h
}

fn with_value(packet_num: u64, op: u64, value: u64) -> Vec<u8> {
    let mut p = header(48, 48, packet_num, op).to_vec();
    p.extend_from_slice(&value.to_le_bytes());
    p
}

/// STATUS with its code in the header part.
pub fn status_packet(packet_num: u64, code: u64) -> Vec<u8> {
    with_value(packet_num, op::STATUS, code)
}

/// FILE_OPEN_RES with the handle in the header part.
pub fn open_res(packet_num: u64, handle: u64) -> Vec<u8> {
    with_value(packet_num, op::FILE_OPEN_RES, handle)
}

/// FILE_TELL_RES with the position in the header part.
pub fn tell_res(packet_num: u64, pos: u64) -> Vec<u8> {
    with_value(packet_num, op::FILE_TELL_RES, pos)
}

/// The header of a DATA packet carrying `len` payload bytes.
pub fn data_header(packet_num: u64, len: u64) -> [u8; HEADER_LEN] {
    header(
        HEADER_LEN as u64 + len,
        HEADER_LEN as u64,
        packet_num,
        op::DATA,
    )
}

/// A whole DATA packet.
pub fn data_packet(packet_num: u64, bytes: &[u8]) -> Vec<u8> {
    let mut p = data_header(packet_num, bytes.len() as u64).to_vec();
    p.extend_from_slice(bytes);
    p
}

/// `key\0value\0…`, the encoding of GET_FILE_INFO and GET_DEVINFO.
pub fn kv(pairs: &[(&str, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// A path argument: up to the first NUL, or the end (idevice sends none, libimobiledevice
/// and pymobiledevice3 one).
pub fn path_arg(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// The n-th little-endian u64 of an argument block.
pub fn arg_u64(b: &[u8], n: usize) -> Option<u64> {
    let s = b.get(n * 8..n * 8 + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn status_bytes_match_the_spec_example() {
        // Appendix A: STATUS success echoing packet_num 5.
        let expect: [u8; 48] = [
            0x43, 0x46, 0x41, 0x36, 0x4c, 0x50, 0x41, 0x41, 0x30, 0, 0, 0, 0, 0, 0, 0, 0x30, 0, 0,
            0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(status_packet(5, 0), expect);
    }

    #[test]
    fn data_bytes_match_the_spec_example() {
        let p = data_packet(2, b"abc");
        assert_eq!(p.len(), 43);
        assert_eq!(&p[8..16], &43u64.to_le_bytes());
        assert_eq!(&p[16..24], &40u64.to_le_bytes());
        assert_eq!(&p[24..32], &2u64.to_le_bytes());
        assert_eq!(&p[32..40], &2u64.to_le_bytes());
        assert_eq!(&p[40..], b"abc");
    }

    #[test]
    fn open_res_bytes_match_the_spec_example() {
        let p = open_res(4, 1);
        assert_eq!(&p[8..16], &48u64.to_le_bytes());
        assert_eq!(&p[16..24], &48u64.to_le_bytes());
        assert_eq!(&p[32..40], &0x0eu64.to_le_bytes());
        assert_eq!(&p[40..48], &1u64.to_le_bytes());
    }

    #[test]
    fn headers_are_checked() {
        let good = header(56, 56, 6, op::FILE_READ);
        let h = parse_header(&good).expect("valid");
        assert_eq!(h.header_payload_len(), 16);
        assert_eq!(h.payload_len(), 0);
        let mut bad = good;
        bad[0] = b'X';
        assert!(matches!(parse_header(&bad), Err(HeaderError::BadMagic(_))));
        assert_eq!(
            parse_header(&header(56, 39, 0, 3)),
            Err(HeaderError::ThisTooShort(39))
        );
        assert_eq!(
            parse_header(&header(40, 48, 0, 3)),
            Err(HeaderError::EntireTooShort {
                entire: 40,
                this: 48
            })
        );
    }

    #[test]
    fn paths_with_and_without_nul() {
        assert_eq!(path_arg(b"/DCIM\0"), b"/DCIM");
        assert_eq!(path_arg(b"/DCIM"), b"/DCIM");
        assert_eq!(arg_u64(&[1, 0, 0, 0, 0, 0, 0, 0, 2], 0), Some(1));
        assert_eq!(arg_u64(&[1, 0, 0], 0), None);
    }

    proptest! {
        #[test]
        fn header_parse_never_panics(bytes in proptest::array::uniform32(any::<u8>()), tail in proptest::array::uniform8(any::<u8>())) {
            let mut b = [0u8; 40];
            b[..32].copy_from_slice(&bytes);
            b[32..].copy_from_slice(&tail);
            let _ = parse_header(&b);
            b[..8].copy_from_slice(&MAGIC);
            if let Ok(h) = parse_header(&b) {
                prop_assert!(h.this_len >= 40 && h.entire_len >= h.this_len);
            }
        }
    }
}
