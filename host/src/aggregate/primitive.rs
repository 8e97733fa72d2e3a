//! One generic accumulator for SUM, MIN and MAX over Arrow primitive types.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BinaryArray, PrimitiveArray};
use arrow::buffer::{Buffer, ScalarBuffer};
use arrow::compute::cast;
use arrow::datatypes::{ArrowPrimitiveType, DataType, ToByteSlice};

use super::{validity, GroupAccumulator};
use crate::error::Result;

/// Folds every non-NULL value of a slot with `fold`; a slot that saw no value is NULL.
pub(crate) struct PrimitiveAccumulator<T: ArrowPrimitiveType, F> {
    /// Per slot: the folded value and whether any value arrived (kept together so an
    /// update touches one place per row).
    slots: Vec<(T::Native, bool)>,
    identity: T::Native,
    fold: F,
    data_type: DataType,
}

impl<T: ArrowPrimitiveType, F> fmt::Debug for PrimitiveAccumulator<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimitiveAccumulator")
            .field("data_type", &self.data_type)
            .field("slots", &self.slots.len())
            .finish()
    }
}

impl<T, F> PrimitiveAccumulator<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&mut T::Native, T::Native) + Send,
{
    /// An accumulator producing `data_type`, starting each slot at `identity`.
    pub(crate) fn new(data_type: DataType, identity: T::Native, fold: F) -> Self {
        Self {
            slots: Vec::new(),
            identity,
            fold,
            data_type,
        }
    }
}

impl<T, F> GroupAccumulator for PrimitiveAccumulator<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&mut T::Native, T::Native) + Send,
{
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()> {
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (self.identity, false));
        }
        let input = if args[0].data_type() == &self.data_type {
            Arc::clone(&args[0])
        } else {
            cast(&args[0], &self.data_type)?
        };
        let input = input.as_primitive::<T>();
        let values = input.values();
        match input.nulls().filter(|n| n.null_count() > 0) {
            None => {
                for (&v, &slot) in values.iter().zip(slots) {
                    let slot = slot as usize;
                    let state = &mut self.slots[slot];
                    (self.fold)(&mut state.0, v);
                    state.1 = true;
                }
            }
            Some(nulls) => {
                for ((&v, &slot), valid) in values.iter().zip(slots).zip(nulls.iter()) {
                    if valid {
                        let slot = slot as usize;
                        let state = &mut self.slots[slot];
                        (self.fold)(&mut state.0, v);
                        state.1 = true;
                    }
                }
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef> {
        let out: Vec<T::Native> = slots.iter().map(|&s| self.slots[s as usize].0).collect();
        // A group that saw no non-NULL value is NULL.
        let nulls = validity(slots, |s| self.slots[s].1);
        for &slot in slots {
            self.slots[slot as usize] = (self.identity, false);
        }
        let array = PrimitiveArray::<T>::new(out.into(), nulls);
        // Only parameterised types (a timestamp's zone, a decimal's scale) differ from the
        // array's default type.
        let array = if self.data_type == T::DATA_TYPE {
            array
        } else {
            array.with_data_type(self.data_type.clone())
        };
        Ok(Arc::new(array))
    }

    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray> {
        let width = std::mem::size_of::<T::Native>();
        let mut bytes = Vec::with_capacity(width);
        Ok(slots
            .iter()
            .map(|&s| {
                let (value, seen) = &self.slots[s as usize];
                seen.then(|| {
                    bytes.clear();
                    bytes.extend_from_slice(std::slice::from_ref(value).to_byte_slice());
                    to_little_endian(&mut bytes);
                    bytes.clone()
                })
            })
            .collect())
    }

    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()> {
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (self.identity, false));
        }
        let width = std::mem::size_of::<T::Native>();
        let mut native = Vec::with_capacity(width);
        for (state, &slot) in states.iter().zip(slots) {
            let Some(bytes) = state else { continue };
            if bytes.len() != width {
                return Err(crate::error::Error::Execution(format!(
                    "malformed {} state: {} bytes, expected {width}",
                    self.data_type,
                    bytes.len()
                )));
            }
            native.clear();
            native.extend_from_slice(bytes);
            to_little_endian(&mut native);
            let value = ScalarBuffer::<T::Native>::from(Buffer::from_slice_ref(&native))[0];
            let slot = slot as usize;
            let state = &mut self.slots[slot];
            (self.fold)(&mut state.0, value);
            state.1 = true;
        }
        Ok(())
    }

    fn merge_slots(&mut self, from: &[u32], into: &[u32], num_slots: usize) -> Result<bool> {
        if self.slots.len() < num_slots {
            self.slots.resize(num_slots, (self.identity, false));
        }
        for (&from, &into) in from.iter().zip(into) {
            let (value, seen) = self.slots[from as usize];
            if seen {
                let state = &mut self.slots[into as usize];
                (self.fold)(&mut state.0, value);
                state.1 = true;
            }
        }
        Ok(true)
    }

    fn size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<(T::Native, bool)>()
    }
}

/// State bytes are little-endian on every host: a value's native bytes are reversed on a
/// big-endian one (the same call converts in both directions).
fn to_little_endian(bytes: &mut [u8]) {
    if cfg!(target_endian = "big") {
        bytes.reverse();
    }
}
