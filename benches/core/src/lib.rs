//! What every Laminar bench binary shares: the global allocator and the criterion
//! settings. `laminar-benches` re-exports both, so the two bench crates measure alike.

use std::time::Duration;

use criterion::Criterion;

/// With the `mimalloc` feature (on by default) every bench binary (they all link this
/// library) allocates with mimalloc, as the `laminar` binary does; Laminar and its
/// DataFusion baseline share it. `--no-default-features` measures with the system
/// allocator.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: laminar::allocator::Allocator = laminar::allocator::Allocator;

/// Criterion settings for the micro benches: modest sampling, so a whole run takes a minute
/// or two; command-line options (`--measurement-time` …) override them.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}
