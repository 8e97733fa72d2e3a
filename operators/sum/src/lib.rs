//! `wasm_sum(x DOUBLE) -> DOUBLE`: the plain SUM of the non-NULL values of `x`, as a Laminar
//! Wasm aggregate. It exists so that benchmarks can compare a SUM computed inside Wasm with
//! the engine's native SUM, so its per-row work is one addition and one store.
//!
//! Semantics: NULL rows are skipped; a group with no non-NULL value evaluates to NULL (as
//! SQL `SUM`). Values are added in arrival order with ordinary `f64` addition (no
//! compensated summation), so, like any floating-point SUM, the last bits of the result can
//! depend on the order of rows and of merged partial states. The state is `(sum, seen)`,
//! 9 state bytes.

use laminar_guest::{update_rows, Aggregate, Args, Batch, DataType, Value};

/// The SUM aggregate.
pub struct WasmSum;

/// The result of a `(sum, seen)` state: the sum, or `None` when no value was seen.
pub fn finish((sum, seen): (f64, bool)) -> Option<f64> {
    seen.then_some(sum)
}

/// Adds `x` to a `(sum, seen)` state.
#[inline(always)]
fn add(state: &mut (f64, bool), x: f64) {
    state.0 += x;
    state.1 = true;
}

impl Aggregate for WasmSum {
    /// (sum of the values, whether any value was seen)
    type State = (f64, bool);
    const NAME: &'static str = "wasm_sum";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    #[inline]
    fn update(state: &mut (f64, bool), args: &Args<'_>) {
        state.0 += args.f64(0);
        state.1 = true;
    }

    /// One tight loop over the typed column when the batch has no NULLs.
    fn update_batch(states: &mut [(f64, bool)], group_ids: &[u32], batch: &Batch<'_>) {
        if !batch.all_valid() {
            return update_rows::<Self>(states, group_ids, batch);
        }
        // Eight rows per loop iteration: the runtime checks its per-call deadline once per
        // iteration, so a longer body spreads that check (and the register spills around
        // it) over more rows.
        let values = batch.f64s(0);
        let (id_blocks, id_rest) = group_ids.as_chunks::<8>();
        let (value_blocks, value_rest) = values.as_chunks::<8>();
        for (ids, xs) in id_blocks.iter().zip(value_blocks) {
            for (&group, &x) in ids.iter().zip(xs) {
                add(&mut states[group as usize], x);
            }
        }
        for (&group, &x) in id_rest.iter().zip(value_rest) {
            add(&mut states[group as usize], x);
        }
    }

    fn merge(state: &mut (f64, bool), other: (f64, bool)) {
        if other.1 {
            state.0 += other.0;
            state.1 = true;
        }
    }

    fn evaluate(state: (f64, bool)) -> Value {
        finish(state).into()
    }
}

laminar_guest::export_aggregate!(WasmSum);

#[cfg(test)]
mod tests {
    use super::*;
    use laminar_guest::Codec;

    /// What `update` does for each value, without the Wasm boundary.
    fn sum_of(values: &[f64]) -> (f64, bool) {
        let mut state = (0.0, false);
        for &x in values {
            state.0 += x;
            state.1 = true;
        }
        state
    }

    fn round_trip(state: (f64, bool)) -> (f64, bool) {
        let mut bytes = Vec::new();
        state.encode(&mut bytes);
        assert_eq!(bytes.len(), 9);
        <(f64, bool)>::decode(&mut bytes.as_slice()).unwrap()
    }

    #[test]
    fn sums_values() {
        // Integers and halves: every partial sum is exact, so the expected value is exact.
        let values: Vec<f64> = (0..10_000).map(|i| f64::from(i) * 0.5 - 700.0).collect();
        let expected: f64 = (0..10_000).map(|i| f64::from(i) * 0.5 - 700.0).sum();
        assert_eq!(WasmSum::evaluate(sum_of(&values)), Value::Float64(expected));
        assert_eq!(WasmSum::evaluate(sum_of(&[-2.5])), Value::Float64(-2.5));
        // A group whose values cancel is 0, not NULL.
        assert_eq!(WasmSum::evaluate(sum_of(&[1.0, -1.0])), Value::Float64(0.0));
    }

    #[test]
    fn empty_group_is_null() {
        assert_eq!(WasmSum::evaluate(<(f64, bool)>::default()), Value::Null);
        let mut state = Default::default();
        WasmSum::merge(&mut state, round_trip(Default::default()));
        assert_eq!(WasmSum::evaluate(state), Value::Null);
    }

    #[test]
    fn merge_of_encoded_halves_is_exact() {
        let values: Vec<f64> = (0..1001).map(|i| f64::from(i) * 0.25).collect();
        let (a, b) = values.split_at(400);
        let mut state = round_trip(sum_of(a));
        WasmSum::merge(&mut state, round_trip(sum_of(b)));
        assert_eq!(state, sum_of(&values));
        assert_eq!(WasmSum::evaluate(state), Value::Float64(125_125.0));
        // Merging into an empty group keeps the other's value.
        let mut empty = Default::default();
        WasmSum::merge(&mut empty, round_trip(sum_of(&[4.0])));
        assert_eq!(WasmSum::evaluate(empty), Value::Float64(4.0));
    }
}
