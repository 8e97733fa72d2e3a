//! MIN and MAX over strings (primitive types use the generic primitive accumulator).

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BinaryArray, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;

use super::GroupAccumulator;
use crate::error::Result;

/// Smallest or largest string per slot (byte-wise order, as DataFusion); NULL when none.
#[derive(Debug)]
pub(crate) struct StringMinMaxAccumulator {
    values: Vec<Option<String>>,
    keep_smaller: bool,
    data_type: DataType,
}

impl StringMinMaxAccumulator {
    /// MIN when `keep_smaller`, else MAX; results are cast to `data_type`.
    pub(crate) fn new(keep_smaller: bool, data_type: DataType) -> Self {
        Self {
            values: Vec::new(),
            keep_smaller,
            data_type,
        }
    }
}

impl StringMinMaxAccumulator {
    /// Keeps `value` in `slot` if it is smaller (MIN) or larger (MAX) than what is there.
    fn offer(&mut self, slot: u32, value: &str) {
        let current = &mut self.values[slot as usize];
        let replace = match current {
            None => true,
            Some(c) if self.keep_smaller => value < c.as_str(),
            Some(c) => value > c.as_str(),
        };
        if replace {
            *current = Some(value.to_owned());
        }
    }
}

impl GroupAccumulator for StringMinMaxAccumulator {
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if self.values.len() < num_slots {
            self.values.resize(num_slots, None);
        }
        let input = cast(&args[0], &DataType::Utf8)?;
        let input = input.as_string::<i32>();
        for (value, &slot) in input.iter().zip(slots) {
            if let Some(value) = value {
                self.offer(slot, value);
            }
        }
        Ok(())
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        Ok(slots
            .iter()
            .map(|&s| self.values[s as usize].as_ref().map(|v| v.as_bytes()))
            .collect())
    }

    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()> {
        if self.values.len() < num_slots {
            self.values.resize(num_slots, None);
        }
        for (state, &slot) in states.iter().zip(slots) {
            if let Some(bytes) = state {
                let value = std::str::from_utf8(bytes).map_err(|e| {
                    crate::error::Error::Execution(format!("malformed MIN/MAX state: {e}"))
                })?;
                self.offer(slot, value);
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        let array: StringArray = slots
            .iter()
            .map(|&s| self.values[s as usize].take())
            .collect();
        let array: ArrayRef = Arc::new(array);
        Ok(if self.data_type == DataType::Utf8 {
            array
        } else {
            cast(&array, &self.data_type)?
        })
    }

    fn merge_slots(&mut self, from: &[u32], into: &[u32], num_slots: usize) -> Result<bool> {
        if self.values.len() < num_slots {
            self.values.resize(num_slots, None);
        }
        for (&from, &into) in from.iter().zip(into) {
            if let Some(value) = self.values[from as usize].take() {
                self.offer(into, &value);
                self.values[from as usize] = Some(value);
            }
        }
        Ok(true)
    }

    fn size(&self) -> usize {
        self.values.capacity() * std::mem::size_of::<Option<String>>()
    }
}
