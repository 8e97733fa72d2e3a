//! End-to-end throughput: Laminar's windowed query against the equivalent DataFusion batch
//! query, on one core, over the same in-memory Arrow batches of generated bids.
//!
//! ```text
//! cargo run --release -p laminar-benches --bin e2e -- [--events N] [--keys K] [--batch B] [--rate R]
//! ```
//!
//! Bids arrive at `R` events per second of event time (default 10 000), so 10 M events span
//! 1 000 s of event time: about 100 ten-second windows of ~100 000 events each, and with 1 000 keys
//! about 100 events per (auction, window) group and ~100 000 result rows. That keeps both the
//! number of windows that open and close and the per-group work meaningful. Event times lag
//! arrival by up to 2 s (`disorder_ms`), no bid is late, and Laminar's watermark delay equals
//! the disorder, so Laminar drops nothing and both engines see every event.
//!
//! Only query execution is timed (planning included on both sides), not data generation.
//! Each engine runs 3 times and the best run counts.

use std::collections::HashSet;
use std::error::Error;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use laminar::gen::bids_schema;
use laminar::time::WatermarkSpec;
use laminar::{Engine, EngineConfig};
use laminar_benches::{
    best_of, events_per_second, BenchArgs, DATAFUSION_QUERY, LAMINAR_QUERY, RUNS,
};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Maximum lag of event time behind arrival, in ms; also Laminar's watermark delay.
const DISORDER_MS: u64 = 2_000;

const USAGE: &str = "usage: e2e [--events N] [--keys K] [--batch B] [--rate R]
  --events N   number of bids (default 10000000)
  --keys K     number of distinct auctions (default 1000)
  --batch B    rows per Arrow batch, for both engines (default 8192)
  --rate R     bids per second of event time (default 10000: 100 k events per 10 s window)";

/// The outcome of one engine's best run.
#[derive(Debug)]
struct Measured {
    best: Duration,
    rows: usize,
    windows: Option<usize>,
    counted: Option<i64>,
}

impl Measured {
    /// Runs `run` [`RUNS`] times and keeps the best time.
    fn best_of(
        run: impl FnMut() -> BoxResult<(Duration, Vec<RecordBatch>)>,
    ) -> BoxResult<Measured> {
        let (best, results) = best_of(run)?;
        Ok(Measured {
            best,
            rows: results.iter().map(RecordBatch::num_rows).sum(),
            windows: distinct_windows(&results),
            counted: total_count(&results),
        })
    }

    /// Throughput of the best run over `events` events.
    fn events_per_second(&self, events: u64) -> f64 {
        events_per_second(events, self.best)
    }
}

/// The sum of the `COUNT(*)` column (the third) over all result rows, if it is an Int64.
fn total_count(batches: &[RecordBatch]) -> Option<i64> {
    batches.iter().try_fold(0i64, |total, batch| {
        let counts = batch.columns().get(2)?.as_primitive_opt::<Int64Type>()?;
        let sum: i64 = counts.iter().flatten().sum();
        (counts.null_count() == 0).then_some(total + sum)
    })
}

/// The number of distinct window starts (the second column) in the results.
fn distinct_windows(batches: &[RecordBatch]) -> Option<usize> {
    let mut starts = HashSet::new();
    for batch in batches {
        let column = cast(batch.columns().get(1)?, &DataType::Int64).ok()?;
        starts.extend(column.as_primitive_opt::<Int64Type>()?.iter());
    }
    Some(starts.len())
}

/// Laminar: a fresh engine over the batches, timing `execute` of the windowed query.
fn run_laminar(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    batch_size: usize,
) -> BoxResult<(Duration, Vec<RecordBatch>)> {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size,
        ..EngineConfig::default()
    });
    let watermark = WatermarkSpec {
        column: "ts".into(),
        delay_ms: DISORDER_MS as i64,
    };
    engine.register_batches("bids", schema.clone(), batches.to_vec(), Some(watermark))?;
    let start = Instant::now();
    let results = engine.execute(LAMINAR_QUERY)?;
    Ok((start.elapsed(), results))
}

/// DataFusion: a one-partition session over a `MemTable`, timing planning and `collect`.
fn run_datafusion(
    runtime: &tokio::runtime::Runtime,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    batch_size: usize,
) -> BoxResult<(Duration, Vec<RecordBatch>)> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(batch_size);
    let ctx = SessionContext::new_with_config(config);
    let table = MemTable::try_new(schema.clone(), vec![batches.to_vec()])?;
    ctx.register_table("bids", Arc::new(table))?;
    let start = Instant::now();
    let results = runtime.block_on(async { ctx.sql(DATAFUSION_QUERY).await?.collect().await })?;
    Ok((start.elapsed(), results))
}

/// Prints one engine's line of results.
fn report(name: &str, measured: &Measured, events: u64) {
    println!(
        "{name:<11}: {:.1} M events/s (best of {RUNS}, {:.2} s; {} rows, {} windows)",
        measured.events_per_second(events) / 1e6,
        measured.best.as_secs_f64(),
        measured.rows,
        measured
            .windows
            .map_or_else(|| "?".to_string(), |w| w.to_string()),
    );
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the arguments, generates the bids and runs both engines.
fn run() -> BoxResult<()> {
    let Some(args) = BenchArgs::parse(std::env::args().skip(1), 10_000_000, USAGE)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let schema = bids_schema();
    let batches = args.generate_bids(DISORDER_MS)?;

    let laminar = Measured::best_of(|| run_laminar(&schema, &batches, args.batch))?;
    report("laminar", &laminar, args.events);

    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let datafusion = Measured::best_of(|| run_datafusion(&runtime, &schema, &batches, args.batch))?;
    report("datafusion", &datafusion, args.events);

    let ratio = laminar.events_per_second(args.events) / datafusion.events_per_second(args.events);
    println!("ratio laminar/datafusion: {ratio:.2} (target >= 1.0)");

    if laminar.rows != datafusion.rows {
        println!(
            "WARNING: result rows differ: laminar {} vs datafusion {}",
            laminar.rows, datafusion.rows
        );
    }
    if laminar.windows != datafusion.windows {
        println!(
            "WARNING: distinct windows differ: laminar {:?} vs datafusion {:?}",
            laminar.windows, datafusion.windows
        );
    }
    let expected = i64::try_from(args.events).ok();
    for (name, measured) in [("laminar", &laminar), ("datafusion", &datafusion)] {
        if measured.counted != expected {
            println!(
                "WARNING: {name}'s COUNT(*) column sums to {:?}, expected {} events",
                measured.counted, args.events
            );
        }
    }
    Ok(())
}
