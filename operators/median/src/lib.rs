//! `median(x DOUBLE) -> DOUBLE`: the exact median of the non-NULL values of `x`, as a
//! Laminar Wasm aggregate.
//!
//! Semantics:
//! - NULL rows are skipped; a group with no non-NULL value evaluates to NULL.
//! - An odd number of values gives the middle one; an even number gives the mean of the two
//!   middle ones, `(lo + hi) / 2`, as DataFusion's `median` does for `Float64`.
//! - Values are ordered by [`f64::total_cmp`]: `-NaN < -inf < … < -0.0 < +0.0 < … < +inf < NaN`,
//!   so NaN inputs take part and sort to the ends instead of poisoning the order.
//!
//! The state of a group is every value it has seen (`Vec<f64>`, 8 bytes a value in memory
//! and in state bytes); states merge by concatenation. Evaluation uses a selection
//! (`select_nth_unstable_by`, expected linear time), never a full sort.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The exact median aggregate.
pub struct Median;

/// The median of `values` (reordered in place), or `None` when `values` is empty.
///
/// Runs one selection for the upper middle value; for an even count the lower middle is
/// the largest value left of it, found by a linear scan.
pub fn median(values: &mut [f64]) -> Option<f64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (left, &mut hi, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        return Some(hi);
    }
    // `left` holds the n/2 values ordered before `hi`; n is even and > 0, so it is not empty.
    let lo = left.iter().copied().max_by(f64::total_cmp).unwrap_or(hi);
    Some((lo + hi) / 2.0)
}

impl Aggregate for Median {
    /// Every non-NULL value of the group.
    type State = Vec<f64>;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    #[inline]
    fn update(state: &mut Vec<f64>, args: &Args<'_>) {
        state.push(args.f64(0));
    }

    fn merge(state: &mut Vec<f64>, mut other: Vec<f64>) {
        if state.len() < other.len() {
            std::mem::swap(state, &mut other);
        }
        state.extend_from_slice(&other);
    }

    fn evaluate(mut state: Vec<f64>) -> Value {
        median(&mut state).into()
    }
}

laminar_guest::export_aggregate!(Median);

#[cfg(test)]
mod tests {
    use super::*;
    use laminar_guest::Codec;

    /// Deterministic pseudo-random values (SplitMix64) in [-1000, 1000), with repeats.
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = s;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z % 20_000) as f64) / 10.0 - 1000.0
            })
            .collect()
    }

    /// The median by full sort, as the reference.
    fn sorted_median(values: &[f64]) -> Option<f64> {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    fn round_trip(state: &Vec<f64>) -> Vec<f64> {
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        let mut input = bytes.as_slice();
        let decoded = Vec::<f64>::decode(&mut input).unwrap();
        assert!(input.is_empty());
        decoded
    }

    #[test]
    fn small_cases() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0]), Some(3.0));
        assert_eq!(median(&mut [3.0, 1.0]), Some(2.0));
        assert_eq!(median(&mut [5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&mut [2.0, 2.0, 2.0, 7.0]), Some(2.0));
        assert_eq!(median(&mut [-1.0, f64::INFINITY, 1.0]), Some(1.0));
    }

    #[test]
    fn matches_full_sort() {
        for n in [1, 2, 3, 10, 11, 1000, 1001, 65_536, 65_537] {
            let v = values(n, n as u64);
            let expected = sorted_median(&v);
            assert_eq!(median(&mut v.clone()), expected, "n = {n}");
            assert_eq!(Median::evaluate(v), Value::from(expected), "n = {n}");
        }
    }

    #[test]
    fn empty_group_is_null() {
        assert_eq!(Median::evaluate(Vec::new()), Value::Null);
        let mut state = Vec::new();
        Median::merge(&mut state, round_trip(&Vec::new()));
        assert_eq!(Median::evaluate(state), Value::Null);
    }

    #[test]
    fn merge_of_encoded_halves_is_exact() {
        for n in [2, 7, 10_000, 10_001] {
            let v = values(n, 42);
            let (a, b) = v.split_at(n / 3);
            let mut state = round_trip(&a.to_vec());
            Median::merge(&mut state, round_trip(&b.to_vec()));
            assert_eq!(Median::evaluate(state), Value::from(sorted_median(&v)));
            // The other way round too (merge swaps to keep the larger buffer).
            let mut state = b.to_vec();
            Median::merge(&mut state, round_trip(&a.to_vec()));
            assert_eq!(Median::evaluate(state), Value::from(sorted_median(&v)));
        }
    }
}
