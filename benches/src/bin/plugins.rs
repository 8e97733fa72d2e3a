//! End-to-end costs of Wasm aggregate plugins, on one core, over the same in-memory Arrow
//! batches of generated bids as the `e2e` bench.
//!
//! ```text
//! cargo run --release -p laminar-benches --bin plugins -- [--events N] [--keys K] [--batch B] [--rate R]
//! ```
//!
//! Sections:
//!
//! - **a.** Laminar's windowed `SUM(price)` per auction and 10 s tumbling window, native
//!   against the Wasm `wasm_sum` guest: same query shape, same batches, same process.
//! - **b.** Laminar's streaming `median(price)` (the Wasm `median` guest) against
//!   DataFusion's built-in `median` in the equivalent batch query (`date_bin`,
//!   `target_partitions = 1`), with the two results compared group by group.
//! - **c.** `Plugin::load` of each available guest into an empty cache directory (compile
//!   and store) and again (cache hit); `load` also instantiates once to call `describe`.
//! - **d.** Creating a fresh accumulator (instance + constructor, then drop) of each guest,
//!   through `laminar::plugin::plugin_accumulator`, as every query operator does.
//!
//! Queries run 3 times and the best run counts; only query execution is timed (planning
//! included), not data generation or plugin loading. Guests come from `laminar-tests`,
//! which builds them from source; the Python and JavaScript ones are skipped, with the
//! reason, when their toolchains are not installed.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use laminar::gen::bids_schema;
use laminar::plugin::{plugin_accumulator, CacheOutcome, LoadOptions, Plugin};
use laminar::time::WatermarkSpec;
use laminar::{Engine, EngineConfig};
use laminar_benches::{best_of, events_per_second, first_line, guest_path, BenchArgs, RUNS};

type BoxResult<T> = Result<T, Box<dyn Error>>;

/// Maximum lag of event time behind arrival, in ms; also Laminar's watermark delay.
const DISORDER_MS: u64 = 2_000;
/// The lowest acceptable throughput ratio of a Wasm aggregate to its native counterpart.
const TARGET_RATIO: f64 = 0.5;
/// Largest relative difference between two results' values that still counts as equal.
const TOLERANCE: f64 = 1e-9;

/// Section a, native: SUM per auction and 10 s tumbling window.
const NATIVE_SUM_QUERY: &str = "SELECT auction, window_start, SUM(price) \
     FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) \
     GROUP BY auction, window_start, window_end";
/// Section a, Wasm: the same with the `wasm_sum` guest.
const WASM_SUM_QUERY: &str = "SELECT auction, window_start, wasm_sum(price) \
     FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) \
     GROUP BY auction, window_start, window_end";
/// Section b, Laminar: the Wasm `median` guest per auction and 10 s tumbling window.
const LAMINAR_MEDIAN_QUERY: &str = "SELECT auction, window_start, median(price) \
     FROM TUMBLE(TABLE bids, DESCRIPTOR(ts), INTERVAL '10' SECOND) \
     GROUP BY auction, window_start, window_end";
/// Section b, DataFusion: its built-in `median` over the same groups, as a batch query.
const DATAFUSION_MEDIAN_QUERY: &str = "SELECT auction, \
     date_bin(INTERVAL '10 seconds', ts, TIMESTAMP '1970-01-01T00:00:00') AS ws, \
     median(price) FROM bids GROUP BY auction, ws";

/// Guests whose load and instantiation times are measured (sections c and d).
const LOAD_GUESTS: &[&str] = &["median", "geomean", "py_geomean", "js_geomean"];
/// Most accumulators created per guest in section d.
const INSTANCES: u32 = 200;
/// Time after which section d stops creating accumulators for a guest (at least 3 are made).
const INSTANCE_BUDGET: Duration = Duration::from_secs(2);

const USAGE: &str = "usage: plugins [--events N] [--keys K] [--batch B] [--rate R]
  --events N   number of bids (default 2000000)
  --keys K     number of distinct auctions (default 1000)
  --batch B    rows per Arrow batch, for both engines (default 8192)
  --rate R     bids per second of event time (default 10000: 100 k events per 10 s window)";

/// Result values keyed by (auction, window start in epoch ms).
type Keyed = HashMap<(i64, i64), Option<f64>>;

