//! Fixture `floods`: a `f64 -> f64` aggregate whose `update` prints "flood begins", then
//! 8 MiB of dots to stderr, then panics with "the end: panicked after the flood". The host
//! must keep the beginning and the end of the output (the panic) and drop the middle.

use std::io::Write;

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; it never gets past its first row.
pub struct Floods;

impl Aggregate for Floods {
    type State = ();
    const NAME: &'static str = "floods";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(_state: &mut (), _args: &Args<'_>) {
        let mut stderr = std::io::stderr();
        let _ = stderr.write_all(b"flood begins\n");
        let dots = vec![b'.'; 64 * 1024];
        for _ in 0..128 {
            let _ = stderr.write_all(&dots);
        }
        let _ = stderr.write_all(b"\n");
        panic!("the end: panicked after the flood");
    }

    fn merge(_state: &mut (), _other: ()) {}

    fn evaluate(_state: ()) -> Value {
        Value::Null
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(Floods);
