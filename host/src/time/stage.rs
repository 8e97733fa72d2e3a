//! The event-time stage: runs on every source row in arrival order, before any filter.
//! It advances the watermark, drops and counts late rows, and appends each row's window
//! bounds as `window_start` / `window_end` columns.

use std::sync::Arc;

use arrow::array::{ArrayRef, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{event_time_millis, WatermarkGenerator};
use crate::error::{Error, Result};
use crate::source::{keep_rows, SourceBatch};
use crate::sql::{OnError, WINDOW_END, WINDOW_START};
use crate::window::TumblingWindow;

/// Watermark, lateness and window assignment for one windowed query.
#[derive(Debug)]
pub struct EventTimeStage {
    column: usize,
    column_name: String,
    window: TumblingWindow,
    watermark: WatermarkGenerator,
    on_error: OnError,
    schema: SchemaRef,
    late_events: u64,
    bad_rows: u64,
    keep: Vec<u32>,
    starts: Vec<i64>,
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
            column,
            column_name: input.field(column).name().clone(),
            window,
            watermark: WatermarkGenerator::new(delay_ms),
            on_error,
            schema: Arc::new(Schema::new(fields)),
            late_events: 0,
            bad_rows: 0,
            keep: Vec::new(),
            starts: Vec::new(),
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
    pub fn process(&mut self, input: &SourceBatch) -> Result<RecordBatch> {
        self.classify(input, false)?;
        let kept = if self.keep.len() == input.batch.num_rows() {
            input.batch.clone()
        } else {
            keep_rows(input, &self.keep)?.batch
        };
        self.with_windows(&kept)
    }

    /// Classifies every row of `input` like [`process`](Self::process), but returns every
    /// row, with window columns, and which rows are on time (ascending; `None`: all), for
    /// a consumer that copies rows out anyway (the reactor's router) to copy only those.
    /// The window columns of a row that is not on time hold its window, or 0 for a row
    /// without one.
    pub fn process_all(&mut self, input: &SourceBatch) -> Result<(RecordBatch, Option<Vec<u32>>)> {
        self.classify(input, true)?;
        let on_time = (self.keep.len() != input.batch.num_rows()).then(|| self.keep.clone());
        Ok((self.with_windows(&input.batch)?, on_time))
    }

    /// Fills `keep` with the on-time rows of `input` and `starts` with the window start of
    /// each (of every row when `every_row`), counting late and bad rows and advancing the
    /// watermark.
    fn classify(&mut self, input: &SourceBatch, every_row: bool) -> Result<()> {
        let times = event_time_millis(input.batch.column(self.column))?;
        self.keep.clear();
        self.starts.clear();
        // Rows arrive nearly in event-time order, so most fall into the previous row's
        // window: reuse it and skip the division.
        let mut previous: Option<(i64, i64)> = None;
        for (row, t) in times.iter().enumerate() {
            let start = match (t, previous) {
                (Some(t), Some((start, end))) if t >= start && t < end => Some(start),
                (Some(t), _) => {
                    let start = self.window.start_of(t);
                    previous = start.map(|s| (s, self.window.end_of_start(s)));
                    start
                }
                (None, _) => None,
            };
            let (Some(t), Some(start)) = (t, start) else {
                let message = match t {
                    None => format!("event-time column '{}' is NULL", self.column_name),
                    Some(t) => format!(
                        "event time {t} ms in column '{}' is out of range",
                        self.column_name
                    ),
                };
                if self.on_error == OnError::Fail {
                    return Err(Error::BadRow {
                        origin: String::new(),
                        line: input.lines[row],
                        message,
                    });
                }
                self.bad_rows += 1;
                if every_row {
                    self.starts.push(0);
                }
                continue;
            };
            if self.watermark.is_late(self.window.end_of_start(start)) {
                self.late_events += 1;
                if every_row {
                    self.starts.push(start);
                }
            } else {
                self.keep.push(row as u32);
                self.starts.push(start);
            }
            self.watermark.observe(t);
        }
        Ok(())
    }

    /// `rows` with the window columns of `starts` appended.
    fn with_windows(&mut self, rows: &RecordBatch) -> Result<RecordBatch> {
        let size = self.window.size_ms();
        // Hand the buffer to Arrow instead of copying it; it is refilled per batch anyway.
        let starts = std::mem::take(&mut self.starts);
        let ends = TimestampMillisecondArray::from_iter_values(starts.iter().map(|s| s + size));
        let starts = TimestampMillisecondArray::from(starts);
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.push(Arc::new(starts));
        columns.push(Arc::new(ends));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }
}
