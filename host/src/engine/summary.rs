//! What a run did: counts for the run summary and the live progress line.

use std::fmt;
use std::time::Duration;

/// Counters of one run (one query, or a whole script when added up).
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
    /// Wall-clock time.
    pub elapsed: Duration,
}

impl RunSummary {
    /// Events read per second of wall-clock time.
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events_read as f64 / secs
        } else {
            0.0
        }
    }

    /// Adds the counts of another run.
    pub fn add(&mut self, other: &RunSummary) {
        self.events_read += other.events_read;
        self.late_events_dropped += other.late_events_dropped;
        self.bad_rows_skipped += other.bad_rows_skipped;
        self.windows_emitted += other.windows_emitted;
        self.rows_emitted += other.rows_emitted;
        self.watermark_ms = other.watermark_ms.or(self.watermark_ms);
        self.elapsed += other.elapsed;
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
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
        )
    }
}
