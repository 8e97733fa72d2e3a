//! `weighted_avg(x DOUBLE, w DOUBLE) -> DOUBLE`: `sum(x * w) / sum(w)` over the rows where
//! both `x` and `w` are non-NULL, as a Laminar Wasm aggregate.
//!
//! Semantics:
//! - A row with a NULL `x` or a NULL `w` is skipped.
//! - A group with no such row, or whose weights sum to exactly 0, evaluates to NULL (there
//!   is no average to divide out).
//! - Weights may be negative; nothing is clamped. Sums use ordinary `f64` addition, so the
//!   last bits can depend on the order of rows and of merged partial states.
//!
//! The state is `(sum(x * w), sum(w))`, 16 state bytes; states merge by addition.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The weighted average aggregate.
pub struct WeightedAvg;

/// Adds the row `(x, w)` to the state `(sum(x * w), sum(w))`.
#[inline]
pub fn add(state: &mut (f64, f64), x: f64, w: f64) {
    state.0 += x * w;
    state.1 += w;
}

/// The weighted average of a state, or `None` when its weights sum to 0 (or it is empty).
pub fn finish((weighted_sum, weight_sum): (f64, f64)) -> Option<f64> {
    (weight_sum != 0.0).then(|| weighted_sum / weight_sum)
}

impl Aggregate for WeightedAvg {
    /// (sum of x * w, sum of w)
    type State = (f64, f64);
    const NAME: &'static str = "weighted_avg";
    const ARGS: &'static [DataType] = &[DataType::Float64, DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    #[inline]
    fn update(state: &mut (f64, f64), args: &Args<'_>) {
        add(state, args.f64(0), args.f64(1));
    }

    fn merge(state: &mut (f64, f64), other: (f64, f64)) {
        state.0 += other.0;
        state.1 += other.1;
    }

    fn evaluate(state: (f64, f64)) -> Value {
        finish(state).into()
    }
}

laminar_guest::export_aggregate!(WeightedAvg);

#[cfg(test)]
mod tests {
    use super::*;
    use laminar_guest::Codec;

    fn state_of(rows: &[(f64, f64)]) -> (f64, f64) {
        let mut state = Default::default();
        for &(x, w) in rows {
            add(&mut state, x, w);
        }
        state
    }

    fn round_trip(state: (f64, f64)) -> (f64, f64) {
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        <(f64, f64)>::decode(&mut bytes.as_slice()).unwrap()
    }

    /// Rows whose products and sums are exact in f64 (small integers and halves).
    fn rows() -> Vec<(f64, f64)> {
        (0..2000)
            .map(|i| (f64::from(i % 97) - 40.0, f64::from(i % 7) * 0.5 + 0.5))
            .collect()
    }

    #[test]
    fn weighted_average_is_exact() {
        assert_eq!(
            WeightedAvg::evaluate(state_of(&[(1.0, 1.0), (4.0, 3.0)])),
            Value::Float64(13.0 / 4.0)
        );
        let rows = rows();
        let numerator: f64 = rows.iter().map(|(x, w)| x * w).sum();
        let denominator: f64 = rows.iter().map(|(_, w)| w).sum();
        assert_eq!(
            WeightedAvg::evaluate(state_of(&rows)),
            Value::Float64(numerator / denominator)
        );
        // Equal weights: the plain mean.
        assert_eq!(
            WeightedAvg::evaluate(state_of(&[(2.0, 5.0), (4.0, 5.0), (9.0, 5.0)])),
            Value::Float64(5.0)
        );
    }

    #[test]
    fn no_rows_or_zero_weight_is_null() {
        assert_eq!(WeightedAvg::evaluate(Default::default()), Value::Null);
        assert_eq!(WeightedAvg::evaluate(state_of(&[(3.0, 0.0)])), Value::Null);
        assert_eq!(
            WeightedAvg::evaluate(state_of(&[(3.0, 2.0), (5.0, -2.0)])),
            Value::Null
        );
        let mut state = Default::default();
        WeightedAvg::merge(&mut state, round_trip(Default::default()));
        assert_eq!(WeightedAvg::evaluate(state), Value::Null);
    }

    #[test]
    fn merge_of_encoded_halves_is_exact() {
        let rows = rows();
        let whole = WeightedAvg::evaluate(state_of(&rows));
        for split in [0, 1, 999, 2000] {
            let (a, b) = rows.split_at(split);
            let mut state = round_trip(state_of(a));
            WeightedAvg::merge(&mut state, round_trip(state_of(b)));
            assert_eq!(WeightedAvg::evaluate(state), whole, "split at {split}");
        }
    }
}
