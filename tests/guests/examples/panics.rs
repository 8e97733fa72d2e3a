//! Fixture `panics`: a `f64 -> f64` aggregate whose `update` panics with the message
//! "boom: the plugin gave up". In Wasm a panic aborts: the host sees a trap, and the panic
//! message on the plugin's stderr.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; it never gets past its first row.
pub struct Panics;

impl Aggregate for Panics {
    type State = ();
    const NAME: &'static str = "panics";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(_state: &mut (), _args: &Args<'_>) {
        panic!("boom: the plugin gave up");
    }

    fn merge(_state: &mut (), _other: ()) {}

    fn evaluate(_state: ()) -> Value {
        Value::Null
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(Panics);
