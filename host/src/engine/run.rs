//! Drives one compiled query: source → event time → operators → window aggregate (on the
//! query thread, or routed to the reactor's cores) → sink.

use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;

use super::durable::Checkpointer;
use super::RunSummary;
use crate::checkpoint::Counters;
use crate::error::{Error, Result};
use crate::operator::Operator;
use crate::plan::CompiledQuery;
use crate::reactor::{Aggregation, Work};
use crate::sink::Sink;
use crate::source::Source;

/// How often the progress callback is called.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// Runs `query` over `source` into `sink` until the source ends; `work` is where its
/// aggregate (taken out of the query and restored, for a resumed run) or its filters and
/// projections run. A durable run passes its checkpointer and the counters it resumed
/// from.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_query(
    mut query: CompiledQuery,
    mut work: Work,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    mut late_sink: Option<&mut dyn Sink>,
    progress: &mut dyn FnMut(&RunSummary),
    mut durable: Option<&mut Checkpointer>,
    resumed: &Counters,
) -> Result<RunSummary> {
    let started = Instant::now();
    let mut last_progress = started;
    let mut summary = RunSummary {
        events_read: resumed.events_read,
        rows_emitted: resumed.rows_emitted,
        ..RunSummary::default()
    };
    let mut outputs = Vec::new();
    while let Some(mut input) = source.next_batch()? {
        if input.batch.num_rows() == 0 {
            // A live input paused: a checkpoint that fell due is taken all the same.
            checkpoint_if_due(
                durable.as_deref_mut(),
                &mut query,
                &mut work,
                source,
                sink,
                late_sink.as_deref_mut(),
                &mut summary,
            )?;
            continue;
        }
        summary.events_read += input.batch.num_rows() as u64;
        match (&mut work, &mut query.event_time) {
            // Rows routed straight to the cores: the router copies each core's on-time
            // rows out of the whole batch, in one copy rather than two.
            (Work::Aggregate(aggregation), Some(stage))
                if query.before.is_empty() && aggregation.on_cores() && !stage.sliced() =>
            {
                let (batch, on_time) = stage
                    .process_all(&mut input)
                    .map_err(|e| locate(e, source.origin()))?;
                aggregation.process(&batch, on_time.as_deref(), stage.watermark(), &mut outputs)?;
            }
            // Sliced HOP and CUMULATE rows: in pieces, each followed by its watermark.
            (Work::Aggregate(aggregation), Some(stage)) if stage.sliced() => {
                let pieces = stage
                    .process_pieces(&mut input)
                    .map_err(|e| locate(e, source.origin()))?;
                for (mut batch, watermark) in pieces {
                    for op in &mut query.before {
                        batch = op.process(batch)?;
                    }
                    aggregation.process(&batch, None, watermark, &mut outputs)?;
                }
            }
            (work, event_time) => {
                let mut batch = match event_time {
                    Some(stage) => stage
                        .process(&mut input)
                        .map_err(|e| locate(e, source.origin()))?,
                    None => input.batch,
                };
                match (work, &*event_time) {
                    (Work::Aggregate(aggregation), Some(stage)) => {
                        for op in &mut query.before {
                            batch = op.process(batch)?;
                        }
                        aggregation.process(&batch, None, stage.watermark(), &mut outputs)?;
                    }
                    (Work::Stateless(cores), _) => cores.submit(batch, &mut outputs)?,
                    _ => {
                        for op in &mut query.before {
                            batch = op.process(batch)?;
                        }
                        outputs.push(batch);
                    }
                }
            }
        }
        if let (Some(late), Some(stage)) = (late_sink.as_deref_mut(), &mut query.event_time) {
            write_late(stage, late, source.is_unbounded())?;
        }
        if source.is_unbounded() {
            // A live input may not deliver the next batch for a while: what is ready
            // goes out now.
            work.settle(&mut outputs)?;
        }
        let wrote = write_all(&mut outputs, &mut query.after, sink, &mut summary)?;
        if wrote && source.is_unbounded() {
            sink.flush()?;
        }
        checkpoint_if_due(
            durable.as_deref_mut(),
            &mut query,
            &mut work,
            source,
            sink,
            late_sink.as_deref_mut(),
            &mut summary,
        )?;
        if last_progress.elapsed() >= PROGRESS_INTERVAL {
            last_progress = Instant::now();
            fill_counts(&query, work.aggregation(), source, &mut summary, started);
            progress(&summary);
        }
    }
    work.settle(&mut outputs)?;
    if let Work::Aggregate(aggregation) = &mut work {
        aggregation.finish(&mut outputs)?;
    }
    write_all(&mut outputs, &mut query.after, sink, &mut summary)?;
    if let Some(checkpointer) = durable {
        // Everything is written and synced before the run is marked complete; the sink
        // file is renamed into place after that (a crash in between finishes the rename).
        source.sync_input()?;
        sink.sync()?;
        if let Some(late) = late_sink.as_deref_mut() {
            late.sync()?;
        }
        checkpointer.complete(&query, work.aggregation(), source, &summary)?;
    }
    sink.finish()?;
    if let Some(late) = late_sink {
        late.finish()?;
    }
    fill_counts(&query, work.aggregation(), source, &mut summary, started);
    Ok(summary)
}

