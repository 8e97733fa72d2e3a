//! Fixture `median_v2_bigint`: a build 2 of `median` that reads version 1 states but
//! declares a BIGINT result where the running build returns DOUBLE. A live swap
//! (`--reload-plugins`) must refuse it, naming both signatures, and keep the running
//! build.

use laminar_guest::{export_aggregate, Aggregate, Args, Codec, DataType, Value};

/// `median` with state version 2 whose result type changed.
pub struct MedianBigint;

impl Aggregate for MedianBigint {
    type State = Vec<f64>;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Int64;
    const STATE_VERSION: u32 = 2;
    const READS_STATE_VERSIONS: &'static [u32] = &[1];

    fn update(state: &mut Vec<f64>, args: &Args<'_>) {
        state.push(args.f64(0));
    }
    fn merge(state: &mut Vec<f64>, other: Vec<f64>) {
        state.extend(other);
    }
    fn evaluate(state: Vec<f64>) -> Value {
        Value::Int64(state.len() as i64)
    }
    fn migrate(_version: u32, mut bytes: &[u8]) -> Result<Vec<f64>, String> {
        Vec::<f64>::decode(&mut bytes).map_err(|e| e.to_string())
    }
}

export_aggregate!(MedianBigint);
