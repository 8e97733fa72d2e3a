//! What a run did: counts for the run summary and the live progress line.

use std::fmt;
use std::time::Duration;

use crate::error::SqlLocation;

/// Counters of one run of a script: its sources' events, every query's counts added up,
/// and each query's own in [`queries`](Self::queries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunSummary {
    /// Rows decoded from sources.
    pub events_read: u64,
    /// Events dropped because their window had already closed (see the semantics contract).
    pub late_events_dropped: u64,
    /// Rows skipped as undecodable under `on_error = 'skip'`.
    pub bad_rows_skipped: u64,
    /// Windows emitted.
    pub windows_emitted: u64,
    /// Result rows written.
    pub rows_emitted: u64,
    /// The current watermark (epoch ms), for progress reports.
    pub watermark_ms: Option<i64>,
    /// Checkpoints taken by a durable run (`--state-dir`).
    pub checkpoints: u64,
    /// Size of the last checkpoint in bytes.
    pub last_checkpoint_bytes: u64,
    /// Time the last checkpoint took.
    pub last_checkpoint_time: Duration,
    /// Time spent taking checkpoints.
    pub checkpoint_time: Duration,
    /// Wall-clock time.
    pub elapsed: Duration,
    /// The checkpoint a resumed run started from.
    pub resumed_from: Option<u64>,
    /// Events read before that checkpoint, by the runs before this one (included in
    /// `events_read`, not in the events per second).
    pub resumed_events: u64,
    /// Each query of the script, in script order.
    pub queries: Vec<QuerySummary>,
    /// The run was stopped before its input ended ([`super::StopSignal`]): the counters
    /// are those of what ran until then.
    pub interrupted: bool,
    /// A stopped durable run reading stdin: the last input line its write-ahead log holds.
    /// The same command run again resumes after it, so a producer resends the lines after
    /// it.
    pub resume_after_line: Option<u64>,
}

/// What one query of a script did.
#[derive(Debug, Clone, PartialEq)]
pub struct QuerySummary {
    /// Where its statement starts in the script.
    pub location: SqlLocation,
    /// Where its results went: `sink 'name'`, `stdout`, or `stream 'name'`.
    pub output: String,
    /// Rows it was given (by its source, or by the stream it reads).
    pub events_read: u64,
    /// Its late events.
    pub late_events_dropped: u64,
    /// Rows its source skipped as undecodable plus those it skipped for a NULL or
    /// out-of-range event time.
    pub bad_rows_skipped: u64,
    /// Windows it emitted.
    pub windows_emitted: u64,
    /// Result rows it wrote.
    pub rows_emitted: u64,
}

impl fmt::Display for QuerySummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} events, {} late, {} bad rows, {} windows, {} rows to {}",
            self.events_read,
            self.late_events_dropped,
            self.bad_rows_skipped,
            self.windows_emitted,
            self.rows_emitted,
            self.output
        )
    }
}

impl RunSummary {
    /// Events read per second of wall-clock time, by this run (not those a resumed run
    /// found in its checkpoint).
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events_read.saturating_sub(self.resumed_events) as f64 / secs
        } else {
            0.0
        }
    }
}

impl RunSummary {
    /// Adds the counters of `other` (another partition's dataflow of a scale-out run) to
    /// these; the queries' counters are added query by query.
    pub fn add(&mut self, other: &RunSummary) {
        self.events_read += other.events_read;
        self.late_events_dropped += other.late_events_dropped;
        self.bad_rows_skipped += other.bad_rows_skipped;
        self.windows_emitted += other.windows_emitted;
        self.rows_emitted += other.rows_emitted;
        self.watermark_ms = self.watermark_ms.max(other.watermark_ms);
        self.checkpoints += other.checkpoints;
        if other.checkpoints > 0 {
            self.last_checkpoint_bytes = other.last_checkpoint_bytes;
            self.last_checkpoint_time = other.last_checkpoint_time;
        }
        self.checkpoint_time += other.checkpoint_time;
        self.resumed_events += other.resumed_events;
        if self.queries.is_empty() {
            self.queries = other.queries.clone();
            return;
        }
        for (mine, theirs) in self.queries.iter_mut().zip(&other.queries) {
            mine.events_read += theirs.events_read;
            mine.late_events_dropped += theirs.late_events_dropped;
            mine.bad_rows_skipped += theirs.bad_rows_skipped;
            mine.windows_emitted += theirs.windows_emitted;
            mine.rows_emitted += theirs.rows_emitted;
        }
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.interrupted {
            f.write_str("interrupted: ")?;
        }
        write!(
            f,
            "{} events read, {} late events dropped, {} bad rows skipped, {} windows emitted ({} rows) in {:.2} s ({:.0} events/s)",
            self.events_read,
            self.late_events_dropped,
            self.bad_rows_skipped,
            self.windows_emitted,
            self.rows_emitted,
            self.elapsed.as_secs_f64(),
            self.events_per_second()
        )?;
        if let Some(id) = self.resumed_from {
            write!(
                f,
                "; resumed from checkpoint {id}, which had read {} of the events",
                self.resumed_events
            )?;
        }
        if self.checkpoints > 0 {
            write!(
                f,
                "; {} checkpoints in {:.3} s (last: {} bytes in {:.3} s)",
                self.checkpoints,
                self.checkpoint_time.as_secs_f64(),
                self.last_checkpoint_bytes,
                self.last_checkpoint_time.as_secs_f64()
            )?;
        }
        Ok(())
    }
}
