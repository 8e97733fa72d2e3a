//! Durable runs (`--state-dir`): opening a query's state directory, recovering from its
//! newest checkpoint, and taking checkpoints at batch boundaries while the query runs.
//!
//! Recovery order: the fingerprint must match → a completed run is not run again → the
//! newest readable checkpoint restores the windows, the watermark generator and the
//! counters → the source reads on from the checkpoint's position (a file from its byte
//! offset, stdin by replaying its WAL first) → the file sink is cut back to the length the
//! checkpoint recorded.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{
    crash_point, Counters, FileIdentity, Fingerprint, LoadedCheckpoint, Manifest, PluginPrint,
    QueryDir, SourcePosition, WindowRecord, CHECKPOINT_FORMAT,
};
use crate::error::{Error, Result};
use crate::operator::WindowSnapshot;
use crate::plan::CompiledQuery;
use crate::reactor::Aggregation;
use crate::sink::Sink;
use crate::source::Source;
use crate::sql::{Connector, FormatKind, QueryStatement, SinkDef, SourceDef};
use crate::storage::Storage;

use super::RunSummary;

/// A durable query's state directory while it runs: when and how to checkpoint.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    dir: QueryDir,
    interval: Duration,
    last: Instant,
    next_id: u64,
    /// The source position of the older of the two checkpoints the directory keeps: the
    /// input before it may be released (the newer one may be damaged, and recovery then
    /// falls back to this one, which must still find its input).
    fallback: Option<SourcePosition>,
}

/// What recovery brought back, applied to a freshly compiled query.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// The checkpoint recovery restored, if any.
    pub(crate) checkpoint: Option<u64>,
    /// Where the source reads on from.
    pub(crate) position: Option<SourcePosition>,
    /// The source file as the checkpoint saw it (file sources).
    pub(crate) source_file: Option<FileIdentity>,
    /// The sink file's durable length and checksum at the checkpoint.
    pub(crate) sink_file: Option<FileIdentity>,
    /// The late sink file's, likewise.
    pub(crate) late_sink_file: Option<FileIdentity>,
    /// The counters at the checkpoint.
    pub(crate) counters: Counters,
    /// The open windows at the checkpoint, for the query's aggregation to restore.
    pub(crate) windows: Option<WindowSnapshot>,
}

impl Checkpointer {
    /// Opens the state directory of one query (refusing another query's state).
    pub(crate) fn open(
        storage: Arc<dyn Storage>,
        dir: &Path,
        fingerprint: &Fingerprint,
        interval: Duration,
    ) -> Result<Self> {
        Ok(Self {
            dir: QueryDir::open(storage, dir, fingerprint)?,
            interval,
            last: Instant::now(),
            next_id: 1,
            fallback: None,
        })
    }

    /// The directory.
    pub(crate) fn dir(&self) -> &QueryDir {
        &self.dir
    }

    /// Restores `query`'s event-time stage from the newest readable checkpoint, if there
    /// is one, and returns the rest of what it holds (the open windows among it).
    pub(crate) fn recover(
        &mut self,
        query: &mut CompiledQuery,
        warn: &mut dyn FnMut(String),
    ) -> Result<Resumed> {
        let Some(loaded) = self.dir.load_newest(warn)? else {
            return Ok(Resumed::default());
        };
        self.next_id = loaded.manifest.id + 1;
        self.fallback = Some(loaded.manifest.source);
        let windows = restore(&loaded, query)?;
        Ok(Resumed {
            checkpoint: Some(loaded.manifest.id),
            position: Some(loaded.manifest.source),
            source_file: loaded.manifest.source_file,
            sink_file: loaded.manifest.sink_file,
            late_sink_file: loaded.manifest.late_sink_file,
            counters: loaded.manifest.counters,
            windows,
        })
    }