/// For a durable run whose checkpoint is due: settles what the windows closed into the
/// sink, then takes the checkpoint (of the late sink too, when there is one).
#[allow(clippy::too_many_arguments)]
fn checkpoint_if_due(
    durable: Option<&mut Checkpointer>,
    query: &mut CompiledQuery,
    work: &mut Work,
    source: &mut dyn Source,
    sink: &mut dyn Sink,
    late_sink: Option<&mut (dyn Sink + '_)>,
    summary: &mut RunSummary,
) -> Result<()> {
    let Some(checkpointer) = durable.filter(|c| c.due()) else {
        return Ok(());
    };
    let mut outputs = Vec::new();
    work.settle(&mut outputs)?;
    write_all(&mut outputs, &mut query.after, sink, summary)?;
    checkpointer.checkpoint(
        query,
        work.aggregation_mut(),
        source,
        sink,
        late_sink,
        summary,
    )
}

fn fill_counts(
    query: &CompiledQuery,
    aggregation: Option<&Aggregation>,
    source: &dyn Source,
    summary: &mut RunSummary,
    started: Instant,
) {
    summary.elapsed = started.elapsed();
    summary.bad_rows_skipped = source.bad_rows_skipped();
    if let Some(stage) = &query.event_time {
        summary.late_events_dropped = stage.late_events();
        summary.bad_rows_skipped += stage.bad_rows();
        summary.watermark_ms = stage.watermark();
    }
    if let Some(aggregation) = aggregation {
        summary.windows_emitted = aggregation.windows_emitted();
        summary.late_events_dropped += aggregation.late_events();
    }
}

/// Passes results (taking them out of `outputs`) through the post-aggregate operators
/// into the sink.
fn write_all(
    outputs: &mut Vec<RecordBatch>,
    after: &mut [Box<dyn Operator>],
    sink: &mut dyn Sink,
    summary: &mut RunSummary,
) -> Result<bool> {
    let mut wrote = false;
    for mut batch in outputs.drain(..) {
        for op in after.iter_mut() {
            batch = op.process(batch)?;
        }
        if batch.num_rows() > 0 {
            summary.rows_emitted += batch.num_rows() as u64;
            sink.write(&batch)?;
            crate::checkpoint::crash_point("sink-after-write");
            wrote = true;
        }
    }
    Ok(wrote)
}

/// Writes the late rows the event-time stage kept to the late sink.
fn write_late(
    stage: &mut crate::time::EventTimeStage,
    late: &mut dyn Sink,
    unbounded: bool,
) -> Result<()> {
    let batches = stage.take_late_rows();
    for batch in &batches {
        late.write(batch)?;
    }
    if unbounded && !batches.is_empty() {
        late.flush()?;
    }
    Ok(())
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
