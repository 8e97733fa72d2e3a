//! Fixture `median_v2_traps`: a hostile build 2 of `median` that declares it reads
//! version 1 states and converts them, but traps (panics) in `merge`. Resuming a durable
//! query with it must fail with an error naming the plugin and `merge`, and leave the
//! state dir as it was, so that build 1 still resumes it.

use laminar_guest::{export_aggregate, Aggregate, Args, Codec, DataType, Value};

/// `median` with state version 2 whose `merge` panics.
pub struct MedianTraps;

impl Aggregate for MedianTraps {
    type State = Vec<f64>;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;
    const STATE_VERSION: u32 = 2;
    const READS_STATE_VERSIONS: &'static [u32] = &[1];

    fn update(state: &mut Vec<f64>, args: &Args<'_>) {
        state.push(args.f64(0));
    }
    fn merge(_state: &mut Vec<f64>, _other: Vec<f64>) {
        panic!("median build 2 gave up in merge");
    }
    fn evaluate(state: Vec<f64>) -> Value {
        state.first().copied().map_or(Value::Null, Value::Float64)
    }
    fn migrate(_version: u32, mut bytes: &[u8]) -> Result<Vec<f64>, String> {
        Vec::<f64>::decode(&mut bytes).map_err(|e| e.to_string())
    }
}

export_aggregate!(MedianTraps);
