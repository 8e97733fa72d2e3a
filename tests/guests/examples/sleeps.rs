//! Fixture `sleeps`: a `f64 -> f64` aggregate whose `update` sleeps for an hour
//! (`std::thread::sleep`, a blocking WASI poll on the monotonic clock). A host whose
//! deadline only interrupts running Wasm code hangs on it.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; its state is empty because `update` never gets past the sleep.
pub struct Sleeps;

impl Aggregate for Sleeps {
    type State = ();
    const NAME: &'static str = "sleeps";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(_state: &mut (), _args: &Args<'_>) {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }

    fn merge(_state: &mut (), _other: ()) {}

    fn evaluate(_state: ()) -> Value {
        Value::Null
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(Sleeps);
