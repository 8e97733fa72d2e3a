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
    crash_point, Counters, Fingerprint, LoadedCheckpoint, Manifest, PluginPrint, QueryDir,
    SourcePosition, WindowRecord, CHECKPOINT_FORMAT,
};
use crate::error::{Error, Result};
use crate::operator::WindowSnapshot;
use crate::plan::CompiledQuery;
use crate::reactor::Aggregation;
use crate::sink::Sink;
use crate::source::Source;
use crate::storage::Storage;

use super::RunSummary;

/// A durable query's state directory while it runs: when and how to checkpoint.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    dir: QueryDir,
    interval: Duration,
    last: Instant,
    next_id: u64,
}

/// What recovery brought back, applied to a freshly compiled query.
#[derive(Debug, Default)]
pub(crate) struct Resumed {
    /// Where the source reads on from.
    pub(crate) position: Option<SourcePosition>,
    /// The sink's durable length at the checkpoint.
    pub(crate) sink_len: Option<u64>,
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
        let windows = restore(&loaded, query)?;
        Ok(Resumed {
            position: Some(loaded.manifest.source),
            sink_len: loaded.manifest.sink_len,
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
        summary: &mut RunSummary,
    ) -> Result<()> {
        let started = Instant::now();
        crash_point("checkpoint-start");
        source.sync_input()?;
        let sink_len = sink.sync()?;
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
            sink_len,
            counters: counters_of(query, aggregation.as_deref(), source, summary),
            max_event_time: query.event_time.as_ref().and_then(|s| s.max_event_time()),
            open_windows: records.len() as u32,
            groups,
        };
        let bytes = self.dir.write_checkpoint(&manifest, &records)?;
        source.release_input(&manifest.source)?;
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

/// The fingerprint of a compiled query: its plan, the definitions it reads and writes,
/// and its plugins' content hashes and state versions.
pub(crate) fn fingerprint(query: &CompiledQuery, relations: String) -> Result<Fingerprint> {
    let mut plugins = Vec::new();
    for plugin in &query.plugins {
        let info = plugin.info();
        let bytes = std::fs::read(&info.path).map_err(|e| {
            Error::io(
                format!(
                    "cannot read plugin '{}' file {}",
                    info.name,
                    info.path.display()
                ),
                e,
            )
        })?;
        plugins.push(PluginPrint {
            name: info.name.clone(),
            content_hash: sha256_hex(&bytes),
            state_version: info.state_version,
        });
    }
    Ok(Fingerprint::new(
        query.plan_text.clone(),
        relations,
        plugins,
    ))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The length a durable run's late sink file had at the checkpoint it resumes from: the
/// bytes of its first `records` records (and a CSV header), one record a late row. `None`
/// when nothing is to be kept (no checkpoint yet, or not a file sink).
pub(crate) fn late_sink_len(
    def: &crate::sql::SinkDef,
    unbounded: bool,
    resumed: bool,
    records: u64,
) -> Result<Option<u64>> {
    let crate::sql::Connector::File(destination) = &def.connector else {
        return Ok(None);
    };
    if !resumed {
        return Ok(None);
    }
    let path = if unbounded {
        destination.clone()
    } else {
        crate::sink::partial_path(destination)
    };
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && records == 0 => return Ok(Some(0)),
        Err(e) => {
            return Err(Error::io(
                format!("cannot read late sink file {}", path.display()),
                e,
            ))
        }
    };
    let header = u64::from(matches!(def.format, crate::sql::FormatKind::Csv) && !bytes.is_empty());
    let wanted = records + header;
    if records == 0 {
        return Ok(Some(0));
    }
    // Lines end at a newline, outside double quotes in CSV (a CSV field may hold one; a
    // JSON line never does).
    let csv = matches!(def.format, crate::sql::FormatKind::Csv);
    let (mut lines, mut quoted) = (0u64, false);
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            b'"' if csv => quoted = !quoted,
            b'\n' if !quoted => {
                lines += 1;
                if lines == wanted {
                    return Ok(Some(at as u64 + 1));
                }
            }
            _ => {}
        }
    }
    Err(Error::Execution(format!(
        "late sink file {} holds {lines} lines, fewer than the {wanted} its checkpoint counted: it was changed outside Laminar",
        path.display()
    )))
}
