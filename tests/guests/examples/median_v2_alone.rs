//! Fixture `median_v2_alone`: a build 2 of `median` (state version 2) that does not read
//! version 1 states: a durable query started with `operators/median` must refuse to resume
//! with it, naming both versions.

use laminar_guest::{export_aggregate, Aggregate, Args, DataType, Value};

/// `median` with state version 2 and no upgrade path.
pub struct MedianAlone;

impl Aggregate for MedianAlone {
    type State = Vec<f64>;
    const NAME: &'static str = "median";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;
    const STATE_VERSION: u32 = 2;

    fn update(state: &mut Vec<f64>, args: &Args<'_>) {
        state.push(args.f64(0));
    }
    fn merge(state: &mut Vec<f64>, other: Vec<f64>) {
        state.extend(other);
    }
    fn evaluate(mut state: Vec<f64>) -> Value {
        state.sort_by(f64::total_cmp);
        let n = state.len();
        match n {
            0 => Value::Null,
            _ if n % 2 == 1 => Value::Float64(state[n / 2]),
            _ => Value::Float64((state[n / 2 - 1] + state[n / 2]) / 2.0),
        }
    }
}

export_aggregate!(MedianAlone);
