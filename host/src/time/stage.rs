//! The event-time stage: runs on every source row in arrival order, before any filter.
//! It advances the watermark, drops and counts late rows, and appends each row's window
//! bounds as `window_start` / `window_end` columns: one row per window that is still open
//! for HOP and CUMULATE (a row of several windows is repeated), and for SESSION, whose
//! windows and lateness the operator decides per key, the row's event time and the
//! watermark before it (`i64::MIN` before the first row).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use super::{
    event_time_millis, EventTimeRule, LocalTimes, PartitionTime, PartitionWatermarks,
    WatermarkGenerator,
};
use crate::error::{Error, Result};
use crate::source::SourceBatch;
use crate::sql::{OnError, WINDOW_END, WINDOW_START};
use crate::window::WindowSpec;

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
    /// Late rows kept for a late sink (`None`: not kept).
    late_rows: Option<Vec<RecordBatch>>,
    /// HOP and CUMULATE rows go to the aggregate once, with their pane (slice), in pieces
    /// cut where the watermark crosses a window end (see [`slice`](Self::slice)).
    sliced: bool,
    /// Over a partitioned source (Kafka): a watermark per partition, in place of
    /// `watermark` (see [`partition_by`](Self::partition_by)).
    partitions: Option<PartitionWatermarks>,
}

