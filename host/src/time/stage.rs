//! The event-time stage: runs on every source row in arrival order, before any filter.
//! It advances the watermark, drops and counts late rows, and appends each row's window
//! bounds as `window_start` / `window_end` columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{EventTimeRule, LocalTimes, WatermarkGenerator};
use crate::error::{Error, Result};
use crate::source::SourceBatch;
use crate::sql::{OnError, WINDOW_END, WINDOW_START};
use crate::window::TumblingWindow;

/// Watermark, lateness and window assignment for one windowed query.
///
/// Each batch is classified in two halves (see [`LocalTimes`]): the local pass, which a
/// source's decoder thread may already have run on it, and the completion here, in
/// arrival order, with the watermark of every row before the batch.
#[derive(Debug)]
pub struct EventTimeStage {
    rule: EventTimeRule,
    watermark: WatermarkGenerator,
    on_error: OnError,
    schema: SchemaRef,
    late_events: u64,
    bad_rows: u64,
}

impl EventTimeStage {
    /// A stage reading event time from column `column` of `input`.
    pub fn new(
        input: &SchemaRef,
        column: usize,
        window: TumblingWindow,
        delay_ms: i64,
        on_error: OnError,
    ) -> Self {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in [WINDOW_START, WINDOW_END] {
            fields.push(Field::new(name, Self::window_type(), false));
        }
        Self {
            rule: EventTimeRule {
                column,
                column_name: input.field(column).name().as_str().into(),
                window,
                delay_ms,
            },
            watermark: WatermarkGenerator::new(delay_ms),
            on_error,
            schema: Arc::new(Schema::new(fields)),
            late_events: 0,
            bad_rows: 0,
        }
    }

    /// The type of the window columns.
    pub fn window_type() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    /// The input schema plus the two window columns.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// What a source needs to run the local pass on its decoder threads.
    pub fn rule(&self) -> EventTimeRule {
        self.rule.clone()
    }

    /// Late events dropped so far.
    pub fn late_events(&self) -> u64 {
        self.late_events
    }

    /// Rows skipped for a NULL or out-of-range event time (with `on_error = 'skip'`).
    pub fn bad_rows(&self) -> u64 {
        self.bad_rows
    }

    /// The watermark after every row seen so far.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark.current()
    }

    /// The largest event time seen so far: the watermark generator's state.
    pub fn max_event_time(&self) -> Option<i64> {
        self.watermark.max_event_time()
    }

    /// Brings back the state a checkpoint recorded: the largest event time seen and the
    /// late and bad rows counted before it.
    pub fn restore(&mut self, max_event_time: Option<i64>, late_events: u64, bad_rows: u64) {
        self.watermark.restore(max_event_time);
        self.late_events = late_events;
        self.bad_rows = bad_rows;
    }

    /// Classifies every row of `input`, returning the on-time rows with window columns.
    pub fn process(&mut self, input: &mut SourceBatch) -> Result<RecordBatch> {
        let local = self.classify(input)?;
        let Some(kept) = local.kept else {
            return self.with_windows(&input.batch, local.starts);
        };
        let starts = kept.iter().map(|&row| local.starts[row as usize]).collect();
        let rows = take_record_batch(&input.batch, &UInt32Array::from(kept))?;
        self.with_windows(&rows, starts)
    }

    /// Classifies every row of `input` like [`process`](Self::process), but returns every
    /// row, with window columns, and which rows are on time (ascending; `None`: all), for
    /// a consumer that copies rows out anyway (the reactor's router) to copy only those.
    /// The window columns of a row that is not on time hold its window, or 0 for a row
    /// without one.
    pub fn process_all(
        &mut self,
        input: &mut SourceBatch,
    ) -> Result<(RecordBatch, Option<Vec<u32>>)> {
        let local = self.classify(input)?;
        Ok((self.with_windows(&input.batch, local.starts)?, local.kept))
    }

    /// The local pass of `input` (the source's, where it ran one, else run here),
    /// completed with the watermark before it; counts late and bad rows and advances the
    /// watermark.
    fn classify(&mut self, input: &mut SourceBatch) -> Result<LocalTimes> {
        let mut local = match input.times.take() {
            Some(local) if local.starts.len() == input.batch.num_rows() => local,
            _ => self.rule.local(&input.batch)?,
        };
        if let Some((row, message)) = local.first_bad.take() {
            if self.on_error == OnError::Fail {
                return Err(Error::BadRow {
                    origin: String::new(),
                    line: input.lines.get(row).copied().unwrap_or_default(),
                    message,
                });
            }
        }
        local.complete(self.watermark.current(), &self.rule.window);
        self.late_events += local.late;
        self.bad_rows += local.bad;
        if let Some(max) = local.max_time {
            self.watermark.observe(max);
        }
        Ok(local)
    }

    /// `rows` with the window columns of `starts` (one a row) appended.
    fn with_windows(&self, rows: &RecordBatch, starts: Vec<i64>) -> Result<RecordBatch> {
        let size = self.rule.window.size_ms();
        let ends = TimestampMillisecondArray::from_iter_values(starts.iter().map(|s| s + size));
        // The starts' buffer becomes the column as it is.
        let starts = TimestampMillisecondArray::from(starts);
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.push(Arc::new(starts));
        columns.push(Arc::new(ends));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
