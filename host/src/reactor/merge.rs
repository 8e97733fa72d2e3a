//! The merge of what the cores emit: every emission round (epoch) is released once all
//! cores have reported it, window by window in window order, each window's rows from
//! every core together. A window closes on every core in the same round (they all see the
//! same watermarks), so windows also leave in order across rounds.

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;

/// One round's reports so far.
#[derive(Debug, Default)]
struct Round {
    reported: usize,
    windows: BTreeMap<i64, Vec<RecordBatch>>,
}

/// Collects the cores' emissions and releases them in order.
#[derive(Debug)]
pub(crate) struct Merger {
    cores: usize,
    rounds: BTreeMap<u64, Round>,
    /// The next round to release.
    next: u64,
    /// Rounds handed to the cores so far (`next..sent` are outstanding).
    sent: u64,
    windows_emitted: u64,
}

impl Merger {
    /// A merger over `cores` cores that counts from `windows_emitted` windows.
    pub(crate) fn new(cores: usize, windows_emitted: u64) -> Self {
        Self {
            cores,
            rounds: BTreeMap::new(),
            next: 0,
            sent: 0,
            windows_emitted,
        }
    }

    /// Starts a new round; returns its epoch.
    pub(crate) fn open_round(&mut self) -> u64 {
        self.sent += 1;
        self.sent - 1
    }

    /// Whether rounds are still waiting for reports.
    pub(crate) fn outstanding(&self) -> bool {
        self.next < self.sent
    }

    /// Adds one core's windows of round `epoch`.
    pub(crate) fn add(&mut self, epoch: u64, windows: Vec<(i64, RecordBatch)>) {
        let round = self.rounds.entry(epoch).or_default();
        round.reported += 1;
        for (start, batch) in windows {
            round.windows.entry(start).or_default().push(batch);
        }
    }

    /// The rows of every complete round from the next one on, in window order.
    pub(crate) fn release(&mut self, out: &mut Vec<RecordBatch>) {
        while let Some(entry) = self.rounds.first_entry() {
            if *entry.key() != self.next || entry.get().reported < self.cores {
                return;
            }
            let round = entry.remove();
            self.next += 1;
            self.windows_emitted += round.windows.len() as u64;
            for (_, batches) in round.windows {
                out.extend(batches);
            }
        }
    }

    /// Windows released so far (distinct windows, however many cores held groups of each).
    pub(crate) fn windows_emitted(&self) -> u64 {
        self.windows_emitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn rows(tag: i64) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![tag]))]).unwrap()
    }

    fn tags(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .value(0)
            })
            .collect()
    }

    #[test]
    fn rounds_leave_complete_and_in_order_and_windows_are_counted_once() {
        let mut merger = Merger::new(2, 5);
        let (a, b) = (merger.open_round(), merger.open_round());
        let mut out = Vec::new();
        merger.add(b, vec![(20, rows(21))]);
        merger.add(a, vec![(0, rows(1)), (10, rows(11))]);
        merger.release(&mut out);
        assert!(out.is_empty(), "round a waits for the second core");
        merger.add(a, vec![(0, rows(2))]);
        merger.release(&mut out);
        assert_eq!(tags(&out), vec![1, 2, 11]);
        assert!(merger.outstanding());
        merger.add(b, vec![(20, rows(22)), (30, rows(31))]);
        merger.release(&mut out);
        assert_eq!(tags(&out), vec![1, 2, 11, 21, 22, 31]);
        assert!(!merger.outstanding());
        assert_eq!(merger.windows_emitted(), 5 + 4);
    }
}
