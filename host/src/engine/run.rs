//! Drives a script's dataflow: each source is read once, in turn with the others, and
//! every batch goes to each query reading it; a windowed stream's results go on to the
//! queries reading the stream in the same pass; results go to their sinks. A durable run
//! checkpoints the whole dataflow at one barrier between batches. A stop request is seen
//! between batches too (see [`super::StopSignal`]).

use std::time::{Duration, Instant};

use arrow::array::UInt32Array;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::record_batch::RecordBatch;

use super::config::StopSignal;
use super::durable::Checkpointer;
use super::query_run::QueryRun;
use super::summary::QuerySummary;
use super::RunSummary;
use crate::checkpoint::{SinkMark, SourceMark, SourcePosition};
use crate::error::Result;
use crate::sink::Sink;
use crate::source::{Source, SourceBatch};

/// How often the progress callback is called.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);

/// What one read of a source gave.
pub(super) enum Read {
    /// Rows.
    Rows(SourceBatch),
    /// Nothing for now (a live input paused).
    Idle,
    /// The end of its input.
    Ended,
}

/// A source of the dataflow while it runs.
pub(super) struct SourceRun {
    /// Its name in the script.
    pub(super) name: String,
    /// The opened source.
    pub(super) source: Box<dyn Source>,
    /// The queries reading it directly, in script order.
    pub(super) consumers: Vec<usize>,
    /// Rows it decoded (those of earlier runs included, for a resumed run).
    pub(super) events_read: u64,
    /// Its input ended.
    pub(super) done: bool,
}

/// A sink of the dataflow while it runs.
pub(super) struct SinkRun {
    /// Its name in the script; `None` for the default output of a query.
    pub(super) name: Option<String>,
    /// The opened sink.
    pub(super) sink: Box<dyn Sink>,
}

