//! `geomean(x DOUBLE) -> DOUBLE`: the geometric mean of the positive values of `x`
//! (zero and negative values are skipped, as is NULL), as a Laminar Wasm aggregate.
//!
//! Computed as `exp(mean(ln x))`: the state is the sum of logarithms and the count, so
//! states merge by addition and the result does not overflow for large products.

use laminar_guest::{export_aggregate, Aggregate, Args, DataType, Value};

/// The geometric mean aggregate.
pub struct GeoMean;

impl Aggregate for GeoMean {
    /// (sum of natural logarithms, number of values)
    type State = (f64, u64);
    const NAME: &'static str = "geomean";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(state: &mut (f64, u64), args: &Args<'_>) {
        let x = args.f64(0);
        if x > 0.0 {
            state.0 += x.ln();
            state.1 += 1;
        }
    }

    fn merge(state: &mut (f64, u64), other: (f64, u64)) {
        state.0 += other.0;
        state.1 += other.1;
    }

    fn evaluate((log_sum, n): (f64, u64)) -> Value {
        if n == 0 {
            Value::Null
        } else {
            Value::Float64((log_sum / n as f64).exp())
        }
    }
}

export_aggregate!(GeoMean);
