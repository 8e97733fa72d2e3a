//! The state file: every entry of a [`StateStore`] in one immutable file, written in one
//! pass and one sync, read whole to be read from.
//!
//! Layout, all little-endian, every entry and value at a 16-byte aligned offset:
//!
//! ```text
//! header (48 bytes):
//!   [magic: "LMNRSTAT"][version: u32 = 1][reserved: u32 = 0][entry_count: u64]
//!   [body_len: u64][body_crc32c: u32][header_crc32c of bytes 0..36: u32][zero: 8 bytes]
//! body (body_len bytes), entries sorted by key, each:
//!   [key_len: u32][reserved: u32 = 0][value_len: u64][key][zero pad to 16]
//!   [value][zero pad to 16]
//! ```

use std::io;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use super::store::Slot;
use super::{StateError, StateStore};
use crate::storage::{Storage, StorageFile};

const MAGIC: [u8; 8] = *b"LMNRSTAT";
/// The state file format version this build writes and reads.
const VERSION: u32 = 1;
const HEADER_LEN: usize = 48;
const ENTRY_HEADER_LEN: usize = 16;
const ALIGN: usize = 16;
const ZEROS: [u8; ALIGN] = [0; ALIGN];
/// Writes are gathered into chunks of this size; larger values are written directly.
const CHUNK: usize = 1 << 20;

/// Bytes of padding after `len` bytes to reach the next 16-byte boundary.
fn pad(len: usize) -> usize {
    (ALIGN - len % ALIGN) % ALIGN
}

