//! One query of a running dataflow: its input rows (a source's, or a windowed stream's
//! results) through the event-time stage, its operators and its window aggregate (on the
//! query thread, or routed to the reactor's cores) into result batches.

use arrow::record_batch::RecordBatch;

use crate::checkpoint::{Counters, QueryMark};
use crate::error::{Error, Result};
use crate::plan::CompiledQuery;
use crate::reactor::Work;
use crate::source::SourceBatch;

/// A query while the dataflow runs.
#[derive(Debug)]
pub(super) struct QueryRun {
    /// The compiled query, without its aggregate (that is in `work`).
    pub(super) query: CompiledQuery,
    /// Where its aggregate or its filters and projections run.
    pub(super) work: Work,
    /// The sink its results go to (an index into the dataflow's sinks); `None` for a
    /// stream whose results only feed later queries.
    pub(super) sink: Option<usize>,
    /// The sink its late rows go to (`LATE DATA TO`).
    pub(super) late_sink: Option<usize>,
    /// The later queries that read its results (it is a windowed stream).
    pub(super) feeds: Vec<usize>,
    /// Whether its input may never end (results are then written as they come).
    pub(super) unbounded: bool,
    /// A name for row errors: the input's origin (a file path, `stdin`, a stream).
    pub(super) origin: String,
    /// Rows it was given.
    pub(super) events_read: u64,
    /// Result rows it wrote.
    pub(super) rows_emitted: u64,
    /// Rows of its input so far: the row numbers of a stream's results in errors.
    pub(super) rows_in: u64,
    /// Its input ended and its windows were flushed.
    pub(super) finished: bool,
}

impl QueryRun {
    /// Runs one batch of input rows through the query; the results the aggregate emits
    /// (or every row, without one) are appended to `outputs`, before the operators after
    /// the aggregate.
    pub(super) fn process(
        &mut self,
        mut input: SourceBatch,
        outputs: &mut Vec<RecordBatch>,
    ) -> Result<()> {
        self.events_read += input.batch.num_rows() as u64;
        let query = &mut self.query;
        match (&mut self.work, &mut query.event_time) {
            // Rows routed straight to the cores: the router copies each core's on-time
            // rows out of the whole batch, in one copy rather than two.
            (Work::Aggregate(aggregation), Some(stage))
                if query.before.is_empty() && aggregation.on_cores() && !stage.sliced() =>
            {
                let (batch, on_time) = stage
                    .process_all(&mut input)
                    .map_err(|e| locate(e, &self.origin))?;
                aggregation.process(&batch, on_time.as_deref(), stage.watermark(), outputs)?;
            }
            // Sliced HOP and CUMULATE rows: in pieces, each followed by its watermark.
            (Work::Aggregate(aggregation), Some(stage)) if stage.sliced() => {
                let pieces = stage
                    .process_pieces(&mut input)
                    .map_err(|e| locate(e, &self.origin))?;
                for (mut batch, watermark) in pieces {
                    for op in &mut query.before {
                        batch = op.process(batch)?;
                    }
                    aggregation.process(&batch, None, watermark, outputs)?;
                }
            }
            (work, event_time) => {
                let mut batch = match event_time {
                    Some(stage) => stage
                        .process(&mut input)
                        .map_err(|e| locate(e, &self.origin))?,
                    None => input.batch,
                };
                match (work, &*event_time) {
                    (Work::Aggregate(aggregation), Some(stage)) => {
                        for op in &mut query.before {
                            batch = op.process(batch)?;
                        }
                        aggregation.process(&batch, None, stage.watermark(), outputs)?;
                    }
                    (Work::Stateless(cores), _) => cores.submit(batch, outputs)?,
                    _ => {
                        for op in &mut query.before {
                            batch = op.process(batch)?;
                        }
                        outputs.push(batch);
                    }
                }
            }
        }
        if self.unbounded {
            // A live input may not deliver the next batch for a while: what is ready
            // goes out now.
            self.work.settle(outputs)?;
        }
        Ok(())
    }

    /// Partitions of its source went idle: windows the watermark (the minimum over the
    /// partitions still active) now passes are closed, their results appended to
    /// `outputs`.
    pub(super) fn set_idle(&mut self, idle: &[i32], outputs: &mut Vec<RecordBatch>) -> Result<()> {
        let Some(stage) = &mut self.query.event_time else {
            return Ok(());
        };
        let before = stage.watermark();
        let after = stage.set_idle(idle);
        if after <= before {
            return Ok(());
        }
        if let Work::Aggregate(aggregation) = &mut self.work {
            // No rows, only the watermark.
            let mut empty = RecordBatch::new_empty(stage.schema());
            for op in &mut self.query.before {
                empty = op.process(empty)?;
            }
            aggregation.process(&empty, None, after, outputs)?;
            if self.unbounded {
                self.work.settle(outputs)?;
            }
        }
        Ok(())
    }