/// The outcome of one query's best run.
#[derive(Debug)]
struct Measured {
    best: Duration,
    rows: usize,
    values: Keyed,
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
            values: keyed(&results)?,
        })
    }

    /// Throughput of the best run over `events` events.
    fn events_per_second(&self, events: u64) -> f64 {
        events_per_second(events, self.best)
    }
}

/// Rows `(auction, window start, value)` of `batches` as a map; the window start may be
/// any timestamp or integer type and is read as epoch ms.
fn keyed(batches: &[RecordBatch]) -> BoxResult<Keyed> {
    let mut values = HashMap::new();
    for batch in batches {
        if batch.num_columns() != 3 {
            return Err(format!("expected 3 result columns, got {}", batch.num_columns()).into());
        }
        let auctions = cast(batch.column(0), &DataType::Int64)?;
        let starts = match batch.column(1).data_type() {
            DataType::Timestamp(_, _) => cast(
                &cast(
                    batch.column(1),
                    &DataType::Timestamp(TimeUnit::Millisecond, None),
                )?,
                &DataType::Int64,
            )?,
            _ => cast(batch.column(1), &DataType::Int64)?,
        };
        let results = cast(batch.column(2), &DataType::Float64)?;
        let auctions = auctions.as_primitive::<Int64Type>();
        let starts = starts.as_primitive::<Int64Type>();
        let results = results.as_primitive::<Float64Type>();
        for row in 0..batch.num_rows() {
            let value = results.is_valid(row).then(|| results.value(row));
            values.insert((auctions.value(row), starts.value(row)), value);
        }
    }
    Ok(values)
}

/// Compares two results group by group; prints whether they agree and returns it.
fn compare(name: &str, a: &Measured, other: &str, b: &Measured) -> bool {
    if a.rows != b.rows || a.values.len() != a.rows || b.values.len() != b.rows {
        println!(
            "  WARNING: result rows differ: {name} {} ({} distinct groups) vs {other} {} ({} \
             distinct groups)",
            a.rows,
            a.values.len(),
            b.rows,
            b.values.len()
        );
        return false;
    }
    let mut missing = 0usize;
    let mut differ = 0usize;
    let mut max_relative = 0.0f64;
    for (key, x) in &a.values {
        match (x, b.values.get(key)) {
            (_, None) => missing += 1,
            (Some(x), Some(Some(y))) => {
                let scale = x.abs().max(y.abs());
                let relative = if scale == 0.0 {
                    0.0
                } else {
                    (x - y).abs() / scale
                };
                max_relative = max_relative.max(relative);
                if relative > TOLERANCE || relative.is_nan() {
                    differ += 1;
                }
            }
            (None, Some(None)) => {}
            (_, Some(_)) => differ += 1,
        }
    }
    if missing == 0 && differ == 0 {
        println!(
            "  results agree: {} groups, largest relative difference {max_relative:.1e}",
            a.rows
        );
        true
    } else {
        println!(
            "  WARNING: results differ: {missing} of {name}'s groups missing from {other}'s, \
             {differ} values differ by more than {TOLERANCE:e} (largest {max_relative:.1e})"
        );
        false
    }
}

/// Laminar: a fresh engine over the batches with `plugins` registered, timing `execute`.
fn run_laminar(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    batch_size: usize,
    plugins: &[&Arc<Plugin>],
    sql: &str,
) -> BoxResult<(Duration, Vec<RecordBatch>)> {
    let mut engine = Engine::with_config(EngineConfig {
        batch_size,
        plugins: laminar_tests::plugin_options(),
        ..EngineConfig::default()
    });
    for plugin in plugins {
        engine.register_plugin(Arc::clone(plugin));
    }
    let watermark = WatermarkSpec {
        column: "ts".into(),
        delay_ms: DISORDER_MS as i64,
    };
    engine.register_batches("bids", schema.clone(), batches.to_vec(), Some(watermark))?;
    let start = Instant::now();
    let results = engine.execute(sql)?;
    Ok((start.elapsed(), results))
}

