//! Timing shared by the benches: best of a few runs and throughput for the end-to-end
//! binaries, and the criterion settings of the micro benches.

use std::error::Error;
use std::time::Duration;

use datafusion::arrow::record_batch::RecordBatch;

/// How many times each measured query runs; the best run counts.
pub const RUNS: usize = 3;

/// Runs `run` [`RUNS`] times (each call returns its elapsed query time and results) and
/// returns the best time with the last run's results.
pub fn best_of(
    mut run: impl FnMut() -> Result<(Duration, Vec<RecordBatch>), Box<dyn Error>>,
) -> Result<(Duration, Vec<RecordBatch>), Box<dyn Error>> {
    let mut best = Duration::MAX;
    let mut results = Vec::new();
    for _ in 0..RUNS {
        let (elapsed, batches) = run()?;
        best = best.min(elapsed);
        results = batches;
    }
    Ok((best, results))
}

/// Throughput of `events` events processed in `elapsed`.
pub fn events_per_second(events: u64, elapsed: Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// The criterion settings every bench shares (they live with the allocator in
/// `laminar-core-benches`).
pub use laminar_core_benches::criterion_config;
