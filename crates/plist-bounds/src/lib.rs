//! Bounds a property list before it is parsed into a tree.
//!
//! The `plist` crate parses hostile input without panicking, but two shapes of small input
//! still cost without bound once they become a `plist::Value` (both found by fuzzing, see
//! `docs/testing.md`):
//!
//! * a **binary plist whose objects share children** (object *i* is an array holding object
//!   *i+1* twice): the format stores a DAG, the tree built from it doubles with every level —
//!   154 bytes became 4 million values and 4.5 s of work, 200 bytes would never finish;
//! * **deep nesting** (`<array>` 100 000 times, or a chain of one-element binary arrays): the
//!   parser itself is iterative, but dropping, cloning, printing or serialising the resulting
//!   tree recurses once per level and overflows the stack, aborting the process.
//!
//! [`check`] walks the input's structure without building anything and refuses it when the
//! tree would have more than `max_nodes` values or be nested deeper than `max_depth`. It works
//! in time linear in the input plus `max_nodes` and allocates only the binary offset table
//! (bounded by the input's length). Anything it cannot make sense of is left to the real
//! parser, which reports its own error.
//!
//! One small crate of its own because three crates that share nothing else need it: the
//! reader (`ferry-photos`: the `Z_METADATA` plist in Photos.sqlite), Ferry's usbmuxd client
//! (`ferry-device`: replies and stored pair records) and the simulated phone (`ferry-sim`:
//! usbmuxd and lockdown requests). It has no dependencies.

/// Limits for [`check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most values (leaves, keys and collections) in the parsed tree.
    pub max_nodes: usize,
    /// Deepest nesting of arrays and dictionaries (the root collection is depth 1).
    pub max_depth: usize,
}

impl Limits {
    /// Generous for every plist Ferry and the simulator exchange (messages, pair records and
    /// Core Data metadata are a few levels deep and at most a few thousand values).
    pub const DEFAULT: Limits = Limits {
        max_nodes: 100_000,
        max_depth: 64,
    };
}

/// Why [`check`] refused a plist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundsError {
    /// The tree would hold more values than allowed.
    TooManyNodes(usize),
    /// The tree would nest deeper than allowed.
    TooDeep(usize),
    /// A construct no plist Ferry handles uses, refused rather than analysed.
    Unsupported(&'static str),
}

impl std::fmt::Display for BoundsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundsError::TooManyNodes(n) => {
                write!(f, "the property list would expand to more than {n} values")
            }
            BoundsError::TooDeep(n) => {
                write!(f, "the property list nests deeper than {n} levels")
            }
            BoundsError::Unsupported(what) => write!(f, "the property list contains {what}"),
        }
    }
}

impl std::error::Error for BoundsError {}

/// Checks that `bytes` (a binary or XML plist) parses into a tree within `limits`. `Ok` also
/// for input that is not a plist at all: the parser rejects that itself.
pub fn check(bytes: &[u8], limits: Limits) -> Result<(), BoundsError> {
    if bytes.starts_with(b"bplist00") {
        check_binary(bytes, limits)
    } else {
        check_xml(bytes, limits)
    }
}