/// DataFusion: a one-partition session over a `MemTable`, timing planning and `collect`.
fn run_datafusion(
    runtime: &tokio::runtime::Runtime,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    batch_size: usize,
    sql: &str,
) -> BoxResult<(Duration, Vec<RecordBatch>)> {
    let config = SessionConfig::new()
        .with_target_partitions(1)
        .with_batch_size(batch_size);
    let ctx = SessionContext::new_with_config(config);
    let table = MemTable::try_new(schema.clone(), vec![batches.to_vec()])?;
    ctx.register_table("bids", Arc::new(table))?;
    let start = Instant::now();
    let results = runtime.block_on(async { ctx.sql(sql).await?.collect().await })?;
    Ok((start.elapsed(), results))
}

/// Loads guest `guest` (as `name`, if given) with the shared test cache; `Err` holds why
/// the guest is unavailable.
fn load_guest(guest: &str, name: Option<&str>) -> Result<Arc<Plugin>, String> {
    let path = guest_path(guest)?;
    Plugin::load(&path, name, &laminar_tests::plugin_options()).map_err(|e| e.to_string())
}

/// Prints one query's line of results.
fn report(label: &str, measured: &Measured, events: u64) {
    println!(
        "  {label:<26} {:>7.2} M events/s  (best of {RUNS}: {:.3} s, {} rows)",
        measured.events_per_second(events) / 1e6,
        measured.best.as_secs_f64(),
        measured.rows,
    );
}

/// Prints the ratio `a / b` of two throughputs against [`TARGET_RATIO`] and returns it.
fn ratio(label: &str, a: &Measured, b: &Measured, events: u64) -> f64 {
    let ratio = a.events_per_second(events) / b.events_per_second(events);
    let verdict = if ratio >= TARGET_RATIO {
        "met"
    } else {
        "NOT met"
    };
    println!("  ratio {label}: {ratio:.2} (target >= {TARGET_RATIO}: {verdict})");
    ratio
}

/// Section a: native SUM against `wasm_sum` in the same Laminar query.
fn section_sum(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    args: &BenchArgs,
) -> BoxResult<Option<f64>> {
    println!("\na. SUM(price) per auction and 10 s window, Laminar streaming: native vs Wasm");
    let plugin = match load_guest("sum", None) {
        Ok(plugin) => plugin,
        Err(reason) => {
            println!("  skipped: {}", first_line(&reason));
            return Ok(None);
        }
    };
    let native =
        Measured::best_of(|| run_laminar(schema, batches, args.batch, &[], NATIVE_SUM_QUERY))?;
    report("native SUM", &native, args.events);
    let wasm =
        Measured::best_of(|| run_laminar(schema, batches, args.batch, &[&plugin], WASM_SUM_QUERY))?;
    report("wasm_sum (Rust guest)", &wasm, args.events);
    compare("wasm_sum", &wasm, "SUM", &native);
    Ok(Some(ratio("wasm/native", &wasm, &native, args.events)))
}

/// Section b: Laminar with the Wasm `median` against DataFusion's built-in `median`.
fn section_median(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    args: &BenchArgs,
) -> BoxResult<Option<f64>> {
    println!(
        "\nb. median(price) per auction and 10 s window: Laminar + Wasm median vs DataFusion \
         built-in median (batch, 1 partition)"
    );
    let plugin = match load_guest("median", Some("median")) {
        Ok(plugin) => plugin,
        Err(reason) => {
            println!("  skipped: {}", first_line(&reason));
            return Ok(None);
        }
    };
    let laminar = Measured::best_of(|| {
        run_laminar(
            schema,
            batches,
            args.batch,
            &[&plugin],
            LAMINAR_MEDIAN_QUERY,
        )
    })?;
    report("laminar + wasm median", &laminar, args.events);
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    let datafusion = Measured::best_of(|| {
        run_datafusion(
            &runtime,
            schema,
            batches,
            args.batch,
            DATAFUSION_MEDIAN_QUERY,
        )
    })?;
    report("datafusion median", &datafusion, args.events);
    compare("laminar", &laminar, "datafusion", &datafusion);
    Ok(Some(ratio(
        "laminar/datafusion",
        &laminar,
        &datafusion,
        args.events,
    )))
}

