//! A bounded source over Arrow batches held in memory (embedding, tests, benchmarks).

use std::collections::VecDeque;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::{Source, SourceBatch};
use crate::checkpoint::SourcePosition;
use crate::error::Result;

/// Replays batches in order, re-cut to the engine's batch size.
pub struct MemorySource {
    name: String,
    schema: SchemaRef,
    batches: VecDeque<RecordBatch>,
    batch_size: usize,
    next_row: u64,
}

impl MemorySource {
    /// A source named `name` over `batches` (all of `schema`).
    pub fn new(
        name: &str,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
        batch_size: usize,
    ) -> Self {
        Self {
            name: format!("source '{name}' row"),
            schema,
            batches: batches.into(),
            batch_size: batch_size.max(1),
            next_row: 1,
        }
    }
}

impl Source for MemorySource {
    fn next_batch(&mut self) -> Result<Option<SourceBatch>> {
        while let Some(front) = self.batches.pop_front() {
            if front.num_rows() == 0 {
                continue;
            }
            let batch = if front.num_rows() > self.batch_size {
                let rest = front.slice(self.batch_size, front.num_rows() - self.batch_size);
                self.batches.push_front(rest);
                front.slice(0, self.batch_size)
            } else {
                front
            };
            let lines = (self.next_row..self.next_row + batch.num_rows() as u64).collect();
            self.next_row += batch.num_rows() as u64;
            return Ok(Some(SourceBatch {
                batch,
                lines,
                times: None,
                partition: None,
            }));
        }
        Ok(None)
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn origin(&self) -> &str {
        &self.name
    }

    fn is_unbounded(&self) -> bool {
        false
    }

    fn bad_rows_skipped(&self) -> u64 {
        0
    }

    fn position(&self) -> SourcePosition {
        SourcePosition::Rows {
            rows: self.next_row - 1,
        }
    }
}

impl MemorySource {
    /// Skips the first `rows` rows (they were processed before a checkpoint).
    pub fn skip_rows(&mut self, mut rows: u64) {
        while rows > 0 {
            let Some(front) = self.batches.pop_front() else {
                break;
            };
            let n = front.num_rows() as u64;
            if n > rows {
                let keep = front.slice(rows as usize, (n - rows) as usize);
                self.batches.push_front(keep);
                self.next_row += rows;
                break;
            }
            self.next_row += n;
            rows -= n;
        }
    }
}
