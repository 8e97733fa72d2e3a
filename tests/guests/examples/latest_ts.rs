//! Fixture `latest_ts`: `latest_ts(t TIMESTAMP) -> TIMESTAMP`, the latest timestamp of a
//! group (MAX), for the test that passes a TIMESTAMP event-time column (nanoseconds in
//! Arrow) to a plugin, which receives microseconds.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; its state is the latest timestamp seen, if any.
pub struct LatestTs;

impl Aggregate for LatestTs {
    type State = Option<i64>;
    const NAME: &'static str = "latest_ts";
    const ARGS: &'static [DataType] = &[DataType::Timestamp];
    const RETURNS: DataType = DataType::Timestamp;

    fn update(state: &mut Option<i64>, args: &Args<'_>) {
        let t = args.timestamp(0);
        *state = Some(state.map_or(t, |s| s.max(t)));
    }

    fn merge(state: &mut Option<i64>, other: Option<i64>) {
        if let Some(t) = other {
            *state = Some(state.map_or(t, |s| s.max(t)));
        }
    }

    fn evaluate(state: Option<i64>) -> Value {
        state.map_or(Value::Null, Value::Timestamp)
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(LatestTs);
