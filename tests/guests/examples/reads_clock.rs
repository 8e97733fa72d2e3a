//! Fixture `reads_clock`: `reads_clock(x DOUBLE) -> DOUBLE`, whose result depends on the
//! clocks and on random numbers. For every row it reads the wall clock and the monotonic
//! clock, sleeps 1 ms, and draws a hash key from the random source (a fresh `RandomState`);
//! the group adds up numbers taken from all of them. On a sandbox with a virtual clock and
//! a seeded random source the same input gives the same results in every run; on the
//! machine's clock and entropy it never does.

use std::hash::BuildHasher;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use laminar_guest::{Aggregate, Args, DataType, Value};

/// The aggregate; its state is the running total.
pub struct ReadsClock;

impl Aggregate for ReadsClock {
    type State = f64;
    const NAME: &'static str = "reads_clock";
    const ARGS: &'static [DataType] = &[DataType::Float64];
    const RETURNS: DataType = DataType::Float64;

    fn update(state: &mut f64, args: &Args<'_>) {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() % 1_000_003)
            .unwrap_or(0);
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        let slept = start.elapsed().as_micros();
        let random = std::collections::hash_map::RandomState::new().hash_one(args.f64(0).to_bits());
        *state += wall as f64 + slept as f64 + (random % 1_000) as f64;
    }

    fn merge(state: &mut f64, other: f64) {
        *state += other;
    }

    fn evaluate(state: f64) -> Value {
        Value::Float64(state)
    }
}

#[cfg(target_arch = "wasm32")]
laminar_guest::export_aggregate!(ReadsClock);