/// How a component was obtained, in a few words.
fn outcome(cache: &CacheOutcome) -> String {
    match cache {
        CacheOutcome::Hit => "hit".into(),
        CacheOutcome::Stored => "stored".into(),
        CacheOutcome::NotStored(reason) => format!("not stored ({})", first_line(reason)),
        CacheOutcome::Disabled => "disabled".into(),
    }
}

/// Milliseconds, for the tables.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One timed `Plugin::load`: the plugin and the wall time.
fn timed_load(path: &Path, options: &LoadOptions) -> BoxResult<(Arc<Plugin>, Duration)> {
    let start = Instant::now();
    let plugin = Plugin::load(path, None, options)?;
    Ok((plugin, start.elapsed()))
}

/// Section c: first (compile) and second (cached) load of each guest into a fresh cache
/// directory. Returns the loaded plugins for section d.
fn section_load() -> BoxResult<Vec<(&'static str, Arc<Plugin>)>> {
    println!(
        "\nc. Plugin::load into an empty cache dir (compile + store) and again (cache hit); \
         wall includes one instantiation for describe"
    );
    println!(
        "  {:<11} {:>9}  {:>10} {:>11}  {:<8}  {:>10} {:>11}  {:<8}",
        "guest", "size", "1st wall", "1st compile", "1st", "2nd wall", "2nd compile", "2nd"
    );
    let mut loaded = Vec::new();
    for &guest in LOAD_GUESTS {
        let path = match guest_path(guest) {
            Ok(path) => path,
            Err(reason) => {
                println!("  {guest:<11} skipped: {}", first_line(&reason));
                continue;
            }
        };
        let cache = tempfile::tempdir()?;
        let options = LoadOptions {
            cache_dir: Some(cache.path().to_path_buf()),
            ..LoadOptions::default()
        };
        let (first, first_wall) = timed_load(&path, &options)?;
        let (second, second_wall) = timed_load(&path, &options)?;
        let (a, b) = (first.info(), second.info());
        println!(
            "  {guest:<11} {:>6} KiB  {:>7.1} ms {:>8.1} ms  {:<8}  {:>7.1} ms {:>8.1} ms  {:<8}",
            a.size_bytes / 1024,
            ms(first_wall),
            ms(a.compile_time),
            outcome(&a.cache),
            ms(second_wall),
            ms(b.compile_time),
            outcome(&b.cache),
        );
        loaded.push((guest, second));
    }
    Ok(loaded)
}

/// Section d: mean time to create (and drop) a fresh accumulator of each loaded guest.
fn section_instances(loaded: &[(&'static str, Arc<Plugin>)]) -> BoxResult<()> {
    println!(
        "\nd. fresh accumulator per query operator: plugin_accumulator (instantiate + \
         constructor), then drop"
    );
    if loaded.is_empty() {
        println!("  skipped: no guest loaded");
    }
    for (guest, plugin) in loaded {
        let first = Instant::now();
        drop(plugin_accumulator(Arc::clone(plugin))?);
        let first = first.elapsed();
        let start = Instant::now();
        let mut made = 0u32;
        while made < 3 || (made < INSTANCES && start.elapsed() < INSTANCE_BUDGET) {
            drop(plugin_accumulator(Arc::clone(plugin))?);
            made += 1;
        }
        let mean = start.elapsed() / made;
        println!(
            "  {guest:<11} {:>9.1} µs per accumulator (mean of {made}; first {:.1} µs)",
            mean.as_secs_f64() * 1e6,
            first.as_secs_f64() * 1e6,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plugins: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses the arguments, generates the bids and runs every section.
fn run() -> BoxResult<()> {
    let Some(args) = BenchArgs::parse(std::env::args().skip(1), 2_000_000, USAGE)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let schema = bids_schema();
    let batches = args.generate_bids(DISORDER_MS)?;

    let sum = section_sum(&schema, &batches, &args)?;
    let median = section_median(&schema, &batches, &args)?;
    let loaded = section_load()?;
    section_instances(&loaded)?;

    println!("\nsummary (target >= {TARGET_RATIO})");
    for (label, ratio) in [
        ("wasm_sum / native SUM (Laminar)", sum),
        ("Laminar wasm median / DataFusion median", median),
    ] {
        let value = ratio.map_or_else(|| "skipped".to_string(), |r| format!("{r:.2}"));
        println!("  {label:<40} {value}");
    }
    Ok(())
}
