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
pub const CHECKPOINT_FORMAT: u32 = 3;

/// The state-file key of the manifest.
pub const MANIFEST_KEY: &[u8] = b"manifest";

/// The state-file key prefix of open windows.
pub const WINDOW_PREFIX: &[u8] = b"window/";

/// The state-file key prefix of query `query`'s open windows.
pub fn query_window_prefix(query: u32) -> Vec<u8> {
    let mut key = WINDOW_PREFIX.to_vec();
    key.extend_from_slice(&query.to_be_bytes());
    key.push(b'/');
    key
}

/// The state-file key of query `query`'s window starting at `start`, ordered like the
/// starts.
pub fn window_key(query: u32, start: i64) -> Vec<u8> {
    let mut key = query_window_prefix(query);
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

/// Where one source of the dataflow stood at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SourceMark {
    /// The source's name in the script.
    pub name: String,
    /// Where it stood: everything before it is in the checkpoint's state.
    pub position: SourcePosition,
    /// The source file as read up to `position`'s offset (file sources only), to
    /// recognise it on recovery.
    pub file: Option<FileIdentity>,
    /// Rows it decoded.
    pub events_read: u64,
    /// Rows it skipped as undecodable.
    pub bad_rows: u64,
    /// A Kafka source: the next offset of every partition, where recovery reads on.
    pub kafka: Option<crate::kafka::KafkaPosition>,
}

/// A file sink's durable length and checksum at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct SinkMark {
    /// The sink's name in the script.
    pub name: String,
    /// The file as written up to the checkpoint.
    pub file: FileIdentity,
}

/// One query of the dataflow at a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct QueryMark {
    /// Its run-summary counters.
    pub counters: Counters,
    /// Its watermark generator: the largest event time seen.
    pub max_event_time: Option<i64>,
    /// Its open windows stored beside the manifest.
    pub open_windows: u32,
    /// Groups over its open windows.
    pub groups: u64,
    /// Over a partitioned (Kafka) source: each partition's event-time state (its
    /// `max_event_time` is then the combined one's, for display only).
    pub partitions: Vec<crate::time::PartitionTime>,
}

/// The manifest of one checkpoint of a script's dataflow: one barrier for every source,
/// sink and query.
#[derive(Debug, Clone, PartialEq, Eq, Archive, Serialize, Deserialize)]
pub struct Manifest {
    /// [`CHECKPOINT_FORMAT`] of the writer.
    pub format: u32,
    /// Checkpoint number, 1 for a dataflow's first.
    pub id: u64,
    /// When it was taken (Unix ms); shown by `state inspect`, never used by recovery.
    pub created_unix_ms: i64,
    /// Each source the dataflow reads, in the order of the script.
    pub sources: Vec<SourceMark>,
    /// Each file sink it writes (stdout has none).
    pub sinks: Vec<SinkMark>,
    /// Each query, in the order of the script.
    pub queries: Vec<QueryMark>,
}

impl Manifest {
    /// Open windows over all queries.
    pub fn open_windows(&self) -> u32 {
        self.queries.iter().map(|q| q.open_windows).sum()
    }

    /// Groups over all queries' open windows.
    pub fn groups(&self) -> u64 {
        self.queries.iter().map(|q| q.groups).sum()
    }

    /// The durable identity of sink `name`'s file, if the checkpoint recorded one.
    pub fn sink_file(&self, name: &str) -> Option<&FileIdentity> {
        self.sinks.iter().find(|s| s.name == name).map(|s| &s.file)
    }

    /// Where source `name` stood, if the checkpoint recorded it.
    pub fn source(&self, name: &str) -> Option<&SourceMark> {
        self.sources.iter().find(|s| s.name == name)
    }
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

impl From<&ArchivedSourceMark> for SourceMark {
    fn from(a: &ArchivedSourceMark) -> Self {
        Self {
            name: a.name.as_str().to_string(),
            position: (&a.position).into(),
            file: a.file.as_ref().map(Into::into),
            events_read: a.events_read.to_native(),
            bad_rows: a.bad_rows.to_native(),
            kafka: a.kafka.as_ref().map(Into::into),
        }
    }
}

impl From<&ArchivedQueryMark> for QueryMark {
    fn from(a: &ArchivedQueryMark) -> Self {
        Self {
            counters: (&a.counters).into(),
            max_event_time: a.max_event_time.as_ref().map(|t| t.to_native()),
            open_windows: a.open_windows.to_native(),
            groups: a.groups.to_native(),
            partitions: a
                .partitions
                .iter()
                .map(|p| crate::time::PartitionTime {
                    partition: p.partition.to_native(),
                    max_event_time: p.max_event_time.as_ref().map(|t| t.to_native()),
                    idle: p.idle,
                })
                .collect(),
        }
    }
}

impl From<&ArchivedManifest> for Manifest {
    fn from(a: &ArchivedManifest) -> Self {
        Self {
            format: a.format.to_native(),
            id: a.id.to_native(),
            created_unix_ms: a.created_unix_ms.to_native(),
            sources: a.sources.iter().map(Into::into).collect(),
            sinks: a
                .sinks
                .iter()
                .map(|s| SinkMark {
                    name: s.name.as_str().to_string(),
                    file: (&s.file).into(),
                })
                .collect(),
            queries: a.queries.iter().map(Into::into).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keys_sort_like_window_starts() {
        let mut starts = [-20_000i64, 10_000, -10, 0, i64::MIN, i64::MAX];
        let mut keys: Vec<Vec<u8>> = starts.iter().map(|&s| window_key(1, s)).collect();
        starts.sort();
        keys.sort();
        assert_eq!(
            keys,
            starts.iter().map(|&s| window_key(1, s)).collect::<Vec<_>>()
        );
        assert!(window_key(1, i64::MAX) < window_key(2, i64::MIN));
        assert!(window_key(1, 0).starts_with(&query_window_prefix(1)));
    }

    #[test]
    fn a_manifest_round_trips() {
        let file = FileIdentity {
            len: 42,
            crc32c: 7,
            device: 0,
            inode: 0,
        };
        let manifest = Manifest {
            format: CHECKPOINT_FORMAT,
            id: 3,
            created_unix_ms: 1,
            sources: vec![SourceMark {
                name: "bids".into(),
                position: SourcePosition::Wal { lsn: 9, line: 100 },
                file: None,
                events_read: 7,
                bad_rows: 1,
                kafka: None,
            }],
            sinks: vec![SinkMark {
                name: "out".into(),
                file,
            }],
            queries: vec![QueryMark {
                counters: Counters {
                    events_read: 7,
                    ..Counters::default()
                },
                max_event_time: Some(-5),
                open_windows: 2,
                groups: 10,
                partitions: Vec::new(),
            }],
        };
        let bytes = rkyv::to_bytes::<rkyv::rancor::Error>(&manifest).unwrap();
        let archived = rkyv::access::<ArchivedManifest, rkyv::rancor::Error>(&bytes).unwrap();
        assert_eq!(Manifest::from(archived), manifest);
    }
}