    /// The late rows kept for the late sink since the last call: the event-time stage's,
    /// or a SESSION aggregate's (which judges lateness itself).
    pub(super) fn take_late_rows(&mut self) -> Vec<RecordBatch> {
        let mut late = match &mut self.query.event_time {
            Some(stage) => stage.take_late_rows(),
            None => Vec::new(),
        };
        if let Some(aggregation) = self.work.aggregation_mut() {
            late.extend(aggregation.take_late_rows());
        }
        late
    }

    /// Collects what the cores have finished (every window the watermark closed).
    pub(super) fn settle(&mut self, outputs: &mut Vec<RecordBatch>) -> Result<()> {
        self.work.settle(outputs)
    }

    /// The input ended: every open window is emitted.
    pub(super) fn finish(&mut self, outputs: &mut Vec<RecordBatch>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.work.settle(outputs)?;
        if let Work::Aggregate(aggregation) = &mut self.work {
            aggregation.finish(outputs)?;
        }
        self.finished = true;
        Ok(())
    }

    /// Passes result batches through the operators after the aggregate (HAVING, the
    /// SELECT list), dropping empty ones, and counts the rows.
    pub(super) fn finish_results(&mut self, outputs: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let mut results = Vec::with_capacity(outputs.len());
        for mut batch in outputs {
            for op in self.query.after.iter_mut() {
                batch = op.process(batch)?;
            }
            if batch.num_rows() > 0 {
                self.rows_emitted += batch.num_rows() as u64;
                results.push(batch);
            }
        }
        Ok(results)
    }

    /// Late events dropped so far (by the event-time stage and the aggregate).
    pub(super) fn late_events(&self) -> u64 {
        self.query
            .event_time
            .as_ref()
            .map_or(0, |s| s.late_events())
            + self.work.aggregation().map_or(0, |a| a.late_events())
    }

    /// Rows skipped for a NULL or out-of-range event time.
    pub(super) fn event_time_bad_rows(&self) -> u64 {
        self.query.event_time.as_ref().map_or(0, |s| s.bad_rows())
    }

    /// Windows emitted so far.
    pub(super) fn windows_emitted(&self) -> u64 {
        self.work.aggregation().map_or(0, |a| a.windows_emitted())
    }

    /// The query's counters, with its source's bad rows `source_bad_rows`.
    pub(super) fn counters(&self, source_bad_rows: u64) -> Counters {
        Counters {
            events_read: self.events_read,
            late_events_dropped: self.late_events(),
            source_bad_rows,
            event_time_bad_rows: self.event_time_bad_rows(),
            windows_emitted: self.windows_emitted(),
            rows_emitted: self.rows_emitted,
        }
    }

    /// What a checkpoint records of the query besides its windows.
    pub(super) fn mark(&self, source_bad_rows: u64, open_windows: u32, groups: u64) -> QueryMark {
        QueryMark {
            counters: self.counters(source_bad_rows),
            max_event_time: self
                .query
                .event_time
                .as_ref()
                .and_then(|s| s.max_event_time()),
            open_windows,
            groups,
            partitions: self
                .query
                .event_time
                .as_ref()
                .map(|s| s.partition_times())
                .unwrap_or_default(),
        }
    }

    /// Brings back what a checkpoint recorded of the query (its windows are restored by
    /// the aggregation).
    pub(super) fn restore(&mut self, mark: &QueryMark) {
        if let Some(stage) = &mut self.query.event_time {
            stage.restore(
                mark.max_event_time,
                mark.counters.late_events_dropped,
                mark.counters.event_time_bad_rows,
            );
            stage.restore_partitions(&mark.partitions);
        }
        self.events_read = mark.counters.events_read;
        self.rows_emitted = mark.counters.rows_emitted;
        self.rows_in = mark.counters.events_read;
    }
}

/// Fills in the input's name on row errors raised past the source.
fn locate(err: Error, origin: &str) -> Error {
    match err {
        Error::BadRow {
            origin: o,
            line,
            message,
        } if o.is_empty() => Error::BadRow {
            origin: origin.to_string(),
            line,
            message: format!(
                "{message} (add on_error = 'skip' to the source's WITH options to skip bad rows)"
            ),
        },
        other => other,
    }
}
