//! A reusable check that an accumulator's state bytes capture everything: state, merge
//! into a fresh accumulator, evaluate — the result must equal evaluating the original; and
//! that its in-memory slot merge, where it has one, gives the same.

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

    // In memory, where supported: the slots merged into other slots of the same
    // accumulator give the same result and stay as they were.
    let mut one = make();
    one.update(input, slots, num_slots).unwrap();
    let targets: Vec<u32> = (num_slots as u32..2 * num_slots as u32).rev().collect();
    if one.merge_slots(&all, &targets, 2 * num_slots).unwrap() {
        assert_eq!(&expected, &one.evaluate(&targets).unwrap());
        assert_eq!(&expected, &one.evaluate(&all).unwrap());
    }
}
