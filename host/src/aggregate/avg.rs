//! AVG over numbers as DOUBLE: a running sum and count per slot.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};

use super::{fixed_state, validity, GroupAccumulator};
use crate::error::Result;

/// Mean of the non-NULL values of each slot; NULL when it saw none.
#[derive(Debug, Default)]
pub(crate) struct AvgAccumulator {
    /// Per slot: (sum, count), together so an update touches one place per row.
    slots: Vec<(f64, u64)>,
}

impl GroupAccumulator for AvgAccumulator {
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (0.0, 0));
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
                    let state = &mut self.slots[slot as usize];
                    state.0 += v;
                    state.1 += 1;
                }
            }
            Some(nulls) => {
                for ((&v, &slot), valid) in input.values().iter().zip(slots).zip(nulls.iter()) {
                    if valid {
                        let state = &mut self.slots[slot as usize];
                        state.0 += v;
                        state.1 += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        let values: Vec<f64> = slots
            .iter()
            .map(|&s| match self.slots[s as usize] {
                (sum, count) if count > 0 => sum / count as f64,
                _ => 0.0,
            })
            .collect();
        // A group that saw no non-NULL value is NULL.
        let nulls = validity(slots, |s| self.slots[s].1 > 0);
        for &slot in slots {
            self.slots[slot as usize] = Default::default();
        }
        Ok(Arc::new(Float64Array::new(values.into(), nulls)))
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        Ok(slots
            .iter()
            .map(|&s| {
                let (sum, count) = self.slots[s as usize];
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
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (0.0, 0));
        }
        for (row, &slot) in slots.iter().enumerate() {
            if let Some(bytes) = fixed_state::<16>(states, row, "AVG")? {
                let (sum, count) = bytes.split_at(8);
                let state = &mut self.slots[slot as usize];
                state.0 += f64::from_le_bytes(sum.try_into().unwrap_or_default());
                state.1 += u64::from_le_bytes(count.try_into().unwrap_or_default());
            }
        }
        Ok(())
    }

    fn merge_slots(&mut self, from: &[u32], into: &[u32], num_slots: usize) -> Result<bool> {
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (0.0, 0));
        }
        for (&from, &into) in from.iter().zip(into) {
            let (sum, count) = self.slots[from as usize];
            let state = &mut self.slots[into as usize];
            state.0 += sum;
            state.1 += count;
        }
        Ok(true)
    }

    fn size(&self) -> usize {
        self.slots.capacity() * 16
    }
}
