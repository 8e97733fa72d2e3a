//! Sinks: where query results go (stdout in a chosen format, files, or memory).

mod collect;
mod file;
mod json;
mod writer;

pub use collect::CollectSink;
pub use file::{finish_commit, partial_path, remove_temporary_files, FileSink, Replace, SinkFile};
pub use writer::{OutputFormat, WriterSink, TABLE_ROWS};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::checkpoint::FileIdentity;
use crate::error::Result;

/// Receives the result batches of one query.
pub trait Sink: Send {
    /// Accepts a batch of results.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Makes everything written so far visible (called after each emission of a live stream).
    fn flush(&mut self) -> Result<()>;
    /// Called once after the last batch.
    fn finish(&mut self) -> Result<()>;

    /// Called instead of [`finish`](Self::finish) when the run stops before its input
    /// ends (a stop request): what the sink already showed stays (rows printed, rows of a
    /// live file, flushed by default), and what only `finish` would have made visible is
    /// dropped (a bounded run's temporary file is removed; its destination stays as it
    /// was).
    fn abandon(&mut self) -> Result<()> {
        self.flush()
    }

    /// The schema of the results to come, told before the first batch, so that a result
    /// without rows is still written whole (a CSV header line). Sinks that need nothing of
    /// it ignore it.
    fn set_schema(&mut self, schema: &SchemaRef) {
        let _ = schema;
    }

    /// For a checkpoint: makes everything written so far durable and returns the sink
    /// file's length and checksum, or `None` for a sink that cannot be resumed (stdout,
    /// memory), which is at-least-once across a crash.
    fn sync(&mut self) -> Result<Option<FileIdentity>> {
        self.flush()?;
        Ok(None)
    }

    /// After checkpoint `id` is durable: makes what the sink wrote before it final where
    /// the sink holds it back until then (an exactly-once Kafka sink commits its
    /// transaction, recording `id` as its commit point).
    fn commit_checkpoint(&mut self, id: u64) -> Result<()> {
        let _ = id;
        Ok(())
    }

    /// For recovery, a sink that commits at checkpoints: `Some` with the id of the newest
    /// checkpoint it committed (`Some(None)`: none yet), which recovery must restore
    /// rather than a newer one; `None` for every other sink.
    fn committed_checkpoint(&self) -> Result<Option<Option<u64>>> {
        Ok(None)
    }

    /// Another process has taken this sink's output over (a partition of a scale-out run
    /// moved while this one was paused): whatever is buffered is dropped without being
    /// written, so that dropping the sink writes nothing either. Sinks that buffer nothing
    /// of their own ignore it.
    fn drop_unwritten(&mut self) {}

    /// For recovery: continues after the bytes the checkpoint recorded (`at`), dropping
    /// whatever a crashed run wrote after them; a file whose first bytes are not those is
    /// refused. `None`: start afresh.
    fn resume(&mut self, at: Option<&FileIdentity>) -> Result<()> {
        let _ = at;
        Ok(())
    }
}
