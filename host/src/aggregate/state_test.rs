//! A reusable check that an accumulator's state bytes capture everything: state, merge
//! into a fresh accumulator, evaluate — the result must equal evaluating the original.

use arrow::array::ArrayRef;

use super::GroupAccumulator;

/// Feeds `input` into `make()`, then compares evaluating it directly with evaluating a
/// second accumulator restored from its state bytes (split over two merges).
pub(crate) fn check_state_round_trip(
    make: &dyn Fn() -> Box<dyn GroupAccumulator>,
    input: &[ArrayRef],
    slots: &[u32],
    num_slots: usize,
) {
    let all: Vec<u32> = (0..num_slots as u32).collect();
    let mut original = make();
    original.update(input, slots, num_slots).unwrap();
    let states = original.state(&all).unwrap();
    let mut restored = make();
    // Merge into reversed slot numbers, to show states are not tied to slot positions.
    let reversed: Vec<u32> = all.iter().rev().copied().collect();
    restored.merge(&states, &reversed, num_slots).unwrap();
    let expected = original.evaluate(&all).unwrap();
    let actual = restored.evaluate(&reversed).unwrap();
    assert_eq!(&expected, &actual);
}
