//! Sinks: where query results go (stdout in a chosen format, files, or memory).

mod collect;
mod writer;

pub use collect::CollectSink;
pub use writer::{OutputFormat, WriterSink};

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
}