/// A script's dataflow, opened.
pub(crate) struct Flow {
    pub(super) sources: Vec<SourceRun>,
    pub(super) queries: Vec<QueryRun>,
    pub(super) sinks: Vec<SinkRun>,
    /// The source each query's rows come from (through the streams it reads).
    pub(super) roots: Vec<usize>,
    /// Each query's place in the script and where its results go, for the summary.
    pub(super) labels: Vec<(crate::error::SqlLocation, String)>,
    /// Whether a sink commits at checkpoints (an exactly-once Kafka sink).
    pub(super) committing: bool,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("sources", &self.sources.len())
            .field("queries", &self.queries.len())
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Flow {
    /// Runs the dataflow until every source ends or `stop` is set; a durable run passes
    /// its checkpointer.
    pub(super) fn run(
        &mut self,
        progress: &mut dyn FnMut(&RunSummary),
        mut durable: Option<&mut Checkpointer>,
        stop: &StopSignal,
    ) -> Result<RunSummary> {
        let started = Instant::now();
        let mut last_progress = started;
        let mut summary = RunSummary::default();
        loop {
            let mut reading = false;
            for index in 0..self.sources.len() {
                if self.sources[index].done {
                    continue;
                }
                reading = true;
                if stop.is_stopped() {
                    return self.stopped(summary, started, durable);
                }
                let read = match self.read(index) {
                    // A read given up because of the stop (the CLI's stdin does).
                    Err(_) if stop.is_stopped() => return self.stopped(summary, started, durable),
                    read => read?,
                };
                self.apply(index, read)?;
                if let Some(checkpointer) = durable.as_deref_mut().filter(|c| c.due()) {
                    checkpointer.checkpoint(self, &mut summary)?;
                }
                if last_progress.elapsed() >= PROGRESS_INTERVAL {
                    last_progress = Instant::now();
                    self.fill_summary(&mut summary, started);
                    progress(&summary);
                }
            }
            if !reading {
                break;
            }
        }
        self.complete(durable)?;
        self.fill_summary(&mut summary, started);
        Ok(summary)
    }

    /// Reads the next batch of source `index`.
    pub(super) fn read(&mut self, index: usize) -> Result<Read> {
        Ok(match self.sources[index].source.next_batch()? {
            None => Read::Ended,
            // A live input paused: a checkpoint that fell due is taken all the same.
            Some(input) if input.batch.num_rows() == 0 => Read::Idle,
            Some(input) => Read::Rows(input),
        })
    }

    /// Runs what source `index` gave through the dataflow: rows to every query reading
    /// it, idle partitions noted, the end of its input to every query it feeds.
    pub(super) fn apply(&mut self, index: usize, read: Read) -> Result<()> {
        match read {
            Read::Ended => self.end_source(index),
            Read::Idle => self.note_idle(index),
            Read::Rows(input) => {
                self.dispatch(index, input)?;
                self.note_idle(index)
            }
        }
    }

    /// Sets how long each source's read may wait for input (see
    /// [`Source::set_idle_wait`]).
    pub(super) fn set_idle_wait(&mut self, wait: Duration) {
        for run in &mut self.sources {
            run.source.set_idle_wait(wait);
        }
    }

    /// The next offsets of the Kafka source read first, where it is one.
    pub(super) fn kafka_position(&self) -> Option<crate::kafka::KafkaPosition> {
        self.sources.first()?.source.kafka_position()
    }

    /// Whether every source's input ended.
    pub(super) fn all_ended(&self) -> bool {
        self.sources.iter().all(|s| s.done)
    }

    /// Completes the run after every source ended: a durable run is marked complete, then
    /// every sink finishes (its file renamed into place).
    pub(super) fn complete(&mut self, durable: Option<&mut Checkpointer>) -> Result<()> {
        if let Some(checkpointer) = durable {
            // Everything is written and synced before the run is marked complete; the
            // sink files are renamed into place after that (a crash in between finishes
            // the renames).
            checkpointer.complete(self)?;
        }
        for sink in &mut self.sinks {
            sink.sink.finish()?;
        }
        Ok(())
    }

    /// Another process took this dataflow's output over: every sink drops what it holds
    /// unwritten, so that nothing this process still has reaches them.
    pub(super) fn drop_unwritten(&mut self) {
        for sink in &mut self.sinks {
            sink.sink.drop_unwritten();
        }
    }

    /// Ends the run at a stop request: nothing more is read. A durable run checkpoints
    /// (nothing read is lost) and is neither marked complete nor committed; otherwise each
    /// sink drops what only the end of input would have committed (a temporary file).
    fn stopped(
        &mut self,
        mut summary: RunSummary,
        started: Instant,
        durable: Option<&mut Checkpointer>,
    ) -> Result<RunSummary> {
        let mut resume_after_line = None;
        for run in &mut self.sources {
            resume_after_line = run.source.stop_reading().or(resume_after_line);
        }
        match durable {
            Some(checkpointer) => checkpointer.checkpoint(self, &mut summary)?,
            None => {
                for sink in &mut self.sinks {
                    sink.sink.abandon()?;
                }
            }
        }
        self.fill_summary(&mut summary, started);
        summary.interrupted = true;
        summary.resume_after_line = resume_after_line;
        Ok(summary)
    }

    /// Gives a batch of source `index` to every query reading it.
    fn dispatch(&mut self, index: usize, mut input: SourceBatch) -> Result<()> {
        self.sources[index].events_read += input.batch.num_rows() as u64;
        let consumers = self.sources[index].consumers.clone();
        if consumers.len() > 1 {
            // The local event-time pass a decoder ran belongs to one query's window.
            input.times = None;
        }
        if let Some((&last, rest)) = consumers.split_last() {
            for &query in rest {
                self.push(query, input.clone())?;
            }
            self.push(last, input)?;
        }
        Ok(())
    }

    /// Tells the queries reading source `index` which of its partitions are idle (none,
    /// unless it has an `idle_timeout`), closing the windows that frees.
    fn note_idle(&mut self, index: usize) -> Result<()> {
        let idle = self.sources[index].source.idle_partitions();
        if idle.is_empty() {
            return Ok(());
        }
        for query in self.sources[index].consumers.clone() {
            let mut outputs = Vec::new();
            self.queries[query].set_idle(&idle, &mut outputs)?;
            self.emit(query, outputs)?;
        }
        Ok(())
    }

    /// Runs `input` through query `index` and passes on what it emits.
    fn push(&mut self, index: usize, input: SourceBatch) -> Result<()> {
        let mut outputs = Vec::new();
        self.queries[index].process(input, &mut outputs)?;
        let late = self.queries[index].take_late_rows();
        if let (Some(sink), false) = (self.queries[index].late_sink, late.is_empty()) {
            let sink = &mut self.sinks[sink].sink;
            for batch in &late {
                sink.write(batch)?;
            }
            if self.queries[index].unbounded {
                sink.flush()?;
            }
        }
        self.emit(index, outputs)
    }

    /// Writes what query `index` emitted to its sink and gives it to the queries reading
    /// it (sorted by their event time: its windows close in order, a batch of them at a
    /// time).
    fn emit(&mut self, index: usize, outputs: Vec<RecordBatch>) -> Result<()> {
        let results = self.queries[index].finish_results(outputs)?;
        if results.is_empty() {
            return Ok(());
        }
        if let Some(sink) = self.queries[index].sink {
            let sink = &mut self.sinks[sink].sink;
            for batch in &results {
                sink.write(batch)?;
                crate::checkpoint::crash_point("sink-after-write");
            }
            if self.queries[index].unbounded {
                sink.flush()?;
            }
        }
        let feeds = self.queries[index].feeds.clone();
        if feeds.is_empty() {
            return Ok(());
        }
        let batch = concat_batches(&results[0].schema(), &results)?;
        for reader in feeds {
            let input = self.stream_input(reader, batch.clone())?;
            self.push(reader, input)?;
        }
        Ok(())
    }

    /// A stream's results as the input of query `reader`: in the order of its event
    /// time, numbered on from its earlier input rows.
    fn stream_input(&mut self, reader: usize, batch: RecordBatch) -> Result<SourceBatch> {
        let run = &mut self.queries[reader];
        let batch = match &run.query.event_time {
            Some(stage) => {
                let order = sort_to_indices(batch.column(stage.rule().column), None, None)?;
                take_record_batch(&batch, &UInt32Array::from(order.values().to_vec()))?
            }
            None => batch,
        };
        let first = run.rows_in + 1;
        run.rows_in += batch.num_rows() as u64;
        Ok(SourceBatch {
            lines: (first..=run.rows_in).collect(),
            batch,
            times: None,
            partition: None,
        })
    }

    /// Source `index` ended: every query reading its rows (directly or through streams)
    /// emits its open windows, in script order, so a stream's last windows reach its
    /// readers before they end.
    fn end_source(&mut self, index: usize) -> Result<()> {
        self.sources[index].done = true;
        for query in 0..self.queries.len() {
            if self.roots[query] != index {
                continue;
            }
            let mut outputs = Vec::new();
            self.queries[query].finish(&mut outputs)?;
            self.emit(query, outputs)?;
        }
        Ok(())
    }

    /// Writes out every window the queries have closed (in script order, so a stream's
    /// closed windows reach its readers first): what a checkpoint barrier needs.
    pub(super) fn settle_all(&mut self) -> Result<()> {
        for query in 0..self.queries.len() {
            if self.queries[query].finished {
                continue;
            }
            let mut outputs = Vec::new();
            self.queries[query].settle(&mut outputs)?;
            self.emit(query, outputs)?;
        }
        Ok(())
    }

    /// For a checkpoint: makes every source's input before its position durable and
    /// syncs every sink; returns where each source and file sink stands.
    pub(super) fn sync_marks(&mut self) -> Result<(Vec<SourceMark>, Vec<SinkMark>)> {
        let mut sources = Vec::with_capacity(self.sources.len());
        for run in &mut self.sources {
            run.source.sync_input()?;
            sources.push(SourceMark {
                name: run.name.clone(),
                position: run.source.position(),
                file: run.source.file_identity()?,
                events_read: run.events_read,
                bad_rows: run.source.bad_rows_skipped(),
                kafka: run.source.kafka_position(),
            });
        }
        let mut sinks = Vec::new();
        for run in &mut self.sinks {
            let file = run.sink.sync()?;
            if let (Some(name), Some(file)) = (&run.name, file) {
                sinks.push(SinkMark {
                    name: name.clone(),
                    file,
                });
            }
        }
        Ok((sources, sinks))
    }

    /// After checkpoint `id` is durable: the sinks that hold their output back until then
    /// make it final (an exactly-once Kafka sink commits its transaction).
    pub(super) fn commit_checkpoint(&mut self, id: u64) -> Result<()> {
        for run in &mut self.sinks {
            run.sink.commit_checkpoint(id)?;
        }
        Ok(())
    }

    /// After a checkpoint: drops logged input of source `name` before `position`.
    pub(super) fn release_input(&mut self, name: &str, position: &SourcePosition) -> Result<()> {
        match self.sources.iter_mut().find(|s| s.name == name) {
            Some(run) => run.source.release_input(position),
            None => Ok(()),
        }
    }

    /// Rows the source of query `index` skipped as undecodable.
    pub(super) fn source_bad_rows(&self, index: usize) -> u64 {
        self.sources[self.roots[index]].source.bad_rows_skipped()
    }

    /// The run's counters: the sources' and every query's.
    pub(super) fn fill_summary(&self, summary: &mut RunSummary, started: Instant) {
        summary.elapsed = started.elapsed();
        summary.events_read = self.sources.iter().map(|s| s.events_read).sum();
        summary.bad_rows_skipped = self
            .sources
            .iter()
            .map(|s| s.source.bad_rows_skipped())
            .sum();
        summary.late_events_dropped = 0;
        summary.windows_emitted = 0;
        summary.rows_emitted = 0;
        summary.watermark_ms = None;
        summary.queries.clear();
        for (index, run) in self.queries.iter().enumerate() {
            summary.late_events_dropped += run.late_events();
            summary.bad_rows_skipped += run.event_time_bad_rows();
            summary.windows_emitted += run.windows_emitted();
            summary.rows_emitted += run.rows_emitted;
            if let Some(stage) = &run.query.event_time {
                summary.watermark_ms = stage.watermark().or(summary.watermark_ms);
            }
            let (location, output) = &self.labels[index];
            summary.queries.push(QuerySummary {
                location: *location,
                output: output.clone(),
                events_read: run.events_read,
                late_events_dropped: run.late_events(),
                bad_rows_skipped: self.source_bad_rows(index) + run.event_time_bad_rows(),
                windows_emitted: run.windows_emitted(),
                rows_emitted: run.rows_emitted,
            });
        }
    }
}
