//! How the WAL writer syncs: [`SyncMode`] and the group-commit knobs of [`WalConfig`].

use std::time::Duration;

/// What a sync of the WAL does, and so what an acknowledged (synced) record survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SyncMode {
    /// Hand the bytes to the operating system (`write`), never `fsync`.
    ///
    /// Survives a crash of the Laminar process (`kill -9`), **not** a crash of the
    /// operating system or a power loss: records reported durable may be lost, and a
    /// segment other than the last may then end torn (recovery reports that as
    /// corruption). For tests and benchmarks, or input that can be produced again.
    Buffer,
    /// `write`, then `fdatasync` of the segment (and of the directory when a segment is
    /// created). The default.
    ///
    /// Survives power loss on storage that honours flushes. Does not guard against
    /// storage that lies about flushes, or bit rot after the fact (the checksums detect
    /// the latter; recovery then stops with an error).
    #[default]
    SyncData,
}

/// Settings of a [`WalWriter`](super::WalWriter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalConfig {
    /// A segment is closed and a new one started before a record would make it longer than
    /// this (a larger single record gets a segment of its own). Default 64 MiB.
    pub segment_size: u64,
    /// What a sync does. Default [`SyncMode::SyncData`].
    pub sync_mode: SyncMode,
    /// Group commit: [`maybe_sync`](super::WalWriter::maybe_sync) syncs when this much time
    /// has passed since the last sync. Default 5 ms.
    pub interval: Duration,
    /// Group commit: `maybe_sync` also syncs once this many bytes wait. Default 1 MiB.
    pub max_pending_bytes: usize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            segment_size: 64 << 20,
            sync_mode: SyncMode::SyncData,
            interval: Duration::from_millis(5),
            max_pending_bytes: 1 << 20,
        }
    }
}

impl WalConfig {
    /// Sets [`segment_size`](Self::segment_size).
    #[must_use]
    pub fn segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = bytes;
        self
    }

    /// Sets [`sync_mode`](Self::sync_mode).
    #[must_use]
    pub fn sync_mode(mut self, mode: SyncMode) -> Self {
        self.sync_mode = mode;
        self
    }

    /// Sets [`interval`](Self::interval).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets [`max_pending_bytes`](Self::max_pending_bytes).
    #[must_use]
    pub fn max_pending_bytes(mut self, bytes: usize) -> Self {
        self.max_pending_bytes = bytes;
        self
    }
}
