//! [`MappedFile`]: a read-only view of a whole file, memory-mapped when it comes from the
//! file system. The only module of Laminar with `unsafe`: one block, the mapping itself.
#![allow(unsafe_code)]

use std::fmt;
use std::fs::File;
use std::ops::Deref;
use std::path::Path;

use rkyv::util::AlignedVec;

/// The bytes of a whole file, read-only, starting at an address aligned to 16 bytes (a
/// page, when mapped), so rkyv archives stored at 16-byte aligned offsets can be accessed
/// in place.
pub struct MappedFile {
    bytes: Bytes,
}

enum Bytes {
    /// A read-only memory map of the file.
    Mapped(memmap2::Mmap),
    /// A copy (empty files, storages without mappings, tests).
    Owned(AlignedVec<16>),
}

impl MappedFile {
    /// Maps the file at `path` read-only.
    ///
    /// The file must not be changed or truncated while the mapping lives (Laminar's state
    /// files are written once, under a temporary name, and never modified after the rename).
    pub(crate) fn map(path: &Path) -> std::io::Result<Self> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Self::copy_of(&[]));
        }
        // SAFETY: memmap2 requires that the file is not modified while mapped. The map is
        // read-only, and Laminar never writes to, truncates or replaces in place a file it
        // maps: state files are written once under a temporary name, synced, renamed into
        // place and never changed after. The state directory belongs to one Laminar
        // process; another process writing these files behind its back is outside what
        // any memory-mapping reader can defend against, and is documented as unsupported.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Self {
            bytes: Bytes::Mapped(map),
        })
    }

    /// A 16-byte aligned copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Self {
        let mut owned = AlignedVec::<16>::with_capacity(bytes.len());
        owned.extend_from_slice(bytes);
        Self {
            bytes: Bytes::Owned(owned),
        }
    }

    /// Whether the bytes are a memory map (not a copy).
    pub fn is_mapped(&self) -> bool {
        matches!(self.bytes, Bytes::Mapped(_))
    }
}

impl Deref for MappedFile {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(map) => map,
            Bytes::Owned(vec) => vec,
        }
    }
}

impl fmt::Debug for MappedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MappedFile")
            .field("len", &self.len())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}
