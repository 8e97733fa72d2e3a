//! The part of the event-time stage that needs nothing from the rows before a piece
//! (ARCHITECTURE §7): each row's window, the rows late against earlier rows of the same
//! piece, the rows without a usable event time, the piece's largest event time and the
//! smallest window end it keeps. It runs on the thread that decoded the piece; the stage
//! completes it in arrival order with the largest event time of every piece before.
//!
//! Why the two halves give the sequential answer: a row is late iff its window end is at
//! or before `max(carried, local prefix max) - delay`, that is iff it is late against the
//! piece's own earlier rows (the local pass) or its end is at or before
//! `carried - delay`. Only rows the local pass kept need the second check, and none can
//! fail it when the smallest end kept is past `carried - delay`: then the completion
//! costs nothing per row.

use std::sync::Arc;

use arrow::array::Array;
use arrow::record_batch::RecordBatch;

use super::event_time_millis;
use crate::error::Result;
use crate::window::WindowSpec;

/// How a query reads event time out of its source's rows and when a row is late: what
/// a decoder thread needs to run the local pass on the pieces it decodes.
#[derive(Debug, Clone)]
pub struct EventTimeRule {
    /// Index of the event-time column in the source's rows.
    pub(crate) column: usize,
    /// Its name, for error messages.
    pub(crate) column_name: Arc<str>,
    /// The window kind rows are assigned to.
    pub(crate) window: WindowSpec,
    /// How far the watermark trails the largest event time.
    pub(crate) delay_ms: i64,
}

/// What one piece of rows tells about event time on its own, before the rows before it
/// are known.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalTimes {
    /// The pane of every row (its window start for TUMBLE, see
    /// [`WindowSpec::pane_of`]; 0 for a row without a usable event time).
    pub(crate) starts: Vec<i64>,
    /// The rows on time against the piece's earlier rows, ascending; `None`: every row,
    /// the common case, which costs no list.
    pub(crate) kept: Option<Vec<u32>>,
    /// Rows late against the piece's earlier rows.
    pub(crate) late: u64,
    /// Rows without a usable event time (NULL, or too close to the ends of time).
    pub(crate) bad: u64,
    /// The first such row and why, for a source that fails on bad rows.
    pub(crate) first_bad: Option<(usize, String)>,
    /// The largest event time of the piece.
    pub(crate) max_time: Option<i64>,
    /// The smallest last window end ([`WindowSpec::last_end`]) of a kept row.
    pub(crate) min_kept_end: Option<i64>,
}

impl EventTimeRule {
    /// The local pass over `batch`, one piece of a source's rows in arrival order.
    pub(crate) fn local(&self, batch: &RecordBatch) -> Result<LocalTimes> {
        let times = event_time_millis(batch.column(self.column))?;
        Ok(if times.null_count() == 0 {
            // No validity to test row by row.
            self.pass(times.values().iter().map(|&t| Some(t)), times.len())
        } else {
            self.pass(times.iter(), times.len())
        })
    }

    /// The local pass over the event times `times` of `rows` rows.
    fn pass(&self, times: impl Iterator<Item = Option<i64>>, rows: usize) -> LocalTimes {
        let mut local = LocalTimes {
            starts: Vec::with_capacity(rows),
            ..LocalTimes::default()
        };
        // The watermark after the rows so far; `i64::MIN` before the first, which makes
        // nothing late (every window end is above it).
        let mut watermark = i64::MIN;
        let mut max_time = i64::MIN;
        let mut min_kept_end = i64::MAX;
        // Rows arrive nearly in event-time order, so most fall into the previous row's
        // pane: reuse it and skip the division.
        let width = self.window.pane_width();
        let mut previous: Option<(i64, i64)> = None;
        for (row, t) in times.enumerate() {
            let window = match (t, previous, width) {
                (Some(t), Some((start, end)), Some(width))
                    if t >= start && t.checked_sub(start).is_some_and(|d| d < width) =>
                {
                    Some((start, end))
                }
                (Some(t), _, _) => {
                    previous = self.window.pane_of(t).map(|s| (s, self.window.last_end(s)));
                    previous
                }
                (None, _, _) => None,
            };
            let (Some(t), Some((start, end))) = (t, window) else {
                local.bad += 1;
                if local.first_bad.is_none() {
                    local.first_bad = Some((row, self.why_bad(t)));
                }
                local.drop_row(row, rows);
                local.starts.push(0);
                continue;
            };
            if end <= watermark {
                local.late += 1;
                local.drop_row(row, rows);
            } else {
                if let Some(kept) = &mut local.kept {
                    kept.push(row as u32);
                }
                min_kept_end = min_kept_end.min(end);
            }
            local.starts.push(start);
            watermark = watermark.max(t.saturating_sub(self.delay_ms));
            max_time = max_time.max(t);
        }
        let timed = rows as u64 - local.bad;
        local.max_time = (timed > 0).then_some(max_time);
        local.min_kept_end = (timed > local.late).then_some(min_kept_end);
        local
    }

    /// Why a row's event time `t` gives it no window.
    fn why_bad(&self, t: Option<i64>) -> String {
        match t {
            None => format!("event-time column '{}' is NULL", self.column_name),
            Some(t) => format!(
                "event time {t} ms in column '{}' is out of range",
                self.column_name
            ),
        }
    }
}

impl LocalTimes {
    /// Row `row` of `rows` is not kept: the first such row starts the list of kept rows,
    /// every row before it.
    fn drop_row(&mut self, row: usize, rows: usize) {
        if self.kept.is_none() {
            let mut kept = Vec::with_capacity(rows);
            kept.extend(0..row as u32);
            self.kept = Some(kept);
        }
    }