impl EventTimeStage {
    /// A stage reading event time from column `column` of `input`.
    pub fn new(
        input: &SchemaRef,
        column: usize,
        window: WindowSpec,
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
            late_rows: None,
            sliced: false,
            partitions: None,
        }
    }

    /// Keeps event time per partition of a partitioned source (Kafka): a row is late iff
    /// its window end is at or before its own partition's watermark, and windows close on
    /// the minimum over the partitions ([`PartitionWatermarks`]). Batches then name their
    /// partition ([`SourceBatch::partition`]).
    pub fn partition_by(&mut self, partitions: Vec<i32>) {
        self.partitions = Some(PartitionWatermarks::new(self.rule.delay_ms, partitions));
    }

    /// Marks `idle` partitions idle (a partition wakes with its next row): they no longer
    /// hold the watermark back. Returns the watermark after.
    pub fn set_idle(&mut self, idle: &[i32]) -> Option<i64> {
        if let Some(partitions) = &mut self.partitions {
            for &partition in idle {
                if !partitions.is_idle(partition) {
                    partitions.set_idle(partition, true);
                }
            }
        }
        self.watermark()
    }

    /// Each partition's event-time state, for a checkpoint (empty when not partitioned).
    pub fn partition_times(&self) -> Vec<PartitionTime> {
        self.partitions
            .as_ref()
            .map(PartitionWatermarks::snapshot)
            .unwrap_or_default()
    }

    /// Brings back each partition's event-time state from a checkpoint.
    pub fn restore_partitions(&mut self, times: &[PartitionTime]) {
        if let Some(partitions) = &mut self.partitions {
            partitions.restore(times);
        }
    }

    /// HOP and CUMULATE: hand each kept row to the aggregate once, its `window_start` /
    /// `window_end` the bounds of its pane (the slide or step holding it), in pieces cut
    /// wherever the watermark crosses a window end ([`process_pieces`](Self::process_pieces)):
    /// an aggregate that closes every window the watermark before a piece has reached,
    /// then adds the piece's rows to their panes, gives each row to exactly its windows
    /// still open at its own watermark. No effect on other kinds.
    pub fn slice(&mut self) {
        self.sliced = matches!(
            self.rule.window,
            WindowSpec::Hop { .. } | WindowSpec::Cumulate { .. }
        );
    }

    /// Whether rows go to the aggregate by pane ([`slice`](Self::slice)).
    pub fn sliced(&self) -> bool {
        self.sliced
    }

    /// Classifies every row of `input`, returning the on-time rows with window columns in
    /// pieces, each with the watermark after its last row: one piece, with the watermark
    /// after the batch, unless the rows are [`sliced`](Self::slice).
    pub fn process_pieces(
        &mut self,
        input: &mut SourceBatch,
    ) -> Result<Vec<(RecordBatch, Option<i64>)>> {
        if !self.sliced {
            let batch = self.process(input)?;
            return Ok(vec![(batch, self.watermark())]);
        }
        let (local, carried) = self.classify(input)?;
        let (batch, mut cuts) = self.panes(&input.batch, &local, carried)?;
        if self.partitions.is_some() {
            // A cut's watermark is the batch's partition's; windows close on the minimum
            // over partitions, which the other partitions' watermarks (unchanged by this
            // batch) may hold lower: at most the combined one after the batch.
            let combined = self.watermark();
            cuts.retain(|_| combined.is_some());
            for (_, watermark) in &mut cuts {
                *watermark = combined.map_or(*watermark, |c| (*watermark).min(c));
            }
        }
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        let mut from = 0;
        for (at, watermark) in cuts {
            if at > from {
                pieces.push((batch.slice(from, at - from), Some(watermark)));
                from = at;
            } else if let Some(last) = pieces.last_mut() {
                last.1 = Some(watermark);
            }
        }
        pieces.push((batch.slice(from, batch.num_rows() - from), self.watermark()));
        Ok(pieces)
    }

    /// The kept rows of a sliced batch with their panes' bounds, and where the pieces are
    /// cut: before output row `at`, after which the watermark is `watermark` (that of the
    /// first row of the next piece).
    fn panes(
        &self,
        batch: &RecordBatch,
        local: &LocalTimes,
        carried: Option<i64>,
    ) -> Result<(RecordBatch, Vec<(usize, i64)>)> {
        let spec = self.rule.window;
        let width = spec.pane_width().unwrap_or(1);
        let times = event_time_millis(batch.column(self.rule.column))?;
        let rows = batch.num_rows();
        let mut indices: Vec<u32> = Vec::with_capacity(rows);
        let mut starts = Vec::with_capacity(rows);
        let mut cuts = Vec::new();
        let watermark_of =
            |max: Option<i64>| max.map(|m: i64| m.saturating_sub(self.rule.delay_ms));
        let mut max = carried;
        // The watermark the current piece started with.
        let mut piece_watermark = watermark_of(max);
        let mut next_kept = 0;
        for row in 0..rows {
            let t = times.is_valid(row).then(|| times.value(row));
            let pane = t.and_then(|t| spec.pane_of(t));
            let (Some(t), Some(pane)) = (t, pane) else {
                continue;
            };
            let watermark = watermark_of(max);
            if let Some(wm) = watermark {
                let crosses = match piece_watermark {
                    Some(before) => spec.closes_more(before, wm),
                    None => true,
                };
                if crosses {
                    cuts.push((indices.len(), wm));
                    piece_watermark = Some(wm);
                }
            }
            let kept = match &local.kept {
                None => true,
                Some(kept) => {
                    while next_kept < kept.len() && (kept[next_kept] as usize) < row {
                        next_kept += 1;
                    }
                    kept.get(next_kept) == Some(&(row as u32))
                }
            };
            if kept {
                indices.push(row as u32);
                starts.push(pane);
            }
            max = Some(max.map_or(t, |m| m.max(t)));
        }
        let ends = starts.iter().map(|s| s + width).collect();
        let rows = if indices.len() == batch.num_rows() {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(indices))?
        };
        Ok((self.with_columns(&rows, starts, ends)?, cuts))
    }

    /// Keeps every late row, with all its source columns, for
    /// [`take_late_rows`](Self::take_late_rows) (`EMIT … LATE DATA TO sink`).
    pub fn keep_late_rows(&mut self) {
        self.late_rows.get_or_insert_with(Vec::new);
    }

    /// The late rows since the last call, in arrival order (empty when they are not kept).
    pub fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        self.late_rows
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
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

    /// The watermark windows close on, after every row seen so far: over a partitioned
    /// source, the minimum over its partitions.
    pub fn watermark(&self) -> Option<i64> {
        match &self.partitions {
            Some(partitions) => partitions.combined(),
            None => self.watermark.current(),
        }
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
        let (local, carried) = self.classify(input)?;
        if !matches!(self.rule.window, WindowSpec::Tumble { .. }) {
            return self.expand(&input.batch, &local, carried);
        }
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
    /// without one. HOP, CUMULATE and SESSION return the rows of [`process`](Self::process)
    /// (one per window) and `None`.
    pub fn process_all(
        &mut self,
        input: &mut SourceBatch,
    ) -> Result<(RecordBatch, Option<Vec<u32>>)> {
        let (local, carried) = self.classify(input)?;
        if !matches!(self.rule.window, WindowSpec::Tumble { .. }) {
            return Ok((self.expand(&input.batch, &local, carried)?, None));
        }
        Ok((self.with_windows(&input.batch, local.starts)?, local.kept))
    }

    /// The local pass of `input` (the source's, where it ran one, else run here),
    /// completed with the watermark before it; counts late and bad rows and advances the
    /// watermark. Returns it with the largest event time before the batch.
    fn classify(&mut self, input: &mut SourceBatch) -> Result<(LocalTimes, Option<i64>)> {
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
        // Over a partitioned source, the batch's partition's own generator.
        let generator = match (&mut self.partitions, input.partition) {
            (Some(partitions), Some(partition)) => partitions.generator_mut(partition),
            _ => &mut self.watermark,
        };
        local.complete(generator.current(), &self.rule.window);
        let carried = generator.max_event_time();
        if let Some(max) = local.max_time {
            generator.observe(max);
        }
        self.late_events += local.late;
        self.bad_rows += local.bad;
        if local.late > 0 && self.late_rows.is_some() {
            let late = self.late_rows_of(&input.batch, &local)?;
            self.late_rows.get_or_insert_with(Vec::new).push(late);
        }
        Ok((local, carried))
    }

    /// The rows of `batch` the classification `local` found late: those with an event
    /// time and a window that it did not keep.
    fn late_rows_of(&self, batch: &RecordBatch, local: &LocalTimes) -> Result<RecordBatch> {
        let times = event_time_millis(batch.column(self.rule.column))?;
        let kept = local.kept.as_deref().unwrap_or_default();
        let mut next_kept = 0;
        let mut late = Vec::new();
        for row in 0..batch.num_rows() {
            while next_kept < kept.len() && (kept[next_kept] as usize) < row {
                next_kept += 1;
            }
            let is_kept = local.kept.is_none() || kept.get(next_kept) == Some(&(row as u32));
            let timed = times.is_valid(row) && self.rule.window.pane_of(times.value(row)).is_some();
            if timed && !is_kept {
                late.push(row as u32);
            }
        }
        Ok(take_record_batch(batch, &UInt32Array::from(late))?)
    }

    /// `rows` with the window columns of `starts` (one a row, TUMBLE) appended.
    fn with_windows(&self, rows: &RecordBatch, starts: Vec<i64>) -> Result<RecordBatch> {
        let size = match self.rule.window {
            WindowSpec::Tumble { size } => size,
            _ => {
                return Err(Error::Execution(
                    "internal: tumbling columns of another window".into(),
                ))
            }
        };
        let ends = starts.iter().map(|s| s + size).collect();
        self.with_columns(rows, starts, ends)
    }

    /// `rows` with the window columns `starts` and `ends` appended.
    fn with_columns(
        &self,
        rows: &RecordBatch,
        starts: Vec<i64>,
        ends: Vec<i64>,
    ) -> Result<RecordBatch> {
        // The vectors' buffers become the columns as they are.
        let starts = TimestampMillisecondArray::from(starts);
        let ends = TimestampMillisecondArray::from(ends);
        let mut columns: Vec<ArrayRef> = rows.columns().to_vec();
        columns.push(Arc::new(starts));
        columns.push(Arc::new(ends));
        Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// The kept rows of a HOP or CUMULATE batch, one per window still open at the row's
    /// own watermark (`wm_i`, from `carried`, the largest event time before the batch,
    /// and the rows before it in the batch), with that window's bounds; for SESSION, each
    /// kept row with its event time and `wm_i` (`i64::MIN` before the first row).
    fn expand(
        &self,
        batch: &RecordBatch,
        local: &LocalTimes,
        carried: Option<i64>,
    ) -> Result<RecordBatch> {
        let spec = self.rule.window;
        let times = event_time_millis(batch.column(self.rule.column))?;
        let rows = batch.num_rows();
        let mut indices: Vec<u32> = Vec::with_capacity(rows);
        let mut starts = Vec::with_capacity(rows);
        let mut ends = Vec::with_capacity(rows);
        let mut windows = Vec::new();
        let mut max = carried;
        let mut next_kept = 0;
        for row in 0..rows {
            let t = times.is_valid(row).then(|| times.value(row));
            let pane = t.and_then(|t| spec.pane_of(t));
            let (Some(t), Some(pane)) = (t, pane) else {
                continue;
            };
            let kept = match &local.kept {
                None => true,
                Some(kept) => {
                    while next_kept < kept.len() && (kept[next_kept] as usize) < row {
                        next_kept += 1;
                    }
                    kept.get(next_kept) == Some(&(row as u32))
                }
            };
            let watermark = max.map(|m| m.saturating_sub(self.rule.delay_ms));
            if kept {
                if spec.is_session() {
                    indices.push(row as u32);
                    starts.push(t);
                    ends.push(watermark.unwrap_or(i64::MIN));
                } else {
                    windows.clear();
                    spec.open_windows(t, pane, watermark, &mut windows);
                    for &(start, end) in &windows {
                        indices.push(row as u32);
                        starts.push(start);
                        ends.push(end);
                    }
                }
            }
            max = Some(max.map_or(t, |m| m.max(t)));
        }
        let rows = if indices.len() == batch.num_rows()
            && indices.iter().enumerate().all(|(i, &r)| r as usize == i)
        {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(indices))?
        };
        self.with_columns(&rows, starts, ends)
    }
}
