//! Record framing of the WAL.
//!
//! Every record is
//!
//! ```text
//! [len: u32 LE][crc32c: u32 LE][kind: u8][payload: len bytes]
//! ```
//!
//! - `len` is the length of the payload alone (not counting the 9-byte frame header),
//!   at most [`MAX_PAYLOAD_LEN`].
//! - `crc32c` is the CRC-32C (Castagnoli) of `kind` followed by the payload.
//! - `kind` is a [`RecordKind`]; an unknown kind with a valid checksum is an error (a WAL
//!   written by a newer Laminar), never skipped.
//!
//! Records carry no LSN: the LSN of a record is the first LSN of its segment (in the
//! segment header) plus its index in the segment. LSNs are consecutive from 1.

/// Log sequence number: the 1-based number of a record in the WAL. `0` means "none".
pub type Lsn = u64;

/// Bytes of a record's frame before its payload.
pub(crate) const FRAME_HEADER_LEN: usize = 9;

/// The largest payload of one record (256 MiB); a larger length field is corruption.
pub(crate) const MAX_PAYLOAD_LEN: usize = 256 << 20;

/// What a record holds. Persisted as one byte; values are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// Input that cannot be read again: a chunk of stdin lines, with every line's number
    /// and offset (written by Laminar before 2026-12-02; still read).
    Input = 1,
    /// A chunk of stdin lines, compact: the line offsets are not stored (every line ends
    /// at its newline) and the line numbers only where they are not consecutive.
    InputLines = 2,
}

impl RecordKind {
    /// The kind persisted as `byte`, if known.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Input),
            2 => Some(Self::InputLines),
            _ => None,
        }
    }

    /// The persisted byte of this kind.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// The checksum of a record: CRC-32C over its kind byte and payload.
fn checksum(kind: u8, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&[kind]), payload)
}

/// Appends the framed record to `buf`. The caller checks `payload.len() <= MAX_PAYLOAD_LEN`.
pub(crate) fn encode(buf: &mut Vec<u8>, kind: RecordKind, payload: &[u8]) {
    buf.reserve(FRAME_HEADER_LEN + payload.len());
    encode_header(buf, kind, payload);
    buf.extend_from_slice(payload);
}

/// Appends the frame header of a record (length, checksum, kind) to `buf`; the payload
/// follows it. The caller checks `payload.len() <= MAX_PAYLOAD_LEN`.
pub(crate) fn encode_header(buf: &mut Vec<u8>, kind: RecordKind, payload: &[u8]) {
    let kind = kind.as_byte();
    // `len` fits: payloads are at most MAX_PAYLOAD_LEN (< 4 GiB).
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&checksum(kind, payload).to_le_bytes());
    buf.push(kind);
}

/// What is found at an offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame<'a> {
    /// An intact record; the next one starts at `next`.
    Record {
        /// Its kind.
        kind: RecordKind,
        /// Its payload.
        payload: &'a [u8],
        /// Offset of the byte after it.
        next: usize,
    },
    /// The bytes end inside the frame (a torn write, or a corrupt length).
    Incomplete,
    /// The checksum does not match, or the length is impossible.
    Bad(String),
    /// A valid checksum over an unknown kind.
    UnknownKind(u8),
}

/// Decodes the frame starting at `at` in `bytes`.
pub(crate) fn decode(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(header) = bytes
        .get(at..)
        .and_then(|rest| rest.get(..FRAME_HEADER_LEN))
    else {
        return Frame::Incomplete;
    };
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let kind = header[8];
    if len > MAX_PAYLOAD_LEN {
        return Frame::Bad(format!("length {len} exceeds the limit {MAX_PAYLOAD_LEN}"));
    }
    let start = at + FRAME_HEADER_LEN;
    let Some(payload) = bytes.get(start..start + len) else {
        return Frame::Incomplete;
    };
    let actual = checksum(kind, payload);
    if actual != crc {
        return Frame::Bad(format!(
            "checksum mismatch (stored {crc:#010x}, computed {actual:#010x})"
        ));
    }
    match RecordKind::from_byte(kind) {
        Some(kind) => Frame::Record {
            kind,
            payload,
            next: start + len,
        },
        None => Frame::UnknownKind(kind),
    }
}

/// The first offset after `from` at which an intact record of a known kind starts, if any:
/// evidence that a damaged record is not a torn tail. The kind byte is checked before the
/// checksum, so most offsets cost a few comparisons.
pub(crate) fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    let last = bytes.len().checked_sub(FRAME_HEADER_LEN)?;
    (from..=last).find(|&at| {
        RecordKind::from_byte(bytes[at + 8]).is_some()
            && matches!(decode(bytes, at), Frame::Record { .. })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_roundtrip_and_layout() {
        let mut buf = Vec::new();
        encode(&mut buf, RecordKind::Input, b"abc");
        assert_eq!(buf.len(), FRAME_HEADER_LEN + 3);
        assert_eq!(&buf[..4], &3u32.to_le_bytes());
        assert_eq!(buf[8], 1);
        let frame = decode(&buf, 0);
        assert_eq!(
            frame,
            Frame::Record {
                kind: RecordKind::Input,
                payload: b"abc",
                next: 12
            }
        );
        assert_eq!(decode(&buf[..11], 0), Frame::Incomplete);
        assert_eq!(decode(&buf, 12), Frame::Incomplete);
    }

    #[test]
    fn frame_detects_flips_and_unknown_kinds() {
        let mut buf = Vec::new();
        encode(&mut buf, RecordKind::Input, b"payload");
        let mut flipped = buf.clone();
        flipped[10] ^= 0x01;
        assert!(matches!(decode(&flipped, 0), Frame::Bad(_)));
        let mut unknown = Vec::new();
        unknown.extend_from_slice(&0u32.to_le_bytes());
        unknown.extend_from_slice(&checksum(9, b"").to_le_bytes());
        unknown.push(9);
        assert_eq!(decode(&unknown, 0), Frame::UnknownKind(9));
        let mut both = flipped.clone();
        both.extend_from_slice(&buf);
        assert_eq!(next_valid_record(&both, 1), Some(buf.len()));
        assert_eq!(next_valid_record(&flipped, 1), None);
    }
}
