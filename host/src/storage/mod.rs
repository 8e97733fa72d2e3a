//! The I/O seam of durability: every durable file operation of the WAL, the state store,
//! checkpoint manifests and the file sink goes through [`Storage`] (as redb's
//! `StorageBackend`), so tests can inject disk-full, short writes and fsync failures.
//!
//! This module owns the trait, the real file-system implementation ([`FsStorage`]), the
//! fault-injecting test wrapper ([`FaultyStorage`]), the in-memory file system that
//! drops what was not synced at a crash ([`CrashStorage`]) and whole files read at an
//! aligned address ([`FileBytes`]). It must not know any file format.

mod backend;
mod crash;
mod faulty;
mod file_bytes;
mod fs;

pub use backend::{parent_of, Storage, StorageFile};
pub use crash::CrashStorage;
pub use faulty::FaultyStorage;
pub use file_bytes::FileBytes;
pub use fs::FsStorage;

#[cfg(test)]
mod test;
