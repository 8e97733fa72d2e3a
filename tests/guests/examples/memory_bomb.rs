//! Fixture `memory_bomb`: a `f64 -> f64` aggregate whose `update` allocates 1 MiB blocks
//! forever and writes every byte of each, so the memory is really used. A host without a
//! memory limit on the plugin's instance runs out of memory; with one, the allocation fails
//! and the plugin traps.

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; its state is empty because `update` never finishes.
pub struct MemoryBomb;

impl Aggregate for MemoryBomb {
    type State = ();
    const NAME: &'static str = "memory_bomb";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(_state: &mut (), _args: &Args<'_>) {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            // A non-zero fill writes every byte (fresh zeroed memory might not be touched).
            let block = vec![0xA5u8; 1 << 20];
            hoard.push(std::hint::black_box(block));
            std::hint::black_box(&mut hoard);
        }
    }

    fn merge(_state: &mut (), _other: ()) {}

    fn evaluate(_state: ()) -> Value {
        Value::Null
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(MemoryBomb);
