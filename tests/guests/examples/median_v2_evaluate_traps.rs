//! Fixture `median_v2_evaluate_traps`: a hostile build 2 of `median` that reads version 1
//! states and merges them, but traps (panics) in `evaluate`. A live swap to it must be
//! refused (the swap tries the new build's `evaluate` first) and leave the running build
//! in place, rather than swap in a build that fails the query at its next window.

use laminar_guest::{export_aggregate, Aggregate, Args, Codec, DataType, Value};

/// `median` with state version 2 whose `evaluate` panics.
pub struct MedianEvaluateTraps;

impl Aggregate for MedianEvaluateTraps {
    type State = Vec<f64>;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;
    const STATE_VERSION: u32 = 2;
    const READS_STATE_VERSIONS: &'static [u32] = &[1];

    fn update(state: &mut Vec<f64>, args: &Args<'_>) {
        state.push(args.f64(0));
    }
    fn merge(state: &mut Vec<f64>, other: Vec<f64>) {
        state.extend(other);
    }
    fn evaluate(_state: Vec<f64>) -> Value {
        panic!("median build 2 gave up in evaluate");
    }
    fn migrate(_version: u32, mut bytes: &[u8]) -> Result<Vec<f64>, String> {
        Vec::<f64>::decode(&mut bytes).map_err(|e| e.to_string())
    }
}

export_aggregate!(MedianEvaluateTraps);