/// Feeds the body bytes of `entries` to `sink`, in order.
fn emit_body(
    entries: &[(&[u8], &[u8])],
    sink: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<()> {
    for (key, value) in entries {
        let mut header = [0u8; ENTRY_HEADER_LEN];
        header[..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        header[8..].copy_from_slice(&(value.len() as u64).to_le_bytes());
        sink(&header)?;
        sink(key)?;
        sink(&ZEROS[..pad(key.len())])?;
        sink(value)?;
        sink(&ZEROS[..pad(value.len())])?;
    }
    Ok(())
}

/// Gathers small writes into chunks.
struct Chunked<'a> {
    file: &'a mut dyn StorageFile,
    buf: Vec<u8>,
}

impl Chunked<'_> {
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.buf.len() + bytes.len() > CHUNK {
            self.flush()?;
        }
        if bytes.len() >= CHUNK {
            return self.file.write_all(bytes);
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl StateStore {
    /// Writes every entry to `path` (created or truncated) in one pass and syncs it;
    /// returns the file's length. Not atomic: on failure the partial file is removed (best
    /// effort) and a crash may leave it half-written (opening it is then an error). Use
    /// [`write_file_atomic`](Self::write_file_atomic) to replace a file safely.
    pub fn write_file(&self, storage: &dyn Storage, path: &Path) -> Result<u64, StateError> {
        let entries = self.scan_prefix(b"");
        let mut body_len = 0u64;
        let mut crc = 0u32;
        emit_body(&entries, &mut |bytes| {
            body_len += bytes.len() as u64;
            crc = crc32c::crc32c_append(crc, bytes);
            Ok(())
        })
        .map_err(|e| StateError::io("cannot encode state", e))?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[16..24].copy_from_slice(&(entries.len() as u64).to_le_bytes());
        header[24..32].copy_from_slice(&body_len.to_le_bytes());
        header[32..36].copy_from_slice(&crc.to_le_bytes());
        let header_crc = crc32c::crc32c(&header[..36]);
        header[36..40].copy_from_slice(&header_crc.to_le_bytes());

        let write = || -> io::Result<()> {
            let mut file = storage.create(path)?;
            let mut out = Chunked {
                file: &mut *file,
                buf: Vec::with_capacity(CHUNK),
            };
            out.push(&header)?;
            emit_body(&entries, &mut |bytes| out.push(bytes))?;
            out.flush()?;
            file.sync_data()
        };
        if let Err(e) = write() {
            let _ = storage.remove_file(path);
            let context = format!("cannot write state file {}", path.display());
            return Err(StateError::io(context, e));
        }
        Ok(HEADER_LEN as u64 + body_len)
    }

    /// Replaces `path` atomically: writes `<path>.tmp` and syncs it, renames it over
    /// `path`, and syncs the directory. On failure `path` is left as it was (the old file,
    /// or none) and the temporary file is removed (best effort).
    pub fn write_file_atomic(&self, storage: &dyn Storage, path: &Path) -> Result<u64, StateError> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let len = self.write_file(storage, &tmp)?;
        if let Err(e) = storage.rename(&tmp, path) {
            let _ = storage.remove_file(&tmp);
            let context = format!("cannot rename {} to {}", tmp.display(), path.display());
            return Err(StateError::io(context, e));
        }
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        storage.sync_dir(dir).map_err(|e| {
            StateError::io(
                format!("cannot sync directory {} of state file", dir.display()),
                e,
            )
        })?;
        Ok(len)
    }

    /// Opens the state file at `path`: reads it whole, checks its header and checksums,
    /// and indexes its entries; values are then read in place. A truncated or damaged
    /// file is [`StateError::Corrupt`] naming it.
    pub fn open_file(storage: &dyn Storage, path: &Path) -> Result<Self, StateError> {
        let file = path.display().to_string();
        let bytes = storage
            .read_aligned(path)
            .map_err(|e| StateError::io(format!("cannot open state file {file}"), e))?;
        let corrupt = |message: String| StateError::Corrupt {
            file: file.clone(),
            message,
        };
        let entries = index(&bytes).map_err(corrupt)?;
        Ok(Self {
            entries,
            bytes: Some(bytes),
            origin: format!("state file {file}"),
        })
    }
}

/// Reads a little-endian u32 at `at` (the caller checked the bounds).
fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// Reads a little-endian u64 at `at` (the caller checked the bounds).
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

/// Validates a whole state file and indexes its entries.
fn index(bytes: &[u8]) -> Result<FxHashMap<Box<[u8]>, Slot>, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, shorter than the {HEADER_LEN}-byte header",
            bytes.len()
        ));
    }
    if bytes[..8] != MAGIC {
        return Err("not a Laminar state file (bad magic)".to_string());
    }
    if crc32c::crc32c(&bytes[..36]) != u32_at(bytes, 36) {
        return Err("header checksum mismatch".to_string());
    }
    if bytes[40..HEADER_LEN].iter().any(|&b| b != 0) {
        return Err("reserved header bytes are not zero".to_string());
    }
    let version = u32_at(bytes, 8);
    if version != VERSION {
        return Err(format!(
            "format version {version}; this build reads version {VERSION}"
        ));
    }
    let count = u64_at(bytes, 16);
    let body_len = u64_at(bytes, 24);
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if body_len != actual {
        return Err(format!(
            "the header says {body_len} body bytes but the file holds {actual} (truncated?)"
        ));
    }
    if crc32c::crc32c(&bytes[HEADER_LEN..]) != u32_at(bytes, 32) {
        return Err("body checksum mismatch".to_string());
    }
    let mut entries = FxHashMap::default();
    let mut at = HEADER_LEN;
    for i in 0..count {
        let bad = |what: &str| format!("entry {i} at byte offset {at}: {what}");
        if bytes.len() - at < ENTRY_HEADER_LEN {
            return Err(bad("the body ends inside the entry header"));
        }
        let key_len = u32_at(bytes, at) as usize;
        let value_len =
            usize::try_from(u64_at(bytes, at + 8)).map_err(|_| bad("value too large"))?;
        let key_at = at + ENTRY_HEADER_LEN;
        let value_at = key_at
            .checked_add(key_len)
            .map(|end| end + pad(key_len))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| bad("the key runs past the end of the file"))?;
        let next = value_at
            .checked_add(value_len)
            .and_then(|end| end.checked_add(pad(value_len)))
            .filter(|&end| end <= bytes.len())
            .ok_or_else(|| bad("the value runs past the end of the file"))?;
        let key: Box<[u8]> = bytes[key_at..key_at + key_len].into();
        let slot = Slot::InFile {
            offset: value_at,
            len: value_len,
        };
        if entries.insert(key, slot).is_some() {
            return Err(bad("duplicate key"));
        }
        at = next;
    }
    if at != bytes.len() {
        return Err(format!(
            "{} bytes after the last of {count} entries",
            bytes.len() - at
        ));
    }
    Ok(entries)
}
