//! Fixture `infinite_loop`: a valid `f64 -> f64` aggregate whose `update` never returns.
//! A host that runs plugins without fuel or epoch interruption hangs on it.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; its state is empty because `update` never finishes.
pub struct InfiniteLoop;

impl Aggregate for InfiniteLoop {
    type State = ();
    const NAME: &'static str = "infinite_loop";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(_state: &mut (), _args: &Args<'_>) {
        let mut spins = 0u64;
        loop {
            // `black_box` keeps the optimiser from proving the loop has no effect.
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
    }

    fn merge(_state: &mut (), _other: ()) {}

    fn evaluate(_state: ()) -> Value {
        Value::Null
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(InfiniteLoop);
