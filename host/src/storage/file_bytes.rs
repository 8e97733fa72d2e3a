//! [`FileBytes`]: the bytes of a whole file, read into memory at a 16-byte aligned
//! address, so rkyv archives stored at 16-byte aligned offsets can be accessed in place.
//!
//! State files are read whole rather than memory-mapped: recovery copies every value out
//! anyway (window state into accumulators, plugin state into Wasm memory), so a mapping
//! saved nothing and cost an `unsafe` block whose soundness depended on no other process
//! touching the file. A checkpoint file is bounded by the open windows it holds.

use std::fmt;
use std::ops::Deref;

use rkyv::util::AlignedVec;

/// The bytes of a whole file, read-only, starting at an address aligned to 16 bytes.
pub struct FileBytes {
    bytes: AlignedVec<16>,
}

impl FileBytes {
    /// A 16-byte aligned copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Self {
        let mut owned = AlignedVec::<16>::with_capacity(bytes.len());
        owned.extend_from_slice(bytes);
        Self { bytes: owned }
    }
}

impl Deref for FileBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for FileBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBytes")
            .field("len", &self.len())
            .finish()
    }
}
