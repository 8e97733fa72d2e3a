//! [`StateStore`]: the typed get/put/delete/prefix-scan API over an FxHashMap index.

use rkyv::api::high::{HighSerializer, HighValidator};
use rkyv::bytecheck::CheckBytes;
use rkyv::rancor;
use rkyv::ser::allocator::ArenaHandle;
use rkyv::util::AlignedVec;
use rkyv::{Archive, Serialize};
use rustc_hash::FxHashMap;

use super::error::printable;
use super::StateError;
use crate::storage::FileBytes;

/// Where a value's bytes live.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Put since the store was made or opened; 16-byte aligned.
    Owned(AlignedVec<16>),
    /// In the file read, at a 16-byte aligned offset.
    InFile { offset: usize, len: usize },
}

/// Keyed state values: rkyv archives (`put`/`get`, zero-copy and validated) or raw bytes
/// (`put_bytes`/`get_bytes`), every value stored at a 16-byte aligned address.
///
/// Made empty and in memory by [`new`](Self::new), or from a state file by
/// [`open_file`](Self::open_file); either can be changed and written out with
/// [`write_file_atomic`](Self::write_file_atomic). Values read from a file stay in its
/// bytes until overwritten or deleted.
#[derive(Debug)]
pub struct StateStore {
    pub(crate) entries: FxHashMap<Box<[u8]>, Slot>,
    pub(crate) bytes: Option<FileBytes>,
    /// The file the store was opened from, or "in-memory state": named in errors.
    pub(crate) origin: String,
}

impl Default for StateStore {
    fn default() -> Self {
        Self::new()
    }
}

impl StateStore {
    /// An empty in-memory store.
    pub fn new() -> Self {
        Self {
            entries: FxHashMap::default(),
            bytes: None,
            origin: "in-memory state".to_string(),
        }
    }

    /// Stores `value` under `key` as an rkyv archive, replacing any previous value.
    pub fn put<T>(&mut self, key: &[u8], value: &T) -> Result<(), StateError>
    where
        T: for<'a> Serialize<HighSerializer<AlignedVec, ArenaHandle<'a>, rancor::Error>>,
    {
        let bytes = rkyv::to_bytes::<rancor::Error>(value).map_err(|e| StateError::Serialize {
            key: printable(key),
            message: e.to_string(),
        })?;
        self.entries.insert(key.into(), Slot::Owned(bytes));
        Ok(())
    }

    /// Stores raw bytes under `key` (read back with [`get_bytes`](Self::get_bytes), at a
    /// 16-byte aligned address), replacing any previous value.
    pub fn put_bytes(&mut self, key: &[u8], bytes: &[u8]) {
        let mut owned = AlignedVec::<16>::with_capacity(bytes.len());
        owned.extend_from_slice(bytes);
        self.entries.insert(key.into(), Slot::Owned(owned));
    }

    /// The archived value under `key`, validated (a value that is not a valid archive of
    /// `T` is [`StateError::InvalidValue`]), without copying it.
    pub fn get<T>(&self, key: &[u8]) -> Result<Option<&T::Archived>, StateError>
    where
        T: Archive,
        T::Archived: for<'a> CheckBytes<HighValidator<'a, rancor::Error>>,
    {
        let Some(bytes) = self.get_bytes(key) else {
            return Ok(None);
        };
        rkyv::access::<T::Archived, rancor::Error>(bytes)
            .map(Some)
            .map_err(|e| StateError::InvalidValue {
                origin: self.origin.clone(),
                key: printable(key),
                message: e.to_string(),
            })
    }

    /// The bytes stored under `key`.
    pub fn get_bytes(&self, key: &[u8]) -> Option<&[u8]> {
        self.slot_bytes(self.entries.get(key)?)
    }

    /// Whether a value is stored under `key`.
    pub fn contains_key(&self, key: &[u8]) -> bool {
        self.entries.contains_key(key)
    }

    /// Removes the value under `key`; returns whether there was one.
    pub fn delete(&mut self, key: &[u8]) -> bool {
        self.entries.remove(key).is_some()
    }

    /// The number of stored values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every `(key, bytes)` whose key starts with `prefix`, sorted by key.
    pub fn scan_prefix(&self, prefix: &[u8]) -> Vec<(&[u8], &[u8])> {
        let mut found: Vec<(&[u8], &[u8])> = self
            .entries
            .iter()
            .filter(|(key, _)| key.starts_with(prefix))
            .filter_map(|(key, slot)| Some((&key[..], self.slot_bytes(slot)?)))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(b.0));
        found
    }

    /// The file this store was opened from, or "in-memory state".
    pub fn origin(&self) -> &str {
        &self.origin
    }

    fn slot_bytes<'a>(&'a self, slot: &'a Slot) -> Option<&'a [u8]> {
        match slot {
            Slot::Owned(bytes) => Some(bytes),
            Slot::InFile { offset, len } => self.bytes.as_ref()?.get(*offset..*offset + *len),
        }
    }
}
