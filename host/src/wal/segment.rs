//! Segment files of the WAL: their names and their header.
//!
//! A segment is named by the LSN of its first record, `wal-{lsn:020}.log`, and starts with
//! a 24-byte header, all little-endian:
//!
//! ```text
//! [magic: "LMNRWAL\0"][version: u32 = 1][first_lsn: u64][crc32c of the 20 bytes before: u32]
//! ```
//!
//! Records (see [`entry`](super::entry)) follow the header back to back.

use std::path::{Path, PathBuf};

use super::entry::Lsn;

/// The magic bytes a segment starts with.
const MAGIC: [u8; 8] = *b"LMNRWAL\0";

/// The segment format version this build writes and reads.
pub(crate) const VERSION: u32 = 1;

/// Bytes of the segment header.
pub(crate) const HEADER_LEN: usize = 24;

/// The file name of the segment whose first record is `first_lsn`.
pub(crate) fn file_name(first_lsn: Lsn) -> String {
    format!("wal-{first_lsn:020}.log")
}

/// The path of that segment in `dir`.
pub(crate) fn path(dir: &Path, first_lsn: Lsn) -> PathBuf {
    dir.join(file_name(first_lsn))
}

/// The first LSN named by a segment's file name, or `None` for any other file.
pub(crate) fn parse_name(path: &Path) -> Option<Lsn> {
    let name = path.file_name()?.to_str()?;
    let digits = name.strip_prefix("wal-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The header of a segment starting at `first_lsn`.
pub(crate) fn encode_header(first_lsn: Lsn) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header[..8].copy_from_slice(&MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[12..20].copy_from_slice(&first_lsn.to_le_bytes());
    let crc = crc32c::crc32c(&header[..20]);
    header[20..].copy_from_slice(&crc.to_le_bytes());
    header
}

/// The first LSN in a header, or what is wrong with it. `bytes` holds at least the header.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<Lsn, String> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(format!("shorter than the {HEADER_LEN}-byte header"));
    };
    if header[..8] != MAGIC {
        return Err("not a Laminar WAL segment (bad magic)".to_string());
    }
    let stored = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    if crc32c::crc32c(&header[..20]) != stored {
        return Err("header checksum mismatch".to_string());
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version != VERSION {
        return Err(format!(
            "segment format version {version}; this build reads version {VERSION}"
        ));
    }
    let mut lsn = [0u8; 8];
    lsn.copy_from_slice(&header[12..20]);
    Ok(u64::from_le_bytes(lsn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_headers_roundtrip() {
        assert_eq!(file_name(1), "wal-00000000000000000001.log");
        assert_eq!(
            parse_name(Path::new("/x/wal-00000000000000000042.log")),
            Some(42)
        );
        assert_eq!(parse_name(Path::new("wal-42.log")), None);
        assert_eq!(
            parse_name(Path::new("wal-00000000000000000042.log.tmp")),
            None
        );
        let header = encode_header(42);
        assert_eq!(decode_header(&header), Ok(42));
        let mut bad = header;
        bad[13] ^= 1;
        assert!(decode_header(&bad).unwrap_err().contains("checksum"));
        assert!(decode_header(&header[..10]).is_err());
    }
}
