//! The live progress line on a terminal's stderr.

use std::io::Write;

use crate::engine::RunSummary;

/// Rewrites one stderr line with the run's progress (only when stderr is a terminal).
pub(crate) struct ProgressLine {
    enabled: bool,
    shown: bool,
}

impl ProgressLine {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            enabled,
            shown: false,
        }
    }

    pub(crate) fn update(&mut self, summary: &RunSummary) {
        if !self.enabled {
            return;
        }
        let watermark = summary
            .watermark_ms
            .and_then(arrow::temporal_conversions::timestamp_ms_to_datetime)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2K{} events, {:.0} events/s, watermark {watermark}, {} late, {} windows",
            summary.events_read,
            summary.events_per_second(),
            summary.late_events_dropped,
            summary.windows_emitted
        );
        let _ = err.flush();
        self.shown = true;
    }

    pub(crate) fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            self.shown = false;
        }
    }
}
