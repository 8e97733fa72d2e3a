//! AVG over numbers as DOUBLE: a running sum and count per slot.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use super::{fixed_state, GroupAccumulator};
use crate::error::Result;

/// Mean of the non-NULL values of each slot; NULL when it saw none.
#[derive(Debug, Default)]
pub(crate) struct AvgAccumulator {
    sums: Vec<f64>,
    counts: Vec<u64>,
}

impl GroupAccumulator for AvgAccumulator {
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if self.sums.len() < num_slots {
            self.sums.resize(num_slots, 0.0);
            self.counts.resize(num_slots, 0);
        }
        let input = if args[0].data_type() == &DataType::Float64 {
            Arc::clone(&args[0])
        } else {
            cast(&args[0], &DataType::Float64)?
        };
        let input = input.as_primitive::<Float64Type>();
        match input.nulls().filter(|n| n.null_count() > 0) {
            None => {
                for (&v, &slot) in input.values().iter().zip(slots) {
                    self.sums[slot as usize] += v;
                    self.counts[slot as usize] += 1;
                }
            }
            Some(nulls) => {
                for ((&v, &slot), valid) in input.values().iter().zip(slots).zip(nulls.iter()) {
                    if valid {
                        self.sums[slot as usize] += v;
                        self.counts[slot as usize] += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        let values: Float64Array = slots
            .iter()
            .map(|&s| {
                let sum = std::mem::take(&mut self.sums[s as usize]);
                let count = std::mem::take(&mut self.counts[s as usize]);
                (count > 0).then(|| sum / count as f64)
            })
            .collect();
        Ok(Arc::new(values))
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        Ok(slots
            .iter()
            .map(|&s| {
                let (sum, count) = (self.sums[s as usize], self.counts[s as usize]);
                (count > 0).then(|| {
                    let mut bytes = [0u8; 16];
                    bytes[..8].copy_from_slice(&sum.to_le_bytes());
                    bytes[8..].copy_from_slice(&count.to_le_bytes());
                    bytes
                })
            })
            .collect())
    }

    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()> {
        if self.sums.len() < num_slots {
            self.sums.resize(num_slots, 0.0);
            self.counts.resize(num_slots, 0);
        }
        for (row, &slot) in slots.iter().enumerate() {
            if let Some(bytes) = fixed_state::<16>(states, row, "AVG")? {
                let (sum, count) = bytes.split_at(8);
                self.sums[slot as usize] += f64::from_le_bytes(sum.try_into().unwrap_or_default());
                self.counts[slot as usize] +=
                    u64::from_le_bytes(count.try_into().unwrap_or_default());
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.sums.capacity() * 16
    }
}
