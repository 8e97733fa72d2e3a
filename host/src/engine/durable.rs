//! Durable runs (`--state-dir`): opening the script's state directory, recovering its
//! dataflow from the newest checkpoint, and taking checkpoints of the whole dataflow at one
//! barrier while it runs.
//!
//! Recovery order: the fingerprint (of the whole script) must match → a completed run is
//! not run again → the newest readable checkpoint restores every query's windows,
//! watermark generator and counters → each source reads on from its position (a file from
//! its byte offset, stdin by replaying its WAL first) → each file sink is cut back to the
//! length the checkpoint recorded.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{
    crash_point, DataflowDir, Fingerprint, LoadedCheckpoint, Manifest, PluginPrint, SourceMark,
    WindowRecord, CHECKPOINT_FORMAT,
};
use crate::error::Result;
use crate::operator::WindowSnapshot;
use crate::sql::{FormatKind, SinkDef, SourceDef};

use super::dataflow::PlannedQuery;
use super::run::Flow;
use super::RunSummary;

/// A durable script's state directory while its dataflow runs: when and how to
/// checkpoint.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    dir: DataflowDir,
    interval: Duration,
    last: Instant,
    next_id: u64,
    /// The source positions of the older of the two checkpoints the directory keeps: the
    /// input before them may be released (the newer one may be damaged, and recovery then
    /// falls back to this one, which must still find its input).
    fallback: Option<Vec<SourceMark>>,
    /// Live plugin swaps at the barrier (`--reload-plugins`).
    pub(crate) reload: Option<super::plugin_reload::PluginReloader>,
}

