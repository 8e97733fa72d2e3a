//! Replacing the accumulators of some of a window aggregate's calls while its windows stay
//! open (a live plugin swap): the open groups' slots, each call's accumulator, and the
//! swap of an accumulator for one built to hold the same groups. What goes into the new
//! accumulator is the caller's business (`plugin::reload`); this module must not know
//! about plugins.

use std::sync::Arc;

use super::WindowAggregate;
use crate::aggregate::GroupAccumulator;
use crate::error::Result;

/// Accumulators built to take over some calls of one [`WindowAggregate`] (holding the
/// same groups in the same slots), and how many group states they took over.
#[derive(Debug, Default)]
pub struct Replacement {
    /// The call index and its new accumulator.
    pub calls: Vec<(usize, Box<dyn GroupAccumulator>)>,
    /// Group states carried over (groups with no state are not counted).
    pub groups: u64,
}

/// Builds a [`Replacement`] for one operator without changing it (an error leaves the
/// operator as it was); shared by every core of a query.
pub type ReplaceJob = Arc<dyn Fn(&mut WindowAggregate) -> Result<Replacement> + Send + Sync>;

impl WindowAggregate {
    /// The slots of every open group (sessions closed but not yet emitted included), and
    /// the number of slots the accumulators address.
    pub fn open_slots(&self) -> (Vec<u32>, usize) {
        match &self.sessions {
            Some(sessions) => (
                sessions.all().iter().map(|s| s.slot).collect(),
                sessions.num_slots(),
            ),
            None => (
                self.table
                    .open_windows()
                    .flat_map(|(_, groups)| groups.slots.iter().copied())
                    .collect(),
                self.table.num_slots(),
            ),
        }
    }

    /// The number of aggregate calls.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The accumulator of call `call`, if there is one.
    pub fn accumulator_mut(&mut self, call: usize) -> Option<&mut Box<dyn GroupAccumulator>> {
        self.calls.get_mut(call).map(|c| &mut c.accumulator)
    }

    /// Puts the accumulators of `replacement` in place of those of their calls (which are
    /// dropped); a call index out of range is ignored.
    pub fn install(&mut self, replacement: Replacement) {
        for (call, accumulator) in replacement.calls {
            if let Some(slot) = self.calls.get_mut(call) {
                slot.accumulator = accumulator;
            }
        }
    }
}