fn be_uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Walks the object graph from the root as the parser would expand it, counting values.
fn check_binary(b: &[u8], limits: Limits) -> Result<(), BoundsError> {
    // Trailer: 6 padding bytes, offset size, ref size, object count, root, table offset.
    let Some(trailer) = b.len().checked_sub(32).map(|at| &b[at..]) else {
        return Ok(());
    };
    let offset_size = usize::from(trailer[6]);
    let ref_size = usize::from(trailer[7]);
    if !matches!(offset_size, 1..=4 | 8) || !matches!(ref_size, 1..=4 | 8) {
        return Ok(());
    }
    let (Ok(objects), Ok(root), Ok(table)) = (
        usize::try_from(be_uint(&trailer[8..16])),
        usize::try_from(be_uint(&trailer[16..24])),
        usize::try_from(be_uint(&trailer[24..32])),
    ) else {
        return Ok(());
    };
    let Some(table_bytes) = objects
        .checked_mul(offset_size)
        .and_then(|n| table.checked_add(n))
        .and_then(|end| b.get(table..end))
    else {
        return Ok(());
    };
    let offset = |i: usize| -> Option<usize> {
        let at = i.checked_mul(offset_size)?;
        usize::try_from(be_uint(table_bytes.get(at..at + offset_size)?)).ok()
    };
    // Object `i`: `Some(None)` for a leaf, `Some(Some(refs))` for a collection (a
    // dictionary's keys, then its values), `None` when it cannot be read.
    let object = |i: usize| -> Option<Option<&[u8]>> {
        let at = offset(i)?;
        let token = *b.get(at)?;
        if !matches!(token >> 4, 0xa | 0xc | 0xd) {
            return Some(None);
        }
        let (len, start) = if token & 0x0f == 0x0f {
            let size_token = *b.get(at + 1)?;
            let width = 1usize << (size_token & 0x03);
            let len = be_uint(b.get(at + 2..at + 2 + width)?);
            (usize::try_from(len).ok()?, at + 2 + width)
        } else {
            (usize::from(token & 0x0f), at + 1)
        };
        let per = if token >> 4 == 0xd { 2 } else { 1 };
        let n = len.checked_mul(per)?.checked_mul(ref_size)?;
        b.get(start..start.checked_add(n)?).map(Some)
    };
    let mut nodes = 0usize;
    // Depth-first, one frame per open collection: (its references, next one to visit).
    let mut stack: Vec<(&[u8], usize)> = Vec::new();
    let mut next = Some(root);
    loop {
        if let Some(obj) = next.take() {
            nodes += 1;
            if nodes > limits.max_nodes {
                return Err(BoundsError::TooManyNodes(limits.max_nodes));
            }
            if obj >= objects {
                return Ok(()); // a dangling reference: the parser's error
            }
            match object(obj) {
                None => return Ok(()), // malformed: the parser's error
                Some(None) => {}
                Some(Some(refs)) => {
                    if stack.len() >= limits.max_depth {
                        return Err(BoundsError::TooDeep(limits.max_depth));
                    }
                    stack.push((refs, 0));
                }
            }
        }
        let Some((refs, pos)) = stack.last_mut() else {
            return Ok(());
        };
        let at = *pos * ref_size;
        if at >= refs.len() {
            stack.pop();
            continue;
        }
        *pos += 1;
        match usize::try_from(be_uint(&refs[at..at + ref_size])) {
            Ok(r) => next = Some(r),
            Err(_) => return Ok(()),
        }
    }
}

