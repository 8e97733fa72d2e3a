//! COUNT(*) and COUNT(expr): the number of rows, or of non-NULL values, per slot.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BinaryArray, Int64Array};
use arrow::buffer::NullBuffer;

use super::{fixed_state, GroupAccumulator};
use crate::error::Result;

/// Counts rows (no argument) or non-NULL argument values; never NULL itself.
#[derive(Debug, Default)]
pub(crate) struct CountAccumulator {
    counts: Vec<i64>,
}

impl GroupAccumulator for CountAccumulator {
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if self.counts.len() < num_slots {
            self.counts.resize(num_slots, 0);
        }
        // COUNT(a, b, …) counts the rows where every argument is non-NULL, as DataFusion
        // does; COUNT(*) has no argument and counts every row.
        let nulls = args.iter().fold(None, |acc: Option<NullBuffer>, arg| {
            NullBuffer::union(acc.as_ref(), arg.logical_nulls().as_ref())
        });
        match nulls {
            Some(nulls) if nulls.null_count() > 0 => {
                for (&slot, valid) in slots.iter().zip(nulls.iter()) {
                    self.counts[slot as usize] += i64::from(valid);
                }
            }
            _ => {
                for &slot in slots {
                    self.counts[slot as usize] += 1;
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        let values: Vec<i64> = slots
            .iter()
            .map(|&s| std::mem::take(&mut self.counts[s as usize]))
            .collect();
        Ok(Arc::new(Int64Array::new(values.into(), None)))
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        Ok(slots
            .iter()
            .map(|&s| Some(self.counts[s as usize].to_le_bytes()))
            .collect())
    }

    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()> {
        if self.counts.len() < num_slots {
            self.counts.resize(num_slots, 0);
        }
        for (row, &slot) in slots.iter().enumerate() {
            if let Some(bytes) = fixed_state::<8>(states, row, "COUNT")? {
                self.counts[slot as usize] += i64::from_le_bytes(bytes);
            }
        }
        Ok(())
    }

    fn merge_slots(&mut self, from: &[u32], into: &[u32], num_slots: usize) -> Result<bool> {
        if self.counts.len() < num_slots {
            self.counts.resize(num_slots, 0);
        }
        for (&from, &into) in from.iter().zip(into) {
            self.counts[into as usize] += self.counts[from as usize];
        }
        Ok(true)
    }

    fn size(&self) -> usize {
        self.counts.capacity() * 8
    }
}
