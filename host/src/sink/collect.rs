//! A sink that keeps results in memory for the caller.

use std::sync::{Arc, Mutex};

use arrow::record_batch::RecordBatch;

use super::Sink;
use crate::error::Result;

/// Collects result batches; clones share the same storage.
#[derive(Debug, Clone, Default)]
pub struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl CollectSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the batches collected so far.
    pub fn take(&self) -> Vec<RecordBatch> {
        match self.batches.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        }
    }
}

impl Sink for CollectSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        match self.batches.lock() {
            Ok(mut b) => b.push(batch.clone()),
            Err(poisoned) => poisoned.into_inner().push(batch.clone()),
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}