/// Counts elements and the nesting of `<array>`/`<dict>` the way the XML parser (quick-xml)
/// delimits markup: comments end at `-->`, CDATA at `]]>`, processing instructions at `?>`,
/// tags (opening and closing) at the first `>` outside quotes. A `<!DOCTYPE` with an
/// internal subset is refused outright: no plist Ferry handles has one, and its grammar is
/// the one place where a scanner this simple could lose track of what is markup.
fn check_xml(b: &[u8], limits: Limits) -> Result<(), BoundsError> {
    let find = |from: usize, pat: &[u8]| -> Option<usize> {
        b.get(from..)?
            .windows(pat.len())
            .position(|w| w == pat)
            .map(|p| from + p + pat.len())
    };
    // Just past the `>` that closes the tag starting at `from`, honouring quotes; for a
    // declaration, `None` as well when a `[` comes first.
    let tag_end = |from: usize, declaration: bool| -> Result<Option<usize>, BoundsError> {
        let mut quote = None;
        for (i, &c) in b.get(from..).unwrap_or(&[]).iter().enumerate() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, b'"' | b'\'') => quote = Some(c),
                (None, b'[') if declaration => {
                    return Err(BoundsError::Unsupported(
                        "a DOCTYPE with an internal subset",
                    ))
                }
                (None, b'>') => return Ok(Some(from + i + 1)),
                _ => {}
            }
        }
        Ok(None)
    };
    let name_of = |from: usize| -> &[u8] {
        let rest = b.get(from..).unwrap_or(&[]);
        let end = rest
            .iter()
            .position(|c| c.is_ascii_whitespace() || matches!(c, b'>' | b'/'))
            .unwrap_or(rest.len());
        &rest[..end]
    };
    let is_collection = |name: &[u8]| name == b"array" || name == b"dict";
    let (mut depth, mut nodes, mut i) = (0usize, 0usize, 0usize);
    while let Some(lt) = b.get(i..).and_then(|r| r.iter().position(|&c| c == b'<')) {
        let at = i + lt;
        let rest = &b[at..];
        let after = if rest.starts_with(b"<!--") {
            find(at + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            find(at + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            find(at + 2, b"?>")
        } else if rest.starts_with(b"<!") {
            tag_end(at, true)?
        } else if rest.starts_with(b"</") {
            if is_collection(name_of(at + 2)) {
                depth = depth.saturating_sub(1);
            }
            tag_end(at, false)?
        } else {
            let end = tag_end(at, false)?;
            nodes += 1;
            if nodes > limits.max_nodes {
                return Err(BoundsError::TooManyNodes(limits.max_nodes));
            }
            let self_closing = end.is_some_and(|e| e >= 2 && b[e - 2] == b'/');
            if is_collection(name_of(at + 1)) && !self_closing {
                depth += 1;
                if depth > limits.max_depth {
                    return Err(BoundsError::TooDeep(limits.max_depth));
                }
            }
            end
        };
        // An unterminated construct: the parser stops there with an error.
        let Some(after) = after else { return Ok(()) };
        i = after;
    }
    Ok(())
}

/// Inputs for tests of this crate and of the parsers it guards.
#[doc(hidden)]
pub mod testing {
    /// A binary plist of `n` arrays, object i holding object i+1 `fan` times, then an integer.
    pub fn shared_children(n: usize, fan: u8) -> Vec<u8> {
        let mut out = b"bplist00".to_vec();
        let mut offsets = Vec::new();
        for i in 0..n {
            offsets.push(out.len() as u32);
            out.push(0xa0 | fan);
            for _ in 0..fan {
                out.extend_from_slice(&((i + 1) as u32).to_be_bytes());
            }
        }
        offsets.push(out.len() as u32);
        out.extend_from_slice(&[0x10, 1]);
        let table = out.len() as u64;
        for o in offsets {
            out.extend_from_slice(&o.to_be_bytes());
        }
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0, 4, 4]);
        out.extend_from_slice(&((n + 1) as u64).to_be_bytes());
        out.extend_from_slice(&0u64.to_be_bytes());
        out.extend_from_slice(&table.to_be_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::testing::shared_children;
    use super::*;

    #[test]
    fn shared_children_are_counted_as_expanded() {
        let small = shared_children(4, 2);
        assert_eq!(check(&small, Limits::DEFAULT), Ok(()));
        let v = plist::Value::from_reader(std::io::Cursor::new(&small)).expect("valid plist");
        assert!(v.as_array().is_some());
        assert_eq!(
            check(&shared_children(40, 2), Limits::DEFAULT),
            Err(BoundsError::TooManyNodes(100_000))
        );
        assert_eq!(
            check(&shared_children(200, 1), Limits::DEFAULT),
            Err(BoundsError::TooDeep(64))
        );
    }

    #[test]
    fn xml_depth_and_tricks() {
        let nest = |n: usize| {
            format!(
                "<plist>{}{}</plist>",
                "<array>".repeat(n),
                "</array>".repeat(n)
            )
        };
        assert_eq!(check(nest(64).as_bytes(), Limits::DEFAULT), Ok(()));
        assert_eq!(
            check(nest(65).as_bytes(), Limits::DEFAULT),
            Err(BoundsError::TooDeep(64))
        );
        // Closing tags hidden in comments, CDATA or attributes do not reduce the count.
        let sneaky = "<array><!-- </array> -->".repeat(70);
        assert!(check(sneaky.as_bytes(), Limits::DEFAULT).is_err());
        let sneaky = "<array x='</array>'>".repeat(70);
        assert!(check(sneaky.as_bytes(), Limits::DEFAULT).is_err());
        let dtd = "<!DOCTYPE plist [ <!-- ' --> ]><plist><array/></plist>";
        assert!(matches!(
            check(dtd.as_bytes(), Limits::DEFAULT),
            Err(BoundsError::Unsupported(_))
        ));
        let apple = "<?xml version=\"1.0\"?><!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\"><plist><dict/></plist>";
        assert_eq!(check(apple.as_bytes(), Limits::DEFAULT), Ok(()));
        // Self-closing collections do not nest.
        assert_eq!(
            check("<array/>".repeat(1000).as_bytes(), Limits::DEFAULT),
            Ok(())
        );
    }
}
