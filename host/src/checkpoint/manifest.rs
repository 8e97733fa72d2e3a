//! What one checkpoint records besides the open windows: where the source and the sink
//! stood, the watermark generator and every run-summary counter.
//!
//! A checkpoint is one state file (`checkpoints/<id>.ckpt`, see [`crate::state`]): the
//! manifest under [`MANIFEST_KEY`] and one [`WindowRecord`](super::WindowRecord) per open
//! window under [`window_key`]. The file is written beside its final name, synced and
//! renamed, and the directory synced: the rename is the commit.

use rkyv::{Archive, Deserialize, Serialize};

use super::identity::FileIdentity;

/// Version of the checkpoint layout; a state dir of another version is refused.
pub const CHECKPOINT_FORMAT: u32 = 2;

/// The state-file key of the manifest.
pub const MANIFEST_KEY: &[u8] = b"manifest";

/// The state-file key prefix of open windows.
pub const WINDOW_PREFIX: &[u8] = b"window/";

/// The state-file key of the window starting at `start`, ordered like the starts.
pub fn window_key(start: i64) -> Vec<u8> {
    let mut key = WINDOW_PREFIX.to_vec();
    // Flipping the sign bit makes the big-endian bytes sort like the signed numbers.
    key.extend_from_slice(&((start as u64) ^ (1 << 63)).to_be_bytes());
    key
}

/// Where the source stood when a checkpoint was taken: everything before it is in the
/// checkpoint's state, everything after it is read again on recovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub enum SourcePosition {
    /// Nothing read yet.
    Start,
    /// A file: the byte offset of the next line to read and the number of lines before it.
    File {
        /// Byte offset of the next unread line.
        offset: u64,
        /// Lines read before it (blank lines and the header included).
        line: u64,
    },
    /// Stdin through the write-ahead log: the last WAL record processed and the last
    /// input line it held.
    Wal {
        /// Sequence number of the last processed WAL record.
        lsn: u64,
        /// The last input line that record held.
        line: u64,
    },
    /// In-memory batches: how many of their rows were processed.
    Rows {
        /// Rows processed.
        rows: u64,
    },
}

/// Every counter of the run summary, as they stood at the checkpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Counters {
    /// Rows decoded from the source.
    pub events_read: u64,
    /// Late events dropped.
    pub late_events_dropped: u64,
    /// Rows the source skipped as undecodable.
    pub source_bad_rows: u64,
    /// Rows skipped for a NULL or out-of-range event time.
    pub event_time_bad_rows: u64,
    /// Windows emitted.
    pub windows_emitted: u64,
    /// Result rows written.
    pub rows_emitted: u64,
}

/// The manifest of one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Manifest {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    /// Checkpoint number, 1 for a query's first.
    pub id: u64,
    /// When it was taken (Unix ms); shown by `state inspect`, never used by recovery.
    pub created_unix_ms: i64,
    /// Where the source stood.
    pub source: SourcePosition,
    /// The source file as read up to `source`'s offset (file sources only), to
    /// recognise it on recovery.
    pub source_file: Option<FileIdentity>,
    /// The sink file's durable length and checksum (`None` for stdout and memory sinks).
    pub sink_file: Option<FileIdentity>,
    /// The late sink file's (`LATE DATA TO`), likewise.
    pub late_sink_file: Option<FileIdentity>,
    /// The run-summary counters.
    pub counters: Counters,
    /// The watermark generator: the largest event time seen.
    pub max_event_time: Option<i64>,
    /// Open windows stored beside the manifest.
    pub open_windows: u32,
    /// Groups over all open windows.
    pub groups: u64,
}

impl From<&ArchivedCounters> for Counters {
    fn from(a: &ArchivedCounters) -> Self {
        Self {
            events_read: a.events_read.to_native(),
            late_events_dropped: a.late_events_dropped.to_native(),
            source_bad_rows: a.source_bad_rows.to_native(),
            event_time_bad_rows: a.event_time_bad_rows.to_native(),
            windows_emitted: a.windows_emitted.to_native(),
            rows_emitted: a.rows_emitted.to_native(),
        }
    }
}

impl From<&ArchivedSourcePosition> for SourcePosition {
    fn from(a: &ArchivedSourcePosition) -> Self {
        match a {
            ArchivedSourcePosition::Start => Self::Start,
            ArchivedSourcePosition::File { offset, line } => Self::File {
                offset: offset.to_native(),
                line: line.to_native(),
            },
            ArchivedSourcePosition::Wal { lsn, line } => Self::Wal {
                lsn: lsn.to_native(),
                line: line.to_native(),
            },
            ArchivedSourcePosition::Rows { rows } => Self::Rows {
                rows: rows.to_native(),
            },
        }
    }
}

impl From<&ArchivedManifest> for Manifest {
    fn from(a: &ArchivedManifest) -> Self {
        Self {
            format: a.format.to_native(),
            id: a.id.to_native(),
            created_unix_ms: a.created_unix_ms.to_native(),
            source: (&a.source).into(),
            source_file: a.source_file.as_ref().map(Into::into),
            sink_file: a.sink_file.as_ref().map(Into::into),
            late_sink_file: a.late_sink_file.as_ref().map(Into::into),
            counters: (&a.counters).into(),
            max_event_time: a.max_event_time.as_ref().map(|t| t.to_native()),
            open_windows: a.open_windows.to_native(),
            groups: a.groups.to_native(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_sort_like_window_starts() {
        let mut starts = [-20_000i64, 10_000, -10, 0, i64::MIN, i64::MAX];
        let mut keys: Vec<Vec<u8>> = starts.iter().map(|&s| window_key(s)).collect();
        starts.sort();
        keys.sort();
        assert_eq!(
            keys,
            starts.iter().map(|&s| window_key(s)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_manifest_round_trips() {
        let manifest = Manifest {
            format: CHECKPOINT_FORMAT,
            id: 3,
            created_unix_ms: 1,
            source: SourcePosition::Wal { lsn: 9, line: 100 },
            source_file: None,
            sink_file: Some(FileIdentity {
                len: 42,
                crc32c: 7,
                device: 0,
                inode: 0,
            }),
            late_sink_file: None,
            counters: Counters {
                events_read: 7,
                ..Counters::default()
            },
            max_event_time: Some(-5),
            open_windows: 2,
            groups: 10,
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&manifest).unwrap();
        let archived = rkyv::access::<ArchivedManifest, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(Manifest::from(archived), manifest);
    }
}