impl Checkpointer {
    /// Checkpoints into the opened state directory `dir` (a script's, or a partition's
    /// of a scale-out run) every `interval`.
    pub(crate) fn new(dir: DataflowDir, interval: Duration) -> Self {
        Self {
            dir,
            interval,
            last: Instant::now(),
            next_id: 1,
            fallback: None,
            reload: None,
        }
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &DataflowDir {
        &self.dir
    }

    /// The directory, to move its fingerprint on after a plugin upgrade.
    pub(crate) fn dir_mut(&mut self) -> &mut DataflowDir {
        &mut self.dir
    }

    /// The checkpoint to restore: the newest readable one, or, where a sink commits at
    /// checkpoints (`committed` is `Some`), the newest at or before the one it committed
    /// (`Some(None)`: none committed yet, so none). Newer checkpoints are void (their
    /// sink transactions were aborted) and removed; ids go on after the highest ever
    /// written, so that a sink's committed id always names one checkpoint.
    pub(crate) fn recover(
        &mut self,
        committed: Option<Option<u64>>,
        warn: &mut dyn FnMut(String),
    ) -> Result<Option<LoadedCheckpoint>> {
        let highest = self.dir.checkpoint_files()?.last().map_or(0, |(id, _)| *id);
        let loaded = match committed {
            None => self.dir.load_newest(warn)?,
            Some(limit) => self.dir.load_newest_at_most(limit.unwrap_or(0), warn)?,
        };
        self.next_id = highest.max(loaded.as_ref().map_or(0, |l| l.manifest.id)) + 1;
        if let Some(loaded) = &loaded {
            self.fallback = Some(loaded.manifest.sources.clone());
        }
        Ok(loaded)
    }

    /// Whether a checkpoint is due (checked at batch boundaries).
    pub(crate) fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Takes a checkpoint of the whole dataflow now: every query's closed windows written
    /// out, every source's input before its position made durable, every sink synced,
    /// then one file holding the manifest and every query's open windows.
    pub(crate) fn checkpoint(&mut self, flow: &mut Flow, summary: &mut RunSummary) -> Result<()> {
        let started = Instant::now();
        crash_point("checkpoint-start");
        flow.settle_all()?;
        if let Some(reload) = &mut self.reload {
            reload.at_barrier(flow, &mut self.dir, self.next_id - 1)?;
        }
        let (manifest, records) = self.manifest(flow)?;
        let bytes = self.dir.write_checkpoint(&manifest, &records)?;
        flow.commit_checkpoint(manifest.id)?;
        crash_point("checkpoint-after-commit");
        // The directory now keeps this checkpoint and the one before it: only the input
        // before the older one is no longer needed.
        if let Some(older) = self.fallback.replace(manifest.sources) {
            for mark in &older {
                flow.release_input(&mark.name, &mark.position)?;
            }
        }
        self.next_id += 1;
        self.last = Instant::now();
        let took = started.elapsed();
        summary.checkpoints += 1;
        summary.last_checkpoint_bytes = bytes;
        summary.last_checkpoint_time = took;
        summary.checkpoint_time += took;
        if let Some(reload) = &mut self.reload {
            reload.after_checkpoint();
        }
        Ok(())
    }

    /// The manifest of a checkpoint now, and every query's open windows.
    fn manifest(&mut self, flow: &mut Flow) -> Result<(Manifest, Vec<(u32, WindowRecord)>)> {
        let (sources, sinks) = flow.sync_marks()?;
        crash_point("checkpoint-after-sink-sync");
        let mut records = Vec::new();
        let mut queries = Vec::with_capacity(flow.queries.len());
        for index in 0..flow.queries.len() {
            let mut groups = 0u64;
            let mut open = 0u32;
            let run = &mut flow.queries[index];
            if let (false, Some(aggregation)) = (run.finished, run.work.aggregation_mut()) {
                let keys = aggregation.key_count();
                for (start, batch) in &aggregation.snapshot()?.windows {
                    groups += batch.num_rows() as u64;
                    open += 1;
                    records.push((index as u32, WindowRecord::encode(*start, batch, keys)?));
                }
            }
            let bad_rows = flow.source_bad_rows(index);
            queries.push(flow.queries[index].mark(bad_rows, open, groups));
        }
        let manifest = Manifest {
            format: CHECKPOINT_FORMAT,
            id: self.next_id,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            sources,
            sinks,
            queries,
        };
        Ok((manifest, records))
    }

    /// Records that the run completed (after every sink was synced, before any is
    /// committed).
    pub(crate) fn complete(&mut self, flow: &mut Flow) -> Result<()> {
        // Every input and sink synced first: a crash from here on finds everything the
        // run read and wrote durable.
        let (manifest, records) = self.manifest(flow)?;
        crash_point("before-complete");
        if flow.committing {
            // The last interval's transaction commits as a checkpoint of its own: a crash
            // after the commit restores it (everything read, nothing open) and completes.
            self.dir.write_checkpoint(&manifest, &records)?;
            flow.commit_checkpoint(manifest.id)?;
            crash_point("complete-after-commit");
        }
        self.dir.mark_completed(&manifest)?;
        crash_point("after-complete");
        Ok(())
    }
}

/// Applies checkpoint `loaded` to the freshly opened dataflow `flow`: every query's
/// event-time stage, counters and open windows (the states of upgraded plugins carried
/// over by `upgrade` first).
pub(super) fn restore(
    loaded: &LoadedCheckpoint,
    flow: &mut Flow,
    upgrade: &mut crate::plugin::StateUpgrade,
) -> Result<()> {
    let manifest = &loaded.manifest;
    if manifest.queries.len() != flow.queries.len() {
        return Err(crate::error::Error::StateDir {
            dir: loaded.path.display().to_string(),
            message: format!(
                "the checkpoint holds {} queries, the script {}",
                manifest.queries.len(),
                flow.queries.len()
            ),
        });
    }
    for (index, (run, mark)) in flow.queries.iter_mut().zip(&manifest.queries).enumerate() {
        run.restore(mark);
        let advanced_to = run.query.event_time.as_ref().and_then(|s| s.watermark());
        if let Some(aggregation) = run.work.aggregation_mut() {
            let mut windows = loaded.windows(index as u32)?;
            // Plugin upgrades (plugin::upgrade): another build's states, converted.
            upgrade.carry_over(
                &run.query.call_plugins,
                aggregation.key_count(),
                &mut windows,
            )?;
            aggregation.restore(&WindowSnapshot {
                windows_emitted: mark.counters.windows_emitted,
                windows,
                late_events: 0,
                // Every window ending at or before the watermark at the checkpoint was
                // written.
                advanced_to,
            })?;
        } else if mark.open_windows > 0 {
            return Err(crate::error::Error::Execution(format!(
                "checkpoint {} holds open windows of query {}, which has no window aggregate",
                loaded.path.display(),
                index + 1
            )));
        }
    }
    Ok(())
}

/// The run summary a completed run's final manifest stands for.
pub(crate) fn summary_of(last: &Manifest) -> RunSummary {
    let mut summary = RunSummary {
        events_read: last.sources.iter().map(|s| s.events_read).sum(),
        ..RunSummary::default()
    };
    for source in &last.sources {
        summary.bad_rows_skipped += source.bad_rows;
    }
    for query in &last.queries {
        let c = &query.counters;
        summary.late_events_dropped += c.late_events_dropped;
        summary.bad_rows_skipped += c.event_time_bad_rows;
        summary.windows_emitted += c.windows_emitted;
        summary.rows_emitted += c.rows_emitted;
    }
    summary
}

/// The fingerprint of a script's dataflow: every part that decides its state and output
/// (each query as written, which holds its window, and its plan; each source's columns,
/// watermark and options; each sink) and its plugins' content hashes and state versions.
pub(crate) fn fingerprint(
    queries: &[PlannedQuery],
    sources: &[&SourceDef],
    sinks: &[&SinkDef],
) -> Fingerprint {
    let mut plugins: Vec<PluginPrint> = Vec::new();
    for plugin in queries.iter().flat_map(|q| &q.compiled.plugins) {
        let info = plugin.info();
        if plugins.iter().any(|p| p.name == info.name) {
            continue;
        }
        // The hash of the bytes the plugin was compiled from, taken when it was loaded.
        plugins.push(PluginPrint {
            name: info.name.clone(),
            content_hash: info.content_hash.clone(),
            state_version: info.state_version,
            reads_state_versions: info.upgrade_reads(),
        });
    }
    let mut parts = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        // A one-query script keeps the names it always had.
        let prefix = match queries.len() {
            1 => String::new(),
            _ => format!("query {}: ", i + 1),
        };
        parts.push((
            format!("{prefix}the query"),
            query.statement.query.to_string(),
        ));
        parts.push((
            format!("{prefix}the plan"),
            query.compiled.plan_text.clone(),
        ));
        parts.push((format!("{prefix}the output"), query.output_text()));
    }
    for source in sources {
        source_parts(source, &mut parts);
    }
    for sink in sinks {
        parts.push((
            format!("sink '{}'", sink.name),
            format!("{}, {:?}", sink.connector.describe(), sink.format).to_lowercase(),
        ));
    }
    Fingerprint::new(parts, plugins)
}

/// The named parts of a source's identity. Left out on purpose: `batch_size` (results do
/// not depend on it).
fn source_parts(source: &SourceDef, parts: &mut Vec<(String, String)>) {
    let name = &source.name;
    let columns = source
        .schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), f.data_type()))
        .collect::<Vec<_>>()
        .join(", ");
    parts.push((format!("source '{name}' columns"), columns));
    let watermark = match &source.watermark {
        Some(w) => format!("{} - {} ms", w.column, w.delay_ms),
        None => "none".to_string(),
    };
    parts.push((format!("source '{name}' watermark"), watermark));
    let options = &source.options;
    parts.push((
        format!("source '{name}' connector"),
        options.connector.describe(),
    ));
    let header = match options.header {
        Some(true) => "true",
        Some(false) => "false",
        None => "auto",
    };
    let format = match options.format {
        FormatKind::Csv => format!(
            "csv, header {header}, delimiter {:?}",
            char::from(options.delimiter)
        ),
        FormatKind::Json => "json".to_string(),
    };
    parts.push((format!("source '{name}' format"), format));
    parts.push((
        format!("source '{name}' on_error"),
        format!("{:?}", options.on_error).to_lowercase(),
    ));
}
