//! Sources: where rows come from (files, stdin, in-memory batches) and how they are decoded.

mod decode;
mod file;
mod file_input;
mod header;
mod input_log;
mod kafka;
mod kafka_key;
mod line_decoder;
mod line_source;
mod lines;
mod memory;
mod pipeline;
mod plain_csv;
mod ranges;
mod stdin;
mod timestamps;

pub use input_log::InputLog;
pub use kafka::{KafkaSource, PartitionBatch};
pub use line_source::LineSource;
pub use memory::MemorySource;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::checkpoint::FileIdentity;
use crate::checkpoint::SourcePosition;
use crate::error::Result;
use crate::time::LocalTimes;

/// A decoded batch and the input line (or row number) of each of its rows.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows.
    pub batch: RecordBatch,
    /// 1-based line (or row) number of every row, for error messages.
    pub lines: Vec<u64>,
    /// The event-time local pass over the rows, where the source ran it on the thread
    /// that decoded them (`None`: the query's event-time stage runs it).
    pub times: Option<LocalTimes>,
    /// The source partition every row came from (Kafka), `None` for unpartitioned
    /// sources: event time is then kept per partition.
    pub partition: Option<i32>,
}

/// A stream of decoded batches in arrival order.
pub trait Source: Send {
    /// The next batch, or `None` at the end of (bounded) input. An unbounded source may
    /// return a batch of no rows when its input has paused (an idle tick), so that the
    /// caller can do timed work such as a checkpoint.
    fn next_batch(&mut self) -> Result<Option<SourceBatch>>;
    /// The declared schema of every batch.
    fn schema(&self) -> SchemaRef;
    /// A name for error messages: a file path, `stdin`, or the source name.
    fn origin(&self) -> &str;
    /// Whether the input may never end (results must then be flushed as they come).
    fn is_unbounded(&self) -> bool;
    /// Rows skipped because they could not be decoded (with `on_error = 'skip'`).
    fn bad_rows_skipped(&self) -> u64;

    /// Where the source stands: every row before it has been returned by `next_batch`.
    /// A checkpoint records it; recovery reads on from there.
    fn position(&self) -> SourcePosition;

    /// Before a checkpoint at [`position`](Self::position): makes the input before it
    /// durable where the source logs it (stdin's write-ahead log).
    fn sync_input(&mut self) -> Result<()> {
        Ok(())
    }

    /// For a checkpoint at [`position`](Self::position): the identity of the file read
    /// up to there (file sources; `None` for others), which recovery checks.
    fn file_identity(&mut self) -> Result<Option<FileIdentity>> {
        Ok(None)
    }

    /// The source's partitions, for event time per partition (`None`: one stream).
    fn partitions(&self) -> Option<Vec<i32>> {
        None
    }

    /// The partitions idle now (no row for the source's `idle_timeout` and caught up
    /// with their end): left out of the combined watermark.
    fn idle_partitions(&self) -> Vec<i32> {
        Vec::new()
    }

    /// For a checkpoint of a Kafka source: the next offset of every partition, which
    /// recovery reads on from ([`position`](Self::position) is a count only).
    fn kafka_position(&self) -> Option<crate::kafka::KafkaPosition> {
        None
    }

    /// How long a read may wait for input before it returns an empty batch (a live
    /// source; the others ignore it). A scale-out run reads many partitions' sources in
    /// turn and keeps each wait short, so that a quiet partition does not hold the others
    /// up.
    fn set_idle_wait(&mut self, wait: std::time::Duration) {
        let _ = wait;
    }

    /// The run is stopping before its input ends: nothing more is read. A source that
    /// logs its input (stdin of a durable run) closes its log, so that a reading thread
    /// logs nothing more, and returns the last input line the log holds: a producer
    /// resends the lines after it.
    fn stop_reading(&mut self) -> Option<u64> {
        None
    }

    /// After a checkpoint at `position` was committed: drops logged input before it.
    fn release_input(&mut self, position: &SourcePosition) -> Result<()> {
        let _ = position;
        Ok(())
    }
}
