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

pub use registry::{native_accumulator, NATIVE_AGGREGATES};

use arrow::array::ArrayRef;

use crate::error::Result;

/// Per-slot aggregate state updated a batch at a time.
pub trait GroupAccumulator: Send + std::fmt::Debug {
    /// Adds the rows of `args` (one array per argument, all the same length as `slots`):
    /// row `i` belongs to slot `slots[i]`. Every slot index is below `num_slots`.
    fn update(&mut self, args: &[ArrayRef], slots: &[u32], num_slots: usize) -> Result<()>;

    /// The final value of each of `slots`, in that order; the slots are reset to empty
    /// and may be handed out again.
    fn evaluate(&mut self, slots: &[u32]) -> Result<ArrayRef>;

    /// Approximate bytes of state held.
    fn size(&self) -> usize;
}