    /// How many rows are kept, of the piece's `starts.len()`.
    pub(crate) fn kept_rows(&self) -> usize {
        self.kept.as_ref().map_or(self.starts.len(), Vec::len)
    }

    /// Completes the local pass with the watermark of every row before the piece
    /// (`None`: no row yet): drops the kept rows whose window that watermark has closed
    /// and returns how many it dropped.
    pub(crate) fn complete(&mut self, watermark: Option<i64>, window: &WindowSpec) -> u64 {
        let (Some(watermark), Some(min_end)) = (watermark, self.min_kept_end) else {
            return 0;
        };
        if min_end > watermark {
            return 0;
        }
        let before = self.kept_rows();
        let starts = &self.starts;
        let open = |row: u32| window.last_end(starts[row as usize]) > watermark;
        let kept = match self.kept.take() {
            Some(mut kept) => {
                kept.retain(|&row| open(row));
                kept
            }
            None => (0..starts.len() as u32).filter(|&row| open(row)).collect(),
        };
        self.kept = Some(kept);
        let dropped = (before - self.kept_rows()) as u64;
        self.late += dropped;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::WatermarkGenerator;
    use arrow::array::{ArrayRef, Int64Array};
    use arrow::datatypes::{DataType, Field, Schema};
    use proptest::prelude::*;

    fn rule(size: i64, delay: i64) -> EventTimeRule {
        EventTimeRule {
            column: 0,
            column_name: "ts".into(),
            window: WindowSpec::tumble(size).unwrap(),
            delay_ms: delay,
        }
    }

    fn batch(times: &[Option<i64>]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, true)]));
        let column: ArrayRef = Arc::new(Int64Array::from(times.to_vec()));
        RecordBatch::try_new(schema, vec![column]).unwrap()
    }

    /// The sequential answer, row by row: which rows (by index in the whole input) are on
    /// time, how many are late and how many have no window.
    fn sequential(times: &[Option<i64>], size: i64, delay: i64) -> (Vec<usize>, u64, u64) {
        let window = crate::window::TumblingWindow::new(size).unwrap();
        let mut watermark = WatermarkGenerator::new(delay);
        let (mut kept, mut late, mut bad) = (Vec::new(), 0, 0);
        for (row, t) in times.iter().enumerate() {
            let Some(start) = t.and_then(|t| window.start_of(t)) else {
                bad += 1;
                continue;
            };
            if watermark.is_late(window.end_of_start(start)) {
                late += 1;
            } else {
                kept.push(row);
            }
            watermark.observe(t.unwrap_or_default());
        }
        (kept, late, bad)
    }

    proptest! {
        #[test]
        fn pieces_completed_in_order_give_the_sequential_answer(
            times in proptest::collection::vec(
                prop_oneof![
                    20 => (-5_000i64..5_000).prop_map(Some),
                    1 => Just(None),
                    1 => Just(Some(i64::MAX - 3)),
                ],
                0..120,
            ),
            cuts in proptest::collection::vec(0usize..120, 0..8),
            size in 1i64..700,
            delay in 0i64..900,
        ) {
            let rule = rule(size, delay);
            let mut bounds: Vec<usize> = cuts.into_iter().filter(|&c| c <= times.len()).collect();
            bounds.extend([0, times.len()]);
            bounds.sort_unstable();
            let mut carried = WatermarkGenerator::new(delay);
            let (mut kept, mut late, mut bad) = (Vec::new(), 0, 0);
            for piece in bounds.windows(2) {
                let (from, to) = (piece[0], piece[1]);
                let mut local = rule.local(&batch(&times[from..to])).unwrap();
                local.complete(carried.current(), &rule.window);
                let rows: Vec<usize> = match &local.kept {
                    Some(rows) => rows.iter().map(|&row| row as usize).collect(),
                    None => (0..to - from).collect(),
                };
                kept.extend(rows.iter().map(|&row| from + row));
                late += local.late;
                bad += local.bad;
                if let Some(max) = local.max_time {
                    carried.observe(max);
                }
                for &row in &rows {
                    let t = times[from + row].unwrap();
                    prop_assert_eq!(local.starts[row], rule.window.pane_of(t).unwrap());
                }
            }
            prop_assert_eq!((kept, late, bad), sequential(&times, size, delay));
        }
    }

    #[test]
    fn the_first_bad_row_is_named() {
        let local = rule(10, 0).local(&batch(&[Some(1), None, None])).unwrap();
        assert_eq!(local.bad, 2);
        let (row, why) = local.first_bad.unwrap();
        assert_eq!(row, 1);
        assert!(why.contains("'ts' is NULL"), "{why}");
    }

    #[test]
    fn a_late_row_starts_the_list_of_kept_rows() {
        let local = rule(10, 0)
            .local(&batch(&[Some(1), Some(12), Some(3), Some(14)]))
            .unwrap();
        assert_eq!((local.kept, local.late), (Some(vec![0, 1, 3]), 1));
        assert_eq!(local.starts, vec![0, 10, 0, 10]);
    }

    #[test]
    fn completion_is_free_when_the_carried_watermark_closes_nothing_kept() {
        let window = WindowSpec::tumble(10).unwrap();
        let mut local = rule(10, 0).local(&batch(&[Some(25), Some(21)])).unwrap();
        assert_eq!(local.min_kept_end, Some(30));
        assert_eq!(local.complete(Some(29), &window), 0);
        assert_eq!(local.kept, None, "every row is kept, without a list");
        assert_eq!(local.complete(Some(30), &window), 2);
        assert_eq!((local.kept_rows(), local.late), (0, 2));
    }
}
