//! Grouped, vectorised accumulators: the state behind COUNT, SUM, MIN, MAX, AVG.
//!
//! An accumulator holds one value per *slot*. The window-aggregate operator maps every
//! (window, key) group to a slot and hands an accumulator one batch at a time with a slot
//! index per row, in the spirit of DataFusion's `GroupsAccumulator`. When a window closes
//! its slots are evaluated and freed for reuse.

mod avg;
mod count;
mod min_max;
mod primitive;
mod registry;
#[cfg(test)]
mod state_test;

pub use registry::{native_accumulator, NATIVE_AGGREGATES};

use arrow::array::{Array, ArrayRef, BinaryArray};
use arrow::buffer::{BooleanBuffer, NullBuffer};

use crate::error::Result;

/// Per-slot aggregate state updated a batch at a time.
pub trait GroupAccumulator: Send + std::fmt::Debug {
    /// Adds the rows of `args` (one array per argument, all the same length as `slots`):
    /// row `i` belongs to slot `slots[i]`. Every slot index is below `num_slots`.
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()>;

    /// The final value of each of `slots`, in that order; the slots are reset to empty
    /// and may be handed out again.
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef>;

    /// The state of each of `slots` as bytes, in that order, for checkpoints and partial
    /// aggregation; NULL for a slot that saw no rows. The slots are not changed.
    fn state(&mut self, slots: &[u32]) -> Result<BinaryArray>;

    /// Merges `states` (as produced by [`GroupAccumulator::state`], one per slot) into
    /// `slots`. Every slot index is below `num_slots`.
    fn merge(&mut self, states: &BinaryArray, slots: &[u32], num_slots: usize) -> Result<()>;

    /// Merges the state of slot `from[i]` into slot `into[i]` for every `i`, in memory,
    /// leaving the `from` slots as they were (the panes of a sliding window merged into
    /// the window). Every slot index is below `num_slots`; `from` and `into` share no
    /// slot. `false`: not supported here, and nothing was done; the caller goes through
    /// [`state`](Self::state) and [`merge`](Self::merge) instead (a Wasm aggregate does).
    fn merge_slots(&mut self, from: &[u32], into: &[u32], num_slots: usize) -> Result<bool> {
        let _ = (from, into, num_slots);
        Ok(false)
    }

    /// Approximate bytes of state held.
    fn size(&self) -> usize;
}

/// The validity of the results of `slots`: `None` (every one valid) where every slot saw a
/// value, as most do, else one bit per slot, from `seen`.
pub(crate) fn validity(slots: &[u32], seen: impl Fn(usize) -> bool) -> Option<NullBuffer> {
    if slots.iter().all(|&s| seen(s as usize)) {
        return None;
    }
    let bits = BooleanBuffer::from_iter(slots.iter().map(|&s| seen(s as usize)));
    Some(NullBuffer::new(bits))
}

/// Reads a fixed-size state value; `None` for a NULL (empty) state.
pub(crate) fn fixed_state<const N: usize>(
    states: &BinaryArray,
    row: usize,
    what: &str,
) -> Result<Option<[u8; N]>> {
    if states.is_null(row) {
        return Ok(None);
    }
    let bytes = states.value(row);
    <[u8; N]>::try_from(bytes).map(Some).map_err(|_| {
        crate::error::Error::Execution(format!(
            "malformed {what} state: {} bytes, expected {N}",
            bytes.len()
        ))
    })
}
