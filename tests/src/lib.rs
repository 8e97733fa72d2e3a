//! Shared helpers for the integration tests: an independent model of lateness and result
//! rows that can be compared as multisets.

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use arrow::record_batch::RecordBatch;
use datafusion::arrow;

mod hostile;
mod oracle;

pub use hostile::{small_bids, small_engine, tight_plugin_options};
pub use oracle::{batch_sql, collect, engine_over, Bids};

/// One value of a result row, comparable across engines.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// Integers and timestamps (timestamps as epoch milliseconds).
    Int(i64),
    /// Floating point numbers.
    Float(f64),
    /// Strings.
    Text(String),
}

/// Result rows of `batches`, sorted, with timestamps as epoch milliseconds.
pub fn sorted_rows(batches: &[RecordBatch]) -> Vec<Vec<Value>> {
    let mut rows: Vec<Vec<Value>> = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| match c.data_type() {
                DataType::Timestamp(_, _) => {
                    let ms = cast(c, &DataType::Timestamp(TimeUnit::Millisecond, None))
                        .expect("timestamp to ms");
                    cast(&ms, &DataType::Int64).expect("timestamp to int")
                }
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32 => cast(c, &DataType::Int64).expect("int"),
                DataType::Float32 => cast(c, &DataType::Float64).expect("float"),
                DataType::Utf8View | DataType::LargeUtf8 => cast(c, &DataType::Utf8).expect("utf8"),
                _ => c.clone(),
            })
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|c| {
                        if c.is_null(row) {
                            return Value::Null;
                        }
                        match c.data_type() {
                            DataType::Int64 => Value::Int(c.as_primitive::<Int64Type>().value(row)),
                            DataType::Float64 => {
                                Value::Float(c.as_primitive::<Float64Type>().value(row))
                            }
                            DataType::Utf8 => {
                                Value::Text(c.as_string::<i32>().value(row).to_string())
                            }
                            other => panic!("unexpected result type {other}"),
                        }
                    })
                    .collect(),
            );
        }
    }
    rows.sort_by(|a, b| a.partial_cmp(b).expect("no NaN in results"));
    rows
}

/// Asserts two sorted row sets are equal, floats within `1e-9` relative error.
pub fn assert_rows_match(actual: &[Vec<Value>], expected: &[Vec<Value>]) {
    assert_rows_close(actual, expected, 1e-9, "rows");
}

/// Asserts two sorted row sets (`what`, for the message) are equal, floats within
/// `relative` error: sums of rows that arrive in another order differ in their last bits.
pub fn assert_rows_close(
    actual: &[Vec<Value>],
    expected: &[Vec<Value>],
    relative: f64,
    what: &str,
) {
    assert_eq!(actual.len(), expected.len(), "{what}: row counts differ");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert_eq!(a.len(), e.len(), "{what}: row {i}: column counts differ");
        for (x, y) in a.iter().zip(e) {
            let same = match (x, y) {
                (Value::Float(x), Value::Float(y)) => {
                    (x - y).abs() <= relative * x.abs().max(y.abs()).max(1.0)
                }
                _ => x == y,
            };
            assert!(
                same,
                "{what}: row {i} differs:\n actual   {a:?}\n expected {e:?}"
            );
        }
    }
}

/// Independent model of the lateness contract: for events in arrival order, whether each
/// is late for tumbling windows of `size_ms` with a watermark `delay_ms` behind the largest
/// event time seen before it.
pub fn late_flags(event_times_ms: &[i64], size_ms: i64, delay_ms: i64) -> Vec<bool> {
    let mut max_before: Option<i64> = None;
    event_times_ms
        .iter()
        .map(|&t| {
            let window_end = t.div_euclid(size_ms) * size_ms + size_ms;
            let late = max_before.is_some_and(|m| window_end <= m - delay_ms);
            max_before = Some(max_before.map_or(t, |m| m.max(t)));
            late
        })
        .collect()
}

mod built_guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Every guest the test build knows: its name and the path of its component, or why it
/// could not be built.
pub fn all_guests() -> impl Iterator<Item = (&'static str, Result<&'static str, &'static str>)> {
    built_guests::GUESTS.iter().copied()
}

/// The component built from source for guest `name` (a shipped operator such as `median`,
/// a fixture such as `infinite_loop`, or `py_geomean` / `js_geomean`). Panics with the
/// reason when the guest could not be built.
pub fn guest(name: &str) -> std::path::PathBuf {
    match built_guests::GUESTS.iter().find(|(n, _)| *n == name) {
        Some((_, Ok(path))) => std::path::PathBuf::from(path),
        Some((_, Err(reason))) => panic!("guest {name} was not built: {reason}"),
        None => panic!(
            "no guest named {name}; built: {:?}",
            built_guests::GUESTS
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>()
        ),
    }
}

/// The plugin cache shared by all test runs (compiled Python/JS components are reused).
pub fn plugin_cache_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/wasm-guests/plugin-cache")
}

/// Plugin load options for tests: the shared cache and default limits.
pub fn plugin_options() -> laminar::plugin::LoadOptions {
    laminar::plugin::LoadOptions {
        cache_dir: Some(plugin_cache_dir()),
        ..laminar::plugin::LoadOptions::default()
    }
}

/// Reads a CSV result file of the file-oracle query (auction, window bounds, COUNT(*),
/// SUM, MIN, MAX, AVG, COUNT(bidder), MIN(channel), COUNT(price, bidder)) with its schema
/// spelled out, as sorted rows.
pub fn read_oracle_results_csv(path: &std::path::Path) -> Vec<Vec<Value>> {
    use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let fields = [
        ("auction", DataType::Int64),
        ("window_start", ts.clone()),
        ("window_end", ts),
        ("count_all", DataType::Int64),
        ("sum", DataType::Float64),
        ("min", DataType::Float64),
        ("max", DataType::Float64),
        ("avg", DataType::Float64),
        ("count_bidder", DataType::Int64),
        ("min_channel", DataType::Utf8),
        ("count_both", DataType::Int64),
    ];
    let schema = std::sync::Arc::new(Schema::new(
        fields
            .into_iter()
            .map(|(name, t)| Field::new(name, t, true))
            .collect::<Vec<_>>(),
    ));
    let file = std::fs::File::open(path).expect("open results");
    let reader = datafusion::arrow::csv::ReaderBuilder::new(schema)
        .with_header(true)
        .build(file)
        .expect("csv reader");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("csv batch")).collect();
    sorted_rows(&batches)
}
