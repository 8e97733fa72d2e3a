//! The state store: keyed values (rkyv archives or raw bytes) kept in memory and written
//! to one immutable file per snapshot.
//!
//! A [`StateStore`] is in-memory (tests, runs without `--state-dir`) until written with
//! [`StateStore::write_file_atomic`]; [`StateStore::open_file`] reads such a file whole
//! (aligned) and serves reads from it in place, validated (corrupt bytes are a [`StateError`] naming
//! the file, never undefined behaviour). This module owns the state file format
//! ([`file`]); it knows nothing of operators or checkpoints.

mod error;
mod file;
mod store;

pub use error::StateError;
pub use store::StateStore;

#[cfg(test)]
mod test;