    /// Whether a checkpoint is due (checked at batch boundaries).
    pub(crate) fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    /// Takes a checkpoint now: the input before the source's position made durable, the
    /// sink synced, then one file holding the manifest and every open window. Every window
    /// the aggregation closed must be in the sink already ([`Aggregation::settle`]).
    pub(crate) fn checkpoint(
        &mut self,
        query: &CompiledQuery,
        mut aggregation: Option<&mut Aggregation>,
        source: &mut dyn Source,
        sink: &mut dyn Sink,
        late_sink: Option<&mut (dyn Sink + '_)>,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let started = Instant::now();
        crash_point("checkpoint-start");
        source.sync_input()?;
        let sink_file = sink.sync()?;
        let late_sink_file = match late_sink {
            Some(late) => late.sync()?,
            None => None,
        };
        let source_file = source.file_identity()?;
        crash_point("checkpoint-after-sink-sync");
        let (records, groups) = match aggregation.as_deref_mut() {
            Some(aggregate) => {
                let keys = aggregate.key_count();
                let snapshot = aggregate.snapshot()?;
                let mut groups = 0u64;
                let records = snapshot
                    .windows
                    .iter()
                    .map(|(start, batch)| {
                        groups += batch.num_rows() as u64;
                        WindowRecord::encode(*start, batch, keys)
                    })
                    .collect::<Result<Vec<_>>>()?;
                (records, groups)
            }
            None => (Vec::new(), 0),
        };
        let manifest = Manifest {
            format: CHECKPOINT_FORMAT,
            id: self.next_id,
            created_unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            source: source.position(),
            source_file,
            sink_file,
            late_sink_file,
            counters: counters_of(query, aggregation.as_deref(), source, summary),
            max_event_time: query.event_time.as_ref().and_then(|s| s.max_event_time()),
            open_windows: records.len() as u32,
            groups,
        };
        let bytes = self.dir.write_checkpoint(&manifest, &records)?;
        // The directory now keeps this checkpoint and the one before it: only the input
        // before the older one is no longer needed.
        if let Some(older) = self.fallback.replace(manifest.source) {
            source.release_input(&older)?;
        }
        self.next_id += 1;
        self.last = Instant::now();
        let took = started.elapsed();
        summary.checkpoints += 1;
        summary.last_checkpoint_bytes = bytes;
        summary.last_checkpoint_time = took;
        summary.checkpoint_time += took;
        Ok(())
    }

    /// Records that the run completed (after the sink was synced, before it is committed).
    pub(crate) fn complete(
        &mut self,
        query: &CompiledQuery,
        aggregation: Option<&Aggregation>,
        source: &dyn Source,
        summary: &RunSummary,
    ) -> Result<()> {
        crash_point("before-complete");
        self.dir
            .mark_completed(&counters_of(query, aggregation, source, summary))?;
        crash_point("after-complete");
        Ok(())
    }
}

/// Every counter of the run summary, from where each is kept.
pub(crate) fn counters_of(
    query: &CompiledQuery,
    aggregation: Option<&Aggregation>,
    source: &dyn Source,
    summary: &RunSummary,
) -> Counters {
    Counters {
        events_read: summary.events_read,
        late_events_dropped: query.event_time.as_ref().map_or(0, |s| s.late_events())
            + aggregation.map_or(0, Aggregation::late_events),
        source_bad_rows: source.bad_rows_skipped(),
        event_time_bad_rows: query.event_time.as_ref().map_or(0, |s| s.bad_rows()),
        windows_emitted: aggregation.map_or(0, Aggregation::windows_emitted),
        rows_emitted: summary.rows_emitted,
    }
}

/// The run summary a completed (or resumed) run's counters stand for.
pub(crate) fn summary_of(counters: &Counters) -> RunSummary {
    RunSummary {
        events_read: counters.events_read,
        late_events_dropped: counters.late_events_dropped,
        bad_rows_skipped: counters.source_bad_rows + counters.event_time_bad_rows,
        windows_emitted: counters.windows_emitted,
        rows_emitted: counters.rows_emitted,
        ..RunSummary::default()
    }
}

/// Restores the event-time stage; returns the open windows for the aggregation (the
/// compiled query still holds its aggregate, unless it has none).
fn restore(loaded: &LoadedCheckpoint, query: &mut CompiledQuery) -> Result<Option<WindowSnapshot>> {
    let manifest = &loaded.manifest;
    if let Some(stage) = &mut query.event_time {
        stage.restore(
            manifest.max_event_time,
            manifest.counters.late_events_dropped,
            manifest.counters.event_time_bad_rows,
        );
    }
    match &query.aggregate {
        Some(_) => Ok(Some(WindowSnapshot {
            windows_emitted: manifest.counters.windows_emitted,
            windows: loaded.windows()?,
            late_events: 0,
            // Every window ending at or before the watermark at the checkpoint was written.
            advanced_to: query.event_time.as_ref().and_then(|s| s.watermark()),
        })),
        None if manifest.open_windows > 0 => Err(Error::Execution(format!(
            "checkpoint {} holds open windows, but the query has no window aggregate",
            loaded.path.display()
        ))),
        None => Ok(None),
    }
}

/// The fingerprint of a compiled query: every part that decides its state and output
/// (the statement as written, which holds its window; its plan; the source's columns,
/// watermark and options; the sink) and its plugins' content hashes and state versions.
pub(crate) fn fingerprint(
    query: &CompiledQuery,
    statement: &QueryStatement,
    source: &SourceDef,
    sink: Option<&SinkDef>,
    late_sink: Option<&SinkDef>,
) -> Fingerprint {
    // The hash of the bytes the plugin was compiled from, taken when it was loaded.
    let plugins = query
        .plugins
        .iter()
        .map(|plugin| {
            let info = plugin.info();
            PluginPrint {
                name: info.name.clone(),
                content_hash: info.content_hash.clone(),
                state_version: info.state_version,
            }
        })
        .collect();
    Fingerprint::new(
        fingerprint_parts(query, statement, source, sink, late_sink),
        plugins,
    )
}

/// The named parts of a query's identity. Left out on purpose: `batch_size` (results do
/// not depend on it) and where stdout goes.
fn fingerprint_parts(
    query: &CompiledQuery,
    statement: &QueryStatement,
    source: &SourceDef,
    sink: Option<&SinkDef>,
    late_sink: Option<&SinkDef>,
) -> Vec<(String, String)> {
    let mut parts = vec![
        ("the query".to_string(), statement.query.to_string()),
        ("the plan".to_string(), query.plan_text.clone()),
    ];
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
        connector_text(&options.connector),
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
    for (role, sink) in [("sink", sink), ("late sink", late_sink)] {
        let Some(sink) = sink else { continue };
        parts.push((
            format!("{role} '{}'", sink.name),
            format!("{}, {:?}", connector_text(&sink.connector), sink.format).to_lowercase(),
        ));
    }
    parts
}

fn connector_text(connector: &Connector) -> String {
    match connector {
        Connector::File(path) => format!("file {}", path.display()),
        Connector::Stdio => "stdio".to_string(),
        Connector::Memory => "memory".to_string(),
    }
}
