//! Sinks: where query results go (stdout in a chosen format, files, or memory).

mod collect;
mod file;
mod writer;

pub use collect::CollectSink;
pub use file::{finish_commit, partial_path, FileSink, Replace, SinkFile};
pub use writer::{OutputFormat, WriterSink, TABLE_ROWS};

use arrow::record_batch::RecordBatch;

use crate::error::Result;

/// Receives the result batches of one query.
pub trait Sink: Send {
    /// Accepts a batch of results.
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;
    /// Makes everything written so far visible (called after each emission of a live stream).
    fn flush(&mut self) -> Result<()>;
    /// Called once after the last batch.
    fn finish(&mut self) -> Result<()>;

    /// For a checkpoint: makes everything written so far durable and returns the sink's
    /// length in bytes, or `None` for a sink that cannot be resumed (stdout, memory), which
    /// is at-least-once across a crash.
    fn sync(&mut self) -> Result<Option<u64>> {
        self.flush()?;
        Ok(None)
    }

    /// For recovery: continues after `len` bytes (the length the checkpoint recorded),
    /// dropping whatever a crashed run wrote after it. `None`: start afresh.
    fn resume(&mut self, len: Option<u64>) -> Result<()> {
        let _ = len;
        Ok(())
    }
}
